"""Pure evaluation of a parsed FHIR search against index rows: the in-memory store's search engine and
the reference the SQL translation (``careflow.store.sql_search``) mirrors clause by clause."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from careflow.fhir.search_index import TABLE_OF_TYPE, IndexRows
from careflow.fhir.search_query import (
    Criterion,
    DateValue,
    NumberValue,
    ReferenceValue,
    SortKey,
    StringValue,
    TokenValue,
    UriValue,
    Value,
)


@dataclass(frozen=True)
class Candidate:
    """What matching needs to know about one current, non-deleted resource."""

    type: str
    id: str
    last_updated: datetime  # naive UTC
    index: IndexRows
    seq: int  # creation order: the default sort and tie-break


# resolves a (type, id) reference to its candidate (None when absent or deleted), for chaining
Resolver = Callable[[str, str], "Candidate | None"]


def matches_all(criteria: tuple[Criterion, ...], cand: Candidate, resolve: Resolver) -> bool:
    return all(criterion_matches(c, cand, resolve) for c in criteria)


def criterion_matches(c: Criterion, cand: Candidate, resolve: Resolver) -> bool:
    param = c.param
    if param.column == "id":
        hit = any(isinstance(v, TokenValue) and v.code == cand.id for v in c.values)
        return not hit if c.modifier == "not" else hit
    if param.column == "last_updated":
        return any(_date_hit(v, cand.last_updated, cand.last_updated) for v in c.values if isinstance(v, DateValue))
    table = TABLE_OF_TYPE[param.type]
    rows = cand.index.of_param(table, param.name)
    if c.missing is not None:
        return (not rows) if c.missing else bool(rows)
    if c.chain:
        for row in rows:
            if not row.target_type:
                continue
            for target_type, inner in c.chain:
                if row.target_type != target_type:
                    continue
                target = resolve(target_type, row.target_id)
                if target is not None and criterion_matches(inner, target, resolve):
                    return True
        return False
    hit = any(value_matches(c.modifier, v, row) for v in c.values for row in rows)
    return not hit if c.modifier == "not" else hit


def value_matches(modifier: str | None, v: Value, row: Any) -> bool:
    if isinstance(v, TokenValue):
        if v.code is not None and row.code != v.code:
            return False
        return v.system is None or row.system == v.system
    if isinstance(v, ReferenceValue):
        if v.url is not None:
            return bool(row.url.startswith(v.url)) if modifier == "below" else bool(row.url == v.url)
        return bool(row.target_id == v.id and (v.type is None or row.target_type == v.type))
    if isinstance(v, DateValue):
        return _date_hit(v, row.low, row.high)
    if isinstance(v, StringValue):
        if modifier == "exact":
            return bool(row.exact == v.text)
        if modifier == "contains":
            return v.text in row.norm
        return bool(row.norm.startswith(v.text))
    if isinstance(v, NumberValue):
        if v.system is not None and row.system != v.system:
            return False
        if v.code is not None and v.code not in (row.code, row.unit):
            return False
        return _number_hit(v, row.value)
    if isinstance(v, UriValue):
        return bool(row.value.startswith(v.url) if modifier == "below" else row.value == v.url)
    return False  # pragma: no cover


def _date_hit(v: DateValue, low: datetime, high: datetime) -> bool:
    p = v.prefix
    if p == "eq":
        return low >= v.low and high <= v.high
    if p == "ne":
        return not (low >= v.low and high <= v.high)
    if p == "gt":
        return high > v.high
    if p == "lt":
        return low < v.low
    if p == "ge":
        return high >= v.low
    if p == "le":
        return low <= v.high
    if p == "sa":
        return low > v.high
    if p == "eb":
        return high < v.low
    return low <= v.high and high >= v.low  # ap: the ranges overlap


def _number_hit(v: NumberValue, value: float) -> bool:
    p = v.prefix
    target = float(v.value)
    if p == "eq":
        return float(v.low) <= value < float(v.high)
    if p == "ne":
        return not (float(v.low) <= value < float(v.high))
    if p in ("gt", "sa"):
        return value > target
    if p in ("lt", "eb"):
        return value < target
    if p == "ge":
        return value >= target
    if p == "le":
        return value <= target
    return abs(value - target) <= abs(target) * 0.1  # ap: within 10 %


def sort_candidates(cands: list[Candidate], keys: tuple[SortKey, ...]) -> list[Candidate]:
    """Stable multi-key sort; a resource without a value sorts last in either direction."""
    ordered = sorted(cands, key=lambda c: c.seq)
    for key in reversed(keys):
        present = [(c, _sort_value(c, key)) for c in ordered]
        with_value = [(c, s) for c, s in present if s is not None]
        without = [c for c, s in present if s is None]
        with_value.sort(key=lambda cs: cs[1], reverse=key.descending)
        ordered = [c for c, _ in with_value] + without
    return ordered


def _sort_value(c: Candidate, key: SortKey) -> Any:
    param = key.param
    if param.column == "id":
        return c.id
    if param.column == "last_updated":
        return c.last_updated
    table = TABLE_OF_TYPE[param.type]
    rows = c.index.of_param(table, param.name)
    if not rows:
        return None
    field = {"token": "code", "date": "low", "string": "norm", "quantity": "value", "uri": "value"}[table]
    values = [getattr(r, field) for r in rows]
    return max(values) if key.descending else min(values)


def sort_values(c: Candidate, keys: tuple[SortKey, ...]) -> tuple[Any, ...]:
    """The values ``c`` is sorted by (what a next-page cursor records)."""
    return tuple(_sort_value(c, key) for key in keys)


def _compare(value: Any, mark: Any, descending: bool) -> int:
    """-1 / 0 / 1: ``value`` sorts before, with, or after ``mark`` (missing values last either way)."""
    if value is None or mark is None:
        return 0 if value is None and mark is None else (1 if value is None else -1)
    if value == mark:
        return 0
    return 1 if (value < mark if descending else value > mark) else -1


def after_cursor(cands: list[Candidate], keys: tuple[SortKey, ...], marks: tuple[Any, ...],
                 seq: int) -> list[Candidate]:
    """The candidates that sort strictly after the position (``marks``, creation order ``seq``):
    keyset paging, the twin of ``careflow.store.sql_search.after_clause``."""
    out = []
    for c in cands:
        verdict = 0
        for key, mark in zip(keys, marks):
            verdict = _compare(_sort_value(c, key), mark, key.descending)
            if verdict:
                break
        if verdict > 0 or (verdict == 0 and c.seq > seq):
            out.append(c)
    return out
