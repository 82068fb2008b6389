"""Load quality-indicator files (YAML) into the model, every problem at once with file:line:column.

The same reading as the programmes and the stratification rules: ruamel.yaml keeps each node's
position, pydantic reports structural errors; duplicate indicator ids (within a file, or a Measure id
in two files) are checked on the raw mapping so they show beside the structural ones.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from careflow.errors import MeasureSetError
from careflow.measures.model import CRITERIA, MeasureDef, MeasureSet, measures_of
from careflow.programs.loader import _dedupe
from careflow.programs.positioned_yaml import Loc, Problem, load_mapping, read_source, yaml_files
from careflow.programs.positioned_yaml import dotted_path as _path
from careflow.programs.positioned_yaml import position as _position

_KEYS = CRITERIA + ("deceased", "consent_withdrawn", "condition", "task_status", "within", "season_opens",
                    "below", "below_for_group", "codes", "label", "atc", "status", "numerator", "exclusions")


def _sentence(err: dict[str, Any]) -> str:
    kind, msg, loc = err["type"], str(err["msg"]), err["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _KEYS, n=1)
        return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    if kind == "not_a_criterion":
        given = [str(k) for k in err["input"]] if isinstance(err.get("input"), dict) else []
        close = [m for k in given for m in difflib.get_close_matches(k, CRITERIA, n=1)]
        hint = f" (did you mean {close[0]!r}?)" if len(given) == 1 and close else ""
        return "not a criterion: give exactly one of " + ", ".join(CRITERIA) + hint
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "version":
        return f"{err['input']!r} is not a version such as 2026.1"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "season_opens":
        return f"{err['input']!r} is not a day of the year such as 10-01"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "program":
        return f"{err['input']!r} is not a PlanDefinition URL (or '*')"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} is not a valid id: use lower-case letters, digits and hyphens, starting with a letter"
    msg = msg.removeprefix("Value error, ").replace("Input should be", "should be")
    return msg[0].lower() + msg[1:] if msg else str(kind)


def _untagged(loc: Loc) -> Loc:
    """The location without the union's tags: ``numerator[1].any.any[0]`` is ``numerator[1].any[0]``."""
    out: list[str | int] = []
    for part in loc:
        if out and part == out[-1] and part in CRITERIA:
            continue
        out.append(part)
    return tuple(out)


def cross_reference_problems(data: Any) -> list[tuple[Loc, str]]:
    if not isinstance(data, dict) or not isinstance(data.get("indicators"), list):
        return []
    out: list[tuple[Loc, str]] = []
    seen: dict[str, int] = {}
    for i, ind in enumerate(data["indicators"]):
        iid = ind.get("id") if isinstance(ind, dict) else None
        if isinstance(iid, str):
            if iid in seen:
                out.append((("indicators", i, "id"), f"duplicate indicator id {iid!r} (first used at indicators[{seen[iid]}])"))
            else:
                seen[iid] = i
    return out


def parse_measures(text: str, filename: str = "<string>") -> MeasureSet:
    """Parse and validate one indicator file; MeasureSetError listing every problem when it is not valid."""
    data = load_mapping(text, filename, MeasureSetError,
                        "an indicator file must be a mapping of keys (id, version, indicators, …)")
    problems: list[Problem] = []
    ms: MeasureSet | None = None
    try:
        ms = MeasureSet.model_validate(data)
    except ValidationError as exc:
        for err in _dedupe([{**e, "loc": _untagged(e["loc"])} for e in exc.errors(include_url=False)]):
            line, col, _ = _position(data, err["loc"])
            problems.append(Problem(filename, line, col, _path(err["loc"]), _sentence(err)))
    for loc, message in cross_reference_problems(data):
        line, col, _ = _position(data, loc)
        problems.append(Problem(filename, line, col, _path(loc), message))
    if problems:
        raise MeasureSetError(sorted(set(problems)))
    assert ms is not None
    return ms


def load_measure_file(path: str | Path) -> MeasureSet:
    return parse_measures(read_source(path, MeasureSetError), str(path))


def measure_files(paths: Iterable[str | Path]) -> list[Path]:
    return yaml_files(paths)


def load_measure_sets(paths: Iterable[str | Path]) -> list[MeasureSet]:
    """Every indicator file in ``paths`` (sorted by file name); one MeasureSetError for all problems,
    including a Measure id defined in two files."""
    sets: list[MeasureSet] = []
    problems: list[Problem] = []
    where: dict[str, str] = {}
    for f in measure_files(paths):
        try:
            ms = load_measure_file(f)
        except MeasureSetError as exc:
            problems.extend(exc.problems)
            continue
        clash = False
        for m in measures_of([ms]):
            if m.id in where:
                problems.append(Problem(str(f), 1, 1, "indicators", f"Measure {m.id} is also defined in {where[m.id]}"))
                clash = True
            where.setdefault(m.id, str(f))
        if not clash:
            sets.append(ms)
    if problems:
        raise MeasureSetError(problems)
    return sets


def default_measures_dir() -> Path:
    """``$CAREFLOW_MEASURES``, else the indicator files careflow ships (``measures/``)."""
    from careflow.bundled import folder

    env = os.environ.get("CAREFLOW_MEASURES")
    return Path(env) if env else folder("measures")


def load_measures(paths: Iterable[str | Path] | None = None) -> list[MeasureDef]:
    """The Measures of the given files (default: the ones in use)."""
    return measures_of(load_measure_sets(paths if paths is not None else [default_measures_dir()]))
