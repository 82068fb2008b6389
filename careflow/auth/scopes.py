"""SMART App Launch scopes (v2, with the v1 forms mapped) as :class:`careflow.access.principal.Scope`.

v2: ``<context>/<type>.<letters>[?<param>=<value>&...]`` with context ``patient``, ``user`` or
``system``, type a resource type or ``*``, letters a non-empty subsequence of ``cruds`` in that order.
v1: ``.read`` is ``rs``, ``.write`` is ``cud``, ``.*`` is ``cruds``. Scopes that are not about
resources (``openid``, ``fhirUser``, ``launch/patient``, ``offline_access``...) and malformed ones are
not resource grants and are left out, as SMART asks servers to do with what they do not understand.
Pure: no framework, no I/O.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from careflow.access.principal import INTERACTIONS, Scope

_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE_RE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.([a-z*]+)(?:\?(.+))?$")
_LETTERS_RE = re.compile(r"^c?r?u?d?s?$")
_PARAM_RE = re.compile(r"^[a-z_][A-Za-z0-9_:.-]*$")

# What /.well-known/smart-configuration advertises.
SCOPES_SUPPORTED: tuple[str, ...] = (
    "openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access",
    "patient/*.rs", "patient/*.cruds", "user/*.rs", "user/*.cruds", "system/*.rs", "system/*.cruds",
    "patient/Observation.rs?category=vital-signs", "user/Task.cruds",
)


def parse_scope(text: str) -> Scope | None:
    """One scope string as a :class:`Scope`; None when it grants no resource access."""
    m = _SCOPE_RE.match(text.strip())
    if m is None:
        return None
    context, rtype, letters, query = m.groups()
    if letters in _V1:
        if query:  # granular filters exist in v2 only
            return None
        letters = _V1[letters]
    elif not letters or not _LETTERS_RE.match(letters):
        return None
    filters: tuple[tuple[str, str], ...] = ()
    if query:
        pairs = parse_qsl(query, keep_blank_values=False, strict_parsing=False)
        if not pairs or any(not _PARAM_RE.match(k) or not v for k, v in pairs):
            return None
        filters = tuple(pairs)
    return Scope(context, rtype, frozenset(letters), filters)  # type: ignore[arg-type]


def parse_scopes(text: str | list[str] | None) -> tuple[Scope, ...]:
    """The resource scopes of a token's ``scope`` claim (space-separated, or a list as some servers
    send ``scp``), duplicates removed, order kept."""
    if text is None:
        return ()
    items = text.split() if isinstance(text, str) else [s for s in text if isinstance(s, str)]
    out: dict[Scope, None] = {}
    for item in items:
        scope = parse_scope(item)
        if scope is not None:
            out[scope] = None
    return tuple(out)


def scope_text(scopes: tuple[Scope, ...]) -> str:
    """Scopes back as one space-separated string (v2 spelling)."""
    return " ".join(s.text() for s in scopes)


def contexts(scopes: tuple[Scope, ...]) -> set[str]:
    return {s.context for s in scopes}


__all__ = ["INTERACTIONS", "SCOPES_SUPPORTED", "contexts", "parse_scope", "parse_scopes", "scope_text"]
