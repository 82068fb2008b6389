"""``careflow measures`` as a user runs it: the Prefect flow (one task per indicator set) stores the
summaries, a rerun over the closed period writes nothing and recomputes nobody, ``--json`` is one
object, and bad input one readable line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flow_helpers import all_resources, run_careflow, subprocess_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measures.world import load  # noqa: E402


def _store(tmp_path: Path) -> str:
    from careflow.store.database import open_repository

    url = f"sqlite:///{tmp_path / 'measures.db'}"
    repo = open_repository(url)
    try:
        load(repo)
    finally:
        repo.close()
    return url


def _ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_measures_flow_and_table(tmp_path, prefect_api):
    db = _store(tmp_path)
    env = subprocess_env(prefect_api)
    args = ["measures", "--db", db, "--period", "2026-03", "--today", "2026-04-02"]
    first = json.loads(_ok(run_careflow([*args, "--json"], env)))
    assert (first["period"], first["status"]) == ("2026-03", "complete")
    assert [s["set"] for s in first["sets"]] == ["copd", "diabetes", "heart-failure", "tasks"]
    assert first["measures"]["dm-hba1c-6m"] == {"initial-population": 6, "denominator": 6, "denominator-exclusion": 3,
                                               "numerator": 2, "score": round(2 / 3, 6)}
    assert first["reports-written"] == 41
    reports = {r["id"]: r for r in all_resources(db, "MeasureReport")}
    assert len(reports) == 41 and reports["hf-weight-14d-2026-03"]["status"] == "complete"
    table = _ok(run_careflow(args, env)).splitlines()
    assert table[0].split() == ["measure", "denominator", "excluded", "numerator", "score"]
    assert "dm-hba1c-6m                                  6        3         2  66.7%" in table
    assert table[-1] == "careflow: 41 indicators over 2026-03 (complete); 0 patients recomputed, 0 reports written"
    assert {r["id"]: r for r in all_resources(db, "MeasureReport")} == reports


def test_bad_input_is_one_line(tmp_path, prefect_api):
    env = subprocess_env(prefect_api)
    bad = run_careflow(["measures", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--period", "2026-13"], env)
    assert bad.returncode != 0 and "not a period" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.yaml").write_text("id: x\nversion: '2026.1'\ntitle: X\nprogram: '*'\nindicators: []\n", encoding="utf-8")
    out = run_careflow(["measures", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--measures", str(broken)], env)
    assert out.returncode != 0 and "x.yaml:" in out.stderr and "Traceback" not in out.stderr
