"""Decimals come back exactly as they were written (FHIR: the precision of a decimal is significant),
through every way out of the server, on every store; search still compares them as numbers."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from careflow.fhir.exact_json import ExactDecimal, dumps, loads

WRITTEN = ["1.50", "0.000001", "12345678901234567890.123456789", "3.14159265358979323846", "1e-7", "-2.0E+3", "100",
           "0.0", "123456789012345678901234"]


def _observation(value: str, pid: str = "dec-p") -> str:
    return ('{"resourceType":"Observation","status":"final","code":{"text":"weight"},'
            f'"subject":{{"reference":"Patient/{pid}"}},"valueQuantity":{{"value":{value},"unit":"kg"}}}}')


def _has(text: str, value: str) -> bool:
    return f'"value":{value}' in text.replace(" ", "")


@pytest.mark.parametrize("value", WRITTEN)
def test_a_decimal_comes_back_with_its_own_digits_everywhere(client, value):
    client.put("/fhir/Patient/dec-p", json={"resourceType": "Patient", "id": "dec-p"})
    made = client.post("/fhir/Observation", content=_observation(value))
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    answers = {
        "create": made.text,
        "read": client.get(f"/fhir/Observation/{rid}").text,
        "vread": client.get(f"/fhir/Observation/{rid}/_history/1").text,
        "search": client.get(f"/fhir/Observation?_id={rid}").text,
        "history": client.get(f"/fhir/Observation/{rid}/_history").text,
        "system history": client.get("/fhir/_history").text,
        "everything": client.get("/fhir/Patient/dec-p/$everything").text,
        "pretty": client.get(f"/fhir/Observation/{rid}", params={"_pretty": "true"}).text,
        "include": client.get("/fhir/Patient?_id=dec-p&_revinclude=Observation:subject").text,
    }
    for where, text in answers.items():
        assert _has(text, value), (where, text[:400])
        json.loads(text)  # still valid JSON


def test_transactions_and_updates_keep_the_digits(client):
    bundle = ('{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Observation/dec-t"},'
              '"resource":' + _observation("2.50").replace('{"resourceType":"Observation",', '{"resourceType":"Observation","id":"dec-t",') + '}]}')
    r = client.post("/fhir", content=bundle)
    assert r.status_code == 200, r.text
    assert _has(client.get("/fhir/Observation/dec-t").text, "2.50")
    again = client.put("/fhir/Observation/dec-t", content=_observation("2.500").replace('{"resourceType":"Observation",', '{"resourceType":"Observation","id":"dec-t",'))
    assert again.status_code == 200
    assert _has(client.get("/fhir/Observation/dec-t").text, "2.500")
    assert _has(client.get("/fhir/Observation/dec-t/_history/1").text, "2.50")


def test_search_compares_decimals_as_numbers_with_the_precision_of_the_query(client):
    for value in ("1.50", "0.000001", "1e-7", "81.5"):
        assert client.post("/fhir/Observation", content=_observation(value)).status_code == 201
    total = lambda q: client.get("/fhir/Observation", params={"value-quantity": q}).json()["total"]  # noqa: E731
    assert total("1.5") == 1      # [1.45, 1.55) holds 1.50
    assert total("lt0.00001") == 2
    assert total("gt80") == 1
    assert total("81.5") == 1 and total("81.50") == 1


@given(st.decimals(allow_nan=False, allow_infinity=False).map(str))
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_written_decimal_round_trips_through_the_codec(text):
    try:
        float(text)
        json.loads(text)
    except ValueError:
        return  # not a JSON number (e.g. "1E+1" is one, "Infinity" is not)
    doc = loads(f'{{"v":{text},"a":[{text}]}}')
    assert dumps(doc) == f'{{"v":{text},"a":[{text}]}}'.encode()
    assert isinstance(doc["v"], (int, ExactDecimal))
