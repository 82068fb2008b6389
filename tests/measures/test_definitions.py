"""The indicator files: every shipped file loads, the published schema is current, and a broken
file is reported at file:line:column with every problem at once."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from careflow.errors import MeasureSetError
from careflow.measures.loader import load_measure_sets, load_measures, parse_measures
from careflow.measures.model import Window
from careflow.measures.period import parse_period, window_since
from careflow.measures.schema import render

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "measures" / "copd.yaml").read_text(encoding="utf-8")


def test_the_shipped_files_load_and_match_the_published_schema() -> None:
    assert (ROOT / "measures" / "schema.json").read_text(encoding="utf-8") == render()
    schema = json.loads(render())
    for f in sorted((ROOT / "measures").glob("*.yaml")):
        jsonschema.validate(YAML(typ="safe").load(f.read_text(encoding="utf-8")), schema)
    ids = [m.id for m in load_measures()]
    assert len(ids) == len(set(ids)) == 11 + 3 * 10  # 11 programme indicators, 3 per discipline x 10 disciplines
    assert {m.version for m in load_measures()} == {"2026.1"}
    assert [s.id for s in load_measure_sets([ROOT / "measures"])] == ["copd", "diabetes", "heart-failure", "tasks"]


def test_every_problem_at_file_line_column() -> None:
    bad = GOOD.replace("within: P12M}", "within: 12 months}", 1).replace("season_opens: 10-01", "season_opens: 13-01")
    bad = bad.replace("  - id: copd-inhaler-12m", "  - id: copd-spirometry-12m")
    with pytest.raises(MeasureSetError) as err:
        parse_measures(bad, "copd.yaml")
    text = str(err.value)
    lines = {p.line for p in err.value.problems}
    assert "copd.yaml:" in text and len(err.value.problems) == 3, text
    assert any("not a day of the year" in p.message for p in err.value.problems)
    assert any("duplicate indicator id 'copd-spirometry-12m'" in p.message for p in err.value.problems)
    assert min(lines) > 10  # at the offending lines, not the top of the file


def test_kinds_do_not_mix() -> None:
    tasky = GOOD.replace("- task_done: {label: influenza", "- task: {done_on_time: true}\n      - task_done: {label: influenza")
    with pytest.raises(MeasureSetError, match="task criterion applies to Task indicators only"):
        parse_measures(tasky, "copd.yaml")
    typo = GOOD.replace("- observation: {label: FEV1", "- obsevation: {label: FEV1")
    with pytest.raises(MeasureSetError, match=r"copd.yaml:\d+:\d+: .*not a criterion.*did you mean 'observation'"):
        parse_measures(typo, "copd.yaml")


@pytest.mark.parametrize("window, period, since", [
    ({"within": "P14D"}, "2026-03", "2026-03-17"),
    ({"within": "P6M"}, "2026-03", "2025-09-30"),
    ({"within": "P12M"}, "2026", "2025-12-31"),
    ({"season_opens": "10-01"}, "2026-03", "2025-10-01"),
    ({"season_opens": "10-01"}, "2026-10", "2026-10-01"),
    ({"season_opens": "10-01"}, "2026-09", "2025-10-01"),
])
def test_windows_read_back_from_the_period_end(window: dict[str, str], period: str, since: str) -> None:
    assert window_since(Window(**window), parse_period(period)).date().isoformat() == since


def test_periods() -> None:
    assert (parse_period("2028-02").end.isoformat(), parse_period("2026").end.isoformat()) == ("2028-02-29", "2026-12-31")
    for bad in ("2026-13", "26", "2026-3", "march"):
        with pytest.raises(Exception, match="not a period"):
            parse_period(bad)
