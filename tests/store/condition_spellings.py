"""Spellings of one If-None-Exist condition, as clients write them (shared by the key property test and
the concurrent conditional-create test)."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl

from careflow.fhir.search_query import SearchQuery, parse_search
from careflow.naming import SSIN

# the condition: one national number (blinded at rest), a family name, two given names (AND), and a
# gender OR list
CONDITION: list[tuple[str, list[str]]] = [
    ("identifier", [f"{SSIN}|85073100123"]),
    ("family", ["Peeters"]),
    ("given", ["Jan"]),
    ("given", ["Piet"]),
    ("gender", ["male", "other"]),
]
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")


def _encode(text: str, rnd: random.Random) -> str:
    """Percent-encode ``text`` for a query string, each character encoded or not (when it may stand
    bare), hex digits in either case, a space as ``+`` or ``%20``."""
    out = []
    for ch in text:
        bare_ok = ch in _SAFE or ch in "|:/"
        if ch == " ":
            out.append(rnd.choice(["+", "%20"]))
        elif bare_ok and rnd.random() < 0.6:
            out.append(ch)
        else:
            hexed = "".join(f"%{b:02X}" for b in ch.encode())
            out.append(hexed.lower() if rnd.random() < 0.5 else hexed)
    return "".join(out)


def spelling(seed: int, condition: list[tuple[str, list[str]]] = CONDITION) -> str:
    """One way of writing ``condition`` as a query string: parameter order, OR value order, a
    repeated AND parameter, letter case of string values, escaping of the token bar, URL escaping."""
    rnd = random.Random(seed)
    params: list[tuple[str, str]] = []
    for name, values in condition:
        values = list(values)
        rnd.shuffle(values)
        if name in ("family", "given"):
            values = [rnd.choice([v, v.lower(), v.upper()]) for v in values]
        if rnd.random() < 0.3:  # an OR value said twice says nothing more
            values.append(values[0])
        params.append((name, ",".join(values)))
    if rnd.random() < 0.3:  # an AND parameter repeated says nothing more
        params.append(rnd.choice(params))
    rnd.shuffle(params)
    return "&".join(f"{_encode(n, rnd)}={_encode(v, rnd)}" for n, v in params)


def query_of(text: str, rtype: str = "Patient") -> SearchQuery:
    """What the API makes of an If-None-Exist header (parse_qsl, then the strict parser)."""
    return parse_search(rtype, parse_qsl(text, keep_blank_values=True), strict=True)
