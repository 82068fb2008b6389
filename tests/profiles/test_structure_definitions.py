"""Each file in fhir_profiles/ is a valid R4 StructureDefinition that says truthfully what it derives from."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.structuredefinition import StructureDefinition

from careflow import naming
from careflow.fhir import profiles
from careflow.fhir.r4_schema import definitions, r4_errors

FOLDER = Path(__file__).resolve().parents[2] / "fhir_profiles"
FILES = sorted(FOLDER.glob("*.json"))
CORE = "http://hl7.org/fhir/StructureDefinition/"
NAMED = {v for k, v in vars(naming).items() if k.startswith(("PROFILE_", "EXT_"))}
OURS = {u for u in NAMED if u.startswith(naming.BASE)}  # EXT_TRANSLATION is HL7's, not ours


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_profiles_and_extensions_match_naming() -> None:
    defined = {_load(p)["url"] for p in FILES}
    assert OURS - defined == set(), "an extension or profile careflow uses has no StructureDefinition"
    assert defined <= NAMED, "every definition's url is spelled once, in careflow.naming"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_is_a_valid_r4_structure_definition(path: Path) -> None:
    sd = _load(path)
    StructureDefinition.model_validate(sd)
    assert r4_errors(sd) == []
    assert sd["fhirVersion"] == "4.0.1" and sd["derivation"] == "constraint"
    assert sd["id"] == sd["url"].rsplit("/", 1)[1]
    assert path.stem in (sd["id"], f"extension-{sd['id']}")


def _schema_has_path(path: str) -> bool:
    """Does an element path exist in R4? Walks the JSON Schema's definitions, through datatypes and backbones."""
    defs = definitions()
    steps = path.split(".")
    current = steps[0]
    for step in steps[1:]:
        props = defs[current]["properties"]
        if step.endswith("[x]"):
            options = [k for k in props if k.startswith(step[:-3]) and k[len(step) - 3 :][:1].isupper()]
            if not options:
                return False
            target = props[options[0]]
        elif step in props:
            target = props[step]
        else:
            return False
        ref = target.get("$ref") or target.get("items", {}).get("$ref")
        current = ref.rsplit("/", 1)[1] if ref else current
    return True


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_differential_is_well_formed(path: Path) -> None:
    sd = _load(path)
    elements = sd["differential"]["element"]
    assert elements[0]["id"] == sd["type"], "the root element comes first"
    for e in elements:
        assert e["path"] == re.sub(r":[^.]+", "", e["id"]), e["id"]
        assert e["path"].split(".")[0] == sd["type"]  # sdf-8a
        assert _schema_has_path(e["path"]), f"{e['path']} is not an R4 element"
        if "sliceName" in e:
            assert re.fullmatch(r"[a-zA-Z0-9/\-_\[\]@]+", e["sliceName"])  # eld-16
            assert e["id"].endswith(f":{e['sliceName']}")
        if "min" in e and e.get("max", "*") != "*":
            assert e["min"] <= int(e["max"]), e["id"]  # eld-2
        assert not (any(k.startswith("fixed") for k in e) and any(k.startswith("pattern") for k in e))  # eld-8


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_base_is_the_belgian_or_the_core_definition_of_the_same_type(path: Path) -> None:
    sd = _load(path)
    base = sd["baseDefinition"]
    assert base == CORE + sd["type"] or profiles.EXTERNAL_PROFILE_TYPES.get(base) == sd["type"]


def test_resource_profiles_derive_from_hl7_belgium_where_careflow_conforms() -> None:
    bases = {sd["type"]: sd["baseDefinition"] for sd in map(_load, FILES) if sd["kind"] == "resource"}
    assert bases == {
        "CarePlan": naming.BE_PROFILE_CAREPLAN,
        "Goal": naming.BE_PROFILE_GOAL,
        "CareTeam": naming.BE_PROFILE_CARETEAM,
        "Task": CORE + "Task",
    }


def test_task_profile_says_why_it_is_not_based_on_betask() -> None:
    task = _load(FOLDER / "careflow-task.json")
    assert "candidateList" in task["description"] and "NOT" in task["description"]
    assert "candidateList" in task["differential"]["element"][0]["comment"]


def test_extensions_declare_their_context_and_a_value_or_parts() -> None:
    for sd in map(_load, FILES):
        if sd["type"] != "Extension":
            continue
        assert sd["kind"] == "complex-type" and sd["context"]
        by_id = {e["id"]: e for e in sd["differential"]["element"]}
        assert by_id["Extension.url"]["fixedUri"] == sd["url"]
        value = by_id["Extension.value[x]"]
        if value.get("max") == "0":  # complex: closed sub-extensions, each with a fixed url and one value type
            assert by_id["Extension.extension"]["slicing"]["rules"] == "closed"
            parts = [e for e in by_id.values() if "sliceName" in e]
            assert parts, sd["id"]
            for part in parts:
                assert by_id[f"{part['id']}.url"]["fixedUri"] == part["sliceName"]
                assert len(by_id[f"{part['id']}.value[x]"]["type"]) == 1
        else:
            assert len(value["type"]) == 1 and value["min"] == 1
            assert by_id["Extension.extension"]["max"] == "0"


def test_readme_lists_every_profile() -> None:
    readme = (FOLDER / "README.md").read_text(encoding="utf-8")
    for sd in map(_load, FILES):
        assert sd["id"] in readme, sd["id"]
