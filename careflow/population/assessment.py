"""A Stratum recorded as an R4 RiskAssessment: one per patient and rule set, rewritten only when the
group, the reasons or the rule version change, so its ``_history`` is the patient's path through the
pyramid.

- ``method``: the rule set (code = its id, ``version`` = its version: "rule set 2026.2");
- ``prediction[0].outcome``: the group (careflow's population-group code system, as on the Patient);
  ``rationale``: the reasons in words; ``note``: the whole explanation sentence;
- ``basis``: the evidence (the Conditions, Observations, medication and Encounters the reasons rest on);
- extensions: the rule that placed the patient, and every flag (a frailty screen too old to use).
"""

from __future__ import annotations

import hashlib
from typing import Any

from careflow.naming import (
    EXT_STRATIFICATION_FLAG,
    EXT_STRATIFICATION_RULE,
    POPULATION_GROUP,
    POPULATION_RULES,
    STRATIFICATION_IDENTIFIER,
)
from careflow.population.evaluate import Stratum
from careflow.region.population import GROUP_DISPLAY

MAX_BASIS = 50  # a RiskAssessment cites what the reasons rest on, not a whole record


def assessment_id(patient_id: str, ruleset: str) -> str:
    """Deterministic (so reruns update, never duplicate) and within FHIR's 64 characters."""
    raw = f"strat-{ruleset}-{patient_id}"
    return raw if len(raw) <= 64 else "strat-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def group_coding(group: str) -> dict[str, str]:
    return {"system": POPULATION_GROUP, "code": group, "display": GROUP_DISPLAY.get(group, group)}


def risk_assessment(s: Stratum, title: str | None = None) -> dict[str, Any]:
    reasons = [r.text for r in s.reasons] if s.rule else ["no rule for another group holds"]
    extension: list[dict[str, Any]] = []
    if s.rule:
        extension.append({"url": EXT_STRATIFICATION_RULE, "valueId": s.rule})
    extension += [{"url": EXT_STRATIFICATION_FLAG, "valueString": flag} for flag in s.flags]
    out: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": assessment_id(s.patient, s.ruleset),
        "identifier": [{"system": STRATIFICATION_IDENTIFIER, "value": f"{s.patient}/{s.ruleset}"}],
        "status": "final",
        "method": {"coding": [{"system": POPULATION_RULES, "version": s.version, "code": s.ruleset,
                               **({"display": title} if title else {})}],
                   "text": f"rule set {s.ruleset} {s.version}"},
        "subject": {"reference": f"Patient/{s.patient}"},
        "occurrenceDateTime": s.day.isoformat(),
        "prediction": [{"outcome": {"coding": [group_coding(s.group)], "text": f"group {s.group}"},
                        "rationale": ", ".join(reasons)}],
        "note": [{"text": s.explanation()}],
    }
    basis = [{"reference": ref} for ref in s.evidence[:MAX_BASIS]]
    if basis:
        out["basis"] = basis
    if extension:
        out["extension"] = extension
    return out


def same_assessment(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether ``old`` already says what ``new`` says (the day it was made aside)."""
    if not old:
        return False
    keys = ("status", "method", "subject", "prediction", "note", "basis", "extension")
    return all(old.get(k) == new.get(k) for k in keys)


def group_of(assessment: dict[str, Any]) -> str | None:
    for p in assessment.get("prediction") or ():
        for c in (p.get("outcome") or {}).get("coding") or ():
            if c.get("system") == POPULATION_GROUP:
                return str(c.get("code"))
    return None
