"""The RiskAssessments stratification emits are valid R4 (the official R4 JSON Schema and the R4B
models) and use careflow's extensions as their StructureDefinitions say, for every group, with and
without evidence, with a flagged frailty screen, and for a patient no rule places."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from careflow.fhir.profiles import extension_errors
from careflow.fhir.r4_schema import r4_errors
from careflow.population.assessment import risk_assessment
from careflow.population.evaluate import stratify
from careflow.population.facts import inhabitant
from careflow.population.loader import default_rules_dir, load_rule_sets, rules_in_force

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from population.people import belrai, condition, patient, stay  # noqa: E402

DAY = date(2026, 11, 1)


def _problems(resource: dict[str, Any]) -> list[str]:
    problems = list(r4_errors(resource)) + extension_errors(resource)
    try:
        get_fhir_model_class("RiskAssessment").model_validate(resource)
    except Exception as exc:  # pydantic's ValidationError and fhir.resources' own errors
        problems.append(f"fhir.resources R4B: {exc}")
    return problems


CASES = {
    "A": [condition("p", "copd"), belrai("p", 4, "2026-01-01")],
    "B": [condition("p", "copd"), stay("p", "2026-05-01", "2026-05-03")],
    "C": [condition("p", "copd"), belrai("p", 4, "2025-01-01")],  # a stale screen: flagged
    "D": [],
}


@pytest.mark.parametrize("expected", sorted(CASES))
def test_emitted_risk_assessment_is_valid_r4(expected: str) -> None:
    rules = rules_in_force(load_rule_sets([default_rules_dir()]), DAY)
    s = stratify(inhabitant(patient("p", "1960-02-02"), CASES[expected]), rules, DAY)
    assert s.group == expected
    resource = risk_assessment(s, rules.title)
    assert _problems(resource) == []
    assert resource["subject"] == {"reference": "Patient/p"} and resource["status"] == "final"
    if expected == "C":
        assert resource["extension"][-1]["valueString"].startswith("BelRAI screener of 2025-01-01 is older")
