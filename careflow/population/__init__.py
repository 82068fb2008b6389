"""Population stratification: the A–D pyramid as declarative, versioned rules (pure, no framework).

``model`` is what a rule file means, ``loader`` reads YAML with file:line errors, ``schema`` publishes
the JSON Schema, ``facts`` reads what the rules look at from FHIR, ``evaluate`` places one inhabitant
in a group with the reasons, and ``assessment`` records that as an R4 RiskAssessment.
"""
