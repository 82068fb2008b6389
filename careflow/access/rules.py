"""What one principal may see and write, per resource type (pure).

Reads: :func:`view` says, for a principal and a resource type, which rows a query may return; the
SQL store and the in-memory twin each compile a :class:`View` into their own query (a WHERE term,
a predicate), so totals, pages, includes, chains and history are narrowed the same way everywhere.

Writes: :func:`write_problem` says why a write is refused, or None.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from careflow.access.compartment import DIRECTORY_TYPES, ORPHAN, patient_of
from careflow.access.policy import AccessPolicy, Filter
from careflow.access.principal import Principal
from careflow.fhir.search_values import escape

Interaction = Literal["c", "r", "u", "d", "s"]


@dataclass(frozen=True)
class View:
    """The rows of one type a principal may see.

    * ``everything``: no narrowing (the system principal without scopes).
    * ``nothing``: no row at all (type not granted, auditor on patient data...).
    * otherwise a row is visible when it matches ``scope`` (filters OR'ed; None = any) and
      - it is directory data (patient NULL) and ``directory`` holds, or
      - ``all_patients`` holds (a system client narrowed by scopes only), or
      - its patient is ``own_patient`` (a patient principal), or
      - its patient is granted to one of ``grantees`` in full, or granted at all and the row matches
        ``matrix`` (None = any, () = none), and no grant row excludes any of ``excluded_by``;
      and, when ``only_patient`` is set (a ``patient/`` launch), its patient is that one;
      with ``summaries`` (MeasureReport in a shared view) a row without a patient (a summary report,
      an aggregate naming no one) is visible too;
      and, with ``consented_only`` (a shared view), a patient's row only while the patient's sharing
      Consent holds (their ``careflow.access.grants.SHARING`` grant).
    """

    everything: bool = False
    nothing: bool = False
    directory: bool = False
    all_patients: bool = False
    own_patient: str | None = None
    only_patient: str | None = None
    grantees: tuple[str, ...] = ()
    excluded_by: tuple[str, ...] = ()
    scope: tuple[Filter, ...] | None = None
    matrix: tuple[Filter, ...] | None = None
    consented_only: bool = False
    summaries: bool = False


EVERYTHING = View(everything=True)
NOTHING = View(nothing=True)


def view(principal: Principal, rtype: str, policy: AccessPolicy, interaction: Interaction = "s") -> View:
    """How ``principal`` may see ``rtype`` rows for a read (``r``) or search (``s``)."""
    found = _view(principal, rtype, policy, interaction)
    if not principal.shared or found.nothing:
        return found
    if found.everything:
        found = View(directory=True, all_patients=True)
    return replace(found, consented_only=True, summaries=rtype == "MeasureReport")


def _view(principal: Principal, rtype: str, policy: AccessPolicy, interaction: Interaction) -> View:
    scope = principal.scope_filters(rtype, interaction)
    if scope == []:
        return NOTHING
    scope_t = None if scope is None else tuple(scope)
    if rtype == "Subscription" and principal.kind != "system":
        # a Subscription names the patients and the endpoint someone watches: its owner's alone
        mine = ("owner", escape(principal.id))
        return View(directory=True, scope=tuple((*f, mine) for f in scope_t) if scope_t is not None else ((mine,),))
    directory = rtype in DIRECTORY_TYPES
    if principal.kind == "system":
        return EVERYTHING if scope_t is None else View(directory=True, all_patients=True, scope=scope_t)
    if principal.kind == "auditor":
        # the audit trail is served apart from the resource store; an auditor sees no patient data
        return View(directory=True, scope=scope_t) if directory else NOTHING
    if principal.kind == "patient":
        if not principal.patient:
            return NOTHING
        return View(directory=directory, own_patient=None if directory else principal.patient, scope=scope_t)
    if principal.kind == "practitioner":
        if directory:
            return View(directory=True, scope=scope_t)
        if not principal.acts_as:
            return NOTHING
        return View(
            grantees=principal.acts_as,
            excluded_by=(*principal.acts_as, *principal.organizations),
            scope=scope_t,
            matrix=policy.matrix_filters(principal.discipline, rtype),
            only_patient=launch_patient(principal),
        )
    return NOTHING


def launch_patient(principal: Principal) -> str | None:
    """The single patient a practitioner token was launched for (``patient/`` scopes), if any."""
    if principal.kind == "practitioner" and principal.patient and principal.scopes is not None:
        if any(s.context == "patient" for s in principal.scopes):
            return principal.patient
    return None


# ------------------------------------------------------------------------------------------- writes

# Who coordinates the plan writes these; others read them.
_PLAN_TYPES = frozenset({"CarePlan", "CareTeam", "Goal", "Consent", "Patient", "RelatedPerson"})
# What a patient may record about themselves.
_PATIENT_WRITES = frozenset({"Observation", "QuestionnaireResponse", "Communication"})
_AUTHOR_PATHS = ("performer", "recorder", "asserter", "author", "requester", "informationSource", "sender")


def _refs(resource: dict[str, Any] | None, paths: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for path in paths:
        value = (resource or {}).get(path)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("reference"), str):
                out.add(item["reference"].split("/_history")[0].removeprefix("/"))
                tail = "/".join(item["reference"].split("/")[-2:])
                out.add(tail)
    return out


def _subscription_owner(resource: dict[str, Any] | None) -> str | None:
    from careflow.fhir.backport import owner_of

    return owner_of(resource)


def _task_progress_only(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when a Task update changes only what its owner may change (status, output, notes...)."""
    owner_fields = {"status", "statusReason", "businessStatus", "output", "note", "executionPeriod", "meta",
                    "lastModified", "text", "owner"}
    keys = set(old) | set(new)
    return all(old.get(k) == new.get(k) for k in keys - owner_fields)


def write_problem(
    principal: Principal, action: str, rtype: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
    policy: AccessPolicy,
) -> str | None:
    """Why ``principal`` may not make this write (``action`` create | update | delete), or None.

    Visibility of the patient involved is checked separately by the store (a write about a patient
    the caller may not see is refused as if the resource did not exist)."""
    letter = {"create": "c", "update": "u", "delete": "d"}[action]
    if not principal.may(rtype, letter):
        return f"the token's scopes do not allow {action} on {rtype}"
    if principal.kind == "system":
        return None
    if principal.kind == "auditor":
        return "an auditor reads the audit trail and writes nothing"
    if rtype == "Subscription":
        # anyone signed in may subscribe (delivery reads each event as them); only its owner changes it
        if action == "create" or _subscription_owner(old) == principal.id:
            return None
        return "a Subscription is changed only by whoever made it"
    if principal.kind == "patient":
        if rtype not in _PATIENT_WRITES:
            return f"a patient may record {', '.join(sorted(_PATIENT_WRITES))} about themselves, not {rtype}"
        for body in (old, new):
            if body is not None and patient_of(body) != principal.patient:
                return "a patient writes only about themselves"
        return None
    coordinator = policy.is_coordinator(principal.discipline)
    mine = set(principal.acts_as)
    if rtype in DIRECTORY_TYPES:
        return None if principal.discipline == "gp" and rtype in ("Organization", "Location") else (
            f"{rtype} is directory data kept by the region"
        )
    if rtype == "Task":
        if action == "create":
            proposal = (new or {}).get("intent") == "proposal"
            return None if coordinator or proposal else "only the GP and the care coach create Tasks (others may propose)"
        if action == "delete":
            return None if coordinator else "only the GP and the care coach remove Tasks"
        assert old is not None and new is not None
        if coordinator:
            return None
        old_owner = _refs(old, ("owner",))
        new_owner = _refs(new, ("owner",))
        if new.get("status") == "cancelled" and old.get("status") != "cancelled":
            return "only the GP and the care coach cancel Tasks"
        if old_owner & mine or (not old_owner and new_owner & mine):
            # the owner progresses it; a member claims an unassigned Task for themselves
            if new_owner and not new_owner & mine and old_owner != new_owner:
                return "only the GP and the care coach assign Tasks to someone else"
            return None if _task_progress_only(old, new) else "the owner progresses a Task; its content is the plan's"
        return "only the Task's owner progresses it"
    if rtype in _PLAN_TYPES:
        if coordinator:
            return None
        return f"only {', '.join(policy.model.coordinators)} write {rtype}"
    # clinical output: anyone in the relationship records their own; nobody edits another's output
    if action == "create":
        return None
    author = _refs(old, _AUTHOR_PATHS)
    if author and not author & mine:
        return f"this {rtype} is another care giver's record"
    return None


__all__ = ["View", "EVERYTHING", "NOTHING", "view", "write_problem", "launch_patient", "ORPHAN"]
