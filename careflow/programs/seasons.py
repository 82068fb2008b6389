"""Seasonal timing: which season's Task is open on a day, for "every autumn, from 1 October".

A vaccination campaign is not an interval: a flu shot a year after the last one drifts into summer
when a plan starts in June. A season is a window of the year (``opens`` to ``closes``, both days
included, running into the next year when ``closes`` comes first); an activity with a season gets one
Task per season, numbered from the first season whose window ends on or after the activity's base day
(the plan start plus ``timing.start``). A season opens on its first day, or on the base day when the
plan starts inside it; a season whose window has passed is never opened late (a flu shot in March
protects nobody), and none opens on or after the plan's end. Pure date arithmetic, no clock.
"""

from __future__ import annotations

from datetime import date

from careflow.programs.model import Season


def _day(year: int, month_day: str) -> date:
    return date(year, int(month_day[:2]), int(month_day[3:]))


def window(season: Season, year: int) -> tuple[date, date]:
    """The first and last day of the season that opens in ``year``."""
    first = _day(year, season.opens)
    last = _day(year, season.closes)
    if last < first:
        last = _day(year + 1, season.closes)
    return first, last


def _first_year(season: Season, base: date) -> int:
    """The year in which the first season counted from ``base`` opens."""
    year = base.year - 1
    while window(season, year)[1] < base:
        year += 1
    return year


def season_opening(season: Season, base: date, occurrence: int) -> date:
    """The day occurrence ``occurrence`` (1 = the first season ending on or after ``base``) opens."""
    first, _ = window(season, _first_year(season, base) + occurrence - 1)
    return max(first, base)


def current_season(
    season: Season, base: date, today: date, end: date | None = None, times: int | None = None
) -> tuple[int, date] | None:
    """(occurrence, opening day) of the season whose window holds ``today``; None between seasons, before
    ``base``, past ``times`` seasons, or when that season would open on or after ``end``."""
    if today < base:
        return None
    first_year = _first_year(season, base)
    for year in (today.year - 1, today.year):
        if year < first_year:
            continue
        first, last = window(season, year)
        opens = max(first, base)
        if opens <= today <= last:
            n = year - first_year + 1
            if (times is not None and n > times) or (end is not None and opens >= end):
                return None
            return n, opens
    return None


def describe(season: Season) -> str:
    """'every season from 1 October to 31 December', for the programme viewer."""
    months = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")

    def said(month_day: str) -> str:
        return f"{int(month_day[3:])} {months[int(month_day[:2]) - 1]}"

    return f"every season from {said(season.opens)} to {said(season.closes)}"
