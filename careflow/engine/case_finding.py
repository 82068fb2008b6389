"""Case finding over the store: find the inhabitants a rule could match with one search per rule,
evaluate only those, and write a proposal Task for each new match.

Set-wise: every rule has facts a match must hold (a smoking status recorded, an eGFR taken, a loop
diuretic or an NT-proBNP, a diabetes diagnosis); those are searched type by type (``Observation?
code=…&date=ge…``, ``Condition?code=…``, ``MedicationStatement?code=…``) to give the candidates, and
only the candidates' records are read, in batches of id lists (``careflow.engine.reading``), as the
stratification reads them. A rule with no such fact (an age alone) falls back to every Patient.

Never proposed: the deceased and records no longer in use, patients whose sharing consent was
withdrawn (a sharing Consent exists and none permits sharing now), patients already in the rule's
programme (its CarePlan draft, active or on hold) or with an inclusion proposal for it still open
or rejected (``careflow.engine.inclusion.open_proposals``: a rejection of the inclusion stands).
Idempotent: one open proposal per patient and rule, deterministic ids, ``create_if_absent``; a
proposal closed (rejected or done) is not made again for the same evidence
(``careflow.population.case_finding.should_propose``). An open proposal that no longer stands (the
patient died, withdrew consent or was enrolled meanwhile) is cancelled with the reason in
``statusReason``. Writes are one unit of work per batch as SYSTEM, each cancellation its own with If-Match.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable, Mapping, Sequence

from careflow.access.grants import consent_state
from careflow.access.policy import AccessPolicy, default_policy
from careflow.access.principal import SYSTEM
from careflow.engine.counts import Counts
from careflow.engine.inclusion import open_proposals
from careflow.engine.reading import by_ids, chunks, search_pages
from careflow.engine.stratify import _subject, population_ids, read_inhabitants
from careflow.engine.team import TeamDirectory
from careflow.errors import VersionConflict
from careflow.naming import TASK_KIND
from careflow.planning import ids
from careflow.planning.patient import _neighbourhood, is_deceased, replaced_by
from careflow.population.case_finding import CASE_FINDING, OPEN_STATUSES, Match, find, proposal, rule_of, should_propose
from careflow.population.case_model import CaseFindingSet
from careflow.population.facts import MEDICATION_TYPES
from careflow.population.model import (
    AllCriterion,
    AnyCriterion,
    ChronicCriterion,
    ConditionCriterion,
    Criterion,
    FrailtyCriterion,
    MedicinesCriterion,
    ObservationCriterion,
)
from careflow.programs.codes import ATC, ICD10, ICPC2
from careflow.programs.durations import parse_duration
from careflow.programs.model import Coding, Program
from careflow.store.port import Repository, Stored

BATCH = 500  # candidates read and written per unit of work
ENROLLED = ("draft", "active", "on-hold")
PREFIX_SEARCHED = (ICD10, ICPC2, ATC)  # codes that cover sub-codes: the whole system is searched, then filtered


def _tokens(codes: Iterable[Coding]) -> str:
    return ",".join(sorted({f"{c.system}|" if c.system in PREFIX_SEARCHED else f"{c.system}|{c.code}" for c in codes}))


def _subjects(repo: Repository, rtype: str, params: list[tuple[str, str]]) -> set[str]:
    out: set[str] = set()
    for page in search_pages(repo, rtype, params):
        for s in page.matches:
            pid = _subject(s.resource or {})
            if pid:
                out.add(pid)
    return out


class _Anchors:
    """The patients a criterion can hold for, by searches; None when no search narrows it (an age,
    a ``not``). Each search is made once per run, however many rules share it."""

    def __init__(self, repo: Repository, rules: CaseFindingSet, day: date) -> None:
        self.repo, self.rules, self.day = repo, rules, day
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], set[str]] = {}

    def search(self, rtype: str, params: list[tuple[str, str]]) -> set[str]:
        key = (rtype, tuple(params))
        if key not in self._cache:
            self._cache[key] = _subjects(self.repo, rtype, params)
        return self._cache[key]

    def of(self, c: Criterion) -> set[str] | None:
        if isinstance(c, AllCriterion):
            return self.all(c.all)
        if isinstance(c, AnyCriterion):
            parts = [self.of(x) for x in c.any]
            return None if any(p is None for p in parts) else set().union(*(p for p in parts if p is not None))
        if isinstance(c, (ConditionCriterion, ChronicCriterion)):
            names = (c.condition.any_of or c.condition.all_of or []) if isinstance(c, ConditionCriterion) \
                else (c.chronic.of or list(self.rules.chronic))
            codes = [code for k in names if k in self.rules.chronic for code in self.rules.chronic[k].codes]
            return self.search("Condition", [("code", _tokens(codes))]) if codes else None
        if isinstance(c, ObservationCriterion):
            t = c.observation
            since = parse_duration(t.within).before(self.day)
            return self.search("Observation", [("code", _tokens(t.codes)), ("date", f"ge{since.isoformat()}")])
        if isinstance(c, FrailtyCriterion) and self.rules.frailty is not None:
            return self.search("Observation", [("code", _tokens(self.rules.frailty.codes))])
        if isinstance(c, MedicinesCriterion) and c.medicines.atc:
            token = _tokens(Coding(system="atc", code=a) for a in c.medicines.atc)
            return set().union(*(self.search(rtype, [("code", token)]) for rtype in MEDICATION_TYPES))
        return None  # age, hospital stays, polypharmacy, not: no search narrows them

    def all(self, items: Sequence[Criterion]) -> set[str] | None:
        found: set[str] | None = None
        for x in items:
            got = self.of(x)
            if got is not None:
                found = got if found is None else found & got
        return found


def candidates(repo: Repository, rules: CaseFindingSet, day: date) -> list[str]:
    """The patients some rule of ``rules`` could match on ``day`` (sorted), by searches per rule."""
    anchors = _Anchors(repo, rules, day)
    found: set[str] = set()
    for rule in rules.rules:
        got = anchors.all(rule.when)
        if got is None:
            return population_ids(repo)
        found |= got
    return sorted(found)


def _in_use(patient: dict[str, Any]) -> bool:
    return not (is_deceased(patient) or patient.get("active") is False or replaced_by(patient))


def withdrew_consent(consents: Sequence[dict[str, Any]], policy: AccessPolicy, day: date) -> bool:
    """A sharing Consent was recorded and none permits sharing on ``day`` (withdrawn or ended).
    A patient who never gave one is not excluded: the proposal goes to their own GP."""
    from datetime import datetime, timezone

    categories = policy.consent_categories()
    sharing = [c for c in consents if c.get("status") in ("active", "inactive", "rejected") and categories & {(str(x.get("system")), str(x.get("code")))
                                                     for cat in c.get("category") or () for x in cat.get("coding") or ()}]
    if not sharing:
        return False
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    return not consent_state(sharing, policy, moment).sharing


def _batch(repo: Repository, rules: CaseFindingSet, programs: Mapping[str, Program], day: date, batch: list[str],
           directory: TeamDirectory, policy: AccessPolicy, counts: Counts) -> None:
    found = read_inhabitants(repo, batch, rules)
    counts.add("missing-patient", len(set(batch) - set(found)))
    matches: dict[str, list[Match]] = {}
    gone: list[str] = []
    for pid, (stored, who) in sorted(found.items()):
        patient = stored.resource or {}
        if not _in_use(patient):
            counts.add("not-in-use", neighbourhood=_neighbourhood(patient))
            gone.append(pid)
            continue
        got = find(who, rules, day)
        if got:
            matches[pid] = got
    if not matches and not gone:
        return
    pids = sorted(matches)
    earlier: dict[str, list[Stored]] = {}
    for s in by_ids(repo, "Task", sorted([*pids, *gone]), "patient", [("code", f"{TASK_KIND}|{CASE_FINDING}")]):
        if s.resource and (whose := _subject({"subject": s.resource.get("for")})):
            earlier.setdefault(whose, []).append(s)
    retire: list[tuple[Stored, str, str]] = []  # open proposals that may no longer stand: (task, why, count key)

    def open_of(pid: str, rule_id: str | None = None) -> list[Stored]:
        return [s for s in earlier.get(pid, []) if (s.resource or {}).get("status") in OPEN_STATUSES
                and (rule_id is None or rule_of(s.resource or {}) == rule_id)]

    for pid in gone:
        retire += [(s, "the patient's record is no longer in use (deceased, inactive or merged)", "withdrawn-not-in-use")
                   for s in open_of(pid)]
    consents: dict[str, list[dict[str, Any]]] = {}
    for s in by_ids(repo, "Consent", pids, "patient"):
        if s.resource and (whose := _subject(s.resource)):
            consents.setdefault(whose, []).append(s.resource)
    plans = {s.id for s in by_ids(repo, "CarePlan", pids, "patient") if (s.resource or {}).get("status") in ENROLLED}
    inclusion = open_proposals(repo, pids)
    tasks: list[tuple[str, str | None, dict[str, Any]]] = []
    for pid in pids:
        patient = found[pid][0].resource or {}
        hood = _neighbourhood(patient)
        if withdrew_consent(consents.get(pid, []), policy, day):
            counts.add("consent-withdrawn", len(matches[pid]), neighbourhood=hood)
            retire += [(s, "the patient withdrew their consent to sharing", "withdrawn-consent") for s in open_of(pid)]
            continue
        for m in matches[pid]:
            counts.add("matched", program=m.rule.id, neighbourhood=hood)
            prog = programs.get(m.rule.programme or "")
            if m.rule.programme and ids.careplan_id(pid, m.rule.programme) in plans:
                counts.add("already-enrolled", program=m.rule.id, neighbourhood=hood)
                retire += [(s, f"the patient is already in the {m.rule.programme} programme", "withdrawn-enrolled")
                           for s in open_of(pid, m.rule.id)]
                continue
            if prog is not None and prog.url in inclusion.get(pid, ()):
                counts.add("inclusion-proposed", program=m.rule.id, neighbourhood=hood)
                continue
            why = should_propose(m, [s.resource for s in earlier.get(pid, []) if s.resource])
            if why:
                counts.add(why, program=m.rule.id, neighbourhood=hood)
                continue
            team, org = directory.team_for(patient)
            programme = (prog.canonical, prog.title.en, prog.title.nl) if prog is not None else None
            tasks.append((m.rule.id, hood, proposal(m, team, org, day, programme)))
    if tasks:
        with repo.unit_of_work(SYSTEM) as uow:
            for rule_id, hood, task in tasks:
                if uow.create_if_absent(task)[1]:
                    counts.add("proposed", program=rule_id, neighbourhood=hood)
                else:
                    counts.add("already-proposed", program=rule_id, neighbourhood=hood)
    for stored, why, key in retire:
        _withdraw(repo, stored, why, day, key, counts)


def _withdraw(repo: Repository, stored: Stored, why: str, day: date, key: str, counts: Counts) -> None:
    """Cancel an open proposal that no longer stands (If-Match: a GP's step taken meanwhile wins)."""
    task = {**(stored.resource or {}), "status": "cancelled", "statusReason": {"text": f"Withdrawn: {why}"},
            "lastModified": day.isoformat()}
    task.pop("meta", None)
    try:
        with repo.unit_of_work(SYSTEM) as uow:
            uow.update(task, if_match=stored.version)
    except VersionConflict:
        counts.add("conflict")
        return
    counts.add(key, program=rule_of(task))


def find_cases(repo: Repository, rules: CaseFindingSet, programs: Mapping[str, Program], day: date,
               patient_ids: Sequence[str] | None = None, *, batch_size: int = BATCH) -> Counts:
    """Propose ``patient_ids`` (None: the candidates of every rule) to their GP where a rule matches.

    keys (``by_program`` holds them per rule): matched, proposed, already-proposed (one is open),
    seen-before (a closed proposal already cited this evidence), already-enrolled, inclusion-proposed
    (an inclusion proposal for the programme is open or was rejected), consent-withdrawn, not-in-use (deceased,
    inactive or merged records), missing-patient; withdrawn-not-in-use, withdrawn-consent,
    withdrawn-enrolled (an open proposal cancelled, with the reason in ``statusReason``), conflict."""
    ids_ = candidates(repo, rules, day) if patient_ids is None else sorted(set(patient_ids))
    counts = Counts()
    directory = TeamDirectory(repo)
    policy = getattr(repo, "policy", None) or default_policy()
    for batch in chunks(ids_, batch_size):
        _batch(repo, rules, programs, day, batch, directory, policy, counts)
    return counts


def evaluate(repo: Repository, rules: CaseFindingSet, day: date, patient_ids: Sequence[str] | None = None,
             *, batch_size: int = BATCH) -> list[Match]:
    """Every match on ``day``, written nowhere (``careflow find-cases --dry-run``, tests)."""
    ids_ = candidates(repo, rules, day) if patient_ids is None else sorted(set(patient_ids))
    out: list[Match] = []
    for batch in chunks(ids_, batch_size):
        for _pid, (stored, who) in sorted(read_inhabitants(repo, batch, rules).items()):
            if _in_use(stored.resource or {}):
                out += find(who, rules, day)
    return out
