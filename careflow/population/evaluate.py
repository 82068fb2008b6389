"""Place one inhabitant in a group of the pyramid on a given day, with the reasons.

Pure and deterministic: the same facts, rule set and day always give the same group and the same
words, which is what makes an old rule version replayed at an old date give the old groups. Each
criterion that holds says why in a short phrase and names the resources it rests on (the evidence
a RiskAssessment cites); a frailty screen too old to use is flagged, never silently used or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from careflow.planning.eligibility import PREFIX_SYSTEMS
from careflow.planning.patient import Code, ObservationFact
from careflow.population.facts import Inhabitant
from careflow.population.model import (
    AgeCriterion,
    AllCriterion,
    AnyCriterion,
    ChronicCriterion,
    ChronicKind,
    ConditionCriterion,
    Criterion,
    FrailtyCriterion,
    FrailtyScreen,
    HospitalCriterion,
    MedicinesCriterion,
    NotCriterion,
    ObservationCriterion,
    ObservationTest,
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


class Evaluation:
    """One inhabitant, one vocabulary (the condition kinds and the frailty screen a rule file
    declares), one day: facts worked out once, criteria tested against them. The pyramid and the
    case-finding rules share it, so a criterion means the same in both."""

    def __init__(self, who: Inhabitant, chronic: dict[str, ChronicKind], frailty: FrailtyScreen | None,
                 day: date) -> None:
        self.who, self.chronic, self.screen, self.day = who, chronic, frailty, day
        self.age = who.age_on(day)
        self.flags: list[str] = []
        self.kinds = self._kinds()
        self.frailty = self._frailty()  # a stale screen is flagged whether or not a rule reaches it

    def _kinds(self) -> dict[str, tuple[str, ...]]:
        """Chronic kind id -> the Conditions showing it on the day (kinds absent left out), in rule-file order."""
        out: dict[str, tuple[str, ...]] = {}
        held = [d for d in self.who.diagnoses if d.holds_on(self.day)]
        for kid, kind in self.chronic.items():
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
        screen = self.screen
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
        if isinstance(criterion, NotCriterion):
            return None if self.test(criterion.not_) is not None else [Reason(absence(criterion.not_, self.chronic))]
        if isinstance(criterion, AgeCriterion):
            a = criterion.age
            if self.age is None or (a.at_least is not None and self.age < a.at_least) or (a.below is not None and self.age >= a.below):
                return None
            return [Reason(f"age {self.age}")]
        if isinstance(criterion, ChronicCriterion):
            wanted = criterion.chronic.of or list(self.chronic)
            present = [k for k in self.kinds if k in wanted]
            if len(present) < criterion.chronic.at_least:
                return None
            text = " + ".join(self.chronic[k].label for k in present)
            return [Reason(text, tuple(ref for k in present for ref in self.kinds[k]))]
        if isinstance(criterion, ConditionCriterion):
            has = criterion.condition
            names = has.any_of or has.all_of or []
            present = [k for k in names if k in self.kinds]
            if not present or (has.all_of is not None and len(present) < len(names)):
                return None
            return [Reason(" + ".join(self.chronic[k].label for k in present),
                           tuple(ref for k in present for ref in self.kinds[k]))]
        if isinstance(criterion, ObservationCriterion):
            return self._observation(criterion.observation)
        if isinstance(criterion, MedicinesCriterion):
            m = criterion.medicines
            classes = [Coding(system="atc", code=code) for code in m.atc] if m.atc else None
            taken = [x for x in self.who.medicines if x.taken_on(self.day) and (classes is None or _matches(classes, x.codes))
                     and (m.per_day is None or _per_day_holds(m.per_day.at_most, m.per_day.above, x.per_day))]
            distinct = {x.codes or (("", x.ref),) for x in taken}
            if len(distinct) < m.at_least:
                return None
            scope = f" of ATC {', '.join(m.atc)}" if m.atc else ""
            if m.per_day is not None:
                scope += f" {_per_day_text(m.per_day.at_most, m.per_day.above)}"
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
            screen, obs = self.screen, self.frailty
            if screen is None or obs is None or obs.value is None or obs.when is None or obs.value < criterion.frailty.at_least:
                return None
            return [Reason(f"{screen.label} {_value(obs.value)} on {obs.when.date().isoformat()}", (obs.id,) if obs.id else ())]
        raise TypeError(f"unknown criterion {type(criterion).__name__}")  # pragma: no cover - the model is closed


    def _results(self, t: ObservationTest) -> list[ObservationFact]:
        """The results of ``t``'s codes dated in its window up to the day, oldest first (a result
        without a value or a coded answer is not a result)."""
        since = parse_duration(t.within).before(self.day)
        out = [o for o in self.who.observations
               if o.when is not None and (o.value is not None or o.value_codes) and _matches(t.codes, o.codes)
               and since <= o.when.date() <= self.day]
        return sorted(out, key=lambda o: (o.when.replace(tzinfo=None) if o.when else o.when, o.id or ""))

    def _meets(self, t: ObservationTest, obs: ObservationFact) -> bool:
        if t.value_in is not None:
            return _matches(t.value_in, obs.value_codes)
        if not t.threshold:
            return True
        v = obs.value
        if v is None:
            return False
        return ((t.below is None or v < t.below) and (t.at_most is None or v <= t.at_most)
                and (t.above is None or v > t.above) and (t.at_least is None or v >= t.at_least))

    def _observation(self, t: ObservationTest) -> list[Reason] | None:
        """The latest result meets the test; or, with ``times``, that many results do, each at
        least ``apart`` after the previous one counted (the earliest first, so the count is greedy
        and the same whatever order the results were entered in)."""
        results = self._results(t)
        if t.times == 1:
            if t.threshold and t.value_in is None:
                latest = self.latest(t.codes, t.within)  # the latest numeric value, as the pyramid reads it
                results = [latest] if latest is not None else []
            results = results[-1:]
            if not results or not self._meets(t, results[0]):
                return None
            return [Reason(_result_text(t.label, results[0], t.value_in), (results[0].id,) if results[0].id else ())]
        counted: list[ObservationFact] = []
        for obs in results:
            if not self._meets(t, obs) or obs.when is None:
                continue
            last = counted[-1].when if counted else None
            if last is None or t.apart is None or obs.when.date() >= parse_duration(t.apart).after(last.date()):
                counted.append(obs)
        if len(counted) < t.times:
            return None
        counted = counted[:t.times]
        text = f"{t.label} " + " and ".join(_result_text("", o).strip() for o in counted)
        return [Reason(text, tuple(dict.fromkeys(o.id for o in counted if o.id)))]


def _result_text(label: str, obs: ObservationFact, named: list[Coding] | None = None) -> str:
    """'eGFR 52 on 2026-04-10', 'smoking status Smoker on 2026-06-01' (a coded result by the rule's
    display of it, else its code)."""
    on = obs.when.date().isoformat() if obs.when else "an unknown day"
    if obs.value is not None:
        return f"{label} {_value(obs.value)} on {on}"
    displays = {(c.system, c.code): c.display for c in named or () if c.display}
    coded = next((displays.get(c) or c[1] for c in obs.value_codes), "")
    return f"{label} {coded} on {on}" if coded else f"{label} on {on}"


def _per_day_holds(at_most: float | None, above: float | None, per_day: float | None) -> bool:
    if per_day is None:
        return False
    return (at_most is None or per_day <= at_most + 1e-9) and (above is None or per_day > above + 1e-9)


def _per_day_text(at_most: float | None, above: float | None) -> str:
    return f"at most {_value(at_most)} a day" if at_most is not None else f"more than {_value(above or 0)} a day"


def absence(criterion: Criterion, chronic: dict[str, ChronicKind]) -> str:
    """The phrase for a criterion that does not hold: 'no heart failure diagnosis'."""
    if isinstance(criterion, ConditionCriterion):
        names = criterion.condition.any_of or criterion.condition.all_of or []
        joiner = " or " if criterion.condition.any_of else " and "
        return f"no {joiner.join(chronic[k].label if k in chronic else k for k in names)} diagnosis"
    if isinstance(criterion, ChronicCriterion):
        return f"fewer than {criterion.chronic.at_least} chronic conditions"
    if isinstance(criterion, ObservationCriterion):
        t = criterion.observation
        return f"no {t.label} in {humanise(t.within)}" if not t.threshold and t.value_in is None and t.times == 1 \
            else f"no {t.label} result meeting the test in {humanise(t.within)}"
    if isinstance(criterion, MedicinesCriterion):
        m = criterion.medicines
        return f"no medicine of ATC {', '.join(m.atc)}" if m.atc else "fewer medicines"
    if isinstance(criterion, HospitalCriterion):
        return f"no hospital stay in {humanise(criterion.hospital_stays.within)}"
    if isinstance(criterion, AgeCriterion):
        return "age outside the range"
    if isinstance(criterion, FrailtyCriterion):
        return "no frailty screen at that score"
    return "not: " + ", ".join(type(criterion).model_fields)


def stratify(who: Inhabitant, rules: RuleSet, day: date) -> Stratum:
    """The group of ``who`` on ``day``: the first rule whose every criterion holds, else the default."""
    ev = Evaluation(who, rules.chronic, rules.frailty, day)
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
