"""The patient's informal carer (*mantelzorger*) as a member of the one CareTeam.

A RelatedPerson of the patient is a mantelzorger when its ``relationship`` carries CD-HCPARTY
``perscaregiver`` (HL7 Belgium's "mantelzorger") or SNOMED CT 407542009 (informal carer). Such a
person joins the patient's CareTeam as a participant with that role (both codings, as the team's
disciplines carry them), from the day careflow learns of it; a RelatedPerson made inactive, or no
longer a carer, has its participation ended that day rather than erased, so the team's history
shows who helped when.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable, Mapping

from careflow.programs.codes import HCPARTY, SNOMED

CARER_CODES = frozenset({(HCPARTY, "perscaregiver"), (SNOMED, "407542009")})
CARER_ROLE = {
    "coding": [
        {"system": SNOMED, "code": "407542009", "display": "Informal carer"},
        {"system": HCPARTY, "code": "perscaregiver", "display": "mantelzorger"},
    ],
    "text": "Informal carer (mantelzorger)",
}


def is_carer(related: Mapping[str, Any]) -> bool:
    """A current RelatedPerson whose relationship says informal carer."""
    if related.get("active") is False:
        return False
    for concept in related.get("relationship") or ():
        for c in (concept or {}).get("coding") or ():
            if (c.get("system"), c.get("code")) in CARER_CODES:
                return True
    return False


def _is_carer_participant(p: Mapping[str, Any]) -> bool:
    return any((c.get("system"), c.get("code")) in CARER_CODES
               for r in p.get("role") or () for c in (r or {}).get("coding") or ())


def with_carers(careteam: dict[str, Any], related: Iterable[Mapping[str, Any]], today: date) -> dict[str, Any] | None:
    """The CareTeam with each carer among ``related`` (the patient's RelatedPersons) as a participant,
    and ended participations for those no longer carers; None when nothing changes."""
    participants = [dict(p) for p in careteam.get("participant") or ()]
    changed = False
    for person in related:
        ref = f"RelatedPerson/{person.get('id')}"
        current = [p for p in participants if (p.get("member") or {}).get("reference") == ref
                   and _is_carer_participant(p) and not (p.get("period") or {}).get("end")]
        if is_carer(person) and not current:
            participants.append({"role": [CARER_ROLE], "member": {"reference": ref}, "period": {"start": today.isoformat()}})
            changed = True
        elif not is_carer(person):
            for p in current:
                p["period"] = {**(p.get("period") or {}), "end": today.isoformat()}
                changed = True
    if not changed:
        return None
    out = dict(careteam)
    out["participant"] = participants
    return out
