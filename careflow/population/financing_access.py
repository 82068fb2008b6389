"""Who may see which lines of the team-financing statement.

The statement is an aggregate over the whole region, computed as the system; it names no patient.
Aggregates are for the team coach and the region only, and careflow has no region principal, so:

* a **care coach** (discipline ``care-coach``) sees the teams their PractitionerRole belongs to
  (``Principal.organizations``);
* **the region** is a care coach whose PractitionerRole belongs to the region's own Organization
  (the one the neighbourhood teams are ``partOf``), or a system client of the region (a token of a
  listed system client; the command line runs as the system too, for the operator of the database);
* everyone else (a GP, a nurse, a patient, an auditor) is refused: they have the patient pages.
"""

from __future__ import annotations

from collections.abc import Iterable

from careflow.access.principal import Principal

COACH = "care-coach"


class NotForYou(Exception):
    """The caller may not see financing aggregates."""


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
    raise NotForYou("the team financing is for the team coach and the region")
