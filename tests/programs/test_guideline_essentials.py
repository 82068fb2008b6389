"""Each programme carries the essentials of its guideline, tested by what they do for a patient:
what opens in the plan and which measurement raises which follow-up (not by reading the YAML text)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from careflow.planning.patient import context_from_resources
from careflow.planning.planner import applies, plan
from careflow.programs.codes import ATC, CAREFLOW_OBSERVATION, LOINC, SNOMED, SYMPTOM_SEVERITY
from careflow.programs.loader import load_program
from careflow.programs.model import Program, codes_of
from careflow.triggers.actions import CreateTask, UpdatePlan
from careflow.triggers.observations import observation_actions

PROGRAMS = Path(__file__).resolve().parents[2] / "care_programs"
SPRING, AUTUMN = date(2026, 4, 2), date(2026, 10, 5)  # plans start after the measurements below
NOW = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)
SEVERITY = {name: code for code, name in SYMPTOM_SEVERITY}
EGFR_CODES = {"98979-8", "62238-1", "33914-3"}
CONDITION = {"copd": "13645005", "heart-failure": "84114007", "diabetes-type-2": "44054006",
             "chronic-kidney-disease": "433144002"}


@pytest.fixture(scope="module")
def programs() -> dict[str, Program]:
    return {p.stem: load_program(p) for p in PROGRAMS.glob("*.yaml")}


def _obs(oid: str, code: str, value: float | None = None, unit: str = "", *, system: str = LOINC,
         answer: str | None = None, when: datetime = NOW) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": "final",
                           "subject": {"reference": "Patient/p"}, "code": {"coding": [{"system": system, "code": code}]},
                           "effectiveDateTime": when.isoformat()}
    if value is not None:
        out["valueQuantity"] = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    if answer is not None:
        out["valueCodeableConcept"] = {"coding": [{"system": SNOMED, "code": answer}]}
    return out


def _med(mid: str, atc: str) -> dict[str, Any]:
    return {"resourceType": "MedicationStatement", "id": mid, "status": "active", "subject": {"reference": "Patient/p"},
            "medicationCodeableConcept": {"coding": [{"system": ATC, "code": atc}]}}


def _ctx(program_id: str, *, observations: list[dict[str, Any]] = (), medications: list[dict[str, Any]] = (),  # type: ignore[assignment]
         conditions: list[tuple[str, str]] = (), group: str = "C", birth: str = "1950-01-01") -> Any:  # type: ignore[assignment]
    patient = {"resourceType": "Patient", "id": "p", "birthDate": birth,
               "meta": {"tag": [{"system": "https://careflow.dev/fhir/CodeSystem/population-group", "code": group}]}}
    conds = [{"resourceType": "Condition", "id": "main", "subject": {"reference": "Patient/p"},
              "code": {"coding": [{"system": SNOMED, "code": CONDITION[program_id]}]}, "onsetDateTime": "2015-01-01"}]
    for i, (system, code) in enumerate(conditions):
        conds.append({"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": "Patient/p"},
                      "code": {"coding": [{"system": system, "code": code}]}})
    return context_from_resources(patient, conds, observations, medications=medications)


def _opened(program: Program, ctx: Any, start: date = SPRING) -> set[str]:
    return {t["identifier"][0]["value"].split("/")[-2] for t in plan(program, ctx, start).tasks}


def _fires(program: Program, ctx: Any, new: dict[str, Any], earlier: list[dict[str, Any]] = ()) -> set[str]:  # type: ignore[assignment]
    careplan = plan(program, ctx, SPRING).careplans[0]
    actions = observation_actions(new, list(earlier), [(program, careplan)], ctx, NOW)
    return {a.trigger for a in actions if isinstance(a, CreateTask) and a.trigger} | (
        {"flag"} if any(isinstance(a, UpdatePlan) and "flagged" in a.changes for a in actions) else set())


def _seasonal(program: Program, activity_id: str) -> bool:
    return program.activity(activity_id).timing.season is not None


SMOKER = _obs("smoke", "72166-2", answer="77176002")
EX_SMOKER = _obs("smoke", "72166-2", answer="8517006")


def test_copd_follows_gold_2025(programs: dict[str, Program]) -> None:
    copd = programs["copd"]
    # vaccination: flu every autumn from 1 October, COVID-19 in autumn, pneumococcal by dose history,
    # RSV from 60, Tdap
    assert _seasonal(copd, "influenza-vaccination") and copd.activity("influenza-vaccination").timing.season.opens == "10-01"  # type: ignore[union-attr]
    assert _seasonal(copd, "covid-19-vaccination")
    assert "dose" in copd.activity("pneumococcal-vaccination").description.en
    assert "influenza-vaccination" not in _opened(copd, _ctx("copd"), SPRING)
    assert "influenza-vaccination" in _opened(copd, _ctx("copd"), AUTUMN)
    assert "rsv-vaccination" in _opened(copd, _ctx("copd", birth="1950-01-01"), AUTUMN)
    assert "rsv-vaccination" not in _opened(copd, _ctx("copd", birth="1975-01-01"), AUTUMN)
    assert "tdap-vaccination" in _opened(copd, _ctx("copd"))
    # stop-smoking support for smokers only
    assert "stop-smoking-support" in {a.id for a in copd.activities if a.only_if and a.only_if.observation}
    # mMRC / CAT as data, with the GOLD thresholds
    ctx = _ctx("copd")
    assert "high-symptom-burden-cat" in _fires(copd, ctx, _obs("cat", "copd-assessment-test-score", 12, "{score}", system=CAREFLOW_OBSERVATION))
    assert not _fires(copd, ctx, _obs("cat", "copd-assessment-test-score", 8, "{score}", system=CAREFLOW_OBSERVATION)) & {"high-symptom-burden-cat"}
    assert "high-symptom-burden-mmrc" in _fires(copd, ctx, _obs("mmrc", "mmrc-dyspnoea-grade", 2, "{grade}", system=CAREFLOW_OBSERVATION))
    # a flare-up: a review within weeks and pulmonary rehabilitation again
    careplan = plan(copd, ctx, SPRING).careplans[0]
    flare = _obs("flare", "copd-exacerbation", system=CAREFLOW_OBSERVATION, answer=SEVERITY["Severe"])
    created = [a for a in observation_actions(flare, [], [(copd, careplan)], ctx, NOW) if isinstance(a, CreateTask)]
    review = next(c for c in created if c.trigger == "flare-up-follow-up" and c.role == "gp")
    assert review.resource["restriction"]["period"]["end"] <= (NOW.date() + timedelta(weeks=4)).isoformat()
    assert any(c.role == "physiotherapist" and "pulmonary-rehabilitation" in c.resource["instantiatesCanonical"] for c in created)
    assert not _fires(copd, ctx, _obs("flare", "copd-exacerbation", system=CAREFLOW_OBSERVATION, answer=SEVERITY["Mild"]))
    # persistent hypoxaemia (SpO2 <= 88 % twice within 24 h), not a single reading
    low = [_obs("s1", "59408-5", 86, "%", when=NOW - timedelta(hours=5))]
    assert "low-oxygen" in _fires(copd, ctx, _obs("s2", "2708-6", 86, "%"), low)
    assert "low-oxygen" not in _fires(copd, ctx, _obs("s2", "2708-6", 86, "%"))


def test_heart_failure_follows_esc_2021_and_the_2023_update(programs: dict[str, Program]) -> None:
    hf = programs["heart-failure"]
    reduced = _obs("ef", "10230-1", 30, "%")
    preserved = _obs("ef", "10230-1", 55, "%")
    # the four pillars for a reduced ejection fraction, each while it is missing
    assert {"start-acei-or-arni", "start-beta-blocker", "start-mra", "start-sglt2-inhibitor"} <= _opened(hf, _ctx("heart-failure", observations=[reduced]))
    on_all = [_med("m1", "C09DX04"), _med("m2", "C07AB07"), _med("m3", "C03DA01"), _med("m4", "A10BK01")]
    assert not {"start-acei-or-arni", "start-beta-blocker", "start-mra", "start-sglt2-inhibitor"} & _opened(
        hf, _ctx("heart-failure", observations=[reduced], medications=on_all))
    # 2023 focused update: SGLT2 inhibitor with a preserved ejection fraction too, not the others
    preserved_opened = _opened(hf, _ctx("heart-failure", observations=[preserved]))
    assert "start-sglt2-inhibitor" in preserved_opened and "start-mra" not in preserved_opened
    # uptitration in a structured review of the four pillars
    assert "four pillars" in hf.activity("follow-up-review").description.en
    # iron status and NT-proBNP
    ctx = _ctx("heart-failure")
    assert {"iron-status", "natriuretic-peptide"} <= _opened(hf, ctx)
    assert "iron-deficiency-ferritin" in _fires(hf, ctx, _obs("fe", "2276-4", 60, "ng/mL"))
    assert "iron-deficiency-saturation" in _fires(hf, ctx, _obs("ts", "2502-3", 15, "%"))
    # NYHA class as data: fluid restriction only for NYHA III-IV (or hyponatraemia), not for everyone
    nyha3 = _obs("nyha", "762994006", system=SNOMED, answer="420913000")
    nyha2 = _obs("nyha", "762994006", system=SNOMED, answer="421704003")
    fluid = hf.activity("fluid-restriction-advice")  # waits on the care-planning conversation
    assert not applies(fluid, hf, _ctx("heart-failure", observations=[nyha2]), SPRING)
    assert applies(fluid, hf, _ctx("heart-failure", observations=[nyha3]), SPRING)
    assert applies(fluid, hf, _ctx("heart-failure", observations=[_obs("na", "2951-2", 127, "mmol/L")]), SPRING)
    assert "1.5" not in hf.activity("diet-advice").description.en
    assert "nyha-worse" in _fires(hf, ctx, nyha3)
    # the IG's symptom answers, vaccination and structured exercise rehabilitation
    assert "breathless-or-swollen" in _fires(hf, ctx, _obs("sob", "267036007", system=SNOMED, answer=SEVERITY["Severe"]))
    assert _seasonal(hf, "influenza-vaccination") and {"pneumococcal-vaccination"} <= _opened(hf, ctx)
    assert "structured" in hf.activity("exercise-training").description.en


def test_type_2_diabetes_follows_ada_2025_and_domus_medica(programs: dict[str, Program]) -> None:
    dm = programs["diabetes-type-2"]
    ctx = _ctx("diabetes-type-2")
    targets = {t.measure.code: t for g in dm.goals for t in g.targets}
    assert (targets["8480-6"].below.value, targets["8462-4"].below.value) == (130, 80)  # type: ignore[union-attr]
    assert targets["2089-1"].below.value == 70  # type: ignore[union-attr]
    # LDL below 55 with established cardiovascular disease (and not without)
    ldl = _obs("ldl", "13457-7", 62, "mg/dL")
    assert "ldl-above-target-established-disease" not in _fires(dm, ctx, ldl)
    with_ihd = _ctx("diabetes-type-2", conditions=[("http://hl7.org/fhir/sid/icd-10", "I25.1")])
    assert "ldl-above-target-established-disease" in _fires(dm, with_ihd, ldl)
    # individualised HbA1c: 7.5 % is off target for group C, not for the frail group A
    hba1c = _obs("a1c", "4548-4", 7.5, "%")
    assert "hba1c-off-target" in _fires(dm, ctx, hba1c)
    assert not {"hba1c-off-target", "hba1c-off-target-frail"} & _fires(dm, _ctx("diabetes-type-2", group="A"), hba1c)
    assert "hba1c-off-target-frail" in _fires(dm, _ctx("diabetes-type-2", group="A"), _obs("a1c", "4548-4", 8.4, "%"))
    # HbA1c every 3 months while off target: the in-between check opens only then
    extra = dm.activity("hba1c-check-off-target")
    assert (extra.timing.start, extra.timing.every, dm.activity("hba1c-check").timing.every) == ("P3M", "P6M", "P6M")
    # yearly eGFR AND urine albumin-to-creatinine ratio, with a rule on each
    assert dm.activity("kidney-screening").timing.every == "P1Y"
    assert "albuminuria" in _fires(dm, ctx, _obs("acr", "9318-7", 45, "mg/g"))
    assert "kidney-function-reduced" in _fires(dm, ctx, _obs("egfr", "98979-8", 40, "mL/min/{1.73_m2}"))
    # statin review from 40; SGLT2i / GLP-1 RA review only with CKD or heart failure
    assert "statin-review" in _opened(dm, ctx)
    assert "cardiorenal-medicine-review" not in _opened(dm, ctx)
    assert "cardiorenal-medicine-review" in _opened(dm, _ctx("diabetes-type-2", conditions=[(SNOMED, "84114007")]))
    assert "cardiorenal-medicine-review" in _opened(dm, _ctx("diabetes-type-2", observations=[_obs("e", "33914-3", 52, "mL/min/{1.73_m2}")]))
    # the Belgian zorgtraject diabetes flagged for the GP (insulin or GLP-1 RA)
    assert "care-pathway-check" not in _opened(dm, ctx)
    assert "care-pathway-check" in _opened(dm, _ctx("diabetes-type-2", medications=[_med("ins", "A10AE04")]))
    # the podiatrist follows the foot risk grade; stop smoking for smokers
    grade = lambda g: _obs("foot", "diabetic-foot-risk-grade", g, "{grade}", system=CAREFLOW_OBSERVATION)  # noqa: E731
    assert "podiatric-care" not in _opened(dm, _ctx("diabetes-type-2", observations=[grade(1)]))
    assert "podiatric-care" in _opened(dm, _ctx("diabetes-type-2", observations=[grade(2)]))
    assert "stop-smoking-support" not in {a.id for a in dm.activities if not a.only_if}
    assert _seasonal(dm, "influenza-vaccination")


def test_chronic_kidney_disease_follows_kdigo_2024_and_the_belgian_care_pathway(programs: dict[str, Program]) -> None:
    ckd = programs["chronic-kidney-disease"]
    ctx = _ctx("chronic-kidney-disease")
    # the nephrologist role, coded in SNOMED CT and CD-HCPARTY
    assert {(c.system.rsplit("/", 1)[-1], c.code) for c in ckd.roles["nephrologist"].codes} == {
        ("sct", "11911009"), ("cd-hcparty", "persnephrologist")}
    # eGFR and albuminuria monitored; every rule on eGFR accepts each equation's code
    assert ckd.activity("kidney-monitoring").timing.every == "P6M"
    for t in ckd.triggers:
        if t.when.observation and {c.code for c in t.when.observation.codes} & EGFR_CODES:
            assert {c.code for c in codes_of(t.when.observation.code)} == EGFR_CODES, t.id
    # zorgtraject: eGFR below 45 confirmed after three months (a single value does not count)
    first = _obs("e1", "33914-3", 41, "mL/min/{1.73_m2}", when=NOW - timedelta(days=100))
    assert "care-pathway-egfr" not in _fires(ckd, ctx, _obs("e0", "98979-8", 41, "mL/min/{1.73_m2}"))
    assert "care-pathway-egfr" in _fires(ckd, ctx, _obs("e2", "98979-8", 42, "mL/min/{1.73_m2}"), [first])
    # proteinuria above 1 g/day, also confirmed after three months (mg/day converts)
    prot = _obs("p1", "2889-4", 1300, "mg/(24.h)", when=NOW - timedelta(days=95))
    assert "care-pathway-proteinuria" in _fires(ckd, ctx, _obs("p2", "2889-4", 1.2, "g/(24.h)"), [prot])
    # referral to the nephrologist: eGFR below 30 twice, heavy albuminuria, rapid decline
    low = _obs("l1", "62238-1", 27, "mL/min/{1.73_m2}", when=NOW - timedelta(days=30))
    assert "refer-low-egfr" in _fires(ckd, ctx, _obs("l2", "98979-8", 26, "mL/min/{1.73_m2}"), [low])
    assert "refer-heavy-albuminuria" in _fires(ckd, ctx, _obs("acr", "9318-7", 350, "mg/g"))
    assert "rapid-decline" in _fires(ckd, ctx, _obs("r2", "98979-8", 40, "mL/min/{1.73_m2}"),
                                     [_obs("r1", "33914-3", 48, "mL/min/{1.73_m2}", when=NOW - timedelta(days=200))])
    # kidney-protecting medicines by the facts: RAS inhibitor with albuminuria, SGLT2i from eGFR 20, statin from 50
    albuminuric = [_obs("acr", "9318-7", 120, "mg/g", when=NOW - timedelta(days=200)),
                   _obs("e", "98979-8", 38, "mL/min/{1.73_m2}", when=NOW - timedelta(days=200))]
    opened = _opened(ckd, _ctx("chronic-kidney-disease", observations=albuminuric))
    assert {"start-ras-inhibitor", "start-sglt2-inhibitor", "statin-review"} <= opened
    assert applies(ckd.activity("diet-advice"), ckd, _ctx("chronic-kidney-disease", observations=albuminuric), SPRING)
    assert not applies(ckd.activity("diet-advice"), ckd, _ctx("chronic-kidney-disease", observations=[
        _obs("e", "98979-8", 58, "mL/min/{1.73_m2}")]), SPRING)
    treated = [_med("a", "C09AA05"), _med("b", "A10BK03"), _med("c", "C10AA05")]
    assert not {"start-ras-inhibitor", "start-sglt2-inhibitor", "statin-review"} & _opened(
        ckd, _ctx("chronic-kidney-disease", observations=albuminuric, medications=treated))
    # the nephrologist sees those with an eGFR below 30 every year
    assert "nephrology-review" in _opened(ckd, _ctx("chronic-kidney-disease", observations=[low]))
    assert "nephrology-review" not in _opened(ckd, _ctx("chronic-kidney-disease", observations=albuminuric))
    # goals, recurring follow-up, escalation, vaccination
    assert len(ckd.goals) >= 2 and any(t.when.overdue and t.then.escalate_to for t in ckd.triggers)
    assert _seasonal(ckd, "influenza-vaccination")
