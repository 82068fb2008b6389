"""Shared views (aggregates for the team coach and the region): who may see them, through which
principal they are read, and the small-count rule. One place, used by the team financing and the
dashboard alike.

Aggregates are for the team coach and the region only, and careflow has no region principal, so:

* a **care coach** (discipline ``care-coach``) sees the teams their PractitionerRole belongs to
  (``Principal.organizations``);
* **the region** is a care coach whose PractitionerRole belongs to the region's own Organization
  (the one the neighbourhood teams are ``partOf``), or a system client of the region (a token of a
  listed system client; the command line runs as the system too, for the operator of the database);
* everyone else (a GP, a nurse, a patient, an auditor) is refused: they have the patient pages.

**Small counts**: a shared view shows a count of 1 to 4 patients as ``<5`` (0 is shown: it names
no one), so no cell points at a person a neighbour could recognise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from careflow.access.principal import Principal, Scope

COACH = "care-coach"
SUPPRESS_BELOW = 5  # shared views show fewer patients than this (but more than none) as "<5"

# what the region's aggregate reader may do: read and search, nothing else
_READ_ONLY = (Scope("system", "*", frozenset("rs")),)


class NotForYou(Exception):
    """The caller may not see aggregates."""


def suppressed(count: int) -> bool:
    """Is ``count`` patients too small to show in a shared view?"""
    return 0 < count < SUPPRESS_BELOW


def shown(count: int) -> int | None:
    """``count`` as a shared view may show it; None for a suppressed cell (shown as ``<5``)."""
    return None if suppressed(count) else count


def may_see_aggregates(principal: Principal) -> bool:
    """A care coach with a team, or a system client: the only callers a shared view is for."""
    return principal.is_system or (principal.kind == "practitioner" and principal.discipline == COACH
                                   and bool(principal.organizations))


def visible_teams(principal: Principal, regions: Iterable[str]) -> frozenset[str] | None:
    """The teams (``Organization/<id>``) whose lines ``principal`` may see; ``None``: every team.
    Raises NotForYou for a caller who may see none."""
    if principal.is_system:
        return None
    if principal.kind == "practitioner" and principal.discipline == COACH:
        orgs = frozenset(o for o in principal.organizations if o.startswith("Organization/"))
        if orgs & frozenset(regions):
            return None
        if orgs:
            return orgs
    raise NotForYou("aggregates are for the team coach and the region")


def aggregate_reader(principal: Principal, regions: Iterable[str]) -> tuple[Principal, frozenset[str] | None]:
    """The principal a shared view reads as, and the teams it covers (None: the whole region).

    A team coach reads as themselves, marked ``shared``: the store then counts only the patients
    they may see (their care teams) who consented to sharing. The region reads every consented
    patient: a system client as itself, a region coach as a read-only system reader on their behalf
    (the audit trail names them). Raises NotForYou for anyone else."""
    teams = visible_teams(principal, regions)
    if teams is not None or principal.is_system:
        return replace(principal, shared=True), teams
    reader = Principal(kind="system", id=principal.id, scopes=_READ_ONLY, client_id=principal.client_id,
                       on_behalf_of=principal.id, organizations=principal.organizations, shared=True)
    return reader, None
