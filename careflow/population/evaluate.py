"""Place one inhabitant in a group of the pyramid on a given day, with the reasons.

Pure and deterministic: the same facts, rule set and day always give the same group and the same
words, which is what makes an old rule version replayed at an old date give the old groups. Each
criterion that holds says why in a short phrase and names the resources it rests on (the evidence
a RiskAssessment cites); a frailty screen too old to use is flagged, never silently used or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Iterable

from careflow.planning.eligibility import PREFIX_SYSTEMS
from careflow.planning.patient import Code, ObservationFact
from careflow.population.facts import Inhabitant
from careflow.population.model import (
    AgeCriterion,
    AllCriterion,
    AnyCriterion,
    ChronicCriterion,
    ConditionCriterion,
    Criterion,
    FrailtyCriterion,
    HospitalCriterion,
    MedicinesCriterion,
    ObservationCriterion,
    RuleSet,
)
from careflow.programs.codes import ATC
from careflow.programs.durations import humanise, parse_duration
from careflow.programs.model import Coding


@dataclass(frozen=True)
class Reason:
    text: str
    evidence: tuple[str, ...] = ()  # "Condition/…", "Observation/…" the phrase rests on


@dataclass(frozen=True)
class Stratum:
    """Where one inhabitant stands on ``day`` under ``ruleset``/``version``: the group, the rule that
    placed them (None: the default group), why, and what was flagged."""

    patient: str
    group: str
    ruleset: str
    version: str
    day: date
    rule: str | None
    reasons: tuple[Reason, ...]
    age: int | None = None
    flags: tuple[str, ...] = ()
    chronic: tuple[str, ...] = field(default=())  # labels of the chronic kinds present

    @property
    def evidence(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(ref for r in self.reasons for ref in r.evidence))

    def explanation(self) -> str:
        """'group B because: COPD + heart failure, age 81, rule set 2026.2'."""
        parts = [r.text for r in self.reasons]
        if self.rule is None:
            parts = [" + ".join(self.chronic) if self.chronic else "no chronic condition",
                     "no rule for another group holds"]
        if self.age is not None and not any(p.startswith("age ") for p in parts):
            parts.append(f"age {self.age}")
        text = f"group {self.group} because: {', '.join(parts)}, rule set {self.version}"
        return text + "".join(f"; {flag}" for flag in self.flags)


def _matches(wanted: list[Coding], have: tuple[Code, ...]) -> bool:
    for system, code in have:
        for w in wanted:
            if w.system != system:
                continue
            if code == w.code:
                return True
            if system in PREFIX_SYSTEMS and (code.startswith(w.code + ".") or (len(w.code) == 3 and code.startswith(w.code))):
                return True
            if system == ATC and code.startswith(w.code):
                return True
    return False


def _value(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


class _Evaluation:
    """One inhabitant, one rule set, one day: facts worked out once, criteria tested against them."""

    def __init__(self, who: Inhabitant, rules: RuleSet, day: date) -> None:
        self.who, self.rules, self.day = who, rules, day
        self.age = who.age_on(day)
        self.flags: list[str] = []
        self.kinds = self._kinds()
        self.frailty = self._frailty()  # a stale screen is flagged whether or not a rule reaches it

    def _kinds(self) -> dict[str, tuple[str, ...]]:
        """Chronic kind id -> the Conditions showing it on the day (kinds absent left out), in rule-file order."""
        out: dict[str, tuple[str, ...]] = {}
        held = [d for d in self.who.diagnoses if d.holds_on(self.day)]
        for kid, kind in self.rules.chronic.items():
            refs = tuple(d.ref for d in held if _matches(kind.codes, d.codes))
            if refs:
                out[kid] = refs
        return out

    def latest(self, codes: list[Coding], within: str | None) -> ObservationFact | None:
        since = parse_duration(within).before(self.day) if within else None
        best: ObservationFact | None = None
        for obs in self.who.observations:
            if obs.when is None or obs.value is None or not _matches(codes, obs.codes):
                continue
            taken = obs.when.date()
            if taken > self.day or (since is not None and taken < since):
                continue
            if best is None or best.when is None or obs.when > best.when:
                best = obs
        return best

    def _frailty(self) -> ObservationFact | None:
        """The latest frailty screen still valid on the day; a later-too-old one is flagged."""
        screen = self.rules.frailty
        if screen is None:
            return None
        latest = self.latest(screen.codes, None)
        if latest is None or latest.when is None:
            return None
        if latest.when.date() < parse_duration(screen.valid_for).before(self.day):
            self.flags.append(f"{screen.label} of {latest.when.date().isoformat()} is older than "
                              f"{humanise(screen.valid_for)}: not used")
            return None
        return latest

    def test(self, criterion: Criterion) -> list[Reason] | None:
        """The reasons when ``criterion`` holds, None when it does not."""
        if isinstance(criterion, AllCriterion):
            out: list[Reason] = []
            for c in criterion.all:
                got = self.test(c)
                if got is None:
                    return None
                out += got
            return out
        if isinstance(criterion, AnyCriterion):
            held = [r for c in criterion.any if (r := self.test(c)) is not None]
            return [reason for r in held for reason in r] if held else None
        if isinstance(criterion, AgeCriterion):
            a = criterion.age
            if self.age is None or (a.at_least is not None and self.age < a.at_least) or (a.below is not None and self.age >= a.below):
                return None
            return [Reason(f"age {self.age}")]
        if isinstance(criterion, ChronicCriterion):
            wanted = criterion.chronic.of or list(self.rules.chronic)
            present = [k for k in self.kinds if k in wanted]
            if len(present) < criterion.chronic.at_least:
                return None
            text = " + ".join(self.rules.chronic[k].label for k in present)
            return [Reason(text, tuple(ref for k in present for ref in self.kinds[k]))]
        if isinstance(criterion, ConditionCriterion):
            has = criterion.condition
            names = has.any_of or has.all_of or []
            present = [k for k in names if k in self.kinds]
            if not present or (has.all_of is not None and len(present) < len(names)):
                return None
            return [Reason(" + ".join(self.rules.chronic[k].label for k in present),
                           tuple(ref for k in present for ref in self.kinds[k]))]
        if isinstance(criterion, ObservationCriterion):
            t = criterion.observation
            obs = self.latest(t.codes, t.within)
            if obs is None or obs.value is None or obs.when is None:
                return None
            v = obs.value
            holds = ((t.below is None or v < t.below) and (t.at_most is None or v <= t.at_most)
                     and (t.above is None or v > t.above) and (t.at_least is None or v >= t.at_least))
            if not holds:
                return None
            return [Reason(f"{t.label} {_value(v)} on {obs.when.date().isoformat()}", (obs.id,) if obs.id else ())]
        if isinstance(criterion, MedicinesCriterion):
            m = criterion.medicines
            classes = [Coding(system="atc", code=code) for code in m.atc] if m.atc else None
            taken = [x for x in self.who.medicines if x.taken_on(self.day) and (classes is None or _matches(classes, x.codes))]
            distinct = {x.codes or (("", x.ref),) for x in taken}
            if len(distinct) < m.at_least:
                return None
            scope = f" of ATC {', '.join(m.atc)}" if m.atc else ""
            n = len(distinct)
            return [Reason(f"{n} medicine{'s' if n != 1 else ''}{scope}", tuple(x.ref for x in taken))]
        if isinstance(criterion, HospitalCriterion):
            h = criterion.hospital_stays
            since = parse_duration(h.within).before(self.day)
            stays = [s for s in self.who.stays if since <= s.start <= self.day]
            if len(stays) < h.at_least:
                return None
            n = len(stays)
            return [Reason(f"{n} hospital stay{'s' if n != 1 else ''} in {humanise(h.within)}", tuple(s.ref for s in stays))]
        if isinstance(criterion, FrailtyCriterion):
            screen, obs = self.rules.frailty, self.frailty
            if screen is None or obs is None or obs.value is None or obs.when is None or obs.value < criterion.frailty.at_least:
                return None
            return [Reason(f"{screen.label} {_value(obs.value)} on {obs.when.date().isoformat()}", (obs.id,) if obs.id else ())]
        raise TypeError(f"unknown criterion {type(criterion).__name__}")  # pragma: no cover - the model is closed


def stratify(who: Inhabitant, rules: RuleSet, day: date) -> Stratum:
    """The group of ``who`` on ``day``: the first rule whose every criterion holds, else the default."""
    ev = _Evaluation(who, rules, day)
    chronic = tuple(rules.chronic[k].label for k in ev.kinds)
    for rule in rules.rules:
        reasons: list[Reason] = []
        for criterion in rule.when:
            got = ev.test(criterion)
            if got is None:
                break
            reasons += got
        else:
            unique = tuple(dict.fromkeys(reasons))
            return Stratum(who.id, rule.group, rules.id, rules.version, day, rule.id, unique, ev.age, tuple(ev.flags), chronic)
    evidence = tuple(ref for refs in ev.kinds.values() for ref in refs)
    return Stratum(who.id, rules.default, rules.id, rules.version, day, None,
                   (Reason("no rule holds", evidence),), ev.age, tuple(ev.flags), chronic)


def stratify_all(people: Iterable[Inhabitant], rules: RuleSet, day: date) -> list[Stratum]:
    """``stratify`` for many inhabitants at once, in their order. Most of a region has no recorded
    condition, measurement, medicine or stay: for them the placement depends on the age alone, so it
    is worked out once per age and only the patient's id changes."""
    by_age: dict[int | None, Stratum] = {}
    out: list[Stratum] = []
    for who in people:
        if who.diagnoses or who.observations or who.medicines or who.stays:
            out.append(stratify(who, rules, day))
            continue
        age = who.age_on(day)
        known = by_age.get(age)
        if known is None:
            known = by_age[age] = stratify(who, rules, day)
            out.append(known)
        else:
            out.append(replace(known, patient=who.id))
    return out
