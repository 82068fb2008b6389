"""From verified token claims to the :class:`Principal` a unit of work is opened for (pure).

* ``fhirUser`` ``PractitionerRole/x`` (relative, or an absolute URL ending so): a practitioner; its
  Practitioner, Organization and careflow discipline (the care-role code on PractitionerRole.code)
  come from the store through a :class:`Directory`, cached briefly, so a deactivated role stops
  working within ``ttl`` seconds. ``Practitioner/y`` works when y has exactly one active role.
* ``fhirUser`` ``Patient/p``, or a ``patient`` claim with only ``patient/`` scopes and no
  ``fhirUser``: the patient p. A ``patient`` claim beside a practitioner is the launch context.
* The auditor role (in the ``roles`` claim) -> an auditor.
* No user, only ``system/`` scopes, from a client the issuer lists as a system client -> the system.
Anything else is refused (:class:`TokenError`). A principal keeps only the scopes of its own context
(``user``/``patient`` for people, ``system`` for the system), so a user token cannot borrow system
scopes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from careflow.access.principal import Principal, Scope
from careflow.auth.scopes import parse_scopes
from careflow.auth.tokens import TokenError, Verified
from careflow.naming import CARE_ROLE_SYSTEM

AUDITOR_ROLE = "careflow-auditor"


class Directory(Protocol):
    """Read access to the people directory, as the system (the caller is not known yet)."""

    def read(self, rtype: str, rid: str) -> dict[str, Any] | None: ...

    def roles_of(self, practitioner_id: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class RoleFacts:
    role: str  # PractitionerRole/x
    practitioner: str | None  # Practitioner/y
    organizations: tuple[str, ...]
    discipline: str | None


def reference_of(value: Any, types: tuple[str, ...]) -> tuple[str, str] | None:
    """``Type/id`` from a reference or URL whose last two segments are one of ``types`` and an id."""
    if not isinstance(value, str) or not value:
        return None
    parts = value.split("?")[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] in types and parts[-1]:
        return parts[-2], parts[-1]
    return None


def _ref(value: Any) -> str | None:
    if isinstance(value, dict):
        found = reference_of(value.get("reference"), ("Practitioner", "Organization"))
        return f"{found[0]}/{found[1]}" if found else None
    return None


def role_facts(role: dict[str, Any]) -> RoleFacts:
    """What a PractitionerRole says about who acts: practitioner, organisation, careflow discipline."""
    discipline = None
    for concept in role.get("code") or []:
        for coding in (concept or {}).get("coding") or []:
            if coding.get("system") == CARE_ROLE_SYSTEM and isinstance(coding.get("code"), str):
                discipline = discipline or coding["code"]
    org = _ref(role.get("organization"))
    return RoleFacts(f"PractitionerRole/{role.get('id')}", _ref(role.get("practitioner")),
                     (org,) if org else (), discipline)


def _active(resource: dict[str, Any] | None) -> bool:
    return resource is not None and resource.get("active", True) is not False


class PrincipalBuilder:
    """Builds principals from verified tokens; directory look-ups cached ``ttl`` seconds."""

    def __init__(self, directory: Directory, *, ttl: float = 60.0, auditor_role: str = AUDITOR_ROLE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.ttl, self.auditor_role, self._clock = ttl, auditor_role, clock
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple[str, str], load: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = load()
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now + self.ttl, value)
        return value

    def _role(self, rid: str) -> RoleFacts | None:
        def load() -> RoleFacts | None:
            role = self.directory.read("PractitionerRole", rid)
            return role_facts(role) if role is not None and _active(role) else None
        return self._cached(("PractitionerRole", rid), load)  # type: ignore[no-any-return]

    def _practitioner_role(self, pid: str) -> RoleFacts | None | str:
        def load() -> RoleFacts | None | str:
            if not _active(self.directory.read("Practitioner", pid)):
                return None
            roles = [r for r in self.directory.roles_of(pid) if _active(r)]
            if len(roles) != 1:
                return "ambiguous" if roles else None
            return role_facts(roles[0])
        return self._cached(("Practitioner", pid), load)  # type: ignore[no-any-return]

    def _patient_exists(self, pid: str) -> bool:
        return bool(self._cached(("Patient", pid), lambda: _active(self.directory.read("Patient", pid))))

    def build(self, verified: Verified) -> Principal:
        claims = verified.claims
        scopes = parse_scopes(claims.get("scope", claims.get("scp")))
        client_id = claims.get("client_id") or claims.get("azp")
        client_id = client_id if isinstance(client_id, str) else None
        user = claims.get("fhirUser")
        roles = claims.get("roles")
        roles = roles if isinstance(roles, list) else []
        people_scopes = tuple(s for s in scopes if s.context in ("user", "patient"))
        launch = claims.get("patient") if isinstance(claims.get("patient"), str) else None

        if self.auditor_role in roles:
            target = reference_of(user, ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson"))
            sub = claims.get("sub")
            pid = f"{target[0]}/{target[1]}" if target else f"auditor/{sub if isinstance(sub, str) else client_id}"
            return Principal(kind="auditor", id=pid, scopes=people_scopes, client_id=client_id)

        if user is not None:
            target = reference_of(user, ("PractitionerRole", "Practitioner", "Patient"))
            if target is None:
                raise TokenError("the token's fhirUser is not a PractitionerRole, Practitioner or Patient")
            kind, rid = target
            if kind == "Patient":
                return self._patient(rid, people_scopes, client_id)
            facts = self._role(rid) if kind == "PractitionerRole" else self._practitioner_role(rid)
            if facts == "ambiguous":
                raise TokenError(f"Practitioner/{rid} has several roles: the token's fhirUser must name the "
                                 "PractitionerRole")
            if not isinstance(facts, RoleFacts):
                raise TokenError(f"the token's fhirUser {kind}/{rid} is not an active careflow user")
            acts_as = (facts.role, facts.practitioner) if facts.practitioner else (facts.role,)
            return Principal(kind="practitioner", id=facts.role, acts_as=acts_as, discipline=facts.discipline,
                             patient=launch, scopes=people_scopes, client_id=client_id,
                             organizations=facts.organizations)

        if launch and scopes and all(s.context == "patient" for s in scopes):
            return self._patient(launch, people_scopes, client_id)

        system_scopes = tuple(s for s in scopes if s.context == "system")
        if system_scopes and len(system_scopes) == len(scopes):
            if client_id is None or client_id not in verified.issuer.system_clients:
                raise TokenError("this client may not use system scopes")
            return Principal(kind="system", id=f"system/{client_id}", scopes=system_scopes, client_id=client_id)
        raise TokenError("the token names no careflow user (fhirUser) and is no system client's")

    def _patient(self, pid: str, scopes: tuple[Scope, ...], client_id: str | None) -> Principal:
        if not self._patient_exists(pid):
            raise TokenError(f"the token's patient Patient/{pid} is not known here")
        return Principal(kind="patient", id=f"Patient/{pid}", patient=pid, scopes=scopes, client_id=client_id)
