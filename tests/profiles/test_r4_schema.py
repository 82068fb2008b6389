"""The R4 JSON Schema check: it must accept R4, and reject what only R4B (or nothing) allows."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from careflow.errors import R4SchemaUnavailable
from careflow.fhir import r4_schema
from careflow.fhir.r4_schema import r4_errors

TASK = {
    "resourceType": "Task",
    "id": "t1",
    "status": "requested",
    "intent": "order",
    "for": {"reference": "Patient/p1"},
    "authoredOn": "2025-03-01T09:00:00+01:00",
    "restriction": {"period": {"start": "2025-03-01", "end": "2025-03-15"}},
}


def test_the_vendored_file_is_the_published_r4_schema() -> None:
    raw = gzip.decompress(r4_schema.DEFAULT_SCHEMA.read_bytes())
    assert hashlib.sha256(raw).hexdigest() == "15b9548af6412c44faaa411456e0652542de286fd1c58ef882b09bdc8947909d"


def test_a_plain_r4_task_passes() -> None:
    assert r4_errors(TASK) == []


def test_r4b_only_element_on_a_resource_is_caught() -> None:
    # ActivityDefinition.subjectCanonical arrived in R4B; fhir.resources.R4B accepts it.
    from fhir.resources.R4B.activitydefinition import ActivityDefinition

    resource = {"resourceType": "ActivityDefinition", "status": "active", "subjectCanonical": "http://example.org/sd"}
    ActivityDefinition.model_validate(resource)
    errors = r4_errors(resource)
    assert len(errors) == 1 and "subjectCanonical" in errors[0]


def test_r4b_only_datatype_in_an_extension_is_caught() -> None:
    task = {**TASK, "extension": [{"url": "http://example.org/x", "valueRatioRange": {"denominator": {"value": 1}}}]}
    errors = r4_errors(task)
    assert errors and errors[0].startswith("Task.extension[0]:") and "valueRatioRange" in errors[0]


def test_r4b_only_resource_type_is_caught() -> None:
    assert r4_errors({"resourceType": "Citation", "status": "active"}) == [
        "Citation: Citation is not a resource type in FHIR R4"
    ]


def test_bad_code_and_bad_date_are_located() -> None:
    errors = r4_errors({**TASK, "status": "done", "authoredOn": "2025-02-30T25:00:00Z"})
    assert [e.split(":")[0] for e in errors] == ["Task.authoredOn", "Task.status"]


def test_contained_resources_are_checked_as_their_own_type() -> None:
    errors = r4_errors({**TASK, "contained": [{"resourceType": "Patient", "id": "p", "birthDate": "yesterday"}]})
    assert len(errors) == 1 and errors[0].startswith("Task.contained[0].birthDate:")


def test_missing_resource_type_is_reported_not_raised() -> None:
    assert r4_errors({"status": "requested"}) == ["resource: resourceType is missing"]
    assert r4_errors([]) == ["not a JSON object but list"]  # type: ignore[arg-type]


def test_missing_schema_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(r4_schema.SCHEMA_ENV, str(tmp_path / "nowhere.json"))
    r4_schema._schema.cache_clear()
    r4_schema._validator.cache_clear()
    try:
        with pytest.raises(R4SchemaUnavailable, match="nowhere.json"):
            r4_errors(TASK)
    finally:
        monkeypatch.delenv(r4_schema.SCHEMA_ENV)
        r4_schema._schema.cache_clear()
        r4_schema._validator.cache_clear()
    assert r4_errors(TASK) == []


def test_the_4_0_1_corrections_are_applied() -> None:
    # 4.0.1 itself is a FHIR version, and Meta is an open type since the technical correction.
    capability = {"resourceType": "CapabilityStatement", "status": "active", "date": "2025-01-01",
                  "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"]}
    assert r4_errors(capability) == []
    assert r4_errors({**capability, "fhirVersion": "4.3.0"})  # R4B's number is not R4
    task = {**TASK, "input": [{"type": {"text": "seen"}, "valueMeta": {"versionId": "2"}}]}
    assert r4_errors(task) == []
