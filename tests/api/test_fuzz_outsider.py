"""Fuzzing as another care team: a nurse of another organisation, with a real bearer token, learns
nothing about a patient she does not care for, whatever she sends.

Differential, like ``test_leak_proof`` but with schemathesis generating the requests over the
OpenAPI document: every generated read (search, read, vread, history, ``_search``) goes to two
servers, one whose store holds the hidden patient's whole record and one whose store does not, and
the answers must be the same (status and body, once the Bundle's own id and timestamps are set
aside). Path ids are now and then swapped for the hidden patient's ids, so the probes aim at what
must stay hidden instead of at random strings. Writes go to the server holding the patient and must
answer below 500 without naming the patient.
"""

from __future__ import annotations

import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import orjson
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from access_world import directory, load, patient_resources  # noqa: E402

from careflow.access.principal import SYSTEM  # noqa: E402
from careflow.api.app import create_app  # noqa: E402
from careflow.auth.local import LocalIssuer  # noqa: E402
from careflow.auth.tokens import TokenVerifier  # noqa: E402
from careflow.naming import CARE_ROLE_SYSTEM  # noqa: E402
from careflow.store.memory import MemoryRepository  # noqa: E402

HIDDEN = "hid"
HIDDEN_IDS = {"Patient": HIDDEN, "Task": f"task-{HIDDEN}", "CarePlan": f"cp-{HIDDEN}", "CareTeam": f"ct-{HIDDEN}",
              "Observation": f"weight-{HIDDEN}", "Consent": f"consent-{HIDDEN}"}
# what would give the hidden patient away in an answer to a request that did not name it
CANARIES = (f"Fam{HIDDEN}", f"ssin-{HIDDEN}", f"Patient/{HIDDEN}\"", f"lab-{HIDDEN}", f"egfr-{HIDDEN}")

ISSUER = LocalIssuer(Path(tempfile.mkdtemp(prefix="careflow-fuzz-outsider-")) / "keys.json")
OUTSIDER_TOKEN = {"Authorization": "Bearer " + ISSUER.mint(
    {"sub": "out1", "fhirUser": "PractitionerRole/out1", "scope": "openid fhirUser user/*.cruds"}, minutes=600)}
JSON = {"Accept": "application/fhir+json"}


def _server(with_hidden: bool) -> TestClient:
    repo = MemoryRepository()
    own = patient_resources("p2")  # the outsider's own patient, so she does see something
    for r in own:
        if r["resourceType"] == "CareTeam":
            r["participant"] = [{"member": {"reference": "PractitionerRole/out1"}}]
    outsider = {"resourceType": "PractitionerRole", "id": "out1", "active": True,
                "organization": {"reference": "Organization/org-2"}, "practitioner": {"reference": "Practitioner/out1-p"},
                "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": "home-nurse"}]}]}
    load(repo, [*directory(), outsider, *patient_resources("p1"), *own])
    if with_hidden:
        hidden = patient_resources(HIDDEN)  # consented, but to her own team: the outsider is on none of it
        hidden[0]["generalPractitioner"] = [{"reference": "PractitionerRole/gp1"}]
        load(repo, hidden)
    app = create_app(repo, auth=TokenVerifier([ISSUER.trusted()]))
    client = TestClient(app, raise_server_exceptions=False)
    client.headers.update({**JSON, **OUTSIDER_TOKEN})
    return client


WITHOUT, WITH = _server(False), _server(True)
WRITER = _server(True)  # writes go to their own copy, so the reads compare two untouched stores
TYPES = "Patient|Observation|CarePlan|Task|CareTeam|Consent|Condition|Goal"
schema = schemathesis.openapi.from_asgi("/openapi.json", WITH.app)
schema.config.phases.update(phases=["examples", "fuzzing"])
READS = schema.include(path_regex=rf"^/fhir(/(_history|({TYPES})(/.*)?))?$", method=["GET"])
SEARCH_POSTS = schema.include(path_regex=rf"^/fhir/({TYPES})/_search$")
WRITES = schema.include(path_regex=rf"^/fhir(/({TYPES})(/[^$]*)?)?$", method=["POST", "PUT", "DELETE"])
FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _aimed(url: str) -> str:
    """Every other generated URL that names a resource names one of the hidden patient's instead."""
    parts = url.split("?", 1)
    segments = parts[0].split("/")  # http:, "", testserver, fhir, Type, id, ...
    if len(segments) > 5 and segments[4] in HIDDEN_IDS and zlib.crc32(segments[5].encode()) % 2 == 0:
        segments[5] = HIDDEN_IDS[segments[4]]
        if len(segments) > 7 and segments[6] == "_history":
            segments[7] = "1"
    return "?".join(["/".join(segments), *parts[1:]])


def _send(client: TestClient, case: Any) -> Any:
    kw = case.as_transport_kwargs(base_url="http://testserver")
    headers = {k: v for k, v in (kw.get("headers") or {}).items() if k.lower() != "authorization"}
    return client.request(kw["method"], _aimed(kw["url"]), params=kw.get("params"), headers=headers,
                          content=kw.get("data") if isinstance(kw.get("data"), (bytes, str)) else None,
                          data=kw.get("data") if isinstance(kw.get("data"), dict) else None,
                          json=kw.get("json"))


def _normalised(response: Any) -> Any:
    body = response.content
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return body

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("resourceType") == "Bundle":
                node = {k: v for k, v in node.items() if k not in ("id", "timestamp")}
            return {k: strip(v) for k, v in node.items() if k not in ("lastUpdated", "lastModified")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    return response.status_code, strip(doc)


def _differential(case: Any) -> None:
    without, with_hidden = _send(WITHOUT, case), _send(WITH, case)
    where = f"{case.method} {case.formatted_path} {case.query}"
    assert with_hidden.status_code < 500 and without.status_code < 500, where
    assert _normalised(with_hidden) == _normalised(without), where


@READS.parametrize()
@FUZZ
def test_generated_reads_as_another_team_are_as_if_the_patient_were_absent(case):
    _differential(case)


@SEARCH_POSTS.parametrize()
@FUZZ
def test_generated_form_searches_as_another_team_are_as_if_the_patient_were_absent(case):
    _differential(case)


@WRITES.parametrize()
@FUZZ
def test_generated_writes_as_another_team_never_fail_and_never_name_the_patient(case):
    response = _send(WRITER, case)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
    for canary in CANARIES:
        assert canary not in response.text, (case.method, case.formatted_path, canary)


def test_the_hidden_patient_is_really_there_and_really_hidden():
    """The differential means something only if the outsider is refused what the store holds."""
    assert WITH.get(f"/fhir/Patient/{HIDDEN}").status_code == 404
    assert WITHOUT.get(f"/fhir/Patient/{HIDDEN}").status_code == 404
    with WITH.app.state.careflow.repository.unit_of_work(SYSTEM) as uow:  # the engine sees it
        assert uow.read("Patient", HIDDEN).resource["name"][0]["family"] == f"Fam{HIDDEN}"
    mine = WITH.get("/fhir/Patient").json()  # the token is accepted, and her own patient is there
    assert [e["resource"]["id"] for e in mine["entry"]] == ["p2"]
