"""What one version of a programme adds, removes and changes against another.

An author about to publish a new version (``careflow programs publish`` migrates the open plans to
it) needs to see the difference in the programme's own terms, not as a text diff of the YAML:
which roles, goals, activities and triggers are new or gone, and for the ones kept, which of their
fields now say something else (an activity's timing, a trigger's threshold). Items are matched by
id, because the id is what a plan's Tasks carry (``careflow.triggers.revision`` cancels the open
Tasks of a dropped activity id); a renamed id is therefore one removal and one addition.

The comparison is on the validated models, so two spellings of the same programme (reordered
keys, a code system written as ``loinc`` or as its URI, a default written out) compare equal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from careflow.programs.model import Activity, Goal, Program, Trigger

Section = Literal["programme", "role", "goal", "activity", "trigger"]
Kind = Literal["added", "removed", "changed"]
SECTIONS: tuple[Section, ...] = ("programme", "role", "goal", "activity", "trigger")
_HEADER = ("id", "version", "url", "status", "title", "description", "plan_period", "eligibility")


@dataclass(frozen=True)
class FieldChange:
    path: str  # e.g. "timing.every", "when.observation.above.value", "title.nl"
    old: str | None  # None: the field was not there
    new: str | None


@dataclass(frozen=True)
class Change:
    kind: Kind
    section: Section
    id: str
    fields: tuple[FieldChange, ...] = ()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths of a dumped model: nested mappings by dot, lists of mappings by index; a list of
    plain values stays one value (["A", "B"] is one field, not two)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _fields(old: Any, new: Any) -> tuple[FieldChange, ...]:
    a, b = _flat(old), _flat(new)
    out = []
    for path in [*a, *(p for p in b if p not in a)]:
        if path in a and path in b and a[path] == b[path]:
            continue
        out.append(FieldChange(path, _text(a[path]) if path in a else None, _text(b[path]) if path in b else None))
    return tuple(out)


def _items(program: Program, section: Section) -> dict[str, Any]:
    if section == "role":
        return {k: r.model_dump(mode="json") for k, r in program.roles.items()}
    items: list[Goal] | list[Activity] | list[Trigger] = (
        program.goals if section == "goal" else program.activities if section == "activity" else program.triggers
    )
    return {it.id: {k: v for k, v in it.model_dump(mode="json").items() if k != "id"} for it in items}


def _header(program: Program) -> dict[str, Any]:
    dumped = program.model_dump(mode="json")
    return {k: dumped.get(k) for k in _HEADER}


def compare(old: Program, new: Program) -> list[Change]:
    """Every difference from ``old`` to ``new``: the programme's own fields first (one ``changed``
    entry), then roles, goals, activities and triggers, each section removals, additions and
    changes in the order of the programme that has them."""
    out: list[Change] = []
    header = _fields(_header(old), _header(new))
    kept_old = [t.id for t in old.triggers if t.id in {n.id for n in new.triggers}]
    kept_new = [t.id for t in new.triggers if t.id in set(kept_old)]
    if kept_old != kept_new:  # the first matching trigger escalates: their order is part of the meaning
        header += (FieldChange("order of triggers", ", ".join(kept_old), ", ".join(kept_new)),)
    if header:
        out.append(Change("changed", "programme", new.id, header))
    for section in SECTIONS[1:]:
        before, after = _items(old, section), _items(new, section)
        out += [Change("removed", section, k) for k in before if k not in after]
        out += [Change("added", section, k) for k in after if k not in before]
        for k in after:
            if k in before and before[k] != after[k]:
                out.append(Change("changed", section, k, _fields(before[k], after[k])))
    return out
