"""Enrolment: the right patients, one plan per programme, the same team on every run."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from engine_world import COPD, HEART_FAILURE, HOOD, ORG, add_condition, add_patient, add_team, all_of

from careflow.access.principal import SYSTEM
from careflow.engine import enrolment
from careflow.planning import ids

START = date(2026, 2, 2)


def _careteam(repo: Any, pid: str) -> dict:
    return repo.read("CareTeam", ids.careteam_id(pid)).resource


class TestCandidatesAreExactlyThePatientsWithAQualifyingCondition:
    def test_finds_coded_patients_and_skips_others(self, repo: Any, heart_failure: Any) -> None:
        add_patient(repo, "p-hf", conditions=[HEART_FAILURE], onset=START)
        add_patient(repo, "p-icd", conditions=[("http://hl7.org/fhir/sid/icd-10", "I50.9")], onset=START)
        add_patient(repo, "p-none", conditions=[("http://snomed.info/sct", "38341003")], onset=START)
        with repo.unit_of_work(SYSTEM) as uow:
            uow.create_if_absent({"resourceType": "Patient", "id": "p-resolved"})
            uow.create_if_absent({
                "resourceType": "Condition", "id": "resolved", "subject": {"reference": "Patient/p-resolved"},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "resolved"}]},
                "code": {"coding": [{"system": HEART_FAILURE[0], "code": HEART_FAILURE[1]}]}})
        found = enrolment.find_candidates(repo, {heart_failure.id: heart_failure}, page_size=1)
        assert found == ["p-hf", "p-icd"]


class TestPartitionIsStableAndComplete:
    def test_every_id_once_and_the_same_part_every_time(self) -> None:
        ids_ = [f"p{i}" for i in range(500)]
        parts = enrolment.partition(ids_, 7)
        assert sorted(x for p in parts for x in p) == sorted(ids_)
        assert [sorted(p) for p in parts] == [sorted(p) for p in enrolment.partition(list(reversed(ids_)), 7)]
        assert all(parts)  # 500 ids spread over every part

    def test_zero_parts_is_refused(self) -> None:
        import pytest

        with pytest.raises(ValueError):
            enrolment.partition(["a"], 0)


class TestEnrolmentIsIdempotentAndDrawsTheTeamFromTheNeighbourhood:
    def test_plans_once_with_the_patients_own_gp_and_neighbourhood_members(self, repo: Any, heart_failure: Any) -> None:
        roles = add_team(repo)
        add_patient(repo, "p1", conditions=[HEART_FAILURE], onset=START - timedelta(days=30), gp_role=roles["gp"][1])
        programs = {heart_failure.id: heart_failure}
        first = enrolment.enrol(repo, programs, ["p1"], START)
        assert first["enrolled"] == 1 and first.by_program[heart_failure.id]["plans-created"] == 1
        assert first.by_neighbourhood[HOOD]["enrolled"] == 1
        team = _careteam(repo, "p1")
        members = {p["member"]["reference"] for p in team["participant"] if "member" in p}
        assert f"PractitionerRole/{roles['gp'][1]}" in members
        assert team["managingOrganization"] == [{"reference": f"Organization/{ORG}"}]
        nurse_tasks = [t for t in all_of(repo, "Task") if t["owner"]["reference"].startswith("PractitionerRole/role-hf-educator")]
        assert nurse_tasks  # a new diagnosis: the heart-failure educator has work, assigned to a person
        history_before, _ = repo.history(count=1)
        second = enrolment.enrol(repo, programs, ["p1"], START + timedelta(days=3))
        assert second["already-enrolled"] == 1 and second["enrolled"] == 0
        assert repo.history(count=1)[0] == history_before

    def test_the_member_pick_is_deterministic(self, repo: Any, heart_failure: Any) -> None:
        add_team(repo, per_role=3)
        for pid in ("a1", "a2", "a3", "a4"):
            add_patient(repo, pid, conditions=[HEART_FAILURE], onset=START)
        enrolment.enrol(repo, {heart_failure.id: heart_failure}, ["a1", "a2", "a3", "a4"], START)
        from careflow.engine.team import TeamDirectory

        directory = TeamDirectory(repo)
        for pid in ("a1", "a2", "a3", "a4"):
            expected, _ = directory.team_for(repo.read("Patient", pid).resource)
            team = _careteam(repo, pid)
            for p in team["participant"]:
                if "member" in p:
                    assert p["member"]["reference"] in expected.values()

    def test_not_eligible_patients_get_nothing(self, repo: Any, heart_failure: Any) -> None:
        add_team(repo)
        add_patient(repo, "young", conditions=[HEART_FAILURE], onset=START, birth="2015-01-01")
        counts = enrolment.enrol(repo, {heart_failure.id: heart_failure}, ["young", "ghost"], START)
        assert counts["not-eligible"] == 1 and counts["missing-patient"] == 1
        assert all_of(repo, "CarePlan") == [] and all_of(repo, "Task") == []

    def test_a_new_programme_later_adds_its_plan_and_roles_to_the_same_team(
        self, repo: Any, heart_failure: Any, copd: Any
    ) -> None:
        add_team(repo)
        add_patient(repo, "p2", conditions=[COPD], onset=START - timedelta(days=30), birth="1950-01-01")
        programs = {heart_failure.id: heart_failure, copd.id: copd}
        enrolment.enrol(repo, programs, ["p2"], START)
        before = _careteam(repo, "p2")
        with repo.unit_of_work(SYSTEM) as uow:
            add_condition(uow, "p2", "p2-hf", HEART_FAILURE[0], HEART_FAILURE[1], START + timedelta(days=60))
        later = enrolment.enrol(repo, programs, ["p2"], START + timedelta(days=90))
        assert later.by_program[heart_failure.id]["plans-created"] == 1 and copd.id not in later.by_program
        assert later["team-updated"] == 1
        after = _careteam(repo, "p2")
        assert after["participant"][: len(before["participant"])] == before["participant"]
        from careflow.planning.planner import role_concept

        have = [p["role"][0]["coding"] for p in after["participant"]]
        assert role_concept(heart_failure, "hf-educator")["coding"] in have  # the heart-failure educator joins
        educator = next(p for p in after["participant"] if p["role"][0]["coding"] == role_concept(heart_failure, "hf-educator")["coding"])
        assert educator["member"]["reference"].startswith("PractitionerRole/role-hf-educator-")
        every = all_of(repo, "CarePlan")
        plans = {p["id"]: p for p in every if "instantiatesCanonical" in p}
        assert set(plans) == {ids.careplan_id("p2", heart_failure.id), ids.careplan_id("p2", copd.id)}
        assert all(p["careTeam"] == [{"reference": f"CareTeam/{ids.careteam_id('p2')}"}] for p in plans.values())
        # the new programme joins the one shared plan: its goals are added to the whole
        (whole,) = [p for p in every if "instantiatesCanonical" not in p]
        assert whole["id"] == ids.shared_careplan_id("p2")
        assert all(p["partOf"] == [{"reference": f"CarePlan/{whole['id']}"}] for p in plans.values())
        part_goals = [g for p in plans.values() for g in p.get("goal", ())]
        assert sorted(g["reference"] for g in whole["goal"]) == sorted(g["reference"] for g in part_goals)
        # and an activity both programmes share that COPD already opened is not opened a second time
        open_keys = [e["valueId"] for t in all_of(repo, "Task") if t["status"] not in ("completed", "cancelled")
                     for e in t.get("extension", ()) if e["url"].endswith("/shared-activity")]
        assert len(open_keys) == len(set(open_keys))
