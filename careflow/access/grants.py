"""Therapeutic relationships and consent turned into access grants, per patient (pure).

The store keeps the result in its ``access_grant`` table and recomputes a patient's grants in the
same transaction as any write to that patient's Patient, CareTeam or Consent resources, so a
withdrawn consent or an exclusion takes effect on the very next request, worklists included.
Emergency (break-the-glass) grants are written directly and only expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Literal

from careflow.access.policy import AccessPolicy

Reason = Literal["gmd", "careteam", "emergency", "excluded", "sharing"]
# recomputed from the patient's resources; "emergency" rows are written directly and only expire
DERIVED: tuple[Reason, ...] = ("gmd", "careteam", "excluded", "sharing")
# The grantee of the one "sharing" row a patient has while their sharing Consent holds: no one is
# granted anything by it (no principal acts as it); shared views (aggregates) count only patients who
# have it, so the consent rule is the one ``consent_state`` below, not a second one in the dashboard.
SHARING = "consent:sharing"


@dataclass(frozen=True, order=True)
class Grant:
    """``grantee`` (``PractitionerRole/x``, ``Practitioner/y`` or ``Organization/z``) may see the
    patient (or, for reason ``excluded``, may never see them); ``full`` grants bypass the access
    matrix (the GMD holder, an emergency); ``expires`` is a naive UTC instant or None."""

    grantee: str
    reason: Reason
    full: bool
    expires: datetime | None = None


def _ref(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    text = value.get("reference")
    if not isinstance(text, str) or "/" not in text:
        return None
    parts = text.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return f"{parts[-2]}/{parts[-1]}" if len(parts) >= 2 else None


def _instant(text: Any, *, end: bool) -> datetime | None:
    """A FHIR date/dateTime as naive UTC; a date-only period end lasts to the end of that day."""
    if not isinstance(text, str) or not text:
        return None
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text)
            return day + timedelta(days=1) if end else day
        if len(text) in (4, 7):
            return None
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _codings(concepts: Any) -> Iterable[tuple[str, str]]:
    for concept in concepts if isinstance(concepts, list) else ():
        for coding in (concept or {}).get("coding") or ():
            yield str(coding.get("system") or ""), str(coding.get("code") or "")


@dataclass(frozen=True)
class ConsentState:
    """What a patient's Consents say: sharing permitted (until when) and who is excluded."""

    sharing: bool
    until: datetime | None
    excluded: frozenset[str]


def consent_state(consents: Iterable[dict[str, Any]], policy: AccessPolicy, now: datetime) -> ConsentState:
    """The latest active sharing Consent decides; deny provisions with actors exclude them.

    A withdrawn Consent (status inactive / rejected / entered-in-error) or one whose provision period
    has ended stops sharing.  Exclusions apply whatever the sharing decision."""
    categories = policy.consent_categories()
    sharing, until, excluded = False, None, set()
    latest: tuple[str, dict[str, Any]] | None = None
    for consent in consents:
        if consent.get("status") != "active":
            continue
        provision = consent.get("provision") or {}
        for sub in [provision, *(provision.get("provision") or [])]:
            if sub.get("type") == "deny":
                for actor in sub.get("actor") or ():
                    ref = _ref((actor or {}).get("reference"))
                    if ref:
                        excluded.add(ref)
        if not categories & set(_codings(consent.get("category"))):
            continue
        stamp = str(consent.get("dateTime") or "")
        if latest is None or stamp >= latest[0]:
            latest = (stamp, consent)
    if latest is not None:
        provision = latest[1].get("provision") or {}
        if provision.get("type", "permit") == "permit":
            period = provision.get("period") or {}
            start, end = _instant(period.get("start"), end=False), _instant(period.get("end"), end=True)
            naive_now = now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now
            if (start is None or start <= naive_now) and (end is None or end > naive_now):
                sharing, until = True, end
    return ConsentState(sharing, until, frozenset(excluded))


def derive_grants(
    patient: dict[str, Any] | None,
    careteams: Iterable[dict[str, Any]],
    consents: Iterable[dict[str, Any]],
    policy: AccessPolicy,
    now: datetime,
) -> list[Grant]:
    """Every derived grant of one patient (no emergency grants: those are written directly)."""
    if patient is None:
        return []
    state = consent_state(consents, policy, now)
    grants: dict[tuple[str, Reason], Grant] = {}
    for gp in patient.get("generalPractitioner") or ():
        ref = _ref(gp)
        if ref and ref not in state.excluded:
            grants[(ref, "gmd")] = Grant(ref, "gmd", True, None)
    if state.sharing or not policy.model.consent.required:
        statuses = set(policy.model.relationship.careteam_statuses)
        for team in careteams:
            if team.get("status", "active") not in statuses:
                continue
            for participant in team.get("participant") or ():
                ref = _ref((participant or {}).get("member"))
                if not ref or ref.split("/")[0] not in ("PractitionerRole", "Practitioner", "Organization"):
                    continue
                if ref in state.excluded:
                    continue
                end = _instant((participant.get("period") or {}).get("end"), end=True)
                candidates = [e for e in (end, state.until) if e is not None]
                expires = min(candidates) if candidates else None
                key: tuple[str, Reason] = (ref, "careteam")
                old = grants.get(key)
                if old is None or (old.expires is not None and (expires is None or expires > old.expires)):
                    grants[key] = Grant(ref, "careteam", False, expires)
    if state.sharing:
        grants[(SHARING, "sharing")] = Grant(SHARING, "sharing", False, state.until)
    # an exclusion (also of an organisation) overrides every other grant, emergencies included
    for ref in state.excluded:
        grants[(ref, "excluded")] = Grant(ref, "excluded", False, None)
    return sorted(grants.values())
