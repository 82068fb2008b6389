"""The pure query parser and index extraction: errors, modifiers, precision, escaping."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from condition_spellings import query_of, spelling
from hypothesis import given, settings
from hypothesis import strategies as st

from careflow.errors import InvalidSearch
from careflow.fhir.search_index import extract_index
from careflow.fhir.search_params import REGISTRY, get_param, params_for
from careflow.fhir.search_query import (
    DateValue,
    NumberValue,
    ReferenceValue,
    TokenValue,
    parse_search,
)
from careflow.fhir.search_values import date_range
from careflow.naming import SSIN


def test_unknown_parameter_strict_vs_lenient():
    with pytest.raises(InvalidSearch) as info:
        parse_search("Task", [("colour", "red")], strict=True)
    assert info.value.param == "colour" and info.value.http_status == 400
    q = parse_search("Task", [("colour", "red"), ("status", "ready")])
    assert q.ignored == ("colour",) and len(q.criteria) == 1


@pytest.mark.parametrize(
    "params,param",
    [
        ([("birthdate", "yesterday")], "birthdate"),
        ([("birthdate", "2024-13-01")], "birthdate"),
        ([("gender:exact", "male")], "gender:exact"),
        ([("family:below", "x")], "family:below"),
        ([("_count", "many")], "_count"),
        ([("_offset", "-1")], "_offset"),
        ([("_sort", "colour")], "_sort"),
        ([("_sort", "patient")], "_sort"),
        ([("gender:missing", "maybe")], "gender:missing"),
        ([("_total", "some")], "_total"),
        ([("_include", "Task")], "_include"),
        ([("status.name", "x")], "status.name"),
        ([("encounter.name", "x")], "encounter.name"),
        ([("patient.identifier.system", "x")], "patient.identifier.system"),
        ([("patient.colour", "x")], "patient.colour"),
        ([("identifier", "a|b|c")], "identifier"),
        ([("owner:Practitioner", "Organization/1")], "owner:Practitioner"),
    ],
)
def test_bad_values_are_invalid_search_naming_the_parameter(params, param):
    with pytest.raises(InvalidSearch) as info:
        parse_search("Task" if params[0][0] not in ("birthdate", "gender:exact", "family:below", "gender:missing")
                     else "Patient", params, strict=True)
    assert info.value.param == param
    assert param.split(":")[0].split(".")[0] in str(info.value)


def test_bad_quantity():
    with pytest.raises(InvalidSearch):
        parse_search("Observation", [("value-quantity", "gtfive")])
    with pytest.raises(InvalidSearch):
        parse_search("Observation", [("value-quantity", "5|kg")])


def test_token_forms_and_escaping():
    q = parse_search("Patient", [("identifier", r"sys|a\,b,|c,d|,e")])
    assert q.criteria[0].values == (TokenValue("sys", "a,b"), TokenValue("", "c"), TokenValue("d", None),
                                     TokenValue(None, "e"))


def test_reference_forms():
    q = parse_search("Task", [("owner", "Practitioner/1,2,https://x.org/fhir/PractitionerRole/3/_history/2,urn:uuid:abc")])
    assert q.criteria[0].values == (ReferenceValue("Practitioner", "1"), ReferenceValue(None, "2"),
                                    ReferenceValue("PractitionerRole", "3"), ReferenceValue(None, None, "urn:uuid:abc"))


def test_date_prefix_and_precision():
    (v,) = parse_search("Patient", [("birthdate", "ge2024-02")]).criteria[0].values
    assert v == DateValue("ge", datetime(2024, 2, 1), datetime(2024, 2, 29, 23, 59, 59, 999999))
    assert date_range("2024-05-01T10:00+02:00") == (datetime(2024, 5, 1, 8, 0), datetime(2024, 5, 1, 8, 0, 59, 999999))
    assert date_range("2024-05-01T10:00:00.5Z") == (datetime(2024, 5, 1, 10, 0, 0, 500000),
                                                    datetime(2024, 5, 1, 10, 0, 0, 599999))
    assert date_range("9999") == (datetime(9999, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999))


def test_quantity_precision_and_parts():
    (v,) = parse_search("Observation", [("value-quantity", "le5.40|http://unitsofmeasure.org|kg")]).criteria[0].values
    assert v == NumberValue("le", Decimal("5.40"), Decimal("5.395"), Decimal("5.405"), "http://unitsofmeasure.org", "kg")


def test_chain_targets_come_from_the_registry():
    (crit,) = parse_search("Task", [("patient.identifier", "s|1")]).criteria
    assert [t for t, _ in crit.chain] == ["Patient"]
    # R4: Task.for may point at any type; the chain spans the served types that have the parameter
    (crit,) = parse_search("Task", [("subject.identifier", "s|1")]).criteria
    chained = {t for t, _ in crit.chain}
    assert {"Patient", "Group", "Practitioner"} <= chained and "Device" not in chained  # Device is not served
    assert "Subscription" not in chained  # R4 gives Subscription no identifier parameter
    (crit,) = parse_search("Task", [("owner:Organization.name", "wijk")]).criteria
    assert [t for t, _ in crit.chain] == ["Organization"]


def test_control_parameters_and_links():
    q = parse_search("CarePlan", [("patient", "p1"), ("_revinclude", "Task:based-on"), ("_count", "5000"),
                                  ("_sort", "-date"), ("_summary", "count"), ("_format", "json")])
    assert q.count == 1000 and q.total_only and q.passthrough == (("_format", "json"),)
    assert q.sort[0].descending and q.revincludes[0].param == "based-on"
    assert "_revinclude=Task%3Abased-on" in q.query_string()
    same = parse_search("CarePlan", [("_summary", "count"), ("patient", "p1")])
    assert q.canonical_key() == same.canonical_key() and same.criteria_text() == "patient=p1"


def test_lenient_include_of_unknown_parameter_is_reported():
    q = parse_search("CarePlan", [("_include", "CarePlan:colour")])
    assert q.includes == () and q.ignored == ("_include=CarePlan:colour",)


def test_empty_values_are_ignored():
    assert parse_search("Task", [("status", "")], strict=True).criteria == ()


def test_registry_covers_the_issue_list():
    wanted = {
        "Patient": {"identifier", "name", "family", "given", "birthdate", "gender"},
        "Condition": {"patient", "subject", "code", "clinical-status"},
        "Observation": {"patient", "subject", "code", "date", "value-quantity", "category"},
        "CarePlan": {"patient", "subject", "status", "instantiates-canonical", "care-team", "category"},
        "Task": {"patient", "subject", "status", "owner", "based-on", "code", "priority", "business-status",
                 "identifier", "focus", "due-date"},
        "Goal": {"patient", "lifecycle-status"},
        "CareTeam": {"patient", "participant", "status"},
        "PractitionerRole": {"role", "practitioner", "organization", "identifier"},
        "Practitioner": {"identifier", "name"},
        "Organization": {"identifier", "name"},
        "PlanDefinition": {"url", "version", "status", "name"},
        "ActivityDefinition": {"url", "version", "status", "name"},
        "Location": {"name"},
    }
    for rtype, names in wanted.items():
        assert names <= set(REGISTRY[rtype]), rtype
        assert {"_id", "_lastUpdated"} <= set(params_for(rtype))
    assert get_param("Task", "due-date").careflow_defined
    assert not get_param("Task", "status").careflow_defined
    assert set(params_for("Basic")) == {"_id", "_lastUpdated"}


def test_index_extraction():
    rows = extract_index({
        "resourceType": "Observation", "subject": {"reference": "Patient/1"}, "status": "final",
        "code": {"coding": [{"system": "l", "code": "1"}, {"system": "l", "code": "1"}]},
        "valueQuantity": {"value": 3, "unit": "kg"}, "effectivePeriod": {"start": "2024"},
        "performer": [{"reference": "#contained"}, {"reference": "urn:uuid:x"}],
    })
    assert sorted((r.param, r.system, r.code) for r in rows.token) == [
        ("code", "l", "1"), ("combo-code", "l", "1"), ("status", "", "final")]
    assert {(r.param, r.target_type, r.target_id, r.url) for r in rows.reference} == {
        ("patient", "Patient", "1", ""), ("subject", "Patient", "1", ""), ("performer", "", "", "urn:uuid:x")}
    assert rows.quantity[0].value == 3.0 and rows.quantity[0].unit == "kg"
    assert rows.date[0].low == datetime(2024, 1, 1) and rows.date[0].high.year == 9999


# --- conditional-create keys: the canonical form of the parsed criteria -------------------------

@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=0, max_value=2**32))
@settings(max_examples=300, deadline=None)
def test_every_spelling_of_a_condition_has_one_key(a, b):
    first, second = spelling(a), spelling(b)
    assert query_of(first).canonical_key() == query_of(second).canonical_key(), (first, second)


@given(st.integers(min_value=0, max_value=2**32), st.sampled_from([
    [("identifier", [f"{SSIN}|85073100124"])],  # another national number
    [("identifier", [f"{SSIN}|85073100123"]), ("family", ["Peeters"])],  # fewer criteria
    [("identifier", [f"{SSIN}|85073100123"]), ("family", ["Peeters"]), ("given", ["Jan"]), ("given", ["Piet"]),
     ("gender", ["male"])],  # fewer OR values
    [("identifier", [f"{SSIN}|85073100123"]), ("family:exact", ["Peeters"]), ("given", ["Jan"]),
     ("given", ["Piet"]), ("gender", ["male", "other"])],  # a modifier
    [("identifier", [f"{SSIN}|85073100123"]), ("family", ["Peeters"]), ("given", ["Jan,Piet"]),
     ("gender", ["male", "other"])],  # OR instead of AND
]))
@settings(max_examples=100, deadline=None)
def test_different_conditions_have_different_keys(seed, other):
    assert query_of(spelling(seed)).canonical_key() != query_of(spelling(seed, other)).canonical_key()


def test_condition_key_examples():
    key = query_of("identifier=http://x%7Ca&_count=5").canonical_key()
    assert key == query_of("identifier=http%3A%2F%2Fx|a").canonical_key()
    assert key != query_of("identifier=http://x|A").canonical_key()  # tokens are case-sensitive
    assert query_of("subject=Patient/p1", "Task").canonical_key() == query_of(
        "subject=https://example.org/fhir/Patient/p1", "Task").canonical_key()
    assert query_of("name=a\\,b").canonical_key() != query_of("name=a,b").canonical_key()
