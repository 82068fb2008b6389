"""The caller of a unit of work: every read and write in careflow is made on behalf of a principal.

The store takes the principal when a unit of work is opened and narrows every query with it (search,
totals, includes, chains, history, reads), so an adapter can never forget a filter.  Principals are
plain frozen values: the API builds them from a verified token, the engine uses :data:`SYSTEM`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["practitioner", "patient", "system", "auditor"]
Context = Literal["patient", "user", "system"]

# SMART v2 interaction letters, in their canonical order
INTERACTIONS = "cruds"


@dataclass(frozen=True, slots=True)
class Scope:
    """One SMART App Launch v2 scope, e.g. ``patient/Observation.rs?category=vital-signs``.

    ``type`` is a resource type or ``*``; ``interactions`` a subset of ``cruds``; ``filter`` the
    granular search parameters (name, value) that a granted resource must match (empty: all).
    """

    context: Context
    type: str
    interactions: frozenset[str]
    filter: tuple[tuple[str, str], ...] = ()

    def allows(self, rtype: str, interaction: str) -> bool:
        return self.type in ("*", rtype) and interaction in self.interactions

    def text(self) -> str:
        letters = "".join(c for c in INTERACTIONS if c in self.interactions)
        tail = "?" + "&".join(f"{k}={v}" for k, v in self.filter) if self.filter else ""
        return f"{self.context}/{self.type}.{letters}{tail}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling.

    * ``id``: a stable name for audit (``PractitionerRole/abc``, ``Patient/xyz``, ``system/engine``).
    * ``acts_as``: the references a therapeutic relationship may name for this caller (the
      PractitionerRole and its Practitioner); empty for patients, the system and auditors.
    * ``discipline``: the careflow role id of a practitioner (``gp``, ``pharmacist``, ``care-coach``...),
      which the access matrix keys on.
    * ``patient``: the patient a patient principal is (or a ``patient/`` launch context).
    * ``scopes``: the SMART scopes granted; ``None`` means not limited by scopes (the engine).
    * ``client_id`` / ``on_behalf_of``: for the audit trail.
    * ``shared``: a shared view (the dashboard's aggregates): the store counts only patients who
      consented to sharing, and lets the caller read the region's summary MeasureReports
      (``careflow.population.shared_views.aggregate_reader`` makes such principals).
    """

    kind: Kind
    id: str
    acts_as: tuple[str, ...] = ()
    discipline: str | None = None
    patient: str | None = None
    scopes: tuple[Scope, ...] | None = None
    client_id: str | None = None
    on_behalf_of: str | None = None
    organizations: tuple[str, ...] = field(default=())
    shared: bool = False

    @property
    def is_system(self) -> bool:
        return self.kind == "system"

    @property
    def unlimited(self) -> bool:
        """A system principal nothing narrows: the engine itself, or a backend service granted
        ``system/*.cruds`` unfiltered. The store skips the per-row access and write checks for it,
        which would only ever say yes (a bulk load paid three extra reads per resource for them)."""
        if not self.is_system or self.shared:
            return False
        if self.scopes is None:
            return True
        return any(s.context == "system" and s.type == "*" and s.interactions >= _ALL and not s.filter
                   for s in self.scopes)

    def may(self, rtype: str, interaction: str) -> bool:
        """Does any granted scope allow ``interaction`` (one of ``cruds``) on ``rtype``?"""
        if self.scopes is None:
            return True
        return any(s.allows(rtype, interaction) for s in self.scopes)

    def scope_filters(self, rtype: str, interaction: str) -> list[tuple[tuple[str, str], ...]] | None:
        """The granular filters that bound ``interaction`` on ``rtype``: ``None`` when some scope grants
        it unfiltered, else the filters to OR together (an empty list: nothing granted)."""
        if self.scopes is None:
            return None
        out: list[tuple[tuple[str, str], ...]] = []
        for s in self.scopes:
            if s.allows(rtype, interaction):
                if not s.filter:
                    return None
                out.append(s.filter)
        return out


_ALL = frozenset(INTERACTIONS)

# The engine, migrations and command-line maintenance: sees and writes everything, audited as such.
SYSTEM = Principal(kind="system", id="system/careflow-engine")
