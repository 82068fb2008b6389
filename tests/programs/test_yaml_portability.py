"""Programme files read the same in every YAML parser an author's tools use, and the loader warns
(file:line:column) about plain values that YAML 1.1 and YAML 1.2 read differently.

Parsers compared: ruamel.yaml (YAML 1.2, what careflow loads with), PyYAML (YAML 1.1, scripts and
many tools) and the npm ``yaml`` package (YAML 1.2 core schema, behind editors' YAML support; run
with node when node and npm are on the machine, installed once into the test venv, else skipped).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml as pyyaml
from ruamel.yaml import YAML

from careflow.cli import main
from careflow.programs.loader import YamlPortabilityWarning, parse_program, portability_warnings
from careflow.programs.yaml_portability import resolve_11, resolve_12

ROOT = Path(__file__).resolve().parents[2]
PROGRAMME_FILES = sorted((ROOT / "care_programs").glob("*.yaml")) + sorted((ROOT / "tests").rglob("fixtures/*.yaml"))
NODE_YAML = Path(sys.prefix) / "node-yaml"  # the npm package, installed beside the test venv on first use


def _plain(value: Any) -> Any:
    """A parse result as plain JSON-able data (ruamel's commented containers, dates as ISO text)."""
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _ruamel(text: str) -> Any:
    return _plain(YAML(typ="safe", pure=True).load(text))


def _node_yaml() -> Path:
    """node's module folder holding the npm ``yaml`` package; skips when node or npm is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: the npm yaml package cannot be run")
    if not (NODE_YAML / "node_modules" / "yaml").is_dir():
        proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(NODE_YAML), "yaml@2"],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            pytest.skip(f"npm could not install the yaml package: {proc.stderr.strip()[:200]}")
    return NODE_YAML / "node_modules"


def _npm_yaml(paths: list[Path]) -> list[Any]:
    modules = _node_yaml()
    script = ("const YAML = require('yaml'); const fs = require('fs');"
              "const out = process.argv.slice(1).map(f => YAML.parse(fs.readFileSync(f, 'utf8')));"
              "process.stdout.write(JSON.stringify(out));")
    proc = subprocess.run(["node", "-e", script, *map(str, paths)], capture_output=True, text=True, timeout=120,
                          env={"NODE_PATH": str(modules), "PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))


@pytest.mark.parametrize("path", PROGRAMME_FILES, ids=lambda p: p.name)
def test_programme_reads_the_same_in_pyyaml_and_ruamel(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert _plain(pyyaml.safe_load(text)) == _ruamel(text)
    assert portability_warnings(text, str(path)) == []


def test_programmes_read_the_same_in_the_npm_yaml_package() -> None:
    parsed = _npm_yaml(PROGRAMME_FILES)
    for path, data in zip(PROGRAMME_FILES, parsed):
        assert data == _ruamel(path.read_text(encoding="utf-8")), path.name


# Plain scalars, and whether YAML 1.1 and 1.2 read them differently (checked against PyYAML below).
SAMPLES = {
    "yes": True, "No": True, "on": True, "OFF": True, "true": False, "False": False, "y": False,
    "012": True, "0o12": True, "0x1F": False, "0b101": True, "12": False, "-7": False, "0": False,
    "1:30": True, "190:20:30": True, "1:30.5": True,
    "2026-01-31": True, "2026-01-31T06:00:00Z": True, "2026-1-31": False,
    "1e3": True, "1.0e+3": False, "1.5": False, ".5": False, "1_000": True, ".inf": False, "-.Inf": False,
    "~": False, "null": False, "P7D": False, "P3M": False, "persgeneralphysician": False, "1.0.0": False,
}


# ruamel.yaml reads these as numbers like YAML 1.1, where the 1.2 core schema (and the npm package) reads text
RUAMEL_LENIENT = {"1_000", "0b101"}


def test_the_12_resolver_agrees_with_the_npm_yaml_package(tmp_path: Path) -> None:
    sample = tmp_path / "samples.yaml"
    sample.write_text("".join(f"- {text}\n" for text in SAMPLES), encoding="utf-8")
    (read,) = _npm_yaml([sample])
    for text, value in zip(SAMPLES, read):
        expected = resolve_12(text)
        if isinstance(expected, float) and expected in (float("inf"), float("-inf")):
            continue  # JSON has no infinity (node writes null)
        kind = {bool: "bool", int: "number", float: "number", str: "text", type(None): "null"}  # JSON keeps no int/float
        assert value == expected and kind[type(value)] == kind[type(expected)], text


def test_a_question_mark_in_a_flow_value_is_flagged_because_pyyaml_cannot_read_it() -> None:
    text = "title: {en: Check weight gain (fluid build-up?), nl: Gewicht}\n"
    with pytest.raises(pyyaml.YAMLError):
        pyyaml.safe_load(text)
    assert _ruamel(text) == {"title": {"en": "Check weight gain (fluid build-up?)", "nl": "Gewicht"}}
    (warning,) = portability_warnings(text, "f.yaml")
    assert (warning.line, warning.column) == (1, 13) and "put the value in quotes" in warning.message
    assert portability_warnings('title: {en: "Check weight gain (fluid build-up?)"}\nplain: why? fine here\n') == []


@pytest.mark.parametrize("text", sorted(SAMPLES))
def test_resolvers_agree_with_pyyaml_and_ruamel(text: str) -> None:
    """The two resolvers behind the warnings are checked against the real parsers, so a warning is
    never a guess: 1.1 as PyYAML reads it, 1.2 as ruamel.yaml reads it (dates aside: ruamel keeps 1.1's)."""
    v11, v12 = resolve_11(text), resolve_12(text)
    pyyaml_value = pyyaml.safe_load(f"v: {text}")["v"]
    if isinstance(v11, tuple):
        assert isinstance(pyyaml_value, (dt.date, dt.datetime))
    elif isinstance(v11, float) and v11 != v11:
        assert pyyaml_value != pyyaml_value
    else:
        assert pyyaml_value == v11 and type(pyyaml_value) is type(v11)
    ruamel_value = YAML(typ="safe", pure=True).load(f"v: {text}")["v"]
    if not isinstance(ruamel_value, (dt.date, dt.datetime)) and text not in RUAMEL_LENIENT:
        assert ruamel_value == v12 and type(ruamel_value) is type(v12)
    differs = bool(portability_warnings(f"v: {text}\n"))
    assert differs == SAMPLES[text]


TRAPS = """\
id: trap
version: 1.0.0
flags:
  enabled: yes
  code: 0123
  duration: 1:30
  since: 2026-01-31
  quoted: "yes"
  tagged: !!str no
"""


def test_the_loader_warns_with_file_line_and_column() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parse_program(TRAPS, "trap.yaml")
        except Exception:  # the file is no valid programme either; the warnings come first
            pass
    messages = [str(w.message) for w in caught if issubclass(w.category, YamlPortabilityWarning)]
    assert [m.split(": ", 1)[0] for m in messages] == ["trap.yaml:4:12", "trap.yaml:5:9", "trap.yaml:6:13", "trap.yaml:7:10"]
    assert "boolean true in YAML 1.1" in messages[0] and "83 in YAML 1.1 (octal) but 123 in YAML 1.2" in messages[1]
    assert "90 in YAML 1.1 (base 60)" in messages[2] and "a date in YAML 1.1" in messages[3]


def test_validate_prints_the_warnings_and_still_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = (ROOT / "tests/programs/fixtures/mini-hf.yaml").read_text(encoding="utf-8")
    assert "{system: icd-10, code: I50}" in good
    changed = tmp_path / "mini.yaml"
    changed.write_text(good.replace("{system: icd-10, code: I50}", "{system: icd-10, code: I50, display: Yes}"), encoding="utf-8")
    code = main(["programs", "validate", str(changed)])
    out, err = capsys.readouterr()
    assert code == 0 and out == f"{changed}: ok\n"
    line = 1 + good[: good.index("{system: icd-10, code: I50}")].count("\n")
    assert err.startswith(f"{changed}:{line}:") and ": warning: 'Yes' is the boolean true in YAML 1.1" in err
