"""An activity's ``only_if`` as a PlanDefinition applicability condition in FHIRPath, and back.

FHIR has the right element (``action.condition`` of kind ``applicability``), so the restriction is
written there as FHIRPath a rule engine can evaluate, not hidden in an extension. The expression
uses two environment variables careflow supplies when it applies a programme (documented in the
expression's description): ``%newDiagnosis`` (Boolean: the qualifying Condition is new) and
``%populationGroup`` (String: the patient's pyramid group, A to D). Age is read from the subject.

Reading accepts exactly the grammar written here, so the round trip is lossless; anything else is
refused with the element path rather than guessed at.
"""

from __future__ import annotations

import re
from typing import Any

from careflow.programs.pd_datatypes import Json, Node

FHIRPATH = "text/fhirpath"
_NEW = "%newDiagnosis"
_ESTABLISHED = "%newDiagnosis.not()"
_GROUPS = re.compile(r"%populationGroup in (?:\{\}|\(('[A-D]'(?: \| '[A-D]')*)\))")
_AGE = re.compile(r"%subject\.birthDate <= today\(\) - (\d+) years")
VARIABLES = "careflow supplies %newDiagnosis (true when the qualifying condition is new) and %populationGroup (A to D)."


def only_if_condition(only: Any) -> Json:
    """One ``condition`` entry (kind applicability) for an ``Only``."""
    parts: list[str] = []
    said: list[str] = []
    if only.new_diagnosis is not None:
        parts.append(_NEW if only.new_diagnosis else _ESTABLISHED)
        said.append("at a new diagnosis" if only.new_diagnosis else "once the diagnosis is established")
    if only.groups is not None:
        listed = " | ".join(f"'{g}'" for g in only.groups)
        parts.append(f"%populationGroup in ({listed})" if only.groups else "%populationGroup in {}")
        said.append("for population groups " + (", ".join(only.groups) if only.groups else "(none)"))
    if only.min_age is not None:
        parts.append(f"%subject.birthDate <= today() - {only.min_age} years")
        said.append(f"from age {only.min_age}")
    description = ("Only " + "; ".join(said) if said else "Always") + f". {VARIABLES}"
    return {
        "kind": "applicability",
        "expression": {
            "description": description,
            "language": FHIRPATH,
            "expression": " and ".join(parts) if parts else "true",
        },
    }


def read_only_if(condition: Node) -> Json:
    """The ``only_if`` mapping for a condition written by :func:`only_if_condition`."""
    kind = condition.string("kind")
    if kind != "applicability":
        raise condition.fail(f"careflow reads only applicability conditions, not {kind!r}", "kind")
    expr = condition.req_child("expression")
    language = expr.string("language")
    if language != FHIRPATH:
        raise expr.fail(f"must be {FHIRPATH}, not {language!r}", "language")
    text = expr.req_string("expression").strip()
    out: Json = {}
    if text == "true":
        return out
    for part in text.split(" and "):
        part = part.strip()
        if part in (_NEW, _ESTABLISHED) and "new_diagnosis" not in out:
            out["new_diagnosis"] = part == _NEW
        elif (m := _GROUPS.fullmatch(part)) and "groups" not in out:
            out["groups"] = re.findall(r"'([A-D])'", m.group(1) or "")
        elif (m := _AGE.fullmatch(part)) and "min_age" not in out:
            out["min_age"] = int(m.group(1))
        else:
            raise expr.fail(
                f"cannot read {part!r}: careflow understands '{_NEW}', '{_ESTABLISHED}', "
                "\"%populationGroup in ('A' | 'B')\" and '%subject.birthDate <= today() - 65 years', joined by 'and'",
                "expression",
            )
    return out
