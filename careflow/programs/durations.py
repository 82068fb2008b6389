"""ISO 8601 calendar durations (P3M, P14D, P1Y6M) as care pathways use them.

Care is planned in days, weeks, months and years; hours never matter to a pathway, so the time
part is refused rather than silently dropped.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

_PATTERN = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?")
JSON_PATTERN = r"^P(?=\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?$"


@dataclass(frozen=True, slots=True)
class Duration:
    years: int = 0
    months: int = 0
    days: int = 0

    def after(self, start: date, times: int = 1) -> date:
        """``start`` plus this duration ``times`` over, months clamped to the month's last day."""
        return _after(self, start, times)

    def _after(self, start: date, times: int) -> date:
        if not (self.years or self.months):
            return start + timedelta(days=self.days * times)
        months = start.month - 1 + (self.years * 12 + self.months) * times
        year = start.year + months // 12
        month = months % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return date(year, month, day) + timedelta(days=self.days * times)

    def before(self, end: date) -> date:
        months = end.month - 1 - (self.years * 12 + self.months)
        year = end.year + months // 12
        month = months % 12 + 1
        day = min(end.day, calendar.monthrange(year, month)[1])
        return date(year, month, day) - timedelta(days=self.days)

    @property
    def approx_days(self) -> float:
        return self.years * 365.25 + self.months * 30.44 + self.days

    def __str__(self) -> str:
        if not (self.years or self.months or self.days):
            return "P0D"
        out = "P"
        out += f"{self.years}Y" if self.years else ""
        out += f"{self.months}M" if self.months else ""
        out += f"{self.days}D" if self.days else ""
        return out


@lru_cache(maxsize=8192)
def _after(duration: Duration, start: date, times: int) -> date:
    """Planning a region repeats the same few (duration, start) pairs thousands of times."""
    return duration._after(start, times)


@lru_cache(maxsize=1024)
def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 date duration; ValueError with a plain sentence when it is not one."""
    if not isinstance(text, str):
        raise ValueError("must be an ISO 8601 duration such as P3M or P14D")
    m = _PATTERN.fullmatch(text.strip())
    if not m or text.strip() == "P":
        hint = " (durations here are in days, weeks, months or years: no time part)" if "T" in text else ""
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P3M or P14D{hint}")
    y, mo, w, d = (int(g) if g else 0 for g in m.groups())
    return Duration(years=y, months=mo, days=w * 7 + d)


def humanise(text: str) -> str:
    """'P3M' -> '3 months', for the programme viewer."""
    d = parse_duration(text)
    parts = []
    for n, unit in ((d.years, "year"), (d.months, "month"), (d.days, "day")):
        if n:
            if unit == "day" and n % 7 == 0:
                n, unit = n // 7, "week"
            parts.append(f"{n} {unit}{'s' if n != 1 else ''}")
    return " ".join(parts) or "immediately"
