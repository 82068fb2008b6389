"""Team financing on a population counted by hand (year 2026, 365 days; 2028 is a leap year)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from careflow.naming import POPULATION_GROUP
from careflow.population.financing import (
    PatientHistory,
    Version,
    amount,
    days_in,
    paid_days,
    statement,
)

UTC = timezone.utc
AS_OF = datetime(2027, 2, 1, tzinfo=UTC)
Y26 = (date(2026, 1, 1), date(2026, 12, 31))


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def v(day: str, resource: dict[str, Any] | None) -> Version:
    return Version(at(day), resource)


def plan(status: str, start: str, end: str | None = None) -> dict[str, Any]:
    period = {"start": start, **({"end": end} if end else {})}
    return {"resourceType": "CarePlan", "status": status, "intent": "plan", "period": period}


def consent(status: str = "active", start: str = "2025-01-01", end: str | None = None) -> dict[str, Any]:
    period = {"start": start, **({"end": end} if end else {})}
    return {"resourceType": "Consent", "status": status, "dateTime": start,
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "provision": {"type": "permit", "period": period}}


def patient(team: str = "Organization/t1", group: str = "B", gp: str = "PractitionerRole/gp1",
            **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "meta": {"tag": [{"system": POPULATION_GROUP, "code": group}]},
            "managingOrganization": {"reference": team}, "generalPractitioner": [{"reference": gp}], **extra}


ALWAYS = [[v("2025-01-01", consent())]]


def h(pid: str, plans: list[list[Version]], consents: list[list[Version]] | None = None,
      who: dict[str, Any] | None = None, extra_patient: list[Version] = ()) -> PatientHistory:  # type: ignore[assignment]
    return PatientHistory(pid, [v("2024-01-01", who or patient()), *extra_patient], plans,
                          ALWAYS if consents is None else consents)


def team_of(p: dict[str, Any]) -> str | None:
    return (p.get("managingOrganization") or {}).get("reference")


POPULATION = [
    # P1: 1 March to 31 August: 184 days, EUR 50.41 (the issue's example)
    h("p1", [[v("2026-03-01", plan("active", "2026-03-01", "2026-08-31"))]]),
    # P2: a plan from before the year to after it: the whole year, 365 days
    h("p2", [[v("2025-06-01", plan("active", "2025-06-01", "2027-06-01"))]]),
    # P3: two overlapping programmes 10 Jan-30 Apr and 1 Apr-30 Jun: the union, 22+28+31+30+31+30 = 172
    h("p3", [[v("2026-01-10", plan("active", "2026-01-10", "2026-04-30"))],
             [v("2026-04-01", plan("active", "2026-04-01", "2026-06-30"))]]),
    # P4: January and March, a gap in February: 31 + 31 = 62
    h("p4", [[v("2026-01-01", plan("active", "2026-01-01", "2026-01-31")),
              v("2026-02-01", plan("completed", "2026-01-01", "2026-01-31"))],
             [v("2026-03-01", plan("active", "2026-03-01", "2026-03-31"))]]),
    # P5: died 14 February 22:30 Brussels (21:30 UTC); the engine revoked the plan on 20 February: 31 + 14 = 45
    h("p5", [[v("2026-01-01", plan("active", "2026-01-01")),
              v("2026-02-20", plan("revoked", "2026-01-01", "2026-02-20"))]],
      extra_patient=[v("2026-02-20", patient(deceasedDateTime="2026-02-14T22:30:00+01:00"))]),
    # P6: consent withdrawn (recorded 10 May), given again (recorded 1 July): 130 + 184 = 314
    h("p6", [[v("2026-01-01", plan("active", "2026-01-01", "2026-12-31"))]],
      [[v("2025-01-01", consent()), v("2026-05-10", consent("inactive")), v("2026-07-01", consent())]]),
    # P7: only a draft plan (included, not yet talked through): nothing
    h("p7", [[v("2026-01-01", plan("draft", "2026-01-01", "2027-01-01"))]]),
    # P8: a plan entered in error: nothing, ever
    h("p8", [[v("2026-01-01", plan("active", "2026-01-01", "2027-01-01")),
              v("2026-03-01", plan("entered-in-error", "2026-01-01", "2027-01-01"))]]),
    # P9: never consented to sharing: nothing
    h("p9", [[v("2026-01-01", plan("active", "2026-01-01", "2027-01-01"))]], consents=[]),
    # P10: died before the year: nothing
    h("p10", [[v("2025-01-01", plan("active", "2025-01-01", "2026-06-01"))]],
      extra_patient=[v("2025-12-02", patient(deceasedDateTime="2025-12-01"))]),
    # P11: drafted 1 Feb, active after the conversation on 15 Feb: 14 + 306 = 320
    h("p11", [[v("2026-02-01", plan("draft", "2026-02-01", "2027-02-01")),
               v("2026-02-15", plan("active", "2026-02-15", "2027-02-15"))]]),
    # P12: another team and group, one day (31 December): EUR 0.27
    h("p12", [[v("2026-12-31", plan("active", "2026-12-31", "2027-12-31"))]],
      who=patient(team="Organization/t2", group="C", gp="PractitionerRole/gp2")),
]


def test_the_issue_example_184_days_is_50_41() -> None:
    paid = [(date(2026, 3, 1), date(2026, 8, 31))]
    assert days_in(paid) == 184
    assert amount(paid) == Decimal("50.41")


def test_each_patient_counted_by_hand() -> None:
    expected = {"p1": 184, "p2": 365, "p3": 172, "p4": 62, "p5": 45, "p6": 314, "p7": 0, "p8": 0, "p9": 0,
                "p10": 0, "p11": 320, "p12": 1}
    got = {x.id: days_in(paid_days(x, *Y26, AS_OF, frozenset())) for x in POPULATION}
    assert got == expected


def test_team_lines_add_up_to_the_total_counted_by_hand() -> None:
    s = statement(POPULATION, *Y26, AS_OF, team_of=team_of)
    amounts = {p.patient: p.amount for p in s.patients}
    assert amounts == {"p1": Decimal("50.41"), "p2": Decimal("100.00"), "p3": Decimal("47.12"),
                       "p4": Decimal("16.99"), "p5": Decimal("12.33"), "p6": Decimal("86.03"),
                       "p11": Decimal("87.67"), "p12": Decimal("0.27")}
    teams = {t.team: (t.patients, t.days, t.amount) for t in s.teams}
    assert teams == {"Organization/t1": (7, 1462, Decimal("400.55")), "Organization/t2": (1, 1, Decimal("0.27"))}
    assert (s.total_patients, s.total_days, s.total) == (8, 1463, Decimal("400.82"))
    assert {(g.team, g.key): g.patients for g in s.groups} == {("Organization/t1", "B"): 7, ("Organization/t2", "C"): 1}
    assert [g.suppressed for g in s.groups] == [False, True]


def test_the_consent_category_of_the_policy_counts() -> None:
    other = frozenset({("http://terminology.hl7.org/CodeSystem/consentcategorycodes", "idscl")})
    assert paid_days(POPULATION[0], *Y26, AS_OF, other) == []
    assert days_in(paid_days(POPULATION[8], *Y26, AS_OF, consent_required=False)) == 365


def test_a_leap_year_has_366_days_and_a_full_year_is_still_100() -> None:
    full = h("l1", [[v("2028-01-01", plan("active", "2028-01-01", "2028-12-31"))]])
    spring = h("l2", [[v("2028-03-01", plan("active", "2028-03-01", "2028-08-31"))]])
    leap_day = h("l3", [[v("2028-02-29", plan("active", "2028-02-29", "2028-02-29"))]])
    s = statement([full, spring, leap_day], date(2028, 1, 1), date(2028, 12, 31), datetime(2029, 1, 1, tzinfo=UTC),
                  team_of=team_of)
    assert {p.patient: (p.days, p.amount) for p in s.patients} == {
        "l1": (366, Decimal("100.00")), "l2": (184, Decimal("50.27")), "l3": (1, Decimal("0.27"))}


def test_a_plan_across_new_year_is_paid_at_each_years_rate() -> None:
    paid = [(date(2027, 12, 1), date(2028, 1, 31))]  # 31 days at /365 + 31 days at /366
    exact = Decimal(100) * 31 / 365 + Decimal(100) * 31 / 366
    assert amount(paid) == exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_a_year_not_over_is_paid_up_to_the_as_of_day() -> None:
    x = POPULATION[1]
    assert days_in(paid_days(x, *Y26, datetime(2026, 3, 31, 12, tzinfo=UTC))) == 90


def test_a_plan_revoked_without_an_end_ends_the_day_it_was_recorded() -> None:
    x = h("r", [[v("2026-01-01", plan("active", "2026-01-01")),
                 v("2026-01-31", {**plan("revoked", "2026-01-01"), "period": {"start": "2026-01-01"}})]])
    assert days_in(paid_days(x, *Y26, AS_OF)) == 31


def test_death_by_boolean_counts_from_the_day_it_was_recorded() -> None:
    x = h("d", [[v("2026-01-01", plan("active", "2026-01-01"))]],
          extra_patient=[v("2026-01-10", patient(deceasedBoolean=True))])
    assert days_in(paid_days(x, *Y26, AS_OF)) == 10


def test_a_closed_period_is_reproduced_as_of_its_statement_after_later_changes() -> None:
    issued = datetime(2027, 1, 31, tzinfo=UTC)
    x = h("late", [[v("2026-01-01", plan("active", "2026-01-01", "2026-12-31")),
                    v("2027-03-01", plan("revoked", "2026-01-01", "2026-06-30"))]],  # ended retroactively
          [[v("2025-01-01", consent()), v("2027-02-10", consent("inactive"))]])  # withdrawn in 2027
    assert days_in(paid_days(x, *Y26, issued)) == 365  # the statement as it was issued
    now = datetime(2027, 6, 1, tzinfo=UTC)
    assert days_in(paid_days(x, *Y26, now)) == 181  # the data now says the plan ended on 30 June
    y = h("later-withdrawal", [[v("2026-01-01", plan("active", "2026-01-01", "2027-12-31"))]],
          [[v("2025-01-01", consent()), v("2027-02-10", consent("inactive"))]])
    assert days_in(paid_days(y, *Y26, now)) == 365  # a withdrawal in 2027 leaves 2026 alone


def test_a_backdated_withdrawal_uses_its_own_end_date() -> None:
    x = h("w", [[v("2026-01-01", plan("active", "2026-01-01", "2026-12-31"))]],
          [[v("2025-01-01", consent()), v("2026-04-01", consent("inactive", end="2026-01-31"))]])
    assert days_in(paid_days(x, *Y26, AS_OF)) == 31


# ---- an awkward population: the lines add up to the total, to the cent --------------------------

DAY0 = date(2025, 10, 1)


@st.composite
def histories(draw: st.DrawFn) -> list[PatientHistory]:
    out = []
    for i in range(draw(st.integers(1, 40))):
        plans = []
        for _ in range(draw(st.integers(0, 3))):
            a = DAY0 + timedelta(days=draw(st.integers(0, 500)))
            b = a + timedelta(days=draw(st.integers(0, 400)))
            status = draw(st.sampled_from(["active", "completed", "revoked", "draft", "on-hold"]))
            plans.append([v(a.isoformat(), plan(status, a.isoformat(), b.isoformat()))])
        team = draw(st.sampled_from(["Organization/t1", "Organization/t2", "Organization/t3"]))
        who = patient(team=team, group=draw(st.sampled_from("ABCD")), gp=f"PractitionerRole/gp{draw(st.integers(1, 4))}")
        out.append(h(f"p{i}", plans, who=who))
    return out


@settings(max_examples=150, deadline=None)
@given(histories(), st.sampled_from([2026, 2028]))
def test_lines_add_up_to_the_total_to_the_cent(population: list[PatientHistory], year: int) -> None:
    s = statement(population, date(year, 1, 1), date(year, 12, 31), datetime(year + 1, 6, 1, tzinfo=UTC),
                  team_of=team_of)
    assert sum((t.amount for t in s.teams), Decimal(0)) == s.total == sum((p.amount for p in s.patients), Decimal(0))
    for lines in (s.groups, s.practices):
        for team in s.teams:
            mine = [x for x in lines if x.team == team.team]
            assert sum((x.amount for x in mine), Decimal(0)) == team.amount
            assert sum(x.days for x in mine) == team.days and sum(x.patients for x in mine) == team.patients
    for p in s.patients:
        assert 1 <= p.days <= (366 if year == 2028 else 365)
        assert p.amount == (Decimal(100) * p.days / (366 if year == 2028 else 365)).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert p.amount.as_tuple().exponent == -2


def test_the_invoice_of_the_hand_counted_population_is_valid_r4_and_adds_up() -> None:
    from fhir.resources.R4B import get_fhir_model_class

    from careflow.fhir.r4_schema import r4_errors
    from careflow.fhir.validation import validate_resource
    from careflow.population.financing_report import invoice

    s = statement(POPULATION, *Y26, AS_OF, team_of=team_of)
    inv = invoice(s, lambda ref: {"Organization/t1": "Buurtteam Een"}.get(ref or "", ref or "-"))
    assert r4_errors(inv) == []
    validate_resource(inv, "Invoice")
    get_fhir_model_class("Invoice").model_validate(inv)
    assert inv["status"] == "issued" and inv["identifier"][0]["value"] == "2026"
    bases = [Decimal(str(line["priceComponent"][0]["amount"]["value"])) for line in inv["lineItem"]]
    assert bases == [Decimal("400.55"), Decimal("0.27")]
    assert sum(bases) == Decimal(str(inv["totalNet"]["value"])) == Decimal("400.82")
    days = [line["priceComponent"][2]["factor"] for line in inv["lineItem"]]
    assert days == [1462, 1]
    assert [p["actor"]["reference"] for p in inv["participant"]] == ["Organization/t1", "Organization/t2"]
    running = statement(POPULATION, *Y26, datetime(2026, 12, 1, tzinfo=UTC), team_of=team_of)
    assert invoice(running, str)["status"] == "draft"  # the year is not over


def test_a_coach_sees_their_team_and_others_are_refused() -> None:
    import pytest

    from careflow.access.principal import SYSTEM, Principal
    from careflow.population.shared_views import NotForYou, visible_teams

    coach = Principal(kind="practitioner", id="PractitionerRole/c", discipline="care-coach",
                      organizations=("Organization/t1",))
    region = Principal(kind="practitioner", id="PractitionerRole/r", discipline="care-coach",
                       organizations=("Organization/zl",))
    nurse = Principal(kind="practitioner", id="PractitionerRole/n", discipline="home-nurse",
                      organizations=("Organization/t1",))
    assert visible_teams(coach, {"Organization/zl"}) == {"Organization/t1"}
    assert visible_teams(region, {"Organization/zl"}) is None and visible_teams(SYSTEM, ()) is None
    for who in (nurse, Principal(kind="patient", id="Patient/p1", patient="p1"), Principal(kind="auditor", id="a")):
        with pytest.raises(NotForYou):
            visible_teams(who, {"Organization/zl"})
    s = statement(POPULATION, *Y26, AS_OF, team_of=team_of).for_teams(visible_teams(coach, ()))
    assert [t.team for t in s.teams] == ["Organization/t1"] and s.total == Decimal("400.55")
