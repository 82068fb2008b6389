"""FHIR JSON with decimals kept exactly as written.

FHIR says the precision of a decimal is significant: ``1.50`` is not ``1.5``, and a value beyond
double precision (``12345678901234567890.123456789``) must come back unchanged. A JSON parser that
turns numbers into floats loses both. Here a decimal is read into :class:`ExactDecimal`, a ``float``
that remembers its source text: everything inside careflow (comparisons, search-index extraction,
model validation, SQL parameters) sees an ordinary float, and :func:`dumps` writes the text back.

orjson stays the parser for JSON without a fraction or an exponent (most resources, and every
hot-path resource without measurements); a body that may hold one is read by the standard library
with ``parse_float``. The check is a cheap scan that may say "maybe" for a string that looks like a
number, which only costs the slower exact parse.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["ExactDecimal", "dumps", "loads"]

# a number with a fraction or an exponent, or with more digits than 64 bits hold (orjson would make
# a float of it), right after ':' '[' or ',' and followed by what ends a JSON number (whitespace
# allowed): without that end, the seconds of every ``meta.lastUpdated`` ("…T20:02:00.123+00:00")
# looked like a decimal and sent every stored resource to the slow parser
_MAYBE_DECIMAL = re.compile(rb"[:\[,]\s*-?(?:[0-9]{19,}|[0-9]+(?:\.[0-9]+|(?:\.[0-9]+)?[eE][+-]?[0-9]+))(?=\s*(?:[,}\]]|\Z))")


class ExactDecimal(float):
    """A JSON decimal: the float value, and ``text``, the digits exactly as they were written."""

    text: str

    def __new__(cls, text: str) -> "ExactDecimal":
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (ExactDecimal, (self.text,))

    def __deepcopy__(self, memo: dict[int, Any]) -> "ExactDecimal":
        return self

    def __copy__(self) -> "ExactDecimal":
        return self


def loads(raw: bytes | str) -> Any:
    """Parse JSON; decimals (and integers beyond 64 bits) become :class:`ExactDecimal`. Bad JSON
    raises ``ValueError`` (both parsers' error is one)."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if not _MAYBE_DECIMAL.search(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # an integer beyond 64 bits, say: the standard parser reads those exactly; else it raises
    return json.loads(data, parse_float=ExactDecimal, parse_int=_integer)


def _integer(text: str) -> int | ExactDecimal:
    """An integer beyond orjson's 64 bits can only be a decimal in FHIR: kept as written."""
    value = int(text)
    return value if -(2**63) <= value < 2**64 else ExactDecimal(text)


def _default(value: Any) -> Any:
    if isinstance(value, ExactDecimal):
        return orjson.Fragment(value.text)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(value: Any, option: int = 0) -> bytes:
    """Compact JSON (orjson), every :class:`ExactDecimal` written with its own digits."""
    return orjson.dumps(value, default=_default, option=option)
