"""Belgian identifiers for synthetic people: the national number (SSIN/INSZ) and the NIHDI (RIZIV)
number of care givers, both with correct mod-97 check digits so that validators accept them.

The numbers are synthetic: they follow the format, not a register. A generated SSIN may coincide
with a real person's number; the demo marks every resource as test data (meta.security HTEST).
"""

from __future__ import annotations

import re
from datetime import date

_SSIN_RE = re.compile(r"\d{11}")


def ssin(birth_date: date, serial: int) -> str:
    """The SSIN for ``birth_date`` and day serial (odd for men, even for women; 1-997).

    Check digits: 97 - (YYMMDDSSS mod 97); for people born from 2000 on, a '2' is put in front of
    the nine digits before taking the remainder.
    """
    if not 1 <= serial <= 997:
        raise ValueError(f"an SSIN serial is 1-997, not {serial}")
    body = f"{birth_date.year % 100:02d}{birth_date.month:02d}{birth_date.day:02d}{serial:03d}"
    base = int(("2" if birth_date.year >= 2000 else "") + body)
    return f"{body}{97 - base % 97:02d}"


def ssin_is_valid(value: str) -> bool:
    """True when ``value`` is 11 digits whose check digits fit a 19xx or 20xx birth."""
    if not _SSIN_RE.fullmatch(value):
        return False
    body, check = value[:9], int(value[9:])
    return check in (97 - int(body) % 97, 97 - int("2" + body) % 97)


def nihdi(prefix: int, sequence: int, qualification: int) -> str:
    """An 11-digit NIHDI care-giver number: 1 prefix digit, 5-digit sequence, 2 check digits
    (97 - first six digits mod 97) and a 3-digit qualification code."""
    if not (0 <= prefix <= 9 and 0 <= sequence <= 99_999 and 0 <= qualification <= 999):
        raise ValueError("NIHDI parts out of range")
    first = prefix * 100_000 + sequence
    return f"{first:06d}{97 - first % 97:02d}{qualification:03d}"


def nihdi_is_valid(value: str) -> bool:
    """True when ``value`` is 11 digits with the mod-97 check over its first six."""
    return bool(_SSIN_RE.fullmatch(value)) and int(value[6:8]) == 97 - int(value[:6]) % 97
