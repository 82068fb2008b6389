"""Seasonal timing: one Task a season, opened on the season's first day (or the plan's start inside
it), never late, never past the plan's end; written by the loader, planner and sweep alike."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from careflow.errors import ProgramError
from careflow.planning.patient import context_from_resources
from careflow.planning.planner import plan
from careflow.programs.loader import load_program, parse_program
from careflow.programs.model import Program, Season
from careflow.programs.seasons import current_season, season_opening, window
from careflow.programs.timeline import render
from careflow.triggers.actions import CreateTask
from careflow.triggers.sweep import sweep_plan

LANGUAGE = Path(__file__).with_name("language") / "language.yaml"
AUTUMN = Season(opens="10-01", closes="12-31")
WINTER = Season(opens="11-15", closes="02-15")


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(LANGUAGE)


def test_windows_and_windows_across_new_year() -> None:
    assert window(AUTUMN, 2026) == (date(2026, 10, 1), date(2026, 12, 31))
    assert window(WINTER, 2026) == (date(2026, 11, 15), date(2027, 2, 15))


@pytest.mark.parametrize(
    ("base", "today", "expected"),
    [
        (date(2026, 3, 1), date(2026, 9, 30), None),  # before the season
        (date(2026, 3, 1), date(2026, 10, 1), (1, date(2026, 10, 1))),  # its first day
        (date(2026, 3, 1), date(2026, 12, 31), (1, date(2026, 10, 1))),  # its last day
        (date(2026, 3, 1), date(2027, 1, 1), None),  # closed: never opened late
        (date(2026, 3, 1), date(2027, 10, 5), (2, date(2027, 10, 1))),  # the next autumn
        (date(2026, 11, 10), date(2026, 11, 10), (1, date(2026, 11, 10))),  # a plan starting inside it
        (date(2026, 11, 10), date(2026, 11, 9), None),  # before the base
    ],
)
def test_current_autumn(base: date, today: date, expected: tuple[int, date] | None) -> None:
    assert current_season(AUTUMN, base, today) == expected


def test_a_winter_season_running_into_the_next_year() -> None:
    base = date(2026, 1, 10)  # inside the winter of 2025-2026
    assert current_season(WINTER, base, base) == (1, base)
    assert current_season(WINTER, base, date(2026, 2, 16)) is None
    assert current_season(WINTER, base, date(2027, 1, 3)) == (2, date(2026, 11, 15))
    assert season_opening(WINTER, base, 2) == date(2026, 11, 15)


def test_times_and_the_plan_end_bound_the_seasons() -> None:
    base = date(2026, 3, 1)
    assert current_season(AUTUMN, base, date(2027, 10, 2), times=1) is None
    assert current_season(AUTUMN, base, date(2026, 10, 2), end=date(2026, 10, 1)) is None
    assert current_season(AUTUMN, base, date(2026, 10, 2), end=date(2026, 10, 2)) == (1, date(2026, 10, 1))


# ---------------------------------------------------------------- the planner and the sweep


def _ctx() -> object:
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "1950-01-01"}
    condition = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p"},
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "13645005"}]}}
    return context_from_resources(patient, [condition])


def _flu(tasks: list[dict]) -> list[dict]:
    return [t for t in tasks if "/flu/" in t["identifier"][0]["value"]]


def test_a_plan_starting_in_spring_has_no_flu_shot_yet(program: Program) -> None:
    assert _flu(plan(program, _ctx(), date(2026, 3, 2)).tasks) == []  # type: ignore[arg-type]


def test_a_plan_starting_in_the_season_opens_it_on_day_one(program: Program) -> None:
    (task,) = _flu(plan(program, _ctx(), date(2026, 11, 3)).tasks)  # type: ignore[arg-type]
    assert task["restriction"]["period"] == {"start": "2026-11-03", "end": "2027-01-03"}


def test_the_sweep_opens_one_flu_shot_a_season(program: Program) -> None:
    start = date(2026, 3, 2)
    result = plan(program, _ctx(), start)  # type: ignore[arg-type]
    careplan, tasks = result.careplans[0], {t["id"]: t for t in result.tasks}
    day = start
    while day < date(2027, 3, 2):
        for a in sweep_plan(program, careplan, list(tasks.values()), _ctx(), day):  # type: ignore[arg-type]
            if isinstance(a, CreateTask):
                tasks.setdefault(a.id, a.resource)
        day += timedelta(days=1)
    flu = _flu(list(tasks.values()))
    assert [t["restriction"]["period"]["start"] for t in flu] == ["2026-10-01"]
    rsv = [t for t in tasks.values() if "/rsv/" in t["identifier"][0]["value"]]
    assert [t["restriction"]["period"]["start"] for t in rsv] == ["2026-09-15"]  # times: 1


def test_a_season_missed_during_downtime_is_not_opened_late(program: Program) -> None:
    start = date(2026, 3, 2)
    result = plan(program, _ctx(), start)  # type: ignore[arg-type]
    actions = sweep_plan(program, result.careplans[0], result.tasks, _ctx(), date(2027, 1, 20))  # type: ignore[arg-type]
    assert _flu([a.resource for a in actions if isinstance(a, CreateTask)]) == []


def test_the_timeline_says_the_season(program: Program) -> None:
    assert "every season from 1 October to 31 December" in render(program)


# ---------------------------------------------------------------- the loader


def _problems(text: str) -> str:
    with pytest.raises(ProgramError) as info:
        parse_program(text, "p.yaml")
    return "\n".join(str(p) for p in info.value.problems)


def test_loader_reports_bad_seasons_at_their_line() -> None:
    text = (LANGUAGE).read_text()
    found = _problems(text.replace("season: {opens: 10-01, closes: 12-31}", "season: {opens: 13-01, closes: 12-31}"))
    assert "p.yaml:" in found and "activities[4].timing.season.opens" in found
    found = _problems(text.replace("season: {opens: 10-01, closes: 12-31}", "season: {opens: 02-30, closes: 12-31}"))
    assert "not a day of the year" in found
    found = _problems(text.replace("season: {opens: 10-01, closes: 12-31}, due_within: P2M",
                                   "season: {opens: 10-01, closes: 12-31}, every: P1Y"))
    assert "either `every` or `season`" in found
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "opens: 10-01" in row)
    assert f"p.yaml:{line}:" in _problems(text.replace("opens: 10-01", "opens: 1 October"))
