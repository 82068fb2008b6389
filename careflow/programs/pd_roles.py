"""Programme roles in a PlanDefinition: one registry extension per role, participants that point at it.

FHIR readers see each participant's ``role`` as a CodeableConcept with the role's SNOMED CT /
CD-HCPARTY codes and English title (Dutch in a translation). What FHIR cannot hold is the
programme's own role id, which activities and triggers use, and the roles no action happens to
cite: the ``care-role`` extension on the PlanDefinition lists every role in order, and a
``care-role-ref`` extension on each participant names the role it stands for.
"""

from __future__ import annotations

from typing import Any

from careflow.naming import EXT_CARE_ROLE, EXT_CARE_ROLE_REF
from careflow.programs.pd_datatypes import Json, Node, coding, read_coding, read_text, translations


def role_concept(role: Any) -> Json:
    return {
        "coding": [coding(c) for c in role.codes],
        "text": role.title.en,
        "_text": {"extension": translations(role.title)},
    }


def role_registry(roles: dict[str, Any]) -> list[Json]:
    return [
        {"url": EXT_CARE_ROLE, "extension": [{"url": "id", "valueId": rid}, {"url": "role", "valueCodeableConcept": role_concept(r)}]}
        for rid, r in roles.items()
    ]


def read_role_registry(pd: Node) -> dict[str, Json]:
    roles: dict[str, Json] = {}
    for ext in pd.extensions(EXT_CARE_ROLE):
        rid_ext = ext.extension("id")
        concept_ext = ext.extension("role")
        if rid_ext is None or concept_ext is None:
            raise ext.fail("a care-role extension needs an id and a role", "extension")
        rid = rid_ext.req_string("valueId")
        if rid in roles:
            raise rid_ext.fail(f"role {rid!r} is listed twice", "valueId")
        cc = concept_ext.req_child("valueCodeableConcept")
        roles[rid] = {
            "title": read_text(cc, "text", required=True),
            "codes": [read_coding(c) for c in cc.children("coding")],
        }
    if not roles:
        raise pd.fail(f"lists no roles (extension {EXT_CARE_ROLE})", "extension")
    return roles


def participant(role_id: str, roles: dict[str, Any]) -> Json:
    """A practitioner participant for ``role_id``; the role's codes when the programme declares it."""
    out: Json = {"extension": [{"url": EXT_CARE_ROLE_REF, "valueId": role_id}], "type": "practitioner"}
    if role_id in roles:
        out["role"] = role_concept(roles[role_id])
    return out


def read_participant_role(action: Node, roles: dict[str, Json]) -> str:
    """The role id of an action's single participant: its care-role-ref, else the role with the same codes."""
    parts = action.children("participant")
    if len(parts) != 1:
        raise action.fail(f"needs exactly one participant (the role that does it), found {len(parts)}", "participant")
    p = parts[0]
    ref = p.extension(EXT_CARE_ROLE_REF)
    if ref is not None:
        return ref.req_string("valueId")
    role = p.child("role")
    codes = [read_coding(c) for c in role.children("coding")] if role else []
    matches = [rid for rid, r in roles.items() if codes and r["codes"] == codes]
    if len(matches) != 1:
        raise p.fail(
            f"names no role: add a {EXT_CARE_ROLE_REF} extension or role codes matching exactly one declared role",
            "role",
        )
    return matches[0]
