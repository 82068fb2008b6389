"""UCUM codes as people read them: ``Quantity.code`` keeps the code, ``Quantity.unit`` is for people.

FHIR R4 says ``Quantity.unit`` is the human-readable form and ``code`` the coded one; the planner
used to put the UCUM code in both, so patients read "mm[Hg]" and "{score}" on their take-home
plan. UCUM writes some units with brackets (``mm[Hg]``, ``[iU]``), annotations in braces
(``{score}``, ``mL/min/{1.73_m2}``) and exponents as digits (``m2``); the display drops the
syntax and keeps what a reader knows.
"""

from __future__ import annotations

import re

_SPECIAL = {
    "mm[Hg]": "mmHg",
    "mL/min/{1.73_m2}": "mL/min/1.73 m²",
    "g/(24.h)": "g/24 h",
    "ug/L": "µg/L",
    "/min": "/min",
    "kg/m2": "kg/m²",
    "{score}": "",
    "{grade}": "",
}


def display_unit(code: str) -> str:
    """The human-readable unit of a UCUM ``code`` ("" when it is a bare count or score)."""
    if code in _SPECIAL:
        return _SPECIAL[code]
    text = re.sub(r"\{[^}]*\}", "", code).replace("[", "").replace("]", "")
    return re.sub(r"(?<=[A-Za-z])2\b", "²", text).strip()
