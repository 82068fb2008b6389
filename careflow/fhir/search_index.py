"""Index rows of a resource: the values of its declared search parameters, extracted once on write.

Pure function of the resource dict (``extract_index``) so the SQL store writes these rows to its index
tables and the in-memory twin keeps them beside each resource; both then match queries against the same
rows (``careflow.fhir.search_match`` for memory, ``careflow.store.sql_search`` for SQL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterator, NamedTuple

from careflow.fhir.search_params import SearchParam, indexed_params
from careflow.fhir.search_values import (
    DATE_MAX,
    DATE_MIN,
    STRING_INDEX_LENGTH,
    date_range,
    normalise_string,
    parse_reference,
)

# a region repeats the same cities, postal codes and names endlessly, and R4 indexes an address part
# under several parameters (address, address-city, ...): fold each distinct text once
_normalised = lru_cache(maxsize=65536)(normalise_string)


class TokenRow(NamedTuple):
    param: str
    system: str  # "" when the value has no system
    code: str


class ReferenceRow(NamedTuple):
    param: str
    target_type: str  # "" when the reference has no Type/id tail
    target_id: str
    url: str  # the reference as written when it has no Type/id tail (urn:uuid:...), else ""


class DateRow(NamedTuple):
    param: str
    low: datetime  # inclusive, naive UTC
    high: datetime


class StringRow(NamedTuple):
    param: str
    norm: str  # accent/case folded, for prefix and :contains
    exact: str  # as written, for :exact


class QuantityRow(NamedTuple):
    param: str
    value: float
    system: str
    code: str
    unit: str


class UriRow(NamedTuple):
    param: str
    value: str


@dataclass
class IndexRows:
    token: list[TokenRow] = field(default_factory=list)
    reference: list[ReferenceRow] = field(default_factory=list)
    date: list[DateRow] = field(default_factory=list)
    string: list[StringRow] = field(default_factory=list)
    quantity: list[QuantityRow] = field(default_factory=list)  # quantity and number parameters
    uri: list[UriRow] = field(default_factory=list)

    def of_param(self, table: str, param: str) -> list[Any]:
        return [r for r in getattr(self, table) if r.param == param]


# which IndexRows list (and SQL index table) a parameter type lives in
TABLE_OF_TYPE: dict[str, str] = {
    "token": "token", "reference": "reference", "date": "date", "string": "string",
    "quantity": "quantity", "number": "quantity", "uri": "uri",
}

_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


@dataclass(frozen=True)
class _Path:
    """A registry path parsed once: JSON keys, ``key[child=literal]`` filters, a ``:Type`` reference filter."""

    steps: tuple[str, ...]
    filters: tuple[tuple[int, str, str], ...]  # (step index, child key, literal)
    ref_type: str | None


_REF_TYPE = re.compile(r":([A-Z][A-Za-z]*)$")
_STEP = re.compile(r"[^.\[]+(?:\[[^\]]*\])?")


def parse_path(text: str) -> _Path:
    """``telecom[system=email]`` / ``subject:Patient`` / ``name.family`` (see ``search_params``)."""
    typed = _REF_TYPE.search(text)  # a ':Type' suffix; a literal in brackets may hold ':' and '.' (URLs)
    body, ref_type = (text[:typed.start()], typed.group(1)) if typed else (text, "")
    steps: list[str] = []
    filters: list[tuple[int, str, str]] = []
    for i, step in enumerate(_STEP.findall(body)):
        key, bracket, cond = step.partition("[")
        steps.append(key)
        if bracket:
            child, _, literal = cond.rstrip("]").partition("=")
            filters.append((i, child, literal))
    return _Path(tuple(steps), tuple(filters), ref_type or None)


def _walk(items: list[Any], path: _Path) -> list[Any]:
    """The values ``path`` reaches from ``items``, the elements at its first step (lists flattened at
    every step, ``[child=literal]`` filters applied where they stand)."""
    filters = path.filters
    if filters and filters[0][0] == 0:
        _, child, literal = filters[0]
        items = [v for v in items if isinstance(v, dict) and v.get(child) == literal]
    for i in range(1, len(path.steps)):
        step = path.steps[i]
        nxt: list[Any] = []
        for item in items:
            if isinstance(item, dict):
                value = item.get(step)
                if value is None:
                    continue
                if isinstance(value, list):
                    nxt.extend(value)
                else:
                    nxt.append(value)
        for index, child, literal in filters:
            if index == i:
                nxt = [v for v in nxt if isinstance(v, dict) and v.get(child) == literal]
        items = nxt
        if not items:
            break
    return items


@lru_cache(maxsize=None)
def _plan(rtype: str) -> dict[str, tuple[tuple[_Path, tuple[SearchParam, ...]], ...]]:
    """Per first JSON key, the paths starting there (parsed once) and the parameters reading each:
    'subject' feeds both subject and, through its ':Patient' twin, patient.  Keyed by the first step so
    extraction visits only the elements a resource has, not every path of a type's ~30 parameters."""
    by_path: dict[str, list[SearchParam]] = {}
    for param in indexed_params(rtype):
        for path in param.paths:
            by_path.setdefault(path, []).append(param)
    by_first: dict[str, list[tuple[_Path, tuple[SearchParam, ...]]]] = {}
    for text, params in by_path.items():
        parsed = parse_path(text)
        by_first.setdefault(parsed.steps[0], []).append((parsed, tuple(params)))
    return {key: tuple(entries) for key, entries in by_first.items()}


def extract_index(resource: dict[str, Any]) -> IndexRows:
    """Index rows for every declared parameter of the resource's type (duplicates removed)."""
    rows = IndexRows()
    plan = _plan(resource.get("resourceType", ""))
    for key, element in resource.items():
        entries = plan.get(key)
        if entries is None or element is None:
            continue
        items = element if isinstance(element, list) else [element]  # shared by every path from here
        for path, params in entries:
            values = items if len(path.steps) == 1 and not path.filters else _walk(items, path)
            for value in values:
                for param in params:
                    _add(rows, param, value, path.ref_type)
    for name in ("token", "reference", "date", "string", "quantity", "uri"):
        lst = getattr(rows, name)
        if len(lst) > 1:
            setattr(rows, name, list(dict.fromkeys(lst)))
    return rows


def _add(rows: IndexRows, param: SearchParam, value: Any, ref_type: str | None = None) -> None:
    kind = param.type
    name = param.name
    if kind == "token":
        for system, code in _tokens(value):
            rows.token.append(TokenRow(name, system, code))
    elif kind == "reference":
        if isinstance(value, str):  # canonical / uri element: keep the URL (version cut) and its Type/id tail
            url = value.split("|", 1)[0]
            if url and ref_type is None:
                rtype, rid = parse_reference(url)
                rows.reference.append(ReferenceRow(name, rtype or "", rid or "", url))
            return
        ref = value.get("reference") if isinstance(value, dict) else None
        if isinstance(ref, str) and ref and not ref.startswith("#"):
            rtype, rid = parse_reference(ref)
            if rtype is not None and rid is not None:
                if ref_type is None or rtype == ref_type:
                    rows.reference.append(ReferenceRow(name, rtype, rid, ""))
            elif ref_type is None:
                rows.reference.append(ReferenceRow(name, "", "", ref))
    elif kind == "date":
        rng = _date_range(value)
        if rng is not None:
            rows.date.append(DateRow(name, rng[0], rng[1]))
    elif kind == "string":
        for text in _strings(value):
            rows.string.append(StringRow(name, _normalised(text), text[:STRING_INDEX_LENGTH]))
    elif kind in ("quantity", "number"):
        if isinstance(value, dict) and isinstance(value.get("value"), (int, float)) and not isinstance(value.get("value"), bool):
            rows.quantity.append(QuantityRow(
                name, float(value["value"]), str(value.get("system") or ""), str(value.get("code") or ""),
                str(value.get("unit") or ""),
            ))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.quantity.append(QuantityRow(name, float(value), "", "", ""))
    elif kind == "uri":
        if isinstance(value, str) and value:
            rows.uri.append(UriRow(name, value.split("|", 1)[0]))


def _tokens(value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, bool):
        yield "", "true" if value else "false"
    elif isinstance(value, str):
        yield "", value
    elif isinstance(value, dict):
        if isinstance(value.get("coding"), list):
            for coding in value["coding"]:
                if isinstance(coding, dict) and coding.get("code"):
                    yield str(coding.get("system") or ""), str(coding["code"])
        elif value.get("code") is not None:  # Coding
            yield str(value.get("system") or ""), str(value["code"])
        elif value.get("value") is not None:  # Identifier, ContactPoint
            yield str(value.get("system") or ""), str(value["value"])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, dict):
        parts = _NAME_PARTS if ("family" in value or "given" in value) else _ADDRESS_PARTS
        for part in parts:
            v = value.get(part)
            if isinstance(v, str):
                if v:
                    yield v
            elif isinstance(v, list):
                yield from (x for x in v if isinstance(x, str) and x)


def _date_range(value: Any) -> tuple[datetime, datetime] | None:
    if isinstance(value, str):
        return date_range(value)
    if isinstance(value, dict):
        if "start" in value or "end" in value:  # Period
            start = date_range(value["start"]) if isinstance(value.get("start"), str) else None
            end = date_range(value["end"]) if isinstance(value.get("end"), str) else None
            if start is None and end is None:
                return None
            return (start[0] if start else DATE_MIN), (end[1] if end else DATE_MAX)
        events = [r for e in value.get("event", []) if isinstance(e, str) and (r := date_range(e))]
        if events:  # Timing: the span of its events
            return min(r[0] for r in events), max(r[1] for r in events)
    return None
