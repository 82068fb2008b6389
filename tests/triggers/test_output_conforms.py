"""Every resource the trigger rules write is valid R4B, R4 on the wire, and conforms to careflow's
profiles: escalations, observation follow-ups, reassigned copies, triggered starts, overdue marks,
and the plan with its attention flag and new activity references."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from trigger_state import START, PlanState, patient_context

from careflow.fhir.profiles import conformance_errors
from careflow.fhir.r4_schema import r4_errors
from careflow.triggers.observations import observation_actions
from careflow.triggers.task_events import task_event_actions


def _problems(resource: dict[str, Any]) -> list[str]:
    problems = []
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except Exception as exc:  # pydantic's ValidationError and fhir.resources' own errors
        problems.append(f"fhir.resources R4B: {exc}")
    return problems + r4_errors(resource) + conformance_errors(resource)


class TestEverythingTheRulesWriteConforms:
    def test_sweep_task_event_and_observation_output(self, program) -> None:
        state = PlanState(program, patient_context())
        written: list = []
        # a year of sweeps with nothing done: openings, overdue marks, escalations, plan references
        day = START
        while day <= START + timedelta(days=120):
            actions = state.sweep(day)
            written += actions
            day += timedelta(days=30)
        (start_plan,) = state.of("start-plan")
        done = state.complete(start_plan["id"], day)
        written += task_event_actions(program, state.plan, state.task_list, done, state.ctx, day)
        check = state.of("weight-check")[0]
        rejected = state.edit(check["id"], status="rejected")
        written += task_event_actions(program, state.plan, state.task_list, rejected, state.ctx, day)
        now = datetime(2026, 6, 1, 8, tzinfo=timezone.utc)
        earlier = {"resourceType": "Observation", "id": "w0", "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                   "effectiveDateTime": (now - timedelta(days=1)).isoformat(),
                   "valueQuantity": {"value": 80, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
        new = {**earlier, "id": "w1", "effectiveDateTime": now.isoformat(),
               "valueQuantity": {**earlier["valueQuantity"], "value": 83}}
        written += observation_actions(new, [earlier], [(program, state.plan)], state.ctx, now)
        kinds = {type(a).__name__ + ":" + getattr(a, "reason", "") for a in written}
        assert {"CreateTask:escalation", "CreateTask:observation", "CreateTask:reassignment", "CreateTask:dependency",
                "UpdateTask:", "UpdatePlan:"} <= kinds
        report = {f"{r['resourceType']}/{r['id']}": p for r in [a.resource for a in written] if (p := _problems(r))}
        assert report == {}
