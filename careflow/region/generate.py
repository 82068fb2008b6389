"""Generate the Zorgzaam Leuven demo region as FHIR R4 resource dicts, deterministically.

The same ``seed`` (and arguments) always gives byte-identical resources: every draw comes from a
``random.Random`` seeded with a string derived from the seed (string seeds are hashed with SHA-512,
so they do not depend on PYTHONHASHSEED) and ids are readable counters (``pat-000123``), never
uuid4. Teams and map are small and held in memory; the inhabitants stream one PatientRecord at a
time, so a region of 100,000 (or a country) never has to fit in memory at once.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from careflow.errors import CareflowError
from careflow.naming import EXT_NEIGHBOURHOOD, POPULATION_GROUP, SSIN
from careflow.region.clinical import condition_resource, draw_onset, measurements_for, observation_resource
from careflow.region.consent import declines_sharing, sharing_consent
from careflow.region.geography import CITY, COUNTRY, NEIGHBOURHOODS, REGION_NAME, District, NeighbourhoodPlan
from careflow.region.identifiers import ssin
from careflow.region.names import draw_name
from careflow.region.population import GROUP_DISPLAY, draw_age, draw_conditions, draw_gender, population_group
from careflow.region.practitioners import DISCIPLINES, ROLES, Member, NihdiNumbers, make_member, team_size
from careflow.region.synthetic import synthetic_meta

# Fixed so that output does not change with the day it is generated on; a demo that wants "new
# diagnoses" relative to today passes ``reference_date=date.today()``.
DEFAULT_REFERENCE_DATE = date(2026, 11, 1)
MAX_INHABITANTS = 10_000_000
REGION_ORGANIZATION_ID = "org-zorgzaam-leuven"

_ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
_PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
_STREET_NAME = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-streetName"
_HOUSE_NUMBER = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-houseNumber"


class RegionError(CareflowError):
    """The region cannot be generated with these arguments (e.g. a negative number of inhabitants)."""


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """One inhabitant: the Patient, their chronic Conditions and baseline Observations."""

    patient: dict[str, Any]
    conditions: list[dict[str, Any]]
    observations: list[dict[str, Any]]
    group: str  # population-pyramid group A-D
    neighbourhood: str  # the neighbourhood's name, as in the Patient's neighbourhood extension
    district: str = ""  # the district (wijk) name, as in Patient.address.district
    consents: tuple[dict[str, Any], ...] = ()  # the sharing Consent of the chronically ill (most give it)

    @property
    def chronic(self) -> bool:
        return bool(self.conditions)

    def resources(self) -> Iterator[dict[str, Any]]:
        """Patient first, so references from Conditions and Observations resolve when loaded in order."""
        yield self.patient
        yield from self.consents
        yield from self.conditions
        yield from self.observations


@dataclass(frozen=True)
class Neighbourhood:
    """A buurt with its inhabitants count, its team Organization and the roles it can draw on."""

    slug: str
    name: str
    population: int
    districts: tuple[tuple[str, int], ...]  # (district name, inhabitants)
    organization_id: str
    location_id: str
    roles: dict[str, tuple[str, ...]]  # careflow role id -> "PractitionerRole/<id>" references
    home_nurses_by_district: dict[str, tuple[str, ...]]  # district name -> home-nurse role references


@dataclass(frozen=True)
class Region:
    """The generated region. Teams, map and organisations are lists; inhabitants stream from ``patients``."""

    name: str
    inhabitants: int
    seed: int
    reference_date: date
    chronic_only: bool
    neighbourhoods: tuple[Neighbourhood, ...]
    organizations: list[dict[str, Any]]
    locations: list[dict[str, Any]]
    practitioners: list[dict[str, Any]]
    practitioner_roles: list[dict[str, Any]]
    _plans: tuple[NeighbourhoodPlan, ...] = field(repr=False, default=NEIGHBOURHOODS)

    @property
    def patients(self) -> Iterator[PatientRecord]:
        """A fresh iterator over the inhabitants (only the chronically ill when ``chronic_only``)."""
        return self.patient_records()

    def __iter__(self) -> Iterator[PatientRecord]:
        return self.patient_records()

    def patient_records(self, chronic_only: bool | None = None) -> Iterator[PatientRecord]:
        """Every inhabitant in id order; each call starts over and yields the same records."""
        only_chronic = self.chronic_only if chronic_only is None else chronic_only
        rng = random.Random(f"careflow-region:{self.seed}:inhabitants")
        used_ssins: set[str] = set()
        number = 0
        for neighbourhood, plan in zip(self.neighbourhoods, self._plans):
            for (_district_name, population), district in zip(neighbourhood.districts, plan.districts):
                for _ in range(population):
                    number += 1
                    record = _inhabitant(rng, self, number, neighbourhood, district, used_ssins)
                    if record.conditions or not only_chronic:
                        yield record

    def neighbourhood(self, name: str) -> Neighbourhood:
        for neighbourhood in self.neighbourhoods:
            if name in (neighbourhood.name, neighbourhood.slug):
                return neighbourhood
        raise RegionError(f"no neighbourhood called {name!r} in {self.name}")

    def team_for(self, record: PatientRecord) -> dict[str, str]:
        """The patient's care-team members by careflow role: "PractitionerRole/<id>" per role.

        The GP is the Patient's own generalPractitioner; the home nurse comes from the nurses
        serving the patient's district; every other role is a stable pick (CRC-32 of patient id and
        role) among the neighbourhood team's members, so it is the same on every run and process.
        """
        neighbourhood = self.neighbourhood(record.neighbourhood)
        patient_id = record.patient["id"]
        team: dict[str, str] = {}
        for role in ROLES:
            if role == "gp" and record.patient.get("generalPractitioner"):
                team[role] = record.patient["generalPractitioner"][0]["reference"]
                continue
            members = neighbourhood.roles[role]
            if role == "home-nurse":
                members = neighbourhood.home_nurses_by_district.get(record.district) or members
            team[role] = members[zlib.crc32(f"{patient_id}:{role}".encode()) % len(members)]
        return team

    def team_resources(self) -> Iterator[dict[str, Any]]:
        """Organisations, Locations, Practitioners and PractitionerRoles, in an order that loads cleanly."""
        yield from self.organizations
        yield from self.locations
        yield from self.practitioners
        yield from self.practitioner_roles

    def resources(self) -> Iterator[dict[str, Any]]:
        """Everything: the teams first, then each inhabitant's Patient, Conditions and Observations."""
        yield from self.team_resources()
        for record in self.patient_records():
            yield from record.resources()


def generate_region(
    inhabitants: int = 100_000,
    seed: int = 1,
    *,
    reference_date: date = DEFAULT_REFERENCE_DATE,
    chronic_only: bool = False,
) -> Region:
    """The Zorgzaam Leuven demo region with ``inhabitants`` people in 8 neighbourhoods / 24 districts.

    Team sizes scale with the population of each neighbourhood (at least one of every discipline).
    ``reference_date`` is "today" for ages, diagnosis dates and observation dates.
    """
    if isinstance(inhabitants, bool) or not isinstance(inhabitants, int) or not 1 <= inhabitants <= MAX_INHABITANTS:
        raise RegionError(f"inhabitants must be a whole number from 1 to {MAX_INHABITANTS:,}, not {inhabitants!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RegionError(f"seed must be a whole number, not {seed!r}")
    rng = random.Random(f"careflow-region:{seed}:teams")
    sizes = _split(inhabitants, len(NEIGHBOURHOODS), rng, jitter=0.06)
    region_org = {
        "resourceType": "Organization",
        "id": REGION_ORGANIZATION_ID,
        "meta": synthetic_meta(),
        "active": True,
        "type": [{"coding": [{"system": _ORG_TYPE, "code": "other", "display": "Other"}], "text": "zorgregio"}],
        "name": REGION_NAME,
        "alias": ["ZZL"],
        "address": [{"city": CITY, "postalCode": "3000", "country": COUNTRY}],
    }
    organizations, locations, practitioners, roles = [region_org], [], [], []
    numbers = NihdiNumbers(rng)
    neighbourhoods = []
    for plan, population in zip(NEIGHBOURHOODS, sizes):
        district_sizes = _split(population, len(plan.districts), rng, jitter=0.10)
        org_id, loc_id = f"org-buurtteam-{plan.slug}", f"loc-buurt-{plan.slug}"
        organizations.append(_team_organization(plan, org_id))
        locations.append(_neighbourhood_location(plan, loc_id, org_id))
        for district in plan.districts:
            locations.append(_district_location(plan, district, f"loc-wijk-{district.slug}", loc_id, org_id))
        by_role: dict[str, list[str]] = {}
        nurses: dict[str, list[str]] = {district.name: [] for district in plan.districts}
        for discipline in DISCIPLINES:
            size = team_size(discipline, population)
            for index in range(size):
                district = plan.districts[index % len(plan.districts)]
                # home nurses work a district; with fewer nurses than districts one covers several
                covered = (
                    [d for i, d in enumerate(plan.districts) if i % size == index]
                    if discipline.role == "home-nurse"
                    else []
                )
                member: Member = make_member(
                    rng=rng,
                    numbers=numbers,
                    discipline=discipline,
                    key=f"{plan.slug}-{discipline.role}-{index + 1}",
                    organization_id=org_id,
                    location_ids=[f"loc-wijk-{d.slug}" for d in covered] or [loc_id],
                    street=rng.choice(district.streets),
                    postal_code=district.postal_code,
                    reference_year=reference_date.year,
                )
                practitioners.append(member.practitioner)
                roles.append(member.role)
                reference = f"PractitionerRole/{member.role['id']}"
                by_role.setdefault(discipline.role, []).append(reference)
                for covered_district in covered:
                    nurses[covered_district.name].append(reference)
        neighbourhoods.append(
            Neighbourhood(
                slug=plan.slug,
                name=plan.name,
                population=population,
                districts=tuple((d.name, n) for d, n in zip(plan.districts, district_sizes)),
                organization_id=org_id,
                location_id=loc_id,
                roles={role: tuple(refs) for role, refs in by_role.items()},
                home_nurses_by_district={name: tuple(refs) for name, refs in nurses.items() if refs},
            )
        )
    return Region(
        name=REGION_NAME,
        inhabitants=inhabitants,
        seed=seed,
        reference_date=reference_date,
        chronic_only=chronic_only,
        neighbourhoods=tuple(neighbourhoods),
        organizations=organizations,
        locations=locations,
        practitioners=practitioners,
        practitioner_roles=roles,
    )


def _team_organization(plan: NeighbourhoodPlan, org_id: str) -> dict[str, Any]:
    """The buurtteam: the network of local care givers a patient's care team is drawn from."""
    return {
        "resourceType": "Organization",
        "id": org_id,
        "meta": synthetic_meta(),
        "active": True,
        "type": [{"coding": [{"system": _ORG_TYPE, "code": "team", "display": "Organizational team"}], "text": "buurtteam"}],
        "name": f"Buurtteam {plan.name}",
        "address": [{"city": CITY, "postalCode": plan.districts[0].postal_code, "country": COUNTRY}],
        "partOf": {"reference": f"Organization/{REGION_ORGANIZATION_ID}"},
    }


def _neighbourhood_location(plan: NeighbourhoodPlan, loc_id: str, org_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "id": loc_id,
        "meta": synthetic_meta(),
        "status": "active",
        "name": plan.name,
        "description": f"Buurt {plan.name} van {REGION_NAME}: " + ", ".join(d.name for d in plan.districts),
        "mode": "instance",
        "physicalType": {"coding": [{"system": _PHYSICAL_TYPE, "code": "area", "display": "Area"}]},
        "address": {"city": CITY, "postalCode": plan.districts[0].postal_code, "country": COUNTRY},
        "managingOrganization": {"reference": f"Organization/{org_id}"},
    }


def _district_location(plan: NeighbourhoodPlan, district: District, loc_id: str, parent_id: str, org_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "id": loc_id,
        "meta": synthetic_meta(),
        "status": "active",
        "name": district.name,
        "description": f"Wijk {district.name} in buurt {plan.name}",
        "mode": "instance",
        "physicalType": {"coding": [{"system": _PHYSICAL_TYPE, "code": "area", "display": "Area"}]},
        "address": {"city": CITY, "district": district.name, "postalCode": district.postal_code, "country": COUNTRY},
        "managingOrganization": {"reference": f"Organization/{org_id}"},
        "partOf": {"reference": f"Location/{parent_id}"},
    }


def _split(total: int, parts: int, rng: random.Random, *, jitter: float) -> list[int]:
    """``total`` split into ``parts`` near-equal whole shares (+-``jitter``) that sum exactly to it."""
    weights = [1.0 + rng.uniform(-jitter, jitter) for _ in range(parts)]
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    shares = [int(r) for r in raw]
    by_remainder = sorted(range(parts), key=lambda i: (shares[i] - raw[i], i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year - years, day=28)


def _inhabitant(
    rng: random.Random,
    region: Region,
    number: int,
    neighbourhood: Neighbourhood,
    district: District,
    used_ssins: set[str],
) -> PatientRecord:
    reference = region.reference_date
    age = draw_age(rng)
    latest = _years_before(reference, age)
    earliest = _years_before(reference, age + 1) + timedelta(days=1)
    rand = rng.random  # int(rand() * n) instead of randrange/choice: 3x cheaper, matters at 100,000
    birth = earliest + timedelta(days=int(rand() * ((latest - earliest).days + 1)))
    gender = draw_gender(rng, age)
    conditions = draw_conditions(rng, age)
    group = population_group(age, conditions)
    given, family = draw_name(rng, gender, birth.year)
    while True:
        national_number = ssin(birth, 2 * int(rand() * 498) + (1 if gender == "male" else 2))
        if national_number not in used_ssins:
            used_ssins.add(national_number)
            break
    patient_id = f"pat-{number:06d}"
    patient_ref = f"Patient/{patient_id}"
    gps = neighbourhood.roles["gp"]
    gp_ref = gps[int(rand() * len(gps))]
    street, house_number = district.streets[int(rand() * len(district.streets))], str(1 + int(rand() * 220))
    meta = synthetic_meta()
    meta["tag"] = [{"system": POPULATION_GROUP, "code": group, "display": GROUP_DISPLAY[group]}]
    patient = {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": meta,
        "extension": [{"url": EXT_NEIGHBOURHOOD, "valueString": neighbourhood.name}],
        "identifier": [{"use": "official", "system": SSIN, "value": national_number}],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth.isoformat(),
        "address": [
            {
                "use": "home",
                "type": "physical",
                "line": [f"{street} {house_number}"],
                "_line": [
                    {
                        "extension": [
                            {"url": _STREET_NAME, "valueString": street},
                            {"url": _HOUSE_NUMBER, "valueString": house_number},
                        ]
                    }
                ],
                "city": CITY,
                "district": district.name,
                "postalCode": district.postal_code,
                "country": COUNTRY,
            }
        ],
        "generalPractitioner": [{"reference": gp_ref}],
    }
    condition_resources, observation_resources = [], []
    if conditions:
        first_onset = reference
        for condition in conditions:
            onset = draw_onset(rng, condition, age, reference)
            recorded = min(reference, onset + timedelta(days=rng.randint(0, 21)))
            first_onset = min(first_onset, onset)
            condition_resources.append(
                condition_resource(
                    resource_id=f"cond-{number:06d}-{condition.key}",
                    patient_ref=patient_ref,
                    asserter_ref=gp_ref,
                    condition=condition,
                    onset=onset,
                    recorded=recorded,
                )
            )
        for measurement in measurements_for(conditions):
            observation_resources.append(
                observation_resource(
                    rng=rng,
                    resource_id=f"obs-{number:06d}-{measurement.key}",
                    patient_ref=patient_ref,
                    measurement=measurement,
                    gender=gender,
                    age=age,
                    reference=reference,
                    not_before=first_onset,
                )
            )
    consents: tuple[dict[str, Any], ...] = ()
    if conditions and not declines_sharing(patient_id):
        consents = (sharing_consent(resource_id=f"consent-{number:06d}", patient_ref=patient_ref, gp_ref=gp_ref,
                                    given=min(reference, first_onset + timedelta(days=30))),)
    return PatientRecord(patient, condition_resources, observation_resources, group, neighbourhood.name, district.name,
                         consents)
