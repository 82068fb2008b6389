"""The worklist's sorted page from one composite index: an owner's open Tasks in due order.

``Task?owner=PractitionerRole/x&status=requested,...&_sort=due-date`` is what the worklist page runs
for every care giver (careflow.web.worklist). On the per-parameter index tables it cannot stream:
the owner, the status and the due date are three rows in three tables, so every one of the owner's
Tasks was probed and ranked before fifty were returned, and a page's cost grew with the owner's
Task count (issue #13). ``task_worklist`` keeps those three values of each current Task in one row,
and its partial index ``(owner_id, owner_type, due_missing, due, res_pk) WHERE status IN (open)``
holds exactly the rows of such a query, in its order: the page reads its fifty index entries and
stops, and a next page (keyset cursor) starts where the last one ended.

The team queue (``Task?performer=system|code,...&status=...&_sort=due-date``) has the same shape
on ``task_performer``, one row per (Task, performerType coding): each asked-for coding is one range
of its partial index, read up to the page's size; the ranges are merged (a Task with two of the
codings counted once) and the first page's worth kept.

The plan is taken only when it returns what the general plan would (the contract tests compare both
and the memory twin): one owner given as ``Type/id`` or performer codings each with system and code,
statuses among the open ones without a system, the single ascending ``due-date`` sort; every other
criterion is probed per row as usual, and the access term is the same. Anything else takes the
general plan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Select, and_, false, or_, select, text, true, union_all

from careflow.fhir.search_index import IndexRows
from careflow.fhir.search_query import Criterion, ReferenceValue, SearchQuery, TokenValue
from careflow.store.sql_search import Narrow, criterion_clause
from careflow.store.tables import OPEN_TASK_STATUSES, resource, task_performer, task_worklist

DUE_PARAM = "due-date"
_OPEN = "(" + ", ".join(f"'{s}'" for s in OPEN_TASK_STATUSES) + ")"


def worklist_rows(pk: int, rtype: str, index: IndexRows,
                  ts: Callable[[datetime], Any]) -> dict[str, list[tuple[Any, ...]]]:
    """The ``task_worklist`` and ``task_performer`` rows of a Task version's index rows (none for
    other types)."""
    if rtype != "Task":
        return {}
    owner = next(((r.target_type, r.target_id) for r in index.reference if r.param == "owner" and r.target_type), None)
    status = next((r.code for r in index.token if r.param == "status"), None)
    lows = [r.low for r in index.date if r.param == DUE_PARAM]
    due = min(lows) if lows else None
    stamp = ts(due) if due is not None else None
    codings = sorted({(r.system, r.code) for r in index.token if r.param == "performer"})
    return {
        "task_worklist": [(pk, owner[0] if owner else None, owner[1] if owner else None, status, due is None, stamp)],
        "task_performer": [(pk, system, code, status, due is None, stamp) for system, code in codings],
    }


def _owner(c: Criterion) -> ReferenceValue | None:
    if c.param.name != "owner" or c.modifier or c.chain or c.missing is not None or len(c.values) != 1:
        return None
    v = c.values[0]
    return v if isinstance(v, ReferenceValue) and v.type and v.id and v.url is None else None


def _codings(c: Criterion) -> list[tuple[str, str]] | None:
    if c.param.name != "performer" or c.modifier or c.missing is not None or not c.values:
        return None
    out = []
    for v in c.values:
        if not isinstance(v, TokenValue) or v.system is None or v.code is None:
            return None
        out.append((v.system, v.code))
    return out


def _open_codes(c: Criterion) -> list[str] | None:
    if c.param.name != "status" or c.modifier or c.missing is not None or not c.values:
        return None
    codes = []
    for v in c.values:
        if not isinstance(v, TokenValue) or v.system is not None or v.code not in OPEN_TASK_STATUSES:
            return None
        codes.append(v.code)
    return codes


def applies(query: SearchQuery) -> bool:
    return _parts(query) is not None


def _parts(query: SearchQuery) -> tuple[Criterion, Criterion] | None:
    """(the driving criterion: owner or performer, the status criterion), or None."""
    if query.type != "Task" or len(query.sort) != 1 or query.offset:
        return None
    key = query.sort[0]
    if key.param.name != DUE_PARAM or key.descending:
        return None
    statuses = [c for c in query.criteria if c.param.name == "status"]
    if len(statuses) != 1 or _open_codes(statuses[0]) is None:
        return None
    owners = [c for c in query.criteria if c.param.name == "owner"]
    if len(owners) == 1 and _owner(owners[0]) is not None:
        return owners[0], statuses[0]
    performers = [c for c in query.criteria if c.param.name == "performer"]
    if not owners and len(performers) == 1 and _codings(performers[0]) is not None:
        return performers[0], statuses[0]
    return None


def _keyset(table: Any, after: tuple[Any, int] | None) -> list[Any]:
    if after is None:
        return []
    w = table.c
    mark, after_pk = after
    if mark is None:
        return [and_(w.due_missing == true(), w.res_pk > after_pk)]
    return [or_(and_(w.due_missing == false(), w.due > mark),
                and_(w.due_missing == false(), w.due == mark, w.res_pk > after_pk),
                w.due_missing == true())]


def sorted_page(query: SearchQuery, narrow: Narrow | None, *, after: tuple[Any, int] | None,
                limit: int) -> Select[Any] | None:
    """(pk, due) of the page, or None when the query is not one these indexes answer.

    ``after`` is the keyset position: (the last row's due value or None, its pk)."""
    parts = _parts(query)
    if parts is None:
        return None
    driver, status_c = parts
    codes = _open_codes(status_c)
    assert codes is not None
    common: list[Any] = [resource.c.deleted == false()]
    common.extend(criterion_clause("Task", c, drive=False, narrow=narrow)
                  for c in query.criteria if c is not driver and c is not status_c)
    if narrow is not None:
        access = narrow("Task", resource)
        if access is not None:
            common.append(access)

    def page_of(table: Any, *where: Any) -> Select[Any]:
        w = table.c
        return (
            select(w.res_pk.label("pk"), w.due_missing.label("m"), w.due.label("due"))
            .select_from(table.join(resource, resource.c.pk == w.res_pk))
            # the partial index's own predicate, word for word (SQLite matches it so)
            .where(*where, text(f"{table.name}.status IN {_OPEN}"), w.status.in_(codes), *common,
                   *_keyset(table, after))
            .limit(limit)
        )

    owner = _owner(driver)
    if owner is not None:
        w = task_worklist.c
        return page_of(task_worklist, w.owner_id == owner.id, w.owner_type == owner.type).order_by(
            w.owner_id, w.owner_type, w.due_missing, w.due, w.res_pk).with_only_columns(w.res_pk.label("pk"), w.due)
    codings = _codings(driver)
    assert codings is not None
    p = task_performer.c
    ranges = [page_of(task_performer, p.code == code, p.system == system)
              .order_by(p.code, p.system, p.due_missing, p.due, p.res_pk) for system, code in codings]
    if len(ranges) == 1:
        return ranges[0].with_only_columns(p.res_pk.label("pk"), p.due)
    merged = union_all(*(select(r.c.pk, r.c.m, r.c.due).select_from(r) for r in (q.subquery() for q in ranges))).subquery()
    return (select(merged.c.pk, merged.c.due).group_by(merged.c.pk, merged.c.m, merged.c.due)
            .order_by(merged.c.m, merged.c.due, merged.c.pk).limit(limit))
