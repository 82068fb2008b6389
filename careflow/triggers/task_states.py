"""The FHIR R4 Task state machine careflow enforces on every Task update (pure: no store, no framework).

Why here and not only in the API: the store's one write path applies it to every principal, the
engine's SYSTEM writes included, so a sweep or a rule cannot leave a Task in a state a person could
not have reached either.

- A write that keeps the status is not a transition (a businessStatus such as ``overdue`` or
  ``escalated`` changes freely, and an overdue Task is still ``in-progress`` and so completable).
- ``draft -> requested`` is added to the issue's table (FHIR puts draft before requested).
- ``rejected`` has no way out either: a rejected Task is reassigned as a fresh Task (triggers.building).
- A final Task keeps its status for everyone (except a move to entered-in-error); its other fields (businessStatus, a note) change only
  for the system principal, so a person cannot rewrite a decision already taken.
"""

from __future__ import annotations

from typing import Mapping

STATUSES: tuple[str, ...] = (
    "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
    "in-progress", "on-hold", "failed", "completed", "entered-in-error",
)

_FROM_REQUEST = frozenset({"received", "accepted", "rejected", "cancelled"})

# status -> the statuses it may move to (entered-in-error, allowed from anywhere, is added below);
# an empty set marks a final status
_NEXT: dict[str, frozenset[str]] = {
    "draft": _FROM_REQUEST | {"requested"},
    "requested": _FROM_REQUEST,
    "received": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"ready", "in-progress", "cancelled"}),
    "ready": frozenset({"in-progress", "cancelled"}),
    "in-progress": frozenset({"on-hold", "completed", "failed", "cancelled"}),
    "on-hold": frozenset({"in-progress", "cancelled", "failed"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
    "entered-in-error": frozenset(),
}

FINAL: frozenset[str] = frozenset(s for s, nxt in _NEXT.items() if not nxt)

# entered-in-error is reachable from anywhere, final statuses included (a completed Task recorded
# against the wrong patient must still be withdrawable); it is the only way out of a final status
TRANSITIONS: Mapping[str, frozenset[str]] = {
    s: (nxt | {"entered-in-error"}) if s != "entered-in-error" else nxt for s, nxt in _NEXT.items()
}


def allowed_next(status: str) -> frozenset[str]:
    """The statuses a Task in ``status`` may move to (only entered-in-error out of a final status; empty for entered-in-error or an unknown status)."""
    return TRANSITIONS.get(status, frozenset())


def is_legal(old: str, new: str) -> bool:
    """May a Task go from ``old`` to ``new``? Keeping the status is always legal."""
    return old == new or new in allowed_next(old)


def transition_problem(old: str | None, new: str | None, *, other_fields_changed: bool, system: bool) -> str | None:
    """Why this Task update is refused, naming the allowed next states; None when it is legal.

    ``old`` None (no stored status: a create or a legacy row) is not judged here."""
    if old is None or old not in TRANSITIONS:
        return None
    if new == old:
        if old in FINAL and other_fields_changed and not system:
            return f"Task is {old}, a final status: it can no longer be changed"
        return None
    if new is not None and new in allowed_next(old):
        return None
    nxt = sorted(allowed_next(old))
    allowed = ", ".join(nxt) if nxt else f"none, {old} is final"
    if old in FINAL and nxt:
        allowed += f" ({old} is final)"
    return f"Task status cannot change from {old} to {new}; allowed next statuses: {allowed}"
