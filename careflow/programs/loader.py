"""Load programme YAML into the model, reporting every problem at once with file:line:column.

Authors fix a pathway in one pass only if they see all of its problems together, each pointing at
the exact line. So structural errors (pydantic) and cross-reference errors (roles, activities,
cycles, duplicate ids) are collected side by side before anything is raised.
"""

from __future__ import annotations

import difflib
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, get_args, get_origin

from pydantic import BaseModel, ValidationError

from careflow.errors import ProgramError, UnknownProgram
from careflow.programs.model import ID_PATTERN, Program
from careflow.programs.positioned_yaml import Loc, Problem, load_mapping, read_source, yaml_files
from careflow.programs.positioned_yaml import dotted_path as _path
from careflow.programs.positioned_yaml import position as _position


class YamlPortabilityWarning(UserWarning):
    """A programme file holds a plain value that YAML 1.1 tools (PyYAML) and YAML 1.2 tools (ruamel.yaml,
    editors) read differently; the message starts with file:line:column."""


def portability_warnings(text: str, filename: str = "<string>") -> list[Problem]:
    """The constructs of ``text`` that parse differently in YAML 1.1 and 1.2 (see ``yaml_portability``)."""
    from careflow.programs.yaml_portability import portability_problems

    return [Problem(filename, p.line, p.column, "", p.message) for p in portability_problems(text)]


def _sentence(err: dict[str, Any]) -> str:
    kind, msg, loc = err["type"], err["msg"], err["loc"]
    if not loc and kind in ("extra_forbidden", "missing"):
        # a key that looks like a union tag (``0[``) is dropped from the path with the tags
        return "unknown key" if kind == "extra_forbidden" else "a required key is missing"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _model_keys(loc), n=1)
        return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    pattern = (err.get("ctx") or {}).get("pattern", "")
    if kind == "string_pattern_mismatch":
        if pattern == ID_PATTERN:
            return f"{err['input']!r} is not a valid id: use lower-case letters, digits and hyphens, starting with a letter"
        if pattern.startswith(r"^\d+\.\d+\.\d+"):
            return f"{err['input']!r} is not a semantic version such as 1.0.0"
        if pattern.startswith("^https?"):
            return f"{err['input']!r} is not an http(s) URL"
    if kind == "string_type":
        return "should be text (put the value in quotes)"
    msg = msg.replace("Input should be", "should be").replace("input should be", "should be")
    return msg[0].lower() + msg[1:] if msg else str(kind)


def _inner_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model class inside an annotation, and whether a mapping level (a free key) comes first."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    if get_origin(annotation) is dict:
        return _inner_model(get_args(annotation)[1])[0], True
    for arg in get_args(annotation):
        model, is_map = _inner_model(arg)
        if model is not None:
            return model, is_map
    return None, False


def _model_keys(loc: Loc) -> list[str]:
    """The keys allowed where ``loc`` points, found by walking the model's fields (for 'did you mean')."""
    model: type[BaseModel] | None = Program
    free_key = False
    for part in loc[:-1]:
        if isinstance(part, int) or free_key:
            free_key = False
            continue
        field = model.model_fields.get(part) if model else None
        if field is None:
            return []
        model, free_key = _inner_model(field.annotation)
    return list(model.model_fields) if model else []


# pydantic's names for union alternatives in an error's path (``function-after[_one(), Criterion]``),
# which are not keys of the file; a key an author wrote, such as ``0[``, stays in the path
_TAG = re.compile(r"^[\w-]+\[.*\]$")


def _dedupe(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Union-typed fields give one error per alternative; keep one per location, joined by 'or'."""
    by_loc: dict[Loc, list[dict[str, Any]]] = {}
    for e in errors:
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and (_TAG.match(p) or p in ("constrained-str", "str"))))
        by_loc.setdefault(loc, []).append({**e, "loc": loc})
    out = []
    for group in by_loc.values():
        if len(group) == 1:
            out.append(group[0])
        else:
            msgs = []
            for g in group:
                if g["msg"] not in msgs:
                    msgs.append(g["msg"])
            out.append({**group[0], "msg": " or ".join(m[0].lower() + m[1:] for m in msgs), "type": "union"})
    return out


def _structural(data: Any) -> tuple[Program | None, list[tuple[Loc, str, dict[str, Any]]]]:
    try:
        return Program.model_validate(data), []
    except ValidationError as exc:
        return None, [(e["loc"], e["type"], e) for e in _dedupe([dict(e) for e in exc.errors(include_url=False)])]


def _ids(items: Any) -> list[tuple[int, str]]:
    if not isinstance(items, list):
        return []
    return [(i, it["id"]) for i, it in enumerate(items) if isinstance(it, dict) and isinstance(it.get("id"), str)]


def cross_reference_problems(data: Any) -> list[tuple[Loc, str]]:
    """References to undeclared roles or activities, duplicate ids and dependency cycles.

    Works on the raw mapping (not the model) so these are reported even when the file also has
    structural errors.
    """
    if not isinstance(data, dict):
        return []
    out: list[tuple[Loc, str]] = []
    roles = set(data["roles"]) if isinstance(data.get("roles"), dict) else set()
    acts: list[Any] = data["activities"] if isinstance(data.get("activities"), list) else []
    activity_ids = {aid for _, aid in _ids(acts)}

    for section in ("activities", "goals", "triggers"):
        seen: dict[str, int] = {}
        for i, ident in _ids(data.get(section)):
            if ident in seen:
                out.append(((section, i, "id"), f"duplicate id {ident!r} (first used at {section}[{seen[ident]}])"))
            else:
                seen[ident] = i

    # PlanDefinition action ids must be unique: goals, activities and "trigger-<id>" share one space
    goal_ids = {gid: i for i, gid in _ids(data.get("goals"))}
    trigger_ids = {f"trigger-{tid}" for _, tid in _ids(data.get("triggers"))}
    program_id: str = data["id"] if isinstance(data.get("id"), str) else ""
    for i, aid in _ids(acts):
        if aid in goal_ids:
            out.append((("activities", i, "id"), f"id {aid!r} is also a goal id: goals and activities need distinct ids"))
        if aid in trigger_ids:
            out.append((("activities", i, "id"), f"id {aid!r} clashes with the exported id of trigger {aid[8:]!r}"))
        if len(program_id) + 1 + len(aid) > 64:
            out.append((("activities", i, "id"), f"id {aid!r} is too long: '{program_id}-{aid}' must fit a FHIR id (64 characters)"))

    def role_ref(loc: Loc, value: Any) -> None:
        if isinstance(value, str) and roles and value not in roles:
            close = difflib.get_close_matches(value, sorted(roles), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; declared roles: {', '.join(sorted(roles))}"
            out.append((loc, f"role {value!r} is not declared under `roles`{hint}"))

    def activity_ref(loc: Loc, value: Any, allow_any: bool = False) -> None:
        if allow_any and value == "any":
            return
        if isinstance(value, str) and value not in activity_ids:
            close = difflib.get_close_matches(value, sorted(activity_ids), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append((loc, f"activity {value!r} is not declared under `activities`{hint}"))

    graph: dict[str, list[str]] = {}
    for i, act in enumerate(acts):
        if not isinstance(act, dict):
            continue
        role_ref(("activities", i, "role"), act.get("role"))
        after: list[Any] = act["after"] if isinstance(act.get("after"), list) else []
        for j, dep in enumerate(after):
            activity_ref(("activities", i, "after", j), dep)
        if isinstance(act.get("id"), str):
            graph.setdefault(act["id"], [d for d in after if isinstance(d, str)])

    for i, trig in enumerate(data.get("triggers") or []):
        if not isinstance(trig, dict):
            continue
        when, then = trig.get("when"), trig.get("then")
        if isinstance(when, dict):
            if isinstance(when.get("overdue"), dict):
                activity_ref(("triggers", i, "when", "overdue", "activity"), when["overdue"].get("activity"), True)
            if "completed" in when:
                activity_ref(("triggers", i, "when", "completed"), when["completed"])
            if "rejected" in when:
                activity_ref(("triggers", i, "when", "rejected"), when["rejected"], True)
        if isinstance(then, dict):
            for key in ("escalate_to", "reassign_to"):
                if key in then:
                    role_ref(("triggers", i, "then", key), then[key])
            for j, target in enumerate(then.get("start") or [] if isinstance(then.get("start"), list) else []):
                activity_ref(("triggers", i, "then", "start", j), target)
            if isinstance(then.get("create_task"), dict):
                role_ref(("triggers", i, "then", "create_task", "role"), then["create_task"].get("role"))

    for cycle in _cycles(graph):
        index = next(i for i, a in _ids(acts) if a == cycle[0])
        out.append(
            (("activities", index, "after"), "dependency cycle: " + " → ".join([*cycle, cycle[0]]) + " can never start")
        )
    return out


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Each elementary cycle reported once (by its smallest rotation)."""
    found: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cyc = stack[stack.index(nxt) :]
                k = cyc.index(min(cyc))
                found.add(tuple(cyc[k:] + cyc[:k]))
            elif nxt in graph and state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for n in graph:
        if n not in state:
            visit(n)
    return [list(c) for c in sorted(found)]


def parse_program(text: str, filename: str = "<string>") -> Program:
    """Parse and validate one programme; ProgramError listing every problem when it is not valid."""
    data = load_mapping(text, filename, ProgramError, "a programme file must be a mapping of keys (id, version, …)")
    for warning in portability_warnings(text, filename):
        warnings.warn(YamlPortabilityWarning(str(warning)), stacklevel=2)

    program, structural = _structural(data)
    problems: list[Problem] = []
    for loc, _kind, err in structural:
        line, col, _ = _position(data, loc)
        problems.append(Problem(filename, line, col, _path(loc), _sentence(err)))
    for loc, message in cross_reference_problems(data):
        line, col, _ = _position(data, loc)
        problems.append(Problem(filename, line, col, _path(loc), message))
    if problems:
        raise ProgramError(sorted(set(problems)))
    assert program is not None
    return program


def load_program(path: str | Path) -> Program:
    return parse_program(read_source(path, ProgramError), str(path))


def program_files(paths: Iterable[str | Path]) -> list[Path]:
    """YAML files named directly, or found in the folders named (schema.json and friends ignored)."""
    return yaml_files(paths)


def load_programs(paths: Iterable[str | Path]) -> dict[str, Program]:
    """Every programme in ``paths``; one ProgramError with the problems of all files together."""
    programs: dict[str, Program] = {}
    where: dict[str, str] = {}
    problems: list[Problem] = []
    for f in program_files(paths):
        try:
            prog = load_program(f)
        except ProgramError as exc:
            problems.extend(exc.problems)
            continue
        if prog.id in programs:
            problems.append(Problem(str(f), 1, 1, "id", f"programme id {prog.id!r} is also used by {where[prog.id]}"))
            continue
        programs[prog.id] = prog
        where[prog.id] = str(f)
    if problems:
        raise ProgramError(problems)
    return programs


def default_program_dir() -> Path:
    """``$CAREFLOW_PROGRAMS``, else the programmes careflow ships (care_programs/ of the checkout, or
    its copy inside an installed wheel: ``careflow.bundled``)."""
    import os

    from careflow.bundled import folder

    env = os.environ.get("CAREFLOW_PROGRAMS")
    if env:
        return Path(env)
    return folder("care_programs")


def load_directory(path: str | Path | None = None) -> dict[str, Program]:
    return load_programs([path or default_program_dir()])


def find_program(programs: dict[str, Program], program_id: str) -> Program:
    try:
        return programs[program_id]
    except KeyError:
        known = ", ".join(sorted(programs)) or "none"
        raise UnknownProgram(f"no programme with id {program_id!r} (known: {known})") from None
