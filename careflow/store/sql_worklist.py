"""The worklist's sorted page from one composite index: an owner's open Tasks in due order.

``Task?owner=PractitionerRole/x&status=requested,...&_sort=due-date`` is what the worklist page runs
for every care giver (careflow.web.worklist). On the per-parameter index tables it cannot stream:
the owner, the status and the due date are three rows in three tables, so every one of the owner's
Tasks was probed and ranked before fifty were returned, and a page's cost grew with the owner's
Task count (issue #13). ``task_worklist`` keeps those three values of each current Task in one row,
and its partial index ``(owner_id, owner_type, due_missing, due, res_pk) WHERE status IN (open)``
holds exactly the rows of such a query, in its order: the page reads its fifty index entries and
stops, and a next page (keyset cursor) starts where the last one ended.

The plan is taken only when it returns what the general plan would (the contract tests compare both
and the memory twin): one owner given as ``Type/id``, statuses among the open ones without a
system, the single ascending ``due-date`` sort; every other criterion is probed per row as usual,
and the access term is the same. Anything else takes the general plan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Select, and_, false, or_, select, text, true

from careflow.fhir.search_index import IndexRows
from careflow.fhir.search_query import Criterion, ReferenceValue, SearchQuery, TokenValue
from careflow.store.sql_search import Narrow, criterion_clause
from careflow.store.tables import OPEN_TASK_STATUSES, resource, task_worklist

DUE_PARAM = "due-date"
_OPEN_PREDICATE = "task_worklist.status IN (" + ", ".join(f"'{s}'" for s in OPEN_TASK_STATUSES) + ")"


def worklist_row(pk: int, rtype: str, index: IndexRows, ts: Callable[[datetime], Any]) -> tuple[Any, ...] | None:
    """The ``task_worklist`` row of a Task version's index rows (None for other types)."""
    if rtype != "Task":
        return None
    owner = next(((r.target_type, r.target_id) for r in index.reference if r.param == "owner" and r.target_type), None)
    status = next((r.code for r in index.token if r.param == "status"), None)
    lows = [r.low for r in index.date if r.param == DUE_PARAM]
    due = min(lows) if lows else None
    return (pk, owner[0] if owner else None, owner[1] if owner else None, status, due is None,
            ts(due) if due is not None else None)


def _owner(c: Criterion) -> ReferenceValue | None:
    if c.param.name != "owner" or c.modifier or c.chain or c.missing is not None or len(c.values) != 1:
        return None
    v = c.values[0]
    return v if isinstance(v, ReferenceValue) and v.type and v.id and v.url is None else None


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
    if query.type != "Task" or len(query.sort) != 1 or query.offset:
        return None
    key = query.sort[0]
    if key.param.name != DUE_PARAM or key.descending:
        return None
    owners = [c for c in query.criteria if c.param.name == "owner"]
    statuses = [c for c in query.criteria if c.param.name == "status"]
    if len(owners) != 1 or len(statuses) != 1 or _owner(owners[0]) is None or _open_codes(statuses[0]) is None:
        return None
    return owners[0], statuses[0]


def sorted_page(query: SearchQuery, narrow: Narrow | None, *, after: tuple[Any, int] | None,
                limit: int) -> Select[Any] | None:
    """(pk, due) of the page, or None when the query is not one this index answers.

    ``after`` is the keyset position: (the last row's due value or None, its pk)."""
    parts = _parts(query)
    if parts is None:
        return None
    owner_c, status_c = parts
    owner = _owner(owner_c)
    codes = _open_codes(status_c)
    assert owner is not None and codes is not None
    w = task_worklist.c
    clauses: list[Any] = [
        w.owner_id == owner.id, w.owner_type == owner.type,
        text(_OPEN_PREDICATE),  # the partial index's own predicate, word for word (SQLite matches it so)
        w.status.in_(codes), resource.c.deleted == false(),
    ]
    clauses.extend(criterion_clause("Task", c, drive=False, narrow=narrow)
                   for c in query.criteria if c is not owner_c and c is not status_c)
    if narrow is not None:
        access = narrow("Task", resource)
        if access is not None:
            clauses.append(access)
    if after is not None:
        mark, after_pk = after
        if mark is None:
            clauses.append(and_(w.due_missing == true(), w.res_pk > after_pk))
        else:
            clauses.append(or_(and_(w.due_missing == false(), w.due > mark),
                               and_(w.due_missing == false(), w.due == mark, w.res_pk > after_pk),
                               w.due_missing == true()))
    return (
        select(w.res_pk.label("pk"), w.due)
        .select_from(task_worklist.join(resource, resource.c.pk == w.res_pk))
        .where(*clauses)
        .order_by(w.owner_id, w.owner_type, w.due_missing, w.due, w.res_pk)
        .limit(limit)
    )
