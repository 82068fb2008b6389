"""Population health, pure (no framework): the A–D pyramid and the team financing.

Stratification: ``model`` is what a rule file means, ``loader`` reads YAML with file:line errors,
``schema`` publishes the JSON Schema, ``facts`` reads what the rules look at from FHIR,
``evaluate`` places one inhabitant in a group with the reasons, and ``assessment`` records that as
an R4 RiskAssessment. Financing: ``financing``, ``financing_report``; who sees aggregates and the small-count rule: ``shared_views``.
"""
