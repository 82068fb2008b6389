"""Fuzzing: no input, however malformed, makes the server answer 5xx.

Two generators, both bounded in the default run (a few hundred requests, well under a minute);
``-m fuzz`` is the long run: every operation of every type, and the FHIR-shaped strategies,
``CAREFLOW_FUZZ_EXAMPLES`` cases each (``CAREFLOW_FUZZ_EXAMPLES=1000 ./dev test -m fuzz -n 2``):
* schemathesis over the app's own OpenAPI document (every route, random path segments, random
  JSON bodies, random headers it knows about);
* hand-written hypothesis strategies for FHIR-shaped abuse the OpenAPI cannot describe: valid
  resources with one element mutated, hostile search strings, Bundles with broken entries, odd headers.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from careflow.api.app import create_app
from careflow.auth.local import LocalIssuer
from careflow.auth.tokens import TokenVerifier
from careflow.store.memory import MemoryRepository

ISSUER = LocalIssuer(Path(tempfile.mkdtemp(prefix="careflow-fuzz-")) / "keys.json")
TOKEN = {"Authorization": "Bearer " + ISSUER.mint({"sub": "fuzz", "scope": "system/*.cruds"}, minutes=600)}
APP = create_app(MemoryRepository(), auth=TokenVerifier([ISSUER.trusted()]))
CLIENT = TestClient(APP, raise_server_exceptions=False)
CLIENT.headers.update(TOKEN)
ANONYMOUS = TestClient(APP, raise_server_exceptions=False)
CLIENT.put("/fhir/Patient/known", json={"resourceType": "Patient", "id": "known"},
           headers={"Content-Type": "application/fhir+json"})

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# random generation only: the coverage phase's exhaustive edge cases over ~30 search parameters per
# type take minutes per route
schema.config.phases.update(phases=["examples", "fuzzing"])
# the default suite fuzzes the system routes and the Task routes (every route of every type is the
# same code with another registry row); the slow run below covers all of them
CORE = schema.include(path_regex=r"^/fhir(/(metadata|_history|Task)(/.*)?)?$")

# the long run (-m fuzz) of the FHIR-shaped strategies: not derandomised, so each one explores anew
_LONG_SHAPED = settings(max_examples=int(os.environ.get("CAREFLOW_FUZZ_EXAMPLES", "200")), deadline=None,
                        suppress_health_check=list(HealthCheck))
FAST = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
LONG = settings(max_examples=int(os.environ.get("CAREFLOW_FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=list(HealthCheck), derandomize=True)
# no 5xx, and every answer is what the document says: documented status, FHIR media type, body schema
CONFORMS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
            response_headers_conformance]


@CORE.parametrize()
@FAST
def test_openapi_fuzz_finds_no_server_error(case):
    response = case.call(headers=TOKEN)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    case.validate_response(response, checks=CONFORMS)


@pytest.mark.fuzz
@schema.parametrize()
@LONG
def test_openapi_fuzz_every_operation(case):
    case.validate_response(case.call(headers=TOKEN), checks=CONFORMS)


@CORE.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_openapi_fuzz_without_a_token_is_refused_or_public(case):
    response = case.call()
    public = case.formatted_path in ("/fhir/metadata", "/.well-known/smart-configuration",
                                     "/fhir/.well-known/smart-configuration")
    assert response.status_code < 500
    assert public or response.status_code == 401, f"{case.method} {case.formatted_path}: {response.status_code}"


# ------------------------------------------------------------------------ FHIR-shaped strategies

TYPES = st.sampled_from(["Patient", "Task", "CarePlan", "Observation", "Condition", "Goal", "CareTeam",
                         "PractitionerRole", "Bundle", "Foo", "", "patient", "Patient%2F1"])
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=20))
JSON = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                    max_leaves=20)
VALID = {
    "Patient": {"resourceType": "Patient", "name": [{"family": "X", "given": ["Y"]}], "birthDate": "1950-01-01"},
    "Task": {"resourceType": "Task", "status": "requested", "intent": "order", "for": {"reference": "Patient/known"},
             "owner": {"reference": "PractitionerRole/r"}},
    "Observation": {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                    "valueQuantity": {"value": 80, "unit": "kg"}},
}


@st.composite
def mutated_resource(draw: st.DrawFn) -> dict[str, Any]:
    base = json.loads(json.dumps(draw(st.sampled_from(list(VALID.values())))))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*base.keys(), "id", "meta", "contained", "extension", "text", "_birthDate"]))
        base[key] = draw(JSON)
    return base


SEARCH_VALUES = st.text(alphabet=st.sampled_from(list("abc|,:$\\/.-_=&?% eqglt0123456789TZ+é\x00")), max_size=25)
PARAM_NAMES = st.sampled_from(["_id", "_lastUpdated", "name", "birthdate", "owner", "status", "patient", "subject",
                               "_count", "_offset", "_sort", "_include", "_revinclude", "_summary", "_total",
                               "_elements", "identifier", "code", "value-quantity", "patient.name", "subject:Patient.name",
                               "owner:missing", "name:exact", "date", "based-on", "_format", "x"])
HEADERS = st.dictionaries(
    st.sampled_from(["If-Match", "If-None-Exist", "If-None-Match", "Prefer", "Accept", "Content-Type"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    max_size=3,
)


def _writes_never_5xx(rtype, body, method, rid, headers):
    if isinstance(body, dict) and method == "PUT" and rid and "id" not in body:
        body = {**body, "id": rid}
    url = f"/fhir/{rtype}" + (f"/{rid}" if method == "PUT" else "")
    send = {"Content-Type": "application/fhir+json", **headers}
    r = CLIENT.request(method, url, content=json.dumps(body), headers=send)
    assert r.status_code < 500, (method, url, headers, r.text[:300])
    assert r.status_code in (200, 201, 204) or r.json()["resourceType"] == "OperationOutcome"


@given(rtype=TYPES, body=st.one_of(mutated_resource(), JSON), method=st.sampled_from(["POST", "PUT"]),
       rid=st.sampled_from(["known", "new-1", "", "a" * 70]), headers=HEADERS)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_writes_never_5xx(rtype, body, method, rid, headers):
    _writes_never_5xx(rtype, body, method, rid, headers)


@pytest.mark.fuzz
@given(rtype=TYPES, body=st.one_of(mutated_resource(), JSON), method=st.sampled_from(["POST", "PUT"]),
       rid=st.sampled_from(["known", "new-1", "", "a" * 70]), headers=HEADERS)
@_LONG_SHAPED
def test_long_writes_never_5xx(rtype, body, method, rid, headers):
    _writes_never_5xx(rtype, body, method, rid, headers)


def _searches_never_5xx(rtype, params, headers):
    r = CLIENT.get(f"/fhir/{rtype}", params=params, headers=headers)
    assert r.status_code < 500, (rtype, params, r.text[:300])


@given(rtype=TYPES, params=st.lists(st.tuples(PARAM_NAMES, SEARCH_VALUES), max_size=4), headers=HEADERS)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_searches_never_5xx(rtype, params, headers):
    _searches_never_5xx(rtype, params, headers)


@pytest.mark.fuzz
@given(rtype=TYPES, params=st.lists(st.tuples(PARAM_NAMES, SEARCH_VALUES), max_size=4), headers=HEADERS)
@_LONG_SHAPED
def test_long_searches_never_5xx(rtype, params, headers):
    _searches_never_5xx(rtype, params, headers)


ENTRY = st.fixed_dictionaries({}, optional={
    "fullUrl": st.one_of(st.just("urn:uuid:0f0e0d0c-0b0a-4900-8800-000000000001"), st.text(max_size=10), JSON_LEAF),
    "resource": st.one_of(mutated_resource(), JSON),
    "request": st.one_of(JSON, st.fixed_dictionaries({
        "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "get", "BREW"]),
        "url": st.one_of(st.sampled_from(["Patient", "Patient/known", "Task?status=requested", "Patient/known/_history/1",
                                          "metadata", "_history", "Foo/1", "http://elsewhere/fhir/Patient",
                                          "Patient/known/$everything", "Patient?identifier=urn:uuid:0f0e0d0c-0b0a-4900-8800-000000000001"]),
                         st.text(max_size=20)),
    }, optional={"ifMatch": st.one_of(st.text(max_size=8), JSON_LEAF), "ifNoneExist": st.one_of(SEARCH_VALUES, JSON_LEAF)})),
})


def _bundles_never_5xx(kind, entries):
    bundle: dict[str, Any] = {"resourceType": "Bundle", "entry": entries}
    if kind:
        bundle["type"] = kind
    r = CLIENT.post("/fhir", json=bundle, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code < 500, (bundle, r.text[:300])
    if kind == "batch" and r.status_code == 200:
        assert all(e["response"]["status"][:1] != "5" for e in r.json()["entry"]), r.text[:500]


@given(kind=st.sampled_from(["transaction", "batch", "collection", None]), entries=st.lists(ENTRY, max_size=4))
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_bundles_never_5xx(kind, entries):
    _bundles_never_5xx(kind, entries)


@pytest.mark.fuzz
@given(kind=st.sampled_from(["transaction", "batch", "collection", None]), entries=st.lists(ENTRY, max_size=4))
@_LONG_SHAPED
def test_long_bundles_never_5xx(kind, entries):
    _bundles_never_5xx(kind, entries)
