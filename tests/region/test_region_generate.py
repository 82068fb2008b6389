"""The demo region generator: deterministic, Belgian-looking, valid FHIR, every team complete."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta

import orjson
import pytest
from careflow_shared import HCPARTY_FSH, need

from careflow.errors import CareflowError
from careflow.naming import CARE_ROLE_SYSTEM, EXT_NEIGHBOURHOOD, NIHDI, POPULATION_GROUP, SSIN
from careflow.programs.codes import HCPARTY, ICPC2, LOINC, SNOMED, UCUM, code_problem
from careflow.region import ROLES, PatientRecord, Region, RegionError, generate_region
from careflow.region.identifiers import nihdi, nihdi_is_valid, ssin, ssin_is_valid
from careflow.region.practitioners import DISCIPLINES

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
PROGRAMME_CODES = {"R95": "13645005", "K77": "84114007", "T90": "44054006"}  # ICPC-2 -> SNOMED CT


def _dump(region: Region) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in region.resources())


def _codes(concept: dict, system: str) -> set[str]:
    return {c["code"] for c in concept.get("coding", []) if c.get("system") == system}


def _with(records: list[PatientRecord], snomed: str) -> list[PatientRecord]:
    return [r for r in records if any(snomed in _codes(c["code"], SNOMED) for c in r.conditions)]


# --- determinism and streaming ---


def test_same_seed_gives_byte_identical_output() -> None:
    assert _dump(generate_region(3_000, seed=7)) == _dump(generate_region(3_000, seed=7))


def test_output_does_not_depend_on_the_process_hash_seed() -> None:
    script = (
        "import hashlib, orjson; from careflow.region import generate_region; h = hashlib.sha256()\n"
        "for r in generate_region(1_000, seed=3).resources(): h.update(orjson.dumps(r))\n"
        "print(h.hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in (1, 2)
    }
    assert len(digests) == 1


def test_another_seed_gives_another_region() -> None:
    assert _dump(generate_region(3_000, seed=7)) != _dump(generate_region(3_000, seed=8))


def test_inhabitants_stream_and_restart_identically(region_10k: Region, records_10k: list[PatientRecord]) -> None:
    stream = region_10k.patients
    assert iter(stream) is stream  # an iterator, not a list held in memory
    first = next(stream)
    assert first.patient == records_10k[0].patient
    assert [r.patient["id"] for r in region_10k] == [r.patient["id"] for r in records_10k]


def test_chronic_only_yields_exactly_the_chronic_inhabitants(records_10k: list[PatientRecord]) -> None:
    chronic = list(generate_region(10_000, seed=1, chronic_only=True).patients)
    assert [r.patient for r in chronic] == [r.patient for r in records_10k if r.conditions]
    assert all(r.chronic for r in chronic)


def test_bad_arguments_are_clear_errors() -> None:
    for bad in (0, -5, "100", 2.5, True):
        with pytest.raises(RegionError, match="inhabitants"):
            generate_region(bad)  # type: ignore[arg-type]
    with pytest.raises(RegionError, match="seed"):
        generate_region(10, seed="x")  # type: ignore[arg-type]
    assert issubclass(RegionError, CareflowError)


# --- the map and the population ---


def test_eight_neighbourhoods_of_three_districts_adding_up(region_10k: Region, records_10k: list[PatientRecord]) -> None:
    assert len(records_10k) == 10_000
    assert len(region_10k.neighbourhoods) == 8
    assert sum(len(n.districts) for n in region_10k.neighbourhoods) == 24
    assert sum(n.population for n in region_10k.neighbourhoods) == 10_000
    for neighbourhood in region_10k.neighbourhoods:
        assert abs(neighbourhood.population - 1_250) <= 0.07 * 1_250
        assert sum(size for _, size in neighbourhood.districts) == neighbourhood.population
    per_neighbourhood = Counter(r.neighbourhood for r in records_10k)
    assert per_neighbourhood == {n.name: n.population for n in region_10k.neighbourhoods}
    per_district = Counter(r.district for r in records_10k)
    assert per_district == {d: size for n in region_10k.neighbourhoods for d, size in n.districts}


def test_full_region_has_neighbourhoods_of_about_12500() -> None:
    region = generate_region()  # 100,000: the teams are built eagerly, the inhabitants lazily
    for neighbourhood in region.neighbourhoods:
        assert 11_500 <= neighbourhood.population <= 13_500
        for _, size in neighbourhood.districts:
            assert 3_500 <= size <= 4_800


def test_age_pyramid_and_sex_split_look_belgian(records_10k: list[PatientRecord], region_10k: Region) -> None:
    ref = region_10k.reference_date
    ages = [(ref - date.fromisoformat(r.patient["birthDate"])).days // 365 for r in records_10k]
    n = len(ages)
    assert 0.17 <= sum(a >= 65 for a in ages) / n <= 0.23  # Belgium: ~20% aged 65+
    assert 0.19 <= sum(a < 18 for a in ages) / n <= 0.24
    assert 0.045 <= sum(a >= 80 for a in ages) / n <= 0.07
    assert max(ages) <= 100
    women = [r for r in records_10k if r.patient["gender"] == "female"]
    assert 0.48 <= len(women) / n <= 0.53
    old = [r for r, a in zip(records_10k, ages) if a >= 85]
    assert sum(r.patient["gender"] == "female" for r in old) / len(old) > 0.55  # women outlive men


def test_chronic_prevalence_is_realistic(records_10k: list[PatientRecord]) -> None:
    n = len(records_10k)
    assert 0.15 <= sum(r.chronic for r in records_10k) / n <= 0.21  # "about 18%"
    assert 0.035 <= len(_with(records_10k, "44054006")) / n <= 0.075  # type-2 diabetes
    assert 0.02 <= len(_with(records_10k, "13645005")) / n <= 0.045  # COPD
    assert 0.007 <= len(_with(records_10k, "84114007")) / n <= 0.022  # heart failure
    multimorbid = [r for r in records_10k if len(r.conditions) >= 2]
    assert 0.12 <= len(multimorbid) / sum(r.chronic for r in records_10k) <= 0.40


def test_heart_failure_is_a_disease_of_the_old(records_10k: list[PatientRecord], region_10k: Region) -> None:
    ref = region_10k.reference_date
    ages = [(ref - date.fromisoformat(r.patient["birthDate"])).days / 365.25 for r in _with(records_10k, "84114007")]
    assert sum(a >= 65 for a in ages) / len(ages) > 0.75


def test_population_groups_follow_the_pyramid(records_10k: list[PatientRecord], region_10k: Region) -> None:
    n = len(records_10k)
    groups = Counter(r.group for r in records_10k)
    assert set(groups) == {"A", "B", "C", "D"}
    assert groups["D"] == sum(not r.conditions for r in records_10k)
    assert 0.005 <= groups["A"] / n <= 0.03
    assert 0.015 <= groups["B"] / n <= 0.05
    assert groups["C"] > groups["B"] > 0
    ref = region_10k.reference_date
    for record in records_10k:
        age = (ref - date.fromisoformat(record.patient["birthDate"])).days // 365
        if record.group == "A":
            assert age >= 75
        if record.group == "B":
            assert len(record.conditions) >= 2
        if record.group == "C":
            assert len(record.conditions) == 1
        tags = record.patient["meta"]["tag"]
        assert [(t["system"], t["code"]) for t in tags] == [(POPULATION_GROUP, record.group)]
        assert record.patient["extension"] == [{"url": EXT_NEIGHBOURHOOD, "valueString": record.neighbourhood}]
        assert record.patient["address"][0]["district"] == record.district
        assert record.patient["address"][0]["city"] == "Leuven"


# --- conditions and observations ---


def test_conditions_carry_icpc2_and_snomed_and_plausible_dates(records_10k: list[PatientRecord], region_10k: Region) -> None:
    ref = region_10k.reference_date
    recent = total = 0
    for record in records_10k:
        birth = date.fromisoformat(record.patient["birthDate"])
        for condition in record.conditions:
            total += 1
            icpc, snomed = _codes(condition["code"], ICPC2), _codes(condition["code"], SNOMED)
            assert len(icpc) == 1 and len(snomed) == 1
            (icpc_code,), (snomed_code,) = icpc, snomed
            assert code_problem(ICPC2, icpc_code) is None and code_problem(SNOMED, snomed_code) is None
            if icpc_code in PROGRAMME_CODES:
                assert PROGRAMME_CODES[icpc_code] == snomed_code
            assert condition["clinicalStatus"]["coding"][0]["code"] == "active"
            assert condition["verificationStatus"]["coding"][0]["code"] == "confirmed"
            assert condition["subject"] == {"reference": f"Patient/{record.patient['id']}"}
            onset = date.fromisoformat(condition["onsetDateTime"])
            recorded = date.fromisoformat(condition["recordedDate"])
            assert birth < onset < ref and onset <= recorded <= ref
            recent += (ref - onset).days <= 182
    assert 0.04 <= recent / total <= 0.15  # some new diagnoses within six months of the reference date
    for snomed in PROGRAMME_CODES.values():
        news = [
            c for r in _with(records_10k, snomed) for c in r.conditions
            if snomed in _codes(c["code"], SNOMED) and (ref - date.fromisoformat(c["onsetDateTime"])).days <= 182
        ]
        assert news, f"no new diagnosis of {snomed}: programmes' new-diagnosis paths would never run"


def test_observations_are_the_baseline_of_each_programme(records_10k: list[PatientRecord], region_10k: Region) -> None:
    ref = region_10k.reference_date
    expected = {"84114007": ("29463-7", "kg"), "44054006": ("4548-4", "%"), "13645005": ("59408-5", "%")}
    for record in records_10k:
        if not record.conditions:
            assert record.observations == []
            continue
        assert 1 <= len(record.observations) <= 3
        loincs = {}
        first_onset = min(date.fromisoformat(c["onsetDateTime"]) for c in record.conditions)
        for observation in record.observations:
            (code,) = _codes(observation["code"], LOINC)
            assert code_problem(LOINC, code) is None
            quantity = observation["valueQuantity"]
            assert quantity["system"] == UCUM and quantity["code"] == quantity["unit"]
            assert observation["status"] == "final"
            assert observation["subject"] == {"reference": f"Patient/{record.patient['id']}"}
            taken = date.fromisoformat(observation["effectiveDateTime"][:10])
            assert first_onset <= taken < ref
            loincs[code] = quantity["unit"]
        for snomed, (loinc, unit) in expected.items():
            has_condition = any(snomed in _codes(c["code"], SNOMED) for c in record.conditions)
            if has_condition and len(record.conditions) == 1:
                assert loincs.get(loinc) == unit


def test_measured_values_are_clinically_plausible(records_10k: list[PatientRecord]) -> None:
    ranges = {"29463-7": (40, 170), "4548-4": (5.5, 13), "59408-5": (80, 100), "20150-9": (0.3, 5)}
    values: dict[str, list[float]] = {}
    for record in records_10k:
        for observation in record.observations:
            (code,) = _codes(observation["code"], LOINC)
            values.setdefault(code, []).append(observation["valueQuantity"]["value"])
    for code, (low, high) in ranges.items():
        assert values[code] and all(low <= v <= high for v in values[code]), code
    hba1c = values["4548-4"]
    assert 6.5 <= sum(hba1c) / len(hba1c) <= 7.8  # a treated diabetic population


# --- identifiers ---


def test_ssin_check_digits_match_a_published_example() -> None:
    assert ssin(date(1985, 7, 30), 33) == "85073003328"
    assert ssin_is_valid("85073003328") and not ssin_is_valid("85073003329")


def test_ssin_for_births_from_2000_prefix_a_2() -> None:
    value = ssin(date(2017, 1, 1), 1)
    assert (int("2" + value[:9]) + int(value[9:])) % 97 == 0
    assert int(value[:9]) % 97 != 97 - int(value[9:]) or int(value[9:]) == 97  # not the 19xx rule


def test_every_patient_has_a_unique_valid_ssin_matching_birth_and_sex(records_10k: list[PatientRecord]) -> None:
    seen = set()
    for record in records_10k:
        (identifier,) = record.patient["identifier"]
        assert identifier["system"] == SSIN
        value = identifier["value"]
        assert ssin_is_valid(value), value
        birth = date.fromisoformat(record.patient["birthDate"])
        assert value[:6] == f"{birth:%y%m%d}"
        assert int(value[6:9]) % 2 == (1 if record.patient["gender"] == "male" else 0)
        seen.add(value)
    assert len(seen) == len(records_10k)


def test_nihdi_numbers_are_eleven_digits_unique_and_checked(region_10k: Region) -> None:
    values = []
    for practitioner in region_10k.practitioners:
        (identifier,) = practitioner["identifier"]
        assert identifier["system"] == NIHDI
        assert re.fullmatch(r"\d{11}", identifier["value"]) and nihdi_is_valid(identifier["value"])
        values.append(identifier["value"])
    assert len(set(values)) == len(values)
    assert not nihdi_is_valid(nihdi(1, 23456, 4)[:6] + "00004")


# --- neighbourhood teams ---


def test_every_neighbourhood_has_every_discipline(region_10k: Region) -> None:
    for neighbourhood in region_10k.neighbourhoods:
        assert set(neighbourhood.roles) == set(ROLES)
        assert all(neighbourhood.roles[role] for role in ROLES)
        assert set(neighbourhood.home_nurses_by_district) == {d for d, _ in neighbourhood.districts}
    roles_by_org = Counter()
    for role in region_10k.practitioner_roles:
        (care_role,) = _codes(role["code"][2], CARE_ROLE_SYSTEM)
        roles_by_org[(role["organization"]["reference"], care_role)] += 1
    for neighbourhood in region_10k.neighbourhoods:
        for role in ROLES:
            assert roles_by_org[(f"Organization/{neighbourhood.organization_id}", role)] >= 1


def test_team_sizes_per_12500_inhabitants() -> None:
    region = generate_region()
    expected = {d.role: d.per_12500 for d in DISCIPLINES}
    assert expected["gp"] == 9 and expected["home-nurse"] == 6 and expected["pharmacist"] == 3
    for neighbourhood in region.neighbourhoods:
        for role, size in expected.items():
            assert abs(len(neighbourhood.roles[role]) - size) <= 1, (neighbourhood.name, role)


def test_practitioner_roles_are_coded_in_snomed_hcparty_and_careflow(region_10k: Region) -> None:
    for role in region_10k.practitioner_roles:
        snomed, hcparty, careflow = role["code"]
        (s,) = _codes(snomed, SNOMED)
        (h,) = _codes(hcparty, HCPARTY)
        (c,) = _codes(careflow, CARE_ROLE_SYSTEM)
        assert code_problem(SNOMED, s) is None and code_problem(HCPARTY, h) is None
        assert c in ROLES
        assert role["practitioner"]["reference"] == "Practitioner/prac-" + role["id"].removeprefix("role-")


def test_practitioner_role_disciplines_are_codes_of_hl7_belgium_cd_hcparty(region_10k: Region) -> None:
    hcparty_codes = set(re.findall(r"^\* #(\w+) \"", need(HCPARTY_FSH).read_text(), re.M))
    assert hcparty_codes, f"no codes read from {HCPARTY_FSH}"
    for role in region_10k.practitioner_roles:
        (h,) = _codes(role["code"][1], HCPARTY)
        assert h in hcparty_codes, h


def test_team_for_picks_a_member_of_every_role_from_the_patients_own_team(
    region_10k: Region, records_10k: list[PatientRecord]
) -> None:
    roles = {f"PractitionerRole/{r['id']}": r for r in region_10k.practitioner_roles}
    for record in records_10k[::37]:
        team = region_10k.team_for(record)
        assert set(team) == set(ROLES)
        neighbourhood = region_10k.neighbourhood(record.neighbourhood)
        for role_id, reference in team.items():
            role = roles[reference]
            assert role["organization"]["reference"] == f"Organization/{neighbourhood.organization_id}"
            assert _codes(role["code"][2], CARE_ROLE_SYSTEM) == {role_id}
        assert team["gp"] == record.patient["generalPractitioner"][0]["reference"]
        nurse = roles[team["home-nurse"]]
        district_location = next(
            loc for loc in region_10k.locations if loc["id"].startswith("loc-wijk-") and loc["name"] == record.district
        )
        assert {"reference": f"Location/{district_location['id']}"} in nurse["location"]
        assert region_10k.team_for(record) == team  # stable


def test_patients_are_spread_over_the_gps_of_their_neighbourhood(region_10k: Region, records_10k: list[PatientRecord]) -> None:
    per_gp = Counter(r.patient["generalPractitioner"][0]["reference"] for r in records_10k)
    assert set(per_gp) == {ref for n in region_10k.neighbourhoods for ref in n.roles["gp"]}


# --- FHIR validity and referential integrity ---


def test_every_resource_of_a_small_region_is_valid_fhir_r4() -> None:
    from fhir.resources.R4B import get_fhir_model_class

    from careflow.fhir.validation import validate_resource

    count = 0
    for resource in generate_region(2_000, seed=5).resources():
        validate_resource(resource)  # R4 JSON rules + the R4B model; raises with every problem
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        count += 1
    assert count > 2_000


def test_ids_are_unique_and_every_reference_resolves(region_10k: Region) -> None:
    small = generate_region(2_000, seed=2)
    resources = list(small.resources())
    keys = [f"{r['resourceType']}/{r['id']}" for r in resources]
    assert len(set(keys)) == len(keys)
    assert all(ID_RE.fullmatch(r["id"]) for r in resources)
    known = set(keys)

    def references(node):
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                yield node["reference"]
            for value in node.values():
                yield from references(value)
        elif isinstance(node, list):
            for item in node:
                yield from references(item)

    for resource in resources:
        for reference in references(resource):
            assert reference in known, (resource["id"], reference)


def test_all_resources_are_marked_as_test_data(region_10k: Region) -> None:
    for resource in region_10k.resources():
        assert {"HTEST"} <= {s["code"] for s in resource["meta"]["security"]}
        if resource["resourceType"] == "Observation":
            break  # one inhabitant's worth is enough after all team resources


def test_reference_date_moves_every_date() -> None:
    early = next(generate_region(500, seed=4).patients)
    later = next(generate_region(500, seed=4, reference_date=date(2030, 1, 1)).patients)
    assert date.fromisoformat(later.patient["birthDate"]) - date.fromisoformat(early.patient["birthDate"]) > timedelta(days=365 * 2)
