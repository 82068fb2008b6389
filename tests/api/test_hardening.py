"""Never a 500, never a hang: each request here was a 500 (or a wrong answer) once.

The work one request may cause is bounded (parameters, values per parameter, offsets, list lengths,
nesting), each bound refused with a 4xx OperationOutcome that names it; HEAD, PATCH, ``_pretty`` and
type-level operations answer as HTTP and FHIR say.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from careflow.fhir.search_query import MAX_OFFSET, MAX_PARAMS, MAX_VALUES

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _outcome(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    diagnostics = " ".join(i.get("diagnostics", "") for i in body["issue"])
    for word in words:
        assert word in diagnostics, diagnostics
    return diagnostics


@pytest.fixture
def patient(client):
    r = client.put("/fhir/Patient/hard-1", json={"resourceType": "Patient", "id": "hard-1", "name": [{"family": "Peeters"}]})
    assert r.status_code in (200, 201)
    return "hard-1"


def test_too_many_values_parameters_or_form_fields_are_refused_with_the_limit(client, patient):
    _outcome(client.get("/fhir/Patient?name=" + ",".join(f"v{i}" for i in range(1000))), 400, str(MAX_VALUES))
    _outcome(client.get("/fhir/Patient?" + "&".join(f"name=v{i}" for i in range(1000))), 400, str(MAX_PARAMS))
    _outcome(client.get("/fhir/Patient?" + "&".join(f"_id=v{i}" for i in range(1000))), 400, str(MAX_PARAMS))
    form = "&".join(f"name=v{i}" for i in range(5000))
    _outcome(client.post("/fhir/Patient/_search", content=form, headers=FORM), 400, str(MAX_PARAMS))
    # at the limits themselves the search runs
    ok = client.get("/fhir/Patient?name=" + ",".join(["Peeters", *(f"v{i}" for i in range(MAX_VALUES - 1))]))
    assert ok.status_code == 200 and ok.json()["total"] == 1
    ok = client.get("/fhir/Patient?" + "&".join(["name=Peeters"] * (MAX_PARAMS - 1)))
    assert ok.status_code == 200 and ok.json()["total"] == 1


@pytest.mark.parametrize("url", ["/fhir/Patient?_offset={}", "/fhir/_history?_offset={}", "/fhir/Patient/_history?_offset={}",
                                 "/fhir/Patient/hard-1/$everything?_offset={}"])
def test_offsets_beyond_any_count_are_refused(client, patient, url):
    _outcome(client.get(url.format(9223372036854775808)), 400, "_offset", str(MAX_OFFSET))
    _outcome(client.get(url.format("²")), 400, "_offset")  # a digit to str.isdigit, not to int()
    assert client.get(url.format(MAX_OFFSET)).status_code == 200


def test_edges_of_the_calendar_are_answers_not_errors(client, patient):
    r = client.get("/fhir/_history", params={"_since": "0001-01-01T00:00:00+14:00"})
    assert r.status_code == 200 and r.json()["total"] >= 1  # as early as anything can be
    r = client.get("/fhir/Patient/_history", params={"_since": "9999-12-31T23:59:59-14:00"})
    assert r.status_code == 200 and r.json()["total"] == 0
    r = client.get("/fhir/Patient", params={"_lastUpdated": "ge0001-01-01T00:00:00+14:00"})
    assert r.status_code < 500, r.text


def test_a_nul_in_a_search_is_refused_on_every_store(client, patient):
    _outcome(client.get("/fhir/Patient", params={"name": "Pee\x00ters"}), 400, "NUL")
    _outcome(client.get("/fhir/Patient", params={"na\x00me": "x"}), 400, "NUL")
    _outcome(client.get("/fhir/_history", params={"_since": "2020\x00"}), 400, "NUL")


def test_huge_lists_and_deep_nesting_are_refused_before_validation(client):
    many = {"resourceType": "Patient", "name": [{"family": "x"}] * 300_000}
    _outcome(client.post("/fhir/Patient", content=json.dumps(many)), 413, "name", "300000", "10000")
    deep: dict = {"valueString": "x"}
    for _ in range(100):
        deep = {"extension": [{"url": "http://example.org/x", **deep}]}
    _outcome(client.post("/fhir/Patient", content=json.dumps({"resourceType": "Patient", **deep})), 400, "nested")
    bundle = {"resourceType": "Bundle", "type": "batch",
              "entry": [{"request": {"method": "GET", "url": "metadata"}}] * 10_001}
    _outcome(client.post("/fhir", content=json.dumps(bundle)), 413, "entry")


def test_head_is_the_get_without_its_body(client, patient):
    for url in (f"/fhir/Patient/{patient}", "/fhir/Patient?name=Peeters", "/fhir/metadata", f"/fhir/Patient/{patient}?_pretty=true"):
        get, head = client.get(url), client.head(url)
        assert head.status_code == get.status_code == 200, url
        assert head.content == b""
        assert head.headers["content-length"] == str(len(get.content)), url
        assert head.headers.get("etag") == get.headers.get("etag")
    assert client.head("/fhir/Patient/nobody").status_code == 404


def test_patch_is_refused_with_the_methods_that_are_allowed(client, patient):
    r = client.patch(f"/fhir/Patient/{patient}", content="[]", headers={"Content-Type": "application/json-patch+json"})
    _outcome(r, 405)
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "PUT", "DELETE"}
    r = client.patch("/fhir/Patient", content="[]")
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST", "PUT", "DELETE"}
    assert "PUT" not in client.put("/fhir/AuditEvent/x", json={"resourceType": "AuditEvent", "id": "x"}).headers["allow"]


def test_type_level_everything_is_a_clear_400_and_the_connection_lives_on(client, patient):
    _outcome(client.get("/fhir/Patient/$everything"), 400, "instance operation", "Patient/[id]/$everything")
    assert client.get(f"/fhir/Patient/{patient}").status_code == 200


def test_pretty_indents_without_changing_a_digit(client):
    obs = '{"resourceType":"Observation","status":"final","code":{"text":"w"},"valueQuantity":{"value":81.5,"unit":"kg"}}'
    made = client.post("/fhir/Observation", content=obs)
    assert made.status_code == 201
    url = f"/fhir/Observation/{made.json()['id']}"
    plain, pretty = client.get(url), client.get(url, params={"_pretty": "true"})
    assert "\n  \"resourceType\": \"Observation\"" in pretty.text
    assert pretty.json() == plain.json()
    assert client.get(url, params={"_pretty": "false"}).content == plain.content
    err = client.get("/fhir/Nope", params={"_pretty": "true"})
    assert err.status_code in (400, 404) and "\n  " in err.text


def test_a_failed_statement_never_carries_its_values(tmp_path):
    """SQLAlchemy puts bound values into its error text (and so into every log of it) unless told not to."""
    from careflow.store.database import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(SQLAlchemyError) as failure, engine.connect() as conn:
        conn.execute(text("INSERT INTO no_such_table VALUES (:v)"), {"v": "ssin-85073003328"})
    assert "85073003328" not in str(failure.value)
    engine.dispose()


def test_a_500_tells_neither_the_log_nor_the_client_what_the_request_carried(caplog, monkeypatch):
    """A store failure's message may carry the values it was given (a database error quoting a row);
    the log line names the exception class, method, type and request id only."""
    from fastapi.testclient import TestClient

    from careflow.access.principal import SYSTEM
    from careflow.api.app import create_app
    from careflow.api.security import TrustEveryone
    from careflow.store.memory import MemoryUnitOfWork

    def broken(self, query):
        raise RuntimeError(f"statement failed for {query.raw}")

    monkeypatch.setattr(MemoryUnitOfWork, "search", broken)
    from careflow.store.memory import MemoryRepository

    client = TestClient(create_app(MemoryRepository(), auth=TrustEveryone(SYSTEM)), raise_server_exceptions=False)
    with caplog.at_level("DEBUG"):
        r = client.get("/fhir/Patient", params={"family": "Canaryvanderberg", "identifier": "urn:ssin|85073003328"},
                       headers={"X-Request-ID": "req-42"})
    assert r.status_code == 500 and r.json()["resourceType"] == "OperationOutcome"
    server = [rec for rec in caplog.records if not rec.name.startswith("httpx")]  # not the test client's own log
    logged = "\n".join(rec.getMessage() + (str(rec.exc_info[1]) if rec.exc_info else "") for rec in server)
    assert "RuntimeError" in logged and "Patient" in logged and "req-42" in logged
    for secret in ("Canaryvanderberg", "85073003328"):
        assert secret not in logged and secret not in r.text
