"""Value normalisation shared by index extraction and query parsing, so both sides compare alike.

Dates become inclusive (low, high) ranges of naive UTC datetimes at the precision given (a value without
a zone is read as UTC); strings are accent-stripped and case-folded; references are reduced to
(type, id) taken from the tail of relative or absolute URLs.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache

DATE_MIN = datetime(1, 1, 1)
DATE_MAX = datetime(9999, 12, 31, 23, 59, 59, 999999)
STRING_INDEX_LENGTH = 255  # index rows keep at most this many characters of a string value

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_REF_TAIL = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


@lru_cache(maxsize=65536)  # indexing a region repeats the same few dates and references endlessly
def date_range(text: str) -> tuple[datetime, datetime] | None:
    """Inclusive naive-UTC range a FHIR date/dateTime/instant covers at its precision; None if malformed."""
    m = _DATE.match(text.strip())
    if not m:
        return None
    try:
        y = int(m["y"])
        if m["m"] is None:
            low = datetime(y, 1, 1)
            high = datetime(y + 1, 1, 1) if y < 9999 else None
        elif m["d"] is None:
            mo = int(m["m"])
            low = datetime(y, mo, 1)
            high = datetime(y + (mo == 12), mo % 12 + 1, 1) if not (y == 9999 and mo == 12) else None
        elif m["H"] is None:
            low = datetime(y, int(m["m"]), int(m["d"]))
            high = low + timedelta(days=1) if low.date() < date(9999, 12, 31) else None
        else:
            sec = int(m["S"]) if m["S"] is not None else 0
            frac = m["f"]
            micro = int((frac[1:] + "000000")[:6]) if frac else 0
            local = datetime(y, int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), sec, micro)
            tz = m["tz"]
            if tz and tz != "Z":
                sign = 1 if tz[0] == "+" else -1
                offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])) * sign
                local = local - offset
            low = local
            if frac:
                step = timedelta(microseconds=10 ** (6 - min(len(frac) - 1, 6)))
            elif m["S"] is not None:
                step = timedelta(seconds=1)
            else:
                step = timedelta(minutes=1)
            high = low + step
    except (ValueError, OverflowError):
        return None
    return low, (high - timedelta(microseconds=1)) if high is not None else DATE_MAX


def to_utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def instant_text(moment: datetime) -> str:
    """FHIR instant (UTC, millisecond precision kept to microseconds) for meta.lastUpdated."""
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def normalise_string(text: str) -> str:
    """Accent- and case-insensitive form used for default and :contains string matching."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())[:STRING_INDEX_LENGTH]


@lru_cache(maxsize=65536)
def parse_reference(text: str) -> tuple[str | None, str | None]:
    """(type, id) from 'Type/id', '.../Type/id[/_history/n]'; (None, None) when it has no such tail."""
    m = _REF_TAIL.search(text)
    if not m:
        return None, None
    return m.group(1), m.group(2)


def parse_decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def decimal_precision_range(value: Decimal) -> tuple[Decimal, Decimal]:
    """The interval a decimal stands for at its written precision: 5.4 -> [5.35, 5.45)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return value - half, value + half


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash, then unescape ``\\,`` ``\\|`` ``\\$`` ``\\\\``."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current.append(c + text[i + 1])
            i += 2
            continue
        if c == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    return re.sub(r"\\([,|$\\])", r"\1", text)


def escape(text: str) -> str:
    """``text`` as one search value: the inverse of :func:`unescape` (``a,b`` is not two values)."""
    return re.sub(r"([,|$\\])", r"\\\1", text)
