"""Inclusive thresholds: 'a respiratory rate of 24 or more' fires at exactly 24."""

from __future__ import annotations

from datetime import datetime, timezone

from careflow.planning.patient import observation_fact
from careflow.programs.model import ObservationRule
from careflow.triggers.observations import rule_matches


def _obs(value: float) -> dict:
    return {"resourceType": "Observation", "id": "o", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "9279-1"}]},
            "effectiveDateTime": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat(),
            "valueQuantity": {"value": value, "unit": "/min", "code": "/min"}}


class TestInclusiveThresholdsFireOnTheBoundary:
    def test_at_least(self):
        rule = ObservationRule.model_validate({"code": {"system": "loinc", "code": "9279-1"}, "at_least": {"value": 24, "unit": "/min"}})
        assert rule_matches(rule, observation_fact(_obs(24)), [])
        assert not rule_matches(rule, observation_fact(_obs(23.9)), [])

    def test_at_most(self):
        rule = ObservationRule.model_validate({"code": {"system": "loinc", "code": "9279-1"}, "at_most": {"value": 12, "unit": "/min"}})
        assert rule_matches(rule, observation_fact(_obs(12)), [])
        assert not rule_matches(rule, observation_fact(_obs(12.5)), [])

    def test_strict_above_does_not_fire_on_the_boundary(self):
        rule = ObservationRule.model_validate({"code": {"system": "loinc", "code": "9279-1"}, "above": {"value": 24, "unit": "/min"}})
        assert not rule_matches(rule, observation_fact(_obs(24)), [])
