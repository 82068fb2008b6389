"""An activity's ``only_if`` as a PlanDefinition applicability condition in FHIRPath, and back.

FHIR has the right element (``action.condition`` of kind ``applicability``), so the restriction is
written there as FHIRPath a rule engine can evaluate, not hidden in an extension. The expression
uses two environment variables careflow supplies when it applies a programme (documented in the
expression's description): ``%newDiagnosis`` (Boolean: the qualifying Condition is new) and
``%populationGroup`` (String: the patient's pyramid group, A to D). Age is read from the subject.

The patient facts (latest Observation, active medication class, active Condition) are written as
FHIRPath over three more variables: ``%observations`` (the patient's Observations, oldest first),
``%medications`` (active MedicationStatements and MedicationRequests) and ``%conditions`` (active
Conditions), each fact as one parenthesised term after the others. FHIRPath cannot say everything
exactly (a calendar duration of P1Y6M, "undated counts as oldest"), so each fact also rides in an
``only-if-fact`` extension on the condition, which is what the reader takes; the reader then insists
that the expression ends with exactly the terms those facts render to, so a hand-edited expression
is refused rather than half-read.

Reading accepts exactly the grammar written here, so the round trip is lossless; anything else is
refused with the element path rather than guessed at.
"""

from __future__ import annotations

import re
from typing import Any

from careflow.naming import EXT_ONLY_IF_FACT
from careflow.programs.codes import ATC, ICD10, ICPC2
from careflow.programs.model import FACT_KINDS, FACT_THRESHOLDS, THRESHOLDS, codes_of
from careflow.programs.pd_datatypes import (
    Json,
    Node,
    coding,
    duration,
    iso_as_quantity,
    number_text,
    quantity,
    read_coding,
    read_duration,
    read_quantity,
)

FHIRPATH = "text/fhirpath"
_NEW = "%newDiagnosis"
_ESTABLISHED = "%newDiagnosis.not()"
_GROUPS = re.compile(r"%populationGroup in (?:\{\}|\(('[A-D]'(?: \| '[A-D]')*)\))")
_AGE = re.compile(r"%subject\.birthDate <= today\(\) - (\d+) years")
VARIABLES = "careflow supplies %newDiagnosis (true when the qualifying condition is new) and %populationGroup (A to D)."
FACT_VARIABLES = (
    " For the patient's facts: %observations (their Observations, oldest first), %medications (active"
    " MedicationStatements and MedicationRequests) and %conditions (active Conditions)."
)
_PREFIX_SYSTEMS = (ICD10, ICPC2, ATC)  # a class code covers its sub-codes
_FHIRPATH_UNITS = {"a": "years", "mo": "months", "wk": "weeks", "d": "days"}


def _q(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _match(codes: Any, prefix: bool = False) -> str:
    """A FHIRPath test on a coding: one of ``codes`` (class codes also cover their sub-codes)."""
    tests = []
    for c in codes:
        if prefix and c.system in _PREFIX_SYSTEMS:
            tests.append(f"(system = '{_q(c.system)}' and code.startsWith('{_q(c.code)}'))")
        else:
            tests.append(f"(system = '{_q(c.system)}' and code = '{_q(c.code)}')")
    return " or ".join(tests) if tests else "false"


def _observation_term(test: Any) -> str:
    select = f"%observations.where(code.coding.where({_match(codes_of(test.code))}).exists())"
    if test.within is not None:
        value, unit, _ = iso_as_quantity(test.within)
        select += f".where(effective.ofType(dateTime) >= today() - {value} {_FHIRPATH_UNITS[unit]})"
    kind = next((k for k in FACT_THRESHOLDS if getattr(test, k) is not None), None)
    if kind is not None:
        q = getattr(test, kind)
        check = f"{select}.last().value.ofType(Quantity) {THRESHOLDS[kind]} {number_text(q.value)} '{_q(q.unit)}'"
    else:
        check = f"{select}.last().value.ofType(CodeableConcept).coding.where({_match(test.value_in or [])}).exists()"
    return f"({select}.empty() or {check})" if test.if_unknown else f"({check})"


def _medication_term(test: Any) -> str:
    where = f"medication.ofType(CodeableConcept).coding.where({_match(test.codes, prefix=True)}).exists()"
    return f"(%medications.where({where}).{'exists()' if test.taking else 'empty()'})"


def _condition_term(test: Any) -> str:
    where = f"code.coding.where({_match(test.codes, prefix=True)}).exists()"
    return f"(%conditions.where({where}).{'exists()' if test.present else 'empty()'})"


def _fact_term(fact: Any) -> str:
    if fact.observation is not None:
        return _observation_term(fact.observation)
    if fact.medication is not None:
        return _medication_term(fact.medication)
    return _condition_term(fact.condition)


def fact_terms(only: Any) -> list[str]:
    """The FHIRPath terms of an ``Only``'s facts: top-level ones in field order, then any_of as one."""
    terms = [_fact_term(f) for f in only.facts()[: len(only.facts()) - len(only.any_of or ())]]
    if only.any_of is not None:
        terms.append("(" + " or ".join(_fact_term(f) for f in only.any_of) + ")")
    return terms


def _said_codes(codes: Any) -> str:
    return " / ".join(c.display or c.code for c in codes)


def _fact_said(fact: Any) -> str:
    if fact.observation is not None:
        t = fact.observation
        kind = next((k for k in FACT_THRESHOLDS if getattr(t, k) is not None), None)
        if kind is not None:
            q = getattr(t, kind)
            test = f"{kind.replace('_', ' ')} {number_text(q.value)} {q.unit}"
        else:
            test = "one of " + _said_codes(t.value_in or [])
        return f"the latest {_said_codes(codes_of(t.code))} is {test}" + (" (or unknown)" if t.if_unknown else "")
    if fact.medication is not None:
        m = fact.medication
        return ("taking " if m.taking else "not taking ") + _said_codes(m.codes)
    c = fact.condition
    return ("with " if c.present else "without ") + _said_codes(c.codes)


def _fact_extension(fact: Any, in_any_of: bool) -> Json:
    parts: list[Json] = [{"url": "kind", "valueCode": fact.kind}]
    if in_any_of:
        parts.append({"url": "any-of", "valueBoolean": True})
    if fact.observation is not None:
        t = fact.observation
        parts += [{"url": "code", "valueCoding": coding(c)} for c in codes_of(t.code)]
        for kind in FACT_THRESHOLDS:
            q = getattr(t, kind)
            if q is not None:
                parts.append({"url": kind.replace("_", "-"), "valueQuantity": quantity(q)})
        if t.value_in is not None:
            cc: Json = {"coding": [coding(c) for c in t.value_in]} if t.value_in else {"text": "no value"}
            parts.append({"url": "value-in", "valueCodeableConcept": cc})
        if t.within is not None:
            parts.append({"url": "within", "valueDuration": duration(t.within)})
        parts.append({"url": "if-unknown", "valueBoolean": t.if_unknown})
    else:
        test = fact.medication if fact.medication is not None else fact.condition
        parts += [{"url": "code", "valueCoding": coding(c)} for c in test.codes]
        parts.append({"url": "present", "valueBoolean": test.taking if fact.medication is not None else test.present})
    return {"url": EXT_ONLY_IF_FACT, "extension": parts}


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
    facts = only.facts()
    top = len(facts) - len(only.any_of or ())
    said += [_fact_said(f) for f in facts[:top]]
    if only.any_of is not None:
        said.append("when " + " or ".join(_fact_said(f) for f in only.any_of))
    parts += fact_terms(only)
    description = ("Only " + "; ".join(said) if said else "Always") + f". {VARIABLES}" + (FACT_VARIABLES if facts else "")
    out: Json = {}
    if facts:
        out["extension"] = [_fact_extension(f, i >= top) for i, f in enumerate(facts)]
    out.update({
        "kind": "applicability",
        "expression": {
            "description": description,
            "language": FHIRPATH,
            "expression": " and ".join(parts) if parts else "true",
        },
    })
    return out


def _read_fact(ext: Node) -> tuple[Json, bool]:
    """(fact mapping for the model, whether it belongs to any_of) from an only-if-fact extension."""
    kind_node = ext.extension("kind")
    kind = kind_node.req_string("valueCode") if kind_node is not None else None
    if kind not in FACT_KINDS:
        raise ext.fail(f"needs a kind sub-extension with one of {', '.join(FACT_KINDS)}", "extension")
    in_any = ext.extension("any-of")
    codes = [read_coding(c.req_child("valueCoding")) for c in ext.extensions("code")]
    if not codes:
        raise ext.fail("names no code (a code sub-extension)", "extension")
    body: Json
    if kind == "observation":
        body = {"code": codes[0] if len(codes) == 1 else codes}
        for k in FACT_THRESHOLDS:
            part = ext.extension(k.replace("_", "-"))
            if part is not None:
                body[k] = read_quantity(part.req_child("valueQuantity"))
        value_in = ext.extension("value-in")
        if value_in is not None:
            body["value_in"] = [read_coding(c) for c in value_in.req_child("valueCodeableConcept").children("coding")]
        within = ext.extension("within")
        if within is not None:
            body["within"] = read_duration(within.req_child("valueDuration"))
        unknown = ext.extension("if-unknown")
        if unknown is not None:
            body["if_unknown"] = bool(unknown.boolean("valueBoolean"))
    else:
        body = {"codes": codes}
        present = ext.extension("present")
        if present is not None:
            body["taking" if kind == "medication" else "present"] = bool(present.boolean("valueBoolean"))
    return {kind: body}, bool(in_any is not None and in_any.boolean("valueBoolean"))


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
    facts = [_read_fact(e) for e in condition.extensions(EXT_ONLY_IF_FACT)]
    if facts:
        for fact, in_any in facts:
            if in_any:
                out.setdefault("any_of", []).append(fact)
            else:
                (kind, body), = fact.items()
                if kind in out:
                    raise condition.fail(f"careflow reads one {kind} fact outside any-of", "extension")
                out[kind] = body
        text = _without_fact_terms(text, out, expr)
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


def _without_fact_terms(text: str, facts: Json, expr: Node) -> str:
    """The expression with the facts' own terms taken off its end ("true" when nothing is left)."""
    from careflow.programs.model import Only

    try:
        terms = " and ".join(fact_terms(Only.model_validate(facts)))
    except ValueError as exc:
        raise expr.fail(f"the only-if-fact extensions do not describe valid facts: {exc}", "expression") from None
    if text == terms:
        return "true"
    if text.endswith(" and " + terms):
        return text[: -len(" and " + terms)]
    raise expr.fail(
        "does not end with the FHIRPath of its only-if-fact extensions: careflow writes both together "
        "and cannot read a hand-edited fact expression",
        "expression",
    )
