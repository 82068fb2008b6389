"""Quantity.unit is for people, Quantity.code for machines: the planner writes both."""

from __future__ import annotations

from datetime import date

import pytest

from careflow.programs.units import display_unit


@pytest.mark.parametrize("code, shown", [("mm[Hg]", "mmHg"), ("kg/m2", "kg/m²"), ("{score}", ""), ("%", "%"),
                                         ("mL/min/{1.73_m2}", "mL/min/1.73 m²"), ("mmol/mol", "mmol/mol"),
                                         ("[iU]/L", "iU/L"), ("ug/L", "µg/L")])
def test_ucum_codes_read_as_people_write_them(code: str, shown: str) -> None:
    assert display_unit(code) == shown


def test_planned_goal_targets_keep_the_code_and_show_the_unit(programs) -> None:
    from careflow.planning.patient import context_from_resources
    from careflow.planning.planner import plan_all

    def condition(code: str, cid: str) -> dict:
        return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p1"},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "active"}]},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icpc-2", "code": code}]},
                "onsetDateTime": "2020-03-01"}

    ctx = context_from_resources({"resourceType": "Patient", "id": "p1", "birthDate": "1950-02-03"},
                                 [condition("K77", "c1"), condition("T90", "c2"), condition("R95", "c3")])
    eligible = [p for p in programs.values() if p.id in ("heart-failure", "diabetes-type-2", "copd")]
    result = plan_all(eligible, ctx, date(2026, 11, 2))
    quantities = [t["detailQuantity"] for g in result.goals for t in g.get("target") or () if "detailQuantity" in t]
    assert {q["code"] for q in quantities} >= {"mm[Hg]"}
    for q in quantities:
        assert q["system"] == "http://unitsofmeasure.org"
        assert q.get("unit", "") == display_unit(q["code"]) and "[" not in q.get("unit", "")
