"""AuditEvent search: the parameters served (from the R4 registry's AuditEvent parameters) and
their parsed form, shared by the SQL log and the in-memory twin."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from careflow.errors import InvalidSearch, UnsupportedSearch
from careflow.fhir.search_params import get_param
from careflow.fhir.search_query import DEFAULT_COUNT, MAX_COUNT

SUPPORTED = ("_id", "patient", "entity", "agent", "date", "type", "subtype", "action", "outcome")
CONTROL = ("_count", "_offset", "_format", "_pretty")


@dataclass
class AuditQuery:
    ids: list[str] | None = None
    patients: list[str] | None = None  # Patient/x references (any of)
    entities: list[str] | None = None
    agents: list[str] | None = None
    subtypes: list[str] | None = None
    actions: list[str] | None = None
    outcomes: list[str] | None = None
    none: bool = False  # a criterion no event can meet (e.g. type=other)
    dates: list[tuple[str, datetime]] = field(default_factory=list)  # (op, naive UTC bound)
    count: int = DEFAULT_COUNT
    offset: int = 0


def _ref(value: str, default_type: str | None) -> str:
    value = value.strip()
    if "/" not in value and default_type:
        return f"{default_type}/{value}"
    return value.split("/_history/")[0]


def _codes(value: str) -> list[str]:
    return [v.split("|")[-1] for v in value.split(",") if v]


def _date(value: str) -> list[tuple[str, datetime]]:
    prefix = value[:2] if value[:2] in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb") else ""
    text = value[len(prefix):]
    try:
        if len(text) == 4:
            low = datetime(int(text), 1, 1)
            high = datetime(int(text) + 1, 1, 1)
        elif len(text) == 7:
            y, m = int(text[:4]), int(text[5:7])
            low = datetime(y, m, 1)
            high = datetime(y + (m == 12), m % 12 + 1, 1)
        elif len(text) == 10:
            low = datetime.fromisoformat(text)
            high = low + timedelta(days=1)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            low = moment.astimezone(timezone.utc).replace(tzinfo=None)
            high = low + timedelta(seconds=1)
    except ValueError:
        raise InvalidSearch("date", f"'{value}' is not a FHIR date or instant") from None
    if prefix in ("", "eq"):
        return [("ge", low), ("lt", high)]
    if prefix in ("gt", "sa"):
        return [("ge", high)]
    if prefix == "ge":
        return [("ge", low)]
    if prefix in ("lt", "eb"):
        return [("lt", low)]
    if prefix == "le":
        return [("lt", high)]
    raise InvalidSearch("date", "ne is not supported on AuditEvent.date")


def _whole(name: str, value: str) -> int:
    if not value.isdigit():
        raise InvalidSearch(name, f"'{value}' is not a whole number")
    return int(value)


def parse_audit_search(params: list[tuple[str, str]]) -> AuditQuery:
    q = AuditQuery()
    for name, value in params:
        if name in ("_format", "_pretty"):
            continue
        if name == "_count":
            q.count = min(_whole(name, value), MAX_COUNT)
            continue
        if name == "_offset":
            q.offset = _whole(name, value)
            continue
        if name not in SUPPORTED:
            supported = f" (supported: {', '.join(SUPPORTED)}, _count, _offset)"
            if get_param("AuditEvent", name.partition(":")[0]) is not None or name.startswith("_"):
                raise UnsupportedSearch(name, f"{name} is not served on the audit trail{supported}")
            raise InvalidSearch(name, f"{name} is not an AuditEvent search parameter{supported}")
        values = [v for v in value.split(",") if v]
        if name == "_id":
            q.ids = (q.ids or []) + values
        elif name == "patient":
            q.patients = _and(q.patients, [_ref(v, "Patient") for v in values])
        elif name == "entity":
            q.entities = _and(q.entities, [_ref(v, None) for v in values])
        elif name == "agent":
            q.agents = _and(q.agents, [_ref(v, None) for v in values])
        elif name == "date":
            q.dates.extend(_date(value))
        elif name == "type":
            if not any(c == "rest" for c in _codes(value)):
                q.none = True
        elif name == "subtype":
            q.subtypes = _and(q.subtypes, _codes(value))
        elif name == "action":
            q.actions = _and(q.actions, [c.upper() for c in _codes(value)])
        elif name == "outcome":
            q.outcomes = _and(q.outcomes, _codes(value))
    return q


def _and(old: list[str] | None, new: list[str]) -> list[str]:
    """Two occurrences of one parameter must both hold: keep the values common to both."""
    if old is None:
        return new
    return [v for v in old if v in new]
