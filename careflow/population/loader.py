"""Load stratification rule files (YAML) into the model, every problem at once with file:line:column.

The same reading as the programmes (``careflow.programs.loader``): ruamel.yaml keeps each node's
position, pydantic reports structural errors, and cross-references (chronic kinds named by a rule,
the frailty screen a rule tests, duplicate rule ids) are checked on the raw mapping so they show
beside the structural ones.
"""

from __future__ import annotations

import difflib
import os
from datetime import date
from pathlib import Path
from typing import Any, Iterable, TypeVar

from pydantic import ValidationError

from careflow.errors import CareflowError, RuleSetError
from careflow.population.case_model import CaseFindingSet
from careflow.population.model import CRITERIA, RuleSet
from careflow.programs.loader import _dedupe
from careflow.programs.positioned_yaml import Loc, Problem, load_mapping, read_source, yaml_files
from careflow.programs.positioned_yaml import dotted_path as _path
from careflow.programs.positioned_yaml import position as _position


def _sentence(err: dict[str, Any]) -> str:
    kind, msg, loc = err["type"], str(err["msg"]), err["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, CRITERIA, n=1)
        return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    if kind == "not_a_criterion":
        given = [str(k) for k in err["input"]] if isinstance(err.get("input"), dict) else []
        close = [m for k in given for m in difflib.get_close_matches(k, CRITERIA, n=1)]
        hint = f" (did you mean {close[0]!r}?)" if len(given) == 1 and close else ""
        return "not a criterion: give exactly one of " + ", ".join(CRITERIA) + hint
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "version":
        return f"{err['input']!r} is not a rule-set version such as 2026.2"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} is not a valid id: use lower-case letters, digits and hyphens, starting with a letter"
    msg = msg.removeprefix("Value error, ").replace("Input should be", "should be")
    return msg[0].lower() + msg[1:] if msg else str(kind)


def _untagged(loc: Loc) -> Loc:
    """The location without the union's tags: ``when[1].any.any[0]`` is ``when[1].any[0]``."""
    out: list[str | int] = []
    for part in loc:
        if out and part == out[-1] and part in CRITERIA:
            continue
        out.append(part)
    return tuple(out)


def _criteria_problems(items: Any, loc: Loc, kinds: set[str], has_frailty: bool) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    if isinstance(items, dict):  # ``not``: one criterion
        return [((*loc, *where[len(loc) + 1:]), message) for where, message in _criteria_problems([items], loc, kinds, has_frailty)]
    if not isinstance(items, list):
        return out
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        here = (*loc, i)
        for nested in ("any", "all", "not"):
            out += _criteria_problems(item.get(nested), (*here, nested), kinds, has_frailty)
        if "frailty" in item and not has_frailty:
            out.append(((*here, "frailty"), "tests the frailty screen, but the rule set declares no `frailty` screen"))
        named: list[tuple[Loc, Any]] = []
        chronic = item.get("chronic")
        if isinstance(chronic, dict) and isinstance(chronic.get("of"), list):
            named += [((*here, "chronic", "of", j), v) for j, v in enumerate(chronic["of"])]
        condition = item.get("condition")
        if isinstance(condition, dict):
            for key in ("any_of", "all_of"):
                if isinstance(condition.get(key), list):
                    named += [((*here, "condition", key, j), v) for j, v in enumerate(condition[key])]
        for where, value in named:
            if isinstance(value, str) and value not in kinds:
                close = difflib.get_close_matches(value, sorted(kinds), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; declared: {', '.join(sorted(kinds))}"
                out.append((where, f"chronic kind {value!r} is not declared under `chronic`{hint}"))
    return out


def cross_reference_problems(data: Any) -> list[tuple[Loc, str]]:
    if not isinstance(data, dict):
        return []
    kinds = set(data["chronic"]) if isinstance(data.get("chronic"), dict) else set()
    has_frailty = isinstance(data.get("frailty"), dict)
    out: list[tuple[Loc, str]] = []
    rules: list[Any] = data["rules"] if isinstance(data.get("rules"), list) else []
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        rid = rule.get("id")
        if isinstance(rid, str):
            if rid in seen:
                out.append((("rules", i, "id"), f"duplicate rule id {rid!r} (first used at rules[{seen[rid]}])"))
            else:
                seen[rid] = i
        out += _criteria_problems(rule.get("when"), ("rules", i, "when"), kinds, has_frailty)
    return out


M = TypeVar("M", RuleSet, CaseFindingSet)


def _parse(text: str, filename: str, model: type[M]) -> M:
    """One rule file of ``model`` (the pyramid or case finding): every problem at file:line:column."""
    data = load_mapping(text, filename, RuleSetError, "a rule file must be a mapping of keys (id, version, rules, …)")
    problems: list[Problem] = []
    ruleset: M | None = None
    try:
        ruleset = model.model_validate(data)
    except ValidationError as exc:
        for err in _dedupe([{**e, "loc": _untagged(e["loc"])} for e in exc.errors(include_url=False)]):
            line, col, _ = _position(data, err["loc"])
            problems.append(Problem(filename, line, col, _path(err["loc"]), _sentence(err)))
    for loc, message in cross_reference_problems(data):
        line, col, _ = _position(data, loc)
        problems.append(Problem(filename, line, col, _path(loc), message))
    if problems:
        raise RuleSetError(sorted(set(problems)))
    assert ruleset is not None
    return ruleset


def parse_rules(text: str, filename: str = "<string>") -> RuleSet:
    """Parse and validate one stratification rule set; RuleSetError listing every problem when it is not valid."""
    return _parse(text, filename, RuleSet)


def parse_case_rules(text: str, filename: str = "<string>") -> CaseFindingSet:
    """Parse and validate one case-finding rule set (the same language, rules without groups)."""
    return _parse(text, filename, CaseFindingSet)


def _load(path: str | Path, model: type[M]) -> M:
    return _parse(read_source(path, RuleSetError), str(path), model)


def load_rules(path: str | Path) -> RuleSet:
    return _load(path, RuleSet)


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    return yaml_files(paths)


def _load_sets(paths: Iterable[str | Path], model: type[M]) -> list[M]:
    sets: list[M] = []
    problems: list[Problem] = []
    where: dict[tuple[str, str], str] = {}
    for f in rule_files(paths):
        try:
            rs = _load(f, model)
        except RuleSetError as exc:
            problems.extend(exc.problems)
            continue
        key = (rs.id, rs.version)
        if key in where:
            problems.append(Problem(str(f), 1, 1, "version", f"rule set {rs.id} {rs.version} is also in {where[key]}"))
            continue
        where[key] = str(f)
        sets.append(rs)
    if problems:
        raise RuleSetError(problems)
    return sorted(sets, key=lambda r: (r.effective, r.version))


def load_rule_sets(paths: Iterable[str | Path]) -> list[RuleSet]:
    """Every rule set in ``paths``, oldest effective first; one RuleSetError for all files' problems."""
    return _load_sets(paths, RuleSet)


def load_case_rule_sets(paths: Iterable[str | Path]) -> list[CaseFindingSet]:
    """Every case-finding rule set in ``paths``, oldest effective first; one RuleSetError for all problems."""
    return _load_sets(paths, CaseFindingSet)


def default_rules_dir() -> Path:
    """``$CAREFLOW_POPULATION_RULES``, else the rule sets careflow ships (``population_rules/``)."""
    from careflow.bundled import folder

    env = os.environ.get("CAREFLOW_POPULATION_RULES")
    return Path(env) if env else folder("population_rules")


def default_case_rules_dir() -> Path:
    """``$CAREFLOW_CASE_FINDING``, else the case-finding rule sets careflow ships (``case_finding/``)."""
    from careflow.bundled import folder

    env = os.environ.get("CAREFLOW_CASE_FINDING")
    return Path(env) if env else folder("case_finding")


def rules_in_force(sets: list[M], day: date) -> M:
    """The newest version effective on ``day`` (a rule set is never applied before it took effect)."""
    usable = [r for r in sets if r.effective <= day]
    if not usable:
        first = min((r.effective for r in sets), default=None)
        kind = "case-finding" if sets and isinstance(sets[0], CaseFindingSet) else "stratification"
        raise CareflowError(f"no {kind} rule set is in force on {day.isoformat()}"
                            + (f" (the first takes effect {first.isoformat()})" if first else ""))
    return max(usable, key=lambda r: (r.effective, r.version))
