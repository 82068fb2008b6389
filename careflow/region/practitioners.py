"""The neighbourhood teams (buurtteams): which disciplines, how many per 12,500 people, and their
FHIR Practitioner / PractitionerRole resources.

A buurtteam is not a fixed team per patient but the network of local care givers a patient's care
team is drawn from (seed 000). So each neighbourhood gets one Organization, and every care giver one
Practitioner plus one PractitionerRole in it; a patient's concrete team is picked from those roles.
PractitionerRole.code carries three CodeableConcepts, one per system, as the HL7 Belgium
BePractitionerRole slices ``code`` by ``coding.system``: SNOMED CT occupation, CD-HCPARTY and
careflow's own role id (the key programmes assign work to).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from careflow.naming import CARE_ROLE_SYSTEM, NIHDI
from careflow.programs.codes import HCPARTY, SNOMED
from careflow.region.identifiers import nihdi
from careflow.region.names import draw_name
from careflow.region.synthetic import synthetic_meta


@dataclass(frozen=True, slots=True)
class Discipline:
    """One careflow role and how a Belgian system codes it."""

    role: str  # careflow role id
    label: str  # Dutch label shown in the demo
    snomed: str
    snomed_display: str
    hcparty: str
    hcparty_display: str  # the CD-HCPARTY English designation, spelt as the code system spells it
    per_12500: int  # typical number in a neighbourhood of 12,500 inhabitants
    nihdi_prefix: int  # first digit of the synthetic NIHDI number
    nihdi_qualification: int


DISCIPLINES: tuple[Discipline, ...] = (
    Discipline("gp", "huisarts", "62247001", "Family medicine specialist", "persgeneralphysician", "general practitioner", 9, 1, 4),
    Discipline("pharmacist", "huisapotheker", "46255001", "Pharmacist", "perspharmacist", "pharmacist", 3, 2, 0),
    Discipline("home-nurse", "thuisverpleegkundige", "158997000", "District nurse", "persnurse", "nurse", 6, 4, 0),
    Discipline("physiotherapist", "kinesitherapeut", "36682004", "Physiotherapist", "persphysiotherapist", "physiotherapist", 3, 5, 0),
    Discipline("dietitian", "diëtist", "159033005", "Dietitian", "persdietician", "dietician", 1, 6, 0),
    Discipline("care-coach", "zorgcoach", "432100008", "Health coach", "persnurse", "nurse", 1, 4, 0),
    Discipline("case-manager", "casemanager", "445451001", "Nurse case manager", "persnurse", "nurse", 1, 4, 0),
    Discipline("hf-educator", "hartfalen-educator", "409974004", "Health educator", "persnurse", "nurse", 1, 4, 0),
    Discipline("diabetes-educator", "diabeteseducator", "224543004", "Diabetic nurse", "persdiabeticeducator", "diabetis educator", 1, 4, 0),
    Discipline("psychologist", "psycholoog", "59944000", "Psychologist", "perspsychologist", "psychologist", 1, 7, 0),
    Discipline("podiatrist", "podoloog", "159034004", "Podiatrist", "perspodologist", "podologist", 1, 6, 0),
    # the chronic-kidney-disease programme's nephrologist: a hospital specialist the neighbourhood
    # works with (one per neighbourhood here, so every kidney plan has an owner); NIHDI qualification
    # 580 is internal medicine, synthetic like every number here
    Discipline("nephrologist", "nefroloog", "11911009", "Nephrologist", "persnephrologist", "nephrologist", 1, 1, 580),
)
ROLES: tuple[str, ...] = tuple(d.role for d in DISCIPLINES)
FAMILY_PRACTICE = {"system": SNOMED, "code": "419772000", "display": "Family practice"}


def team_size(discipline: Discipline, population: int) -> int:
    """How many of a discipline a neighbourhood of ``population`` has; never fewer than one."""
    return max(1, round(discipline.per_12500 * population / 12_500))


def role_codes(discipline: Discipline) -> list[dict[str, Any]]:
    return [
        {"coding": [{"system": SNOMED, "code": discipline.snomed, "display": discipline.snomed_display}]},
        {"coding": [{"system": HCPARTY, "code": discipline.hcparty, "display": discipline.hcparty_display}]},
        {"coding": [{"system": CARE_ROLE_SYSTEM, "code": discipline.role, "display": discipline.label}], "text": discipline.label},
    ]


@dataclass(frozen=True, slots=True)
class Member:
    """One care giver of a neighbourhood team: their Practitioner and PractitionerRole."""

    practitioner: dict[str, Any]
    role: dict[str, Any]
    discipline: Discipline


class NihdiNumbers:
    """Hands out unique synthetic NIHDI numbers: random 5-digit sequences, never one twice."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[tuple[int, int]] = set()

    def next(self, discipline: Discipline) -> str:
        while True:
            sequence = self._rng.randrange(10_000, 100_000)
            if (discipline.nihdi_prefix, sequence) not in self._used:
                self._used.add((discipline.nihdi_prefix, sequence))
                return nihdi(discipline.nihdi_prefix, sequence, discipline.nihdi_qualification)


def make_member(
    *,
    rng: random.Random,
    numbers: NihdiNumbers,
    discipline: Discipline,
    key: str,
    organization_id: str,
    location_ids: list[str],
    street: str,
    postal_code: str,
    reference_year: int,
) -> Member:
    """A Practitioner and their PractitionerRole in a neighbourhood team; ``key`` makes the ids."""
    gender = "female" if rng.random() < (0.55 if discipline.role == "gp" else 0.8) else "male"
    given, family = draw_name(rng, gender, reference_year - rng.randint(28, 62))
    name: dict[str, Any] = {"use": "official", "family": family, "given": [given]}
    if discipline.role == "gp":
        name["prefix"] = ["Dr."]
    practitioner = {
        "resourceType": "Practitioner",
        "id": f"prac-{key}",
        "meta": synthetic_meta(),
        "identifier": [{"system": NIHDI, "value": numbers.next(discipline)}],
        "active": True,
        "name": [name],
        "telecom": [{"system": "phone", "value": f"+3216{rng.randrange(200_000, 999_999)}", "use": "work"}],
        "gender": gender,
        "address": [
            {
                "use": "work",
                "line": [f"{street} {rng.randint(1, 180)}"],
                "city": "Leuven",
                "postalCode": postal_code,
                "country": "BE",
            }
        ],
        "communication": [{"coding": [{"system": "urn:ietf:bcp:47", "code": "nl-BE"}]}],
    }
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": f"role-{key}",
        "meta": synthetic_meta(),
        "active": True,
        "practitioner": {"reference": f"Practitioner/prac-{key}", "display": f"{given} {family}"},
        "organization": {"reference": f"Organization/{organization_id}"},
        "code": role_codes(discipline),
        "location": [{"reference": f"Location/{location_id}"} for location_id in location_ids],
    }
    if discipline.role == "gp":
        role["specialty"] = [{"coding": [FAMILY_PRACTICE]}]
    return Member(practitioner, role, discipline)
