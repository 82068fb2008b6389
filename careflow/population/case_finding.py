"""Case finding, pure: which rules an inhabitant matches on a day, and the proposal Task for the GP.

A match is a question for the patient's GP ("smoker aged 52, no spirometry in 5 years: look at
this patient?"), so it becomes a proposal Task shaped like the inclusion proposal
(``careflow.planning.inclusion``): ``intent: proposal``, for and focus the Patient, owned by the GP's
PractitionerRole, the programme a confirmed case joins in ``input``, plus the rule (code, version,
title) in ``reasonCode`` and the evidence as ``input`` references. Its id is keyed by patient, rule
and evidence (``careflow.planning.ids.case_finding_id``), so a rerun over the same facts is the same
Task.

Whether to propose at all is ``should_propose``: never while a proposal of that rule is open, never
again for evidence the GP already saw (a rejected or completed proposal citing every piece of the
current evidence); new evidence (a later measurement, another medicine) is proposed anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Mapping

from careflow.naming import BASE, TASK_KIND
from careflow.planning import ids
from careflow.planning.inclusion import PROPOSAL_DUE_WITHIN, _nl
from careflow.population.case_model import CaseFindingSet, CaseRule
from careflow.population.evaluate import Evaluation, Reason
from careflow.population.facts import Inhabitant
from careflow.programs.durations import parse_duration

CASE_FINDING = "case-finding-proposal"
CASE_FINDING_RULE = f"{BASE}/CodeSystem/case-finding-rule"  # code: the rule id, version: the rule set's version
EVIDENCE = "evidence"
OPEN_STATUSES = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")


@dataclass(frozen=True)
class Match:
    """One inhabitant matching one rule on ``day``: why, and the resources it rests on."""

    patient: str
    rule: CaseRule
    ruleset: str
    version: str
    day: date
    reasons: tuple[Reason, ...]
    age: int | None = None

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(sorted(dict.fromkeys(ref for r in self.reasons for ref in r.evidence)))

    def explanation(self) -> str:
        """'Smoker aged 40 or over without a spirometry in 5 years: age 52, smoking status 77176002 on …'."""
        return f"{self.rule.title.en}: {', '.join(r.text for r in self.reasons)} (rule set {self.ruleset} {self.version})"


def find(who: Inhabitant, rules: CaseFindingSet, day: date) -> list[Match]:
    """Every rule of ``rules`` that ``who`` matches on ``day`` (in rule-file order)."""
    ev = Evaluation(who, rules.chronic, rules.frailty, day)
    out: list[Match] = []
    for rule in rules.rules:
        reasons: list[Reason] = []
        for criterion in rule.when:
            got = ev.test(criterion)
            if got is None:
                break
            reasons += got
        else:
            out.append(Match(who.id, rule, rules.id, rules.version, day, tuple(dict.fromkeys(reasons)), ev.age))
    return out


def rule_of(task: Mapping[str, Any]) -> str | None:
    """The case-finding rule id a proposal Task was made by."""
    for c in (task.get("reasonCode") or {}).get("coding") or ():
        if isinstance(c, dict) and c.get("system") == CASE_FINDING_RULE and isinstance(c.get("code"), str):
            return str(c["code"])
    return None


def evidence_of(task: Mapping[str, Any]) -> set[str]:
    return {str(ref) for i in task.get("input") or () if isinstance(i, dict)
            if (i.get("type") or {}).get("text") == EVIDENCE
            and isinstance(ref := (i.get("valueReference") or {}).get("reference"), str)}


def is_case_finding(task: Mapping[str, Any]) -> bool:
    return any(c.get("system") == TASK_KIND and c.get("code") == CASE_FINDING
               for c in (task.get("code") or {}).get("coding") or () if isinstance(c, dict))


def should_propose(match: Match, earlier: Iterable[Mapping[str, Any]]) -> str | None:
    """None to propose ``match``; otherwise why not: ``already-proposed`` (one of this rule is open)
    or ``seen-before`` (a closed one, rejected or done, already cited all of this evidence)."""
    mine = [t for t in earlier if rule_of(t) == match.rule.id]
    if any(t.get("status") in OPEN_STATUSES for t in mine):
        return "already-proposed"
    wanted = set(match.evidence)
    if any(wanted <= evidence_of(t) for t in mine):
        return "seen-before"
    return None


def proposal(match: Match, team: Mapping[str, str], organization: str | None, today: date,
             programme: tuple[str, str, str] | None) -> dict[str, Any]:
    """The proposal Task for ``match``; ``programme`` is (canonical, English title, Dutch title) of
    the programme a confirmed case joins, when it is loaded (completing the Task then includes the
    patient by the inclusion path)."""
    rule = match.rule
    to = team.get("gp") or team.get("care-coach") or organization
    reasons = ", ".join(r.text for r in match.reasons)
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": ids.case_finding_id(match.patient, rule.id, list(match.evidence)),
        "status": "requested",
        "intent": "proposal",
        "priority": "routine",
        "code": {"coding": [{"system": TASK_KIND, "code": CASE_FINDING, "display": "Case-finding proposal"}],
                 "text": rule.title.en, "_text": _nl(rule.title.nl)},
        "description": f"Early detection: {reasons}. Look at this patient"
                       + (f" for {programme[1]}" if programme else "") + ", or reject the proposal.",
        "_description": _nl(f"Vroegtijdige opsporing: {reasons}. Bekijk deze patiënt"
                            + (f" voor {programme[2]}" if programme else "") + " of wijs het voorstel af."),
        "focus": {"reference": f"Patient/{match.patient}"},
        "for": {"reference": f"Patient/{match.patient}"},
        "authoredOn": today.isoformat(),
        "lastModified": today.isoformat(),
        "restriction": {"period": {"start": today.isoformat(),
                                   "end": parse_duration(PROPOSAL_DUE_WITHIN).after(today).isoformat()}},
        "reasonCode": {"coding": [{"system": CASE_FINDING_RULE, "version": match.version, "code": rule.id,
                                   "display": rule.title.en}],
                       "text": match.explanation()},
        "input": ([{"type": {"text": "programme"}, "valueCanonical": programme[0]}] if programme else [])
        + [{"type": {"text": EVIDENCE}, "valueReference": {"reference": ref}} for ref in match.evidence],
    }
    if not task["input"]:
        del task["input"]
    if to:
        task["owner"] = {"reference": to}
    return task
