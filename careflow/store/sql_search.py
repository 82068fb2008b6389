"""Translation of a parsed FHIR search into SQL over the index tables.

Mirrors ``careflow.fhir.search_match`` clause by clause (the contract suite checks both agree).  Each
criterion becomes ``resource.pk [NOT] IN (SELECT res_pk FROM idx_<kind> WHERE rtype=? AND param=? AND
(value clauses OR'ed))`` so the database can drive the search from the most selective index.
"""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select, true

from careflow.fhir.search_index import TABLE_OF_TYPE
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
from careflow.store.tables import INDEX_TABLES, resource

# (resource type, table or alias of ``resource``) -> the access term for it, or None (not narrowed)
Narrow = Callable[[str, Any], "ColumnElement[bool] | None"]

_SORT_COLUMN = {"token": "code", "date": "low", "string": "norm", "quantity": "value", "uri": "value"}


def filter_clause(rtype: str, criteria: tuple[Criterion, ...], narrow: Narrow | None = None) -> ColumnElement[bool]:
    """WHERE clause on ``resource`` selecting current, non-deleted ``rtype`` resources that match.

    The most selective-looking positive criterion *drives* the search (``pk IN (index range)``); the
    others are correlated ``EXISTS`` probes on the (res_pk, param) index.  Without this SQLite, lacking
    statistics, scans every resource of the type and materialises each criterion's full row set.
    """
    driver = _driver(criteria)
    clauses: list[ColumnElement[bool]] = [resource.c.deleted == false()]
    if driver is None or driver.param.column == "id":
        clauses.append(resource.c.type == rtype)  # index rows already carry the type
    clauses.extend(criterion_clause(rtype, c, drive=c is driver, narrow=narrow) for c in criteria)
    if narrow is not None:
        access = narrow(rtype, resource)
        if access is not None:
            clauses.append(access)
    return and_(*clauses)


def _driver(criteria: tuple[Criterion, ...]) -> Criterion | None:
    return min((c for c in criteria if _drivable(c)), key=_selectivity_rank, default=None)


def _drivable(c: Criterion) -> bool:
    if c.param.column == "last_updated":
        return False
    return c.modifier != "not" and c.missing is not True


def _selectivity_rank(c: Criterion) -> int:
    """Lower is likelier to be selective (no statistics needed): ids and references first, bare codes last."""
    if c.param.column == "id":
        return 0
    if c.chain or c.missing is False:
        return 6 if c.missing is False else 3
    kind = c.param.type
    if kind == "reference":
        return 1
    if kind == "token":
        return 2 if any(isinstance(v, TokenValue) and v.system for v in c.values) else 5
    if kind in ("uri",) or c.modifier == "exact":
        return 2
    return 4


def criterion_clause(rtype: str, c: Criterion, *, drive: bool = True, narrow: Narrow | None = None) -> ColumnElement[bool]:
    param = c.param
    if param.column == "id":
        ids = [v.code for v in c.values if isinstance(v, TokenValue) and v.code is not None]
        clause = resource.c.id.in_(ids)
        return ~clause if c.modifier == "not" else clause
    if param.column == "last_updated":
        col = resource.c.last_updated
        return or_(*(_date_clause(v, col, col) for v in c.values if isinstance(v, DateValue)))
    table = INDEX_TABLES[TABLE_OF_TYPE[param.type]]
    where = _values_where(table, c, narrow)
    negate = c.missing is True or c.modifier == "not"
    if drive and not negate:
        return resource.c.pk.in_(select(table.c.res_pk).where(table.c.rtype == rtype, table.c.param == param.name, where))
    # no rtype term: res_pk implies it, and leaving it out steers SQLite to the (res_pk, param) index
    probe = exists().where(table.c.res_pk == resource.c.pk, table.c.param == param.name, where)
    return ~probe if negate else probe


def _values_where(table: Any, c: Criterion, narrow: Narrow | None) -> ColumnElement[bool]:
    """What an index row (of ``table`` or an alias of it) of ``c``'s parameter must hold to match."""
    if c.missing is not None:
        return true()
    if c.chain:
        return or_(*(_chain_clause(table, t, inner, narrow) for t, inner in c.chain))
    return or_(*(_value_clause(table, c.modifier, v) for v in c.values))


def _chain_clause(ref_table: Any, target_type: str, inner: Criterion, narrow: Narrow | None = None) -> ColumnElement[bool]:
    """Chained parameter: the reference points at a target of ``target_type`` that matches ``inner``
    and that the caller may see (a chain is no way to probe hidden resources)."""
    target = resource.alias("chain_target")
    inner_where = criterion_clause(target_type, inner, narrow=narrow)
    # criterion_clause speaks of ``resource``; re-point it at the alias
    from sqlalchemy.sql.util import ClauseAdapter

    adapted = ClauseAdapter(target).traverse(inner_where)
    targets = select(target.c.id).where(target.c.type == target_type, target.c.deleted == false(), adapted)
    if narrow is not None:
        access = narrow(target_type, target)
        if access is not None:
            targets = targets.where(access)
    return and_(ref_table.c.target_type == target_type, ref_table.c.target_id.in_(targets))


def _value_clause(table: Any, modifier: str | None, v: Value) -> ColumnElement[bool]:
    c = table.c
    if isinstance(v, TokenValue):
        parts = []
        if v.code is not None:
            parts.append(c.code == v.code)
        if v.system is not None:
            parts.append(c.system == v.system)
        return and_(*parts) if parts else true()
    if isinstance(v, ReferenceValue):
        if v.url is not None:
            if modifier == "below":  # url has no code-point collation on PostgreSQL: compare the head
                return func.substr(c.url, 1, len(v.url)) == v.url
            return c.url == v.url
        if v.type is None:
            return c.target_id == v.id
        return and_(c.target_id == v.id, c.target_type == v.type)
    if isinstance(v, DateValue):
        return _date_clause(v, c.low, c.high)
    if isinstance(v, StringValue):
        if modifier == "exact":
            return c.exact == v.text
        if modifier == "contains":
            return c.norm.like("%" + _like_escape(v.text) + "%", escape="\\")
        return _prefix(c.norm, v.text)
    if isinstance(v, NumberValue):
        parts = [_number_clause(v, c.value)]
        if v.system is not None:
            parts.append(c.system == v.system)
        if v.code is not None:
            parts.append(or_(c.code == v.code, c.unit == v.code))
        return and_(*parts)
    if isinstance(v, UriValue):
        return _prefix(c.value, v.url) if modifier == "below" else c.value == v.url
    raise AssertionError(f"unhandled search value {v!r}")  # pragma: no cover


def _prefix(col: Any, text: str) -> ColumnElement[bool]:
    """``col`` starts with ``text`` as an index range (code-point order on both backends)."""
    if not text:
        return true()
    upper = text[:-1] + chr(ord(text[-1]) + 1)
    return and_(col >= text, col < upper)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _date_clause(v: DateValue, low: Any, high: Any) -> ColumnElement[bool]:
    p = v.prefix
    if p == "eq":
        return and_(low >= v.low, high <= v.high)
    if p == "ne":
        return or_(low < v.low, high > v.high)
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
    return and_(low <= v.high, high >= v.low)


def _number_clause(v: NumberValue, col: Any) -> ColumnElement[bool]:
    p = v.prefix
    target = float(v.value)
    if p == "eq":
        return and_(col >= float(v.low), col < float(v.high))
    if p == "ne":
        return or_(col < float(v.low), col >= float(v.high))
    if p in ("gt", "sa"):
        return col > target
    if p in ("lt", "eb"):
        return col < target
    if p == "ge":
        return col >= target
    if p == "le":
        return col <= target
    tol = abs(target) * 0.1
    return and_(col >= target - tol, col <= target + tol)


def order_by(rtype: str, keys: tuple[SortKey, ...]) -> list[Any]:
    """ORDER BY terms: each key (missing values last either way), then creation order."""
    terms: list[Any] = []
    for key, expr in zip(keys, sort_exprs(keys)):
        terms.append(expr.desc().nulls_last() if key.descending else expr.asc().nulls_last())
    terms.append(resource.c.pk.asc())
    return terms


def page_in_creation_order(rtype: str, criteria: tuple[Criterion, ...], narrow: Narrow | None, *,
                           after_pk: int | None, limit: int | None) -> Select[Any]:
    """Primary keys of the matches after ``after_pk`` in creation order (the default sort), as a plan
    whose cost follows the page, not the number of matches.

    The driving criterion's index rows are the FROM (``rtype, param, value..., res_pk`` is in
    ``res_pk`` order when the value is fully given, e.g. ``owner=PractitionerRole/x``), joined to
    ``resource`` and probed for the other criteria row by row, ``DISTINCT`` (a resource may have
    several matching rows) and ``ORDER BY res_pk LIMIT``: both databases stream it and stop at the
    page's end.  ``pk IN (subquery)`` instead made PostgreSQL hash the owner's whole Task list and
    SQLite build it as a list, then both sorted every match to return fifty (issue #13)."""
    driver = _driver(criteria)
    if driver is None or driver.param.column == "id":
        stmt = select(resource.c.pk.label("pk")).where(filter_clause(rtype, criteria, narrow))
        if after_pk is not None:
            stmt = stmt.where(resource.c.pk > after_pk)
        return stmt.order_by(resource.c.pk).limit(limit)
    drv = INDEX_TABLES[TABLE_OF_TYPE[driver.param.type]].alias("drv")
    clauses: list[ColumnElement[bool]] = [
        drv.c.rtype == rtype, drv.c.param == driver.param.name, _values_where(drv, driver, narrow),
        resource.c.deleted == false(),
    ]
    clauses.extend(criterion_clause(rtype, c, drive=False, narrow=narrow) for c in criteria if c is not driver)
    if narrow is not None:
        access = narrow(rtype, resource)
        if access is not None:
            clauses.append(access)
    if after_pk is not None:
        clauses.append(drv.c.res_pk > after_pk)  # on the index column, so it bounds the index range
    return (
        select(drv.c.res_pk.label("pk")).distinct()
        .select_from(drv.join(resource, resource.c.pk == drv.c.res_pk))
        .where(*clauses).order_by(drv.c.res_pk).limit(limit)
    )


def sort_exprs(keys: tuple[SortKey, ...]) -> list[Any]:
    """One SQL expression per sort key: the value the resource sorts by (``order_by`` orders on them)."""
    exprs: list[Any] = []
    for key in keys:
        param = key.param
        if param.column == "id":
            exprs.append(resource.c.id)
        elif param.column == "last_updated":
            exprs.append(resource.c.last_updated)
        else:
            kind = TABLE_OF_TYPE[param.type]
            table = INDEX_TABLES[kind]
            agg = func.max if key.descending else func.min
            exprs.append(
                select(agg(table.c[_SORT_COLUMN[kind]]))
                .where(table.c.res_pk == resource.c.pk, table.c.param == param.name)  # (res_pk, param, ...) index
                .scalar_subquery()
            )
    return exprs


def after_clause(keys: tuple[SortKey, ...], exprs: list[Any], marks: tuple[Any, ...],
                 after_pk: int) -> ColumnElement[bool]:
    """Rows that sort strictly after the position (``marks``, ``after_pk``) in ``order_by``'s order
    (missing values last either way): keyset paging, the twin of ``search_match.after_cursor``."""
    alts: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for key, expr, mark in zip(keys, exprs, marks):
        if mark is not None:
            beyond = expr < mark if key.descending else expr > mark
            alts.append(and_(*equal, or_(beyond, expr.is_(None))))
            equal.append(expr == mark)
        else:
            equal.append(expr.is_(None))  # only other rows without a value tie; nothing sorts after them
    alts.append(and_(*equal, resource.c.pk > after_pk))
    return or_(*alts)


def matching_pks(rtype: str, criteria: tuple[Criterion, ...], narrow: Narrow | None = None) -> Select[Any]:
    return select(resource.c.pk).where(filter_clause(rtype, criteria, narrow))


__all__ = ["after_clause", "filter_clause", "order_by", "matching_pks", "page_in_creation_order", "sort_exprs"]
