"""Tokens of the local issuer for people and programs on this machine: ``careflow token`` and the
logins ``careflow demo`` prints. Who a token is for comes from the store (the demo region's
PractitionerRoles and Patients), read as the system.
"""

from __future__ import annotations

from typing import Any

from careflow.auth.identity import AUDITOR_ROLE, reference_of
from careflow.auth.local import DEFAULT_AUDIENCE, LocalIssuer
from careflow.auth.scopes import parse_scopes
from careflow.errors import CareflowError, Gone, NotFound
from careflow.fhir.search_query import parse_search
from careflow.naming import CARE_ROLE_SYSTEM
from careflow.region.practitioners import ROLES
from careflow.store.port import Repository

DEFAULT_SCOPES = {
    "practitioner": "openid fhirUser user/*.cruds",
    "patient": "openid fhirUser patient/*.cruds",
    "system": "system/*.cruds",
    "auditor": "openid fhirUser user/*.rs",
}


class TokenTargetError(CareflowError):
    """``--as`` names nobody this store knows."""


def role_of_discipline(repository: Repository, discipline: str) -> str | None:
    """The first active PractitionerRole (by id) of a careflow discipline, e.g. ``gp``."""
    query = parse_search("PractitionerRole", [("role", f"{CARE_ROLE_SYSTEM}|{discipline}"), ("active", "true"),
                                              ("_sort", "_id"), ("_count", "1")], strict=True)
    found = repository.search(query).matches
    return f"PractitionerRole/{found[0].id}" if found else None


def _exists(repository: Repository, rtype: str, rid: str) -> bool:
    try:
        return repository.read(rtype, rid).resource is not None
    except (NotFound, Gone):
        return False


def claims_for(repository: Repository | None, target: str, scopes: str | None = None) -> dict[str, Any]:
    """The claims of a token for ``target``: a careflow discipline (``gp``), ``PractitionerRole/ID``,
    ``Practitioner/ID``, ``Patient/ID``, ``system`` or ``auditor``."""
    if target == "system":
        kind, claims = "system", {"sub": "careflow-cli"}
    elif target == "auditor":
        kind, claims = "auditor", {"sub": "auditor", "roles": [AUDITOR_ROLE]}
    else:
        ref = reference_of(target, ("PractitionerRole", "Practitioner", "Patient"))
        if ref is None and "/" not in target:
            if target not in ROLES:
                raise TokenTargetError(f"--as {target!r}: not a discipline ({', '.join(ROLES)}), "
                                       "PractitionerRole/ID, Patient/ID, system or auditor")
            if repository is None:
                raise TokenTargetError(f"--as {target}: needs the database to find a {target}")
            found = role_of_discipline(repository, target)
            if found is None:
                raise TokenTargetError(f"--as {target}: the database has no active PractitionerRole of that discipline "
                                       "(load the demo region first: careflow demo --no-serve)")
            ref = tuple(found.split("/"))  # type: ignore[assignment]
        if ref is None:
            raise TokenTargetError(f"--as {target!r}: use PractitionerRole/ID, Practitioner/ID or Patient/ID")
        rtype, rid = ref
        if repository is not None and not _exists(repository, rtype, rid):
            raise TokenTargetError(f"--as {target}: {rtype}/{rid} is not in the database")
        kind = "patient" if rtype == "Patient" else "practitioner"
        claims = {"sub": f"{rtype}/{rid}", "fhirUser": f"{rtype}/{rid}"}
        if rtype == "Patient":
            claims["patient"] = rid
    text = scopes if scopes is not None else DEFAULT_SCOPES[kind]
    if not parse_scopes(text):
        raise TokenTargetError(f"--scope {text!r} grants no resource access (e.g. user/Task.rs, system/*.cruds)")
    claims["scope"] = text
    return claims


def demo_logins(repository: Repository, base: str, *, issuer: LocalIssuer | None = None, minutes: float = 12 * 60,
                audience: str = DEFAULT_AUDIENCE) -> list[str]:
    """One line per discipline present (plus a patient and the system): a ready URL and token."""
    issuer = issuer or LocalIssuer()
    lines: list[str] = []
    for discipline in ROLES:
        role = role_of_discipline(repository, discipline)
        if role is None:
            continue
        token = issuer.mint(claims_for(repository, role), minutes=minutes, audience=audience)
        lines.append(f"  {discipline:<18} {base}/Task?owner={role}&status=requested  token: {token}")
    patients = repository.search(parse_search("Patient", [("_sort", "_id"), ("_count", "1")], strict=True)).matches
    if patients:
        pid = patients[0].id
        token = issuer.mint(claims_for(repository, f"Patient/{pid}"), minutes=minutes, audience=audience)
        lines.append(f"  {'patient':<18} {base}/Patient/{pid}/$everything  token: {token}")
    token = issuer.mint(claims_for(repository, "system"), minutes=minutes, audience=audience)
    lines.append(f"  {'system':<18} {base}/CarePlan?_count=5  token: {token}")
    return ["careflow: logins (send 'Authorization: Bearer <token>'; valid "
            f"{minutes / 60:.0f} h; more with 'careflow token --as ROLE'):", *lines]


def demo_login_text(url: str, host: str, port: int) -> str:
    """The logins ``careflow demo`` prints under its ready line, for the server it is about to start."""
    from careflow.store.database import open_repository

    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    repository = open_repository(url)
    try:
        pages = f"careflow: pages at http://{shown}:{port}/app/ (sign in there per role: GP, nurse, care coach...)"
        return "\n".join([pages, *demo_logins(repository, f"http://{shown}:{port}/fhir")])
    finally:
        close = getattr(repository, "close", None)
        if close is not None:
            close()
