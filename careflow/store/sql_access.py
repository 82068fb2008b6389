"""Access narrowing as SQL: a :class:`careflow.access.rules.View` becomes one WHERE term.

Every statement that can return or count resources (search, totals, includes, chain targets, reads,
history, conditional matches) ANDs this term in, so nothing a caller may not see is ever counted,
paged or returned, and no adapter has to remember a filter.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_, false, not_, or_, select, true

from careflow.access.compartment import ORPHAN
from careflow.access.grants import SHARING
from careflow.access.policy import Filter
from careflow.access.rules import View
from careflow.fhir.search_query import Criterion, parse_search
from careflow.store.tables import access_grant, resource


@lru_cache(maxsize=512)
def filter_criteria(rtype: str, flt: Filter) -> tuple[Criterion, ...]:
    """The criteria of a granular filter (policy matrix or SMART scope), parsed once."""
    return parse_search(rtype, list(flt), strict=True).criteria


def _filters_clause(rtype: str, filters: tuple[Filter, ...], table: Any) -> ColumnElement[bool]:
    from careflow.store.sql_search import criterion_clause

    alts = []
    for flt in filters:
        terms = [criterion_clause(rtype, c, drive=False) for c in filter_criteria(rtype, flt)]
        alts.append(and_(*terms) if terms else true())
    clause: ColumnElement[bool] = or_(*alts) if alts else false()
    if table is not resource:
        from sqlalchemy.sql.util import ClauseAdapter

        clause = ClauseAdapter(table).traverse(clause)
    return clause


def _live(now: datetime) -> ColumnElement[bool]:
    return or_(access_grant.c.expires.is_(None), access_grant.c.expires > now)


def access_clause(view: View, rtype: str, now: datetime, table: Any = resource) -> ColumnElement[bool] | None:
    """The term narrowing ``table`` (``resource`` or an alias of it) rows of ``rtype`` to ``view``;
    None when nothing is narrowed.  ``now`` is naive UTC (grant expiry)."""
    if view.everything:
        return None
    if view.nothing:
        return false()
    patient = table.c.patient
    parts: list[ColumnElement[bool]] = []
    if view.directory:
        parts.append(patient.is_(None))
    if view.all_patients:
        parts.append(patient.isnot(None))
    if view.own_patient:
        parts.append(patient == view.own_patient)
    if view.grantees:
        base = [access_grant.c.grantee.in_(list(view.grantees)), access_grant.c.reason != "excluded", _live(now)]
        full = select(access_grant.c.patient_id).where(*base, access_grant.c.full.is_(True))
        any_grant = select(access_grant.c.patient_id).where(*base)
        if view.matrix is None:
            granted = patient.in_(any_grant)
        elif not view.matrix:
            granted = patient.in_(full)
        else:
            granted = or_(patient.in_(full), and_(patient.in_(any_grant), _filters_clause(rtype, view.matrix, table)))
        excluded = select(access_grant.c.patient_id).where(
            access_grant.c.grantee.in_(list(view.excluded_by)), access_grant.c.reason == "excluded")
        parts.append(and_(granted, not_(patient.in_(excluded))) if view.excluded_by else granted)
    if view.summaries:
        parts.append(patient == ORPHAN)
    clause: ColumnElement[bool] = or_(*parts) if parts else false()
    if view.consented_only:
        sharing = select(access_grant.c.patient_id).where(
            access_grant.c.grantee == SHARING, access_grant.c.reason == "sharing", _live(now))
        # orphan patient data (no patient, so no consent) only as a summary report (an aggregate)
        orphans = [patient == ORPHAN] if view.summaries else []
        clause = and_(clause, or_(patient.is_(None), patient.in_(sharing), *orphans))
    if view.only_patient:
        clause = and_(clause, or_(patient.is_(None), patient == view.only_patient))
    if view.scope is not None:
        clause = and_(clause, _filters_clause(rtype, view.scope, table))
    return clause
