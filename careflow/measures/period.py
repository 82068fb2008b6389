"""Measurement periods (a calendar month or year) and the windows read back from their last day."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from careflow.errors import CareflowError
from careflow.fhir.search_values import date_range
from careflow.measures.model import Window
from careflow.programs.durations import parse_duration

_PERIOD = re.compile(r"^(\d{4})(?:-(0[1-9]|1[0-2]))?$")


@dataclass(frozen=True)
class Period:
    label: str  # YYYY or YYYY-MM
    start: date
    end: date  # inclusive

    def closed(self, today: date) -> bool:
        """Over by ``today``: its reports are final (MeasureReport.status complete)."""
        return self.end < today

    @property
    def low(self) -> datetime:
        """The first instant, as the search index stores instants (naive UTC)."""
        return _day_start(self.start)

    @property
    def after(self) -> datetime:
        """The first instant after the period."""
        return _day_start(self.end + timedelta(days=1))


def _day_start(day: date) -> datetime:
    rng = date_range(day.isoformat())
    assert rng is not None
    return rng[0]


def parse_period(text: str) -> Period:
    m = _PERIOD.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise CareflowError(f"{text!r} is not a period: give a year (2026) or a month (2026-03)")
    year = int(m[1])
    if m[2]:
        month = int(m[2])
        return Period(f"{year:04d}-{month:02d}", date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))
    return Period(f"{year:04d}", date(year, 1, 1), date(year, 12, 31))


def current_period(today: date, *, yearly: bool = False) -> Period:
    return parse_period(f"{today.year:04d}" if yearly else f"{today.year:04d}-{today.month:02d}")


def window_since(window: Window, period: Period) -> datetime:
    """The first instant a fact may be dated to count for ``period`` (see ``careflow.measures.model``)."""
    end = period.end
    if window.within is not None:
        return _day_start(parse_duration(window.within).before(end))
    assert window.season_opens is not None
    month, day = (int(x) for x in window.season_opens.split("-"))
    opens = date(end.year, month, min(day, calendar.monthrange(end.year, month)[1]))
    if opens > end:
        opens = date(end.year - 1, month, min(day, calendar.monthrange(end.year - 1, month)[1]))
    return _day_start(opens)
