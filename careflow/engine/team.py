"""Who in the neighbourhood team takes which role for a patient.

The patient's GP is their own (``Patient.generalPractitioner``); every other role is drawn from the
PractitionerRoles of the patient's neighbourhood Organization, each coded with careflow's role code
system. The pick is deterministic (a hash of patient and role over the members sorted by id), so
re-running enrolment picks the same person and patients spread evenly over a team's members.
The Organization is the patient's ``managingOrganization``, else the organization of the GP's
PractitionerRole.
"""

from __future__ import annotations

import hashlib
from typing import Any

from careflow.engine.reading import ref_id, search_all
from careflow.naming import CARE_ROLE_SYSTEM
from careflow.store.port import Repository


def stable_hash(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big")


def role_codes(role: dict[str, Any]) -> list[str]:
    return [
        c["code"] for concept in role.get("code") or () for c in concept.get("coding") or ()
        if c.get("system") == CARE_ROLE_SYSTEM and isinstance(c.get("code"), str)
    ]


class TeamDirectory:
    """Reads PractitionerRoles once per Organization / Practitioner and caches them for a run."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._by_org: dict[str, dict[str, list[str]]] = {}
        self._roles: dict[str, dict[str, Any] | None] = {}
        self._of_practitioner: dict[str, list[dict[str, Any]]] = {}

    def _role(self, role_id: str) -> dict[str, Any] | None:
        if role_id not in self._roles:
            found = search_all(self._repo, "PractitionerRole", [("_id", role_id)])
            self._roles[role_id] = found[0].resource if found else None
        return self._roles[role_id]

    def _practitioner_roles(self, practitioner_id: str) -> list[dict[str, Any]]:
        if practitioner_id not in self._of_practitioner:
            found = search_all(self._repo, "PractitionerRole", [("practitioner", practitioner_id)])
            self._of_practitioner[practitioner_id] = [s.resource for s in found if s.resource]
        return self._of_practitioner[practitioner_id]

    def members(self, organization_id: str) -> dict[str, list[str]]:
        """role code -> sorted ``PractitionerRole/<id>`` references of the Organization's active members."""
        if organization_id not in self._by_org:
            out: dict[str, list[str]] = {}
            for s in search_all(self._repo, "PractitionerRole", [("organization", organization_id)]):
                r = s.resource or {}
                if r.get("active") is False:
                    continue
                for code in role_codes(r):
                    out.setdefault(code, []).append(f"PractitionerRole/{s.id}")
            self._by_org[organization_id] = {k: sorted(v) for k, v in out.items()}
        return self._by_org[organization_id]

    def _gp_roles(self, patient: dict[str, Any]) -> list[dict[str, Any]]:
        roles: list[dict[str, Any]] = []
        for ref in patient.get("generalPractitioner") or ():
            rid = ref_id(ref, "PractitionerRole")
            if rid and (r := self._role(rid)):
                roles.append(r)
            pid = ref_id(ref, "Practitioner")
            if pid:
                roles += self._practitioner_roles(pid)
        return roles

    def organization_of(self, patient: dict[str, Any]) -> str | None:
        org = ref_id(patient.get("managingOrganization"), "Organization")
        if org:
            return org
        for role in self._gp_roles(patient):
            org = ref_id(role.get("organization"), "Organization")
            if org:
                return org
        return None

    def team_for(self, patient: dict[str, Any]) -> tuple[dict[str, str], str | None]:
        """(role id -> ``PractitionerRole/<id>``, ``Organization/<id>`` or None) for one patient."""
        org = self.organization_of(patient)
        team: dict[str, str] = {}
        if org:
            for code, refs in self.members(org).items():
                team[code] = refs[stable_hash(str(patient.get("id")), code) % len(refs)]
        for role in self._gp_roles(patient):
            if "gp" in role_codes(role) or not role_codes(role):
                team["gp"] = f"PractitionerRole/{role['id']}"
                break
        return team, (f"Organization/{org}" if org else None)
