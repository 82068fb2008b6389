"""Observation rules: thresholds with unit care, changes within a window, coded values; raised once."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

from trigger_state import PlanState, patient_context

from careflow.naming import EXT_ATTENTION, TASK_REASON
from careflow.planning import ids
from careflow.triggers.actions import CreateTask, UpdatePlan
from careflow.triggers.observations import history_since, observation_actions
from careflow.triggers.plan_status import attention

LOINC = "http://loinc.org"
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)


def obs(oid: str, code: str, when: datetime, value: float | None = None, unit: str = "kg", *,
        system: str = LOINC, concept: tuple[str, str] | None = None, status: str = "final") -> dict:
    out = {"resourceType": "Observation", "id": oid, "status": status, "subject": {"reference": "Patient/pat-1"},
           "code": {"coding": [{"system": system, "code": code}]}, "effectiveDateTime": when.isoformat()}
    if value is not None:
        out["valueQuantity"] = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    if concept:
        out["valueCodeableConcept"] = {"coding": [{"system": concept[0], "code": concept[1]}]}
    return out


def weight(oid: str, days_before: float, value: float, unit: str = "kg") -> dict:
    return obs(oid, "29463-7", NOW - timedelta(days=days_before), value, unit)


def run(state: PlanState, new: dict, earlier: list[dict]) -> list:
    return observation_actions(new, earlier, [(state.program, state.plan)], state.ctx, NOW)


def tasks(actions: list, trigger: str | None = None) -> list[CreateTask]:
    return [a for a in actions if isinstance(a, CreateTask) and (trigger is None or a.trigger == trigger)]


class TestWeightGainWithinTheWindowRaisesOneUrgentTask:
    def test_gain_of_two_and_a_half_kg_in_three_days(self, program) -> None:
        state = PlanState(program, patient_context())
        new = weight("w-new", 0, 82.5)
        actions = run(state, new, [weight("w-1", 3, 80.0), weight("w-2", 1, 81.0)])
        (task,) = tasks(actions, "weight-gain")
        r = task.resource
        assert r["id"] == ids.triggered_task_id("pat-1", program.id, "weight-gain", "w-new")
        assert r["priority"] == "urgent" and task.role == "gp"
        assert r["focus"] == {"reference": "Observation/w-new"} == r["reasonReference"]
        assert r["reasonCode"]["coding"][0]["code"] == "observation"
        assert r["reasonCode"]["coding"][0]["system"] == TASK_REASON
        assert r["restriction"]["period"] == {"start": "2026-03-10", "end": "2026-03-12"}
        (update,) = [a for a in actions if isinstance(a, UpdatePlan)]
        assert attention(update.resource) and set(update.changes) == {"flagged", "activity"}

    def test_values_older_than_the_window_do_not_count(self, program) -> None:
        state = PlanState(program, patient_context())
        assert tasks(run(state, weight("w-new", 0, 82.5), [weight("w-old", 3.01, 80.0)]), "weight-gain") == []

    def test_a_value_exactly_at_the_window_start_counts(self, program) -> None:
        state = PlanState(program, patient_context())
        assert tasks(run(state, weight("w-new", 0, 82.0), [weight("w-1", 3, 80.0)]), "weight-gain")

    def test_a_gain_below_the_delta_does_not_fire(self, program) -> None:
        state = PlanState(program, patient_context())
        assert tasks(run(state, weight("w-new", 0, 81.9), [weight("w-1", 2, 80.0)]), "weight-gain") == []

    def test_no_earlier_value_means_no_change(self, program) -> None:
        state = PlanState(program, patient_context())
        assert tasks(run(state, weight("w-new", 0, 95.0), []), "weight-gain") == []

    def test_grams_are_converted(self, program) -> None:
        state = PlanState(program, patient_context())
        assert tasks(run(state, weight("w-new", 0, 82600, "g"), [weight("w-1", 2, 80.0)]), "weight-gain")

    def test_a_later_observation_is_not_an_earlier_value(self, program) -> None:
        state = PlanState(program, patient_context())
        assert tasks(run(state, weight("w-new", 0, 80.0), [weight("w-next", -1, 77.0)]), "weight-gain") == []

    def test_falls_by_compares_with_the_highest_earlier_value(self, program) -> None:
        state = PlanState(program, patient_context())
        actions = run(state, weight("w-new", 0, 77.0), [weight("w-1", 6, 80.5), weight("w-2", 2, 78.0)])
        assert [t.trigger for t in tasks(actions)] == ["weight-loss"]
        assert not [a for a in actions if isinstance(a, UpdatePlan) and "flagged" in a.changes]


class TestAbsoluteThresholdsRespectUnits:
    def test_above_in_converted_units(self, program) -> None:
        state = PlanState(program, patient_context())
        assert tasks(run(state, weight("w", 0, 151000, "g"), []), "heavy")
        assert tasks(run(state, weight("w", 0, 150, "kg"), []), "heavy") == []  # strictly above

    def test_percent_and_mmol_per_mol_never_compare(self, program) -> None:
        state = PlanState(program, patient_context())
        assert tasks(run(state, obs("h", "4548-4", NOW, 9.5, "%"), []), "high-hba1c") == []
        assert tasks(run(state, obs("h", "4548-4", NOW, 60, "mmol/mol"), []), "high-hba1c")

    def test_below_with_its_priority_and_due(self, program) -> None:
        state = PlanState(program, patient_context())
        (task,) = tasks(run(state, obs("s", "2708-6", NOW, 88, "%"), []), "low-saturation")
        assert task.resource["priority"] == "stat"
        assert task.resource["restriction"]["period"]["end"] == "2026-03-11"

    def test_another_code_never_matches(self, program) -> None:
        state = PlanState(program, patient_context())
        assert tasks(run(state, obs("x", "8480-6", NOW, 300, "kg"), [])) == []


class TestCodedValues:
    def test_value_in_matches_a_listed_code_only(self, program) -> None:
        state = PlanState(program, patient_context())
        sct = "http://snomed.info/sct"
        yes = obs("b1", "248548009", NOW, system=sct, concept=(sct, "373066001"))
        no = obs("b2", "248548009", NOW, system=sct, concept=(sct, "373067005"))
        assert tasks(run(state, yes, []), "breathless") and tasks(run(state, no, []), "breathless") == []


class TestObservationRulesAreSafeToReplay:
    def test_same_observation_same_ids_and_an_already_raised_flag_is_not_rewritten(self, program) -> None:
        state = PlanState(program, patient_context())
        new, earlier = weight("w-new", 0, 83.0), [weight("w-1", 2, 80.0)]
        first = run(state, new, earlier)
        assert [a.id for a in first] == [a.id for a in run(state, new, earlier)]
        state.apply(first)
        again = [a for a in run(state, new, earlier) if a.id not in state.tasks]
        assert [a for a in again if isinstance(a, UpdatePlan)] == []
        assert all(isinstance(a, CreateTask) for a in again) and not again

    def test_entered_in_error_and_inactive_plans_are_ignored(self, program) -> None:
        state = PlanState(program, patient_context())
        wrong = {**weight("w-new", 0, 90.0), "status": "entered-in-error"}
        assert run(state, wrong, [weight("w-1", 1, 80.0)]) == []
        closed = {**state.plan, "status": "completed"}
        assert observation_actions(weight("w", 0, 200), [], [(program, closed)], state.ctx, NOW) == []

    def test_inputs_are_never_mutated(self, program) -> None:
        state = PlanState(program, patient_context())
        new, earlier = weight("w-new", 0, 83.0), [weight("w-1", 2, 80.0)]
        before = copy.deepcopy((new, earlier, state.plan))
        run(state, new, earlier)
        assert (new, earlier, state.plan) == before
        assert not any(e["url"] == EXT_ATTENTION for e in state.plan.get("extension", []))


class TestHistoryWindow:
    def test_reads_back_as_far_as_the_longest_change_window(self, program) -> None:
        since = history_since(weight("w", 0, 80.0), [program])
        assert since == NOW - timedelta(days=7)  # weight-loss looks back P1W, weight-gain P3D

    def test_no_history_for_codes_without_change_rules(self, program) -> None:
        assert history_since(obs("s", "2708-6", NOW, 88, "%"), [program]) is None


class TestComponentsAreMeasurementsToo:
    def _panel(self, oid: str, systolic: float) -> dict:
        out = obs(oid, "85354-9", NOW)
        out["component"] = [
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
             "valueQuantity": {"value": systolic, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
             "valueQuantity": {"value": 50, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        ]
        return out

    def test_a_low_systolic_inside_a_blood_pressure_panel_fires(self, program) -> None:
        state = PlanState(program, patient_context())
        (task,) = tasks(run(state, self._panel("bp-1", 85), []), "low-systolic")
        assert task.resource["focus"] == {"reference": "Observation/bp-1"}

    def test_a_normal_panel_does_not(self, program) -> None:
        state = PlanState(program, patient_context())
        assert tasks(run(state, self._panel("bp-2", 120), [])) == []
