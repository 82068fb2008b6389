"""Reading Synthea bundles: every bundle read, references storable, valid FHIR, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from careflow_shared import SYNTHEA_DIR, missing

from careflow.errors import CareflowError
from careflow.region import SERVED_TYPES, BundleImportError, ImportStats, read_synthea

PRACTITIONER_BUNDLE = next(iter(sorted(SYNTHEA_DIR.glob("practitionerInformation*.json"))), None)
needs_synthea = pytest.mark.skipif(PRACTITIONER_BUNDLE is None, reason=missing(SYNTHEA_DIR / "practitionerInformation*.json"))


def _references(node):
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


@pytest.fixture(scope="module")
def imported() -> tuple[list[dict], ImportStats]:
    stats = ImportStats()
    return list(read_synthea(SYNTHEA_DIR, stats=stats)), stats


def _bundle(tmp_path: Path, name: str, entries: list[dict]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
    return path


def _entry(resource: dict) -> dict:
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


# --- the sample set ---


@needs_synthea
def test_all_eighteen_patient_bundles_and_the_practitioner_bundle_are_read(imported) -> None:
    resources, stats = imported
    assert stats.files == 19
    assert stats.kept["Patient"] == 18
    assert len({r["id"] for r in resources if r["resourceType"] == "Patient"}) == 18
    assert stats.kept["Practitioner"] >= 100 and stats.kept["Condition"] > 0 and stats.kept["CarePlan"] > 0


@needs_synthea
def test_practitioner_bundle_comes_first(imported) -> None:
    resources, _ = imported
    first_ids = {e["resource"]["id"] for e in json.loads(PRACTITIONER_BUNDLE.read_text())["entry"]}
    assert resources[0]["id"] in first_ids and resources[0]["resourceType"] == "Practitioner"


@needs_synthea
def test_no_urn_uuid_is_left_and_every_reference_resolves(imported) -> None:
    resources, stats = imported
    assert stats.rewritten_references > 1_000
    known = {f"{r['resourceType']}/{r['id']}" for r in resources}
    for resource in resources:
        assert b"urn:uuid:" not in orjson.dumps(resource)
        for reference in _references(resource):
            assert reference.startswith("#") or reference in known, (resource["id"], reference)


@needs_synthea
def test_only_served_types_are_kept_and_the_rest_counted(imported) -> None:
    resources, stats = imported
    assert {r["resourceType"] for r in resources} <= SERVED_TYPES
    assert stats.skipped["Claim"] > 0 and stats.skipped["ExplanationOfBenefit"] > 0
    assert sum(stats.kept.values()) == len(resources)


@needs_synthea
def test_each_resource_is_yielded_once(imported) -> None:
    resources, stats = imported
    keys = [(r["resourceType"], r["id"]) for r in resources]
    assert len(keys) == len(set(keys))
    assert stats.duplicates > 0  # patient bundles repeat the practitioners and organisations they cite


@needs_synthea
def test_imported_resources_are_valid_fhir_r4(imported) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    from careflow.fhir.validation import validate_resource

    resources, _ = imported
    for resource in resources:
        validate_resource(resource)
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@needs_synthea
def test_programme_conditions_are_present(imported) -> None:
    resources, _ = imported
    snomed = {c["code"] for r in resources if r["resourceType"] == "Condition" for c in r["code"]["coding"]}
    assert {"44054006", "13645005", "84114007"} & snomed, "the sample set should exercise at least one programme"


@needs_synthea
def test_one_patient_bundle_alone_resolves_its_own_references() -> None:
    patient_file = next(p for p in sorted(SYNTHEA_DIR.glob("*.json")) if p != PRACTITIONER_BUNDLE)
    resources = list(read_synthea(patient_file))
    (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
    conditions = [r for r in resources if r["resourceType"] == "Condition"]
    assert all(c["subject"] == {"reference": f"Patient/{patient['id']}"} for c in conditions)


@needs_synthea
def test_wider_types_keep_encounters_and_their_links() -> None:
    patient_file = next(p for p in sorted(SYNTHEA_DIR.glob("*.json")) if p != PRACTITIONER_BUNDLE)
    resources = list(read_synthea(patient_file, types=SERVED_TYPES | {"Encounter"}))
    encounters = {r["id"] for r in resources if r["resourceType"] == "Encounter"}
    linked = [r["encounter"]["reference"] for r in resources if r["resourceType"] == "Condition" and "encounter" in r]
    assert encounters and linked and all(ref.removeprefix("Encounter/") in encounters for ref in linked)


# --- reference rewriting on crafted bundles ---


def test_conditional_and_urn_references_are_rewritten(tmp_path: Path) -> None:
    practitioner = {
        "resourceType": "Practitioner",
        "id": "p-1",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "42"}],
    }
    _bundle(tmp_path, "practitionerInformation1.json", [_entry(practitioner)])
    patient = {"resourceType": "Patient", "id": "pat-1"}
    careplan = {
        "resourceType": "CarePlan",
        "id": "cp-1",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "urn:uuid:pat-1"},
        "author": {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|42"},
        "contributor": [
            {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999", "display": "Dr. Unknown"},
            {"reference": "urn:uuid:nowhere"},
        ],
        "encounter": {"reference": "urn:uuid:enc-1"},
        "careTeam": [{"reference": "urn:uuid:enc-1", "display": "kept as text"}],
    }
    encounter = {"resourceType": "Encounter", "id": "enc-1", "status": "finished", "class": {"code": "AMB"}}
    _bundle(tmp_path, "A_Patient.json", [_entry(patient), _entry(careplan), _entry(encounter)])
    stats = ImportStats()
    resources = {r["id"]: r for r in read_synthea(tmp_path, stats=stats)}
    plan = resources["cp-1"]
    assert plan["subject"] == {"reference": "Patient/pat-1"}
    assert plan["author"] == {"reference": "Practitioner/p-1"}
    assert plan["contributor"] == [{"display": "Dr. Unknown"}]  # unresolvable: text kept, link dropped
    assert "encounter" not in plan  # Encounter is not served: the link goes
    assert plan["careTeam"] == [{"display": "kept as text"}]
    assert "enc-1" not in resources
    assert stats.unresolved_references == 2 and stats.dropped_references == 2 and stats.rewritten_references == 2
    assert stats.skipped == {"Encounter": 1}
    assert any("nowhere" in note for note in stats.notes)


def test_entry_without_id_takes_it_from_the_full_url(tmp_path: Path) -> None:
    path = _bundle(tmp_path, "x.json", [{"fullUrl": "urn:uuid:abc-1", "resource": {"resourceType": "Patient"}}])
    assert [r["id"] for r in read_synthea(path)] == ["abc-1"]


# --- broken input ---


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"resourceType": "Patient", "id": "x"}', "not a FHIR Bundle"),
        (b"[1, 2]", "not a FHIR Bundle"),
        (b'{"resourceType": "Bundle", "entry": {"resource": {}}}', "Bundle.entry is not a list"),
        (b'{"resourceType": "Bundle", "entry": [{"fullUrl": "urn:uuid:1"}]}', "entry 0 has no resource"),
        (b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]}', "neither an id"),
    ],
)
def test_a_broken_file_gives_a_clear_error_naming_it(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "Broken_Patient.json"
    path.write_bytes(content)
    with pytest.raises(BundleImportError) as caught:
        list(read_synthea(path))
    assert str(caught.value).startswith("Broken_Patient.json: ")
    assert problem in str(caught.value)
    assert caught.value.path == path
    assert isinstance(caught.value, CareflowError)


def test_a_broken_file_in_a_directory_is_named(tmp_path: Path) -> None:
    _bundle(tmp_path, "Good.json", [_entry({"resourceType": "Patient", "id": "p"})])
    (tmp_path / "Bad.json").write_text("")
    with pytest.raises(BundleImportError, match=r"^Bad\.json: not valid JSON"):
        list(read_synthea(tmp_path))


def test_missing_path_and_empty_directory_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BundleImportError, match="no such file or directory") as caught:
        list(read_synthea(tmp_path / "nope"))
    assert str(caught.value) == f"{tmp_path / 'nope'}: no such file or directory"  # the path as given, leading / too
    with pytest.raises(BundleImportError, match=r"no Synthea bundles"):
        list(read_synthea(tmp_path))
