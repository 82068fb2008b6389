"""Stratification over the store: read what the rules look at for many patients at once, place each
in the pyramid, record the RiskAssessment and keep the Patient's group tag in step.

Reads are batched (``_id=…``/``patient=…`` lists, ``careflow.engine.reading``); each batch is written
in one unit of work as SYSTEM. A patient whose assessment says the same as before is not written
again, so a rerun over an unchanged population writes nothing and the RiskAssessment's ``_history``
shows each change of group, reasons or rule version. ``assess`` computes without writing: the replay
of an old rule version at an old date, and the per-patient explanation.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable, Sequence

from careflow.access.principal import SYSTEM
from careflow.engine.counts import Counts
from careflow.engine.reading import by_ids, chunks, ref_id, search_pages
from careflow.errors import VersionConflict
from careflow.naming import POPULATION_GROUP
from careflow.planning.patient import _neighbourhood, replaced_by
from careflow.population.assessment import assessment_id, group_coding, risk_assessment, same_assessment
from careflow.population.case_model import CaseFindingSet
from careflow.population.evaluate import Stratum
from careflow.population.evaluate import stratify as place
from careflow.population.facts import MEDICATION_TYPES, Inhabitant, inhabitant
from careflow.population.model import (
    AllCriterion,
    AnyCriterion,
    Criterion,
    HospitalCriterion,
    MedicinesCriterion,
    NotCriterion,
    ObservationCriterion,
    RuleSet,
)
from careflow.store.port import Repository, Stored

BATCH = 500  # patients read and written per unit of work


def population_ids(repo: Repository, *, page_size: int = 1000) -> list[str]:
    """Every Patient id (sorted)."""
    return sorted(s.id for page in search_pages(repo, "Patient", [], page_size=page_size) for s in page.matches)


def criteria(rules: RuleSet | CaseFindingSet) -> Iterable[Criterion]:
    """Every criterion of every rule, nested ones too (what the reads must cover)."""
    stack: list[Criterion] = [c for r in rules.rules for c in r.when]
    while stack:
        c = stack.pop()
        yield c
        if isinstance(c, AnyCriterion):
            stack += c.any
        elif isinstance(c, AllCriterion):
            stack += c.all
        elif isinstance(c, NotCriterion):
            stack.append(c.not_)


def _needs(rules: RuleSet | CaseFindingSet) -> tuple[list[str], bool, bool]:
    """(Observation codes as system|code, whether medication is read, whether Encounters are read)."""
    codes = {f"{c.system}|{c.code}" for c in (rules.frailty.codes if rules.frailty else ())}
    meds = stays = False
    for c in criteria(rules):
        if isinstance(c, ObservationCriterion):
            codes |= {f"{x.system}|{x.code}" for x in c.observation.codes}
        meds = meds or isinstance(c, MedicinesCriterion)
        stays = stays or isinstance(c, HospitalCriterion)
    return sorted(codes), meds, stays


def _subject(r: dict[str, Any]) -> str | None:
    return ref_id(r.get("subject"), "Patient") or ref_id(r.get("patient"), "Patient")


def read_inhabitants(repo: Repository, patient_ids: Sequence[str],
                     rules: RuleSet | CaseFindingSet | Iterable[RuleSet | CaseFindingSet]
                     ) -> dict[str, tuple[Stored, Inhabitant]]:
    """patient id -> (the stored Patient, its facts), for the ids that exist; reads only the resource
    types and Observation codes some rule of ``rules`` looks at (pyramid or case-finding rules alike)."""
    sets = [rules] if isinstance(rules, (RuleSet, CaseFindingSet)) else list(rules)
    codes: set[str] = set()
    meds = stays = False
    for rs in sets:
        c, m, s = _needs(rs)
        codes |= set(c)
        meds, stays = meds or m, stays or s
    patients = {s.id: s for s in by_ids(repo, "Patient", patient_ids) if s.resource}
    present = sorted(patients)
    related: dict[str, list[dict[str, Any]]] = {pid: [] for pid in present}
    queries: list[tuple[str, list[tuple[str, str]]]] = [("Condition", [])]
    if codes:
        queries.append(("Observation", [("code", ",".join(sorted(codes)))]))
    if meds:
        queries += [(t, []) for t in MEDICATION_TYPES]
    if stays:
        queries.append(("Encounter", []))
    for rtype, extra in queries:
        for s in by_ids(repo, rtype, present, "patient", extra):
            pid = _subject(s.resource or {})
            if pid in related:
                related[pid].append(s.resource or {})
    return {pid: (patients[pid], inhabitant(patients[pid].resource or {}, related[pid])) for pid in present}


def assess(repo: Repository, rules: RuleSet, day: date, patient_ids: Sequence[str] | None = None,
           *, batch_size: int = BATCH) -> list[Stratum]:
    """Where each patient stands on ``day`` under ``rules``, written nowhere (replay, explain)."""
    ids = population_ids(repo) if patient_ids is None else list(patient_ids)
    out: list[Stratum] = []
    for batch in chunks(ids, batch_size):
        for _pid, (stored, who) in sorted(read_inhabitants(repo, batch, rules).items()):
            if _stratified(stored.resource or {}, who):
                out.append(place(who, rules, day))
    return out


def _stratified(patient: dict[str, Any], who: Inhabitant) -> bool:
    """Deceased patients, records no longer in use and merged-away records are not placed."""
    return not (who.deceased or patient.get("active") is False or replaced_by(patient))


def _tagged(patient: dict[str, Any], group: str) -> dict[str, Any] | None:
    """The Patient with its group tag set to ``group``; None when it already says so."""
    meta = dict(patient.get("meta") or {})
    tags = [t for t in meta.get("tag") or () if isinstance(t, dict)]
    if any(t.get("system") == POPULATION_GROUP and t.get("code") == group for t in tags) and \
            sum(t.get("system") == POPULATION_GROUP for t in tags) == 1:
        return None
    meta["tag"] = [t for t in tags if t.get("system") != POPULATION_GROUP] + [group_coding(group)]
    for server_owned in ("versionId", "lastUpdated"):
        meta.pop(server_owned, None)
    return {**patient, "meta": meta}


def _write(repo: Repository, rules: RuleSet, day: date, batch: list[str], counts: Counts) -> None:
    found = read_inhabitants(repo, batch, rules)
    counts.add("missing-patient", len(set(batch) - set(found)))
    wanted = {assessment_id(pid, rules.id): pid for pid in found}
    current = {s.id: s for s in by_ids(repo, "RiskAssessment", list(wanted))}
    writes: list[tuple[str, dict[str, Any], int | None, dict[str, Any] | None, int]] = []
    for pid, (stored, who) in sorted(found.items()):
        patient = stored.resource or {}
        hood = _neighbourhood(patient)
        if not _stratified(patient, who):
            counts.add("not-stratified", neighbourhood=hood)
            continue
        stratum = place(who, rules, day)
        counts.add(f"group-{stratum.group}", neighbourhood=hood)
        if stratum.flags:
            counts.add("frailty-screen-stale", neighbourhood=hood)
        new = risk_assessment(stratum, rules.title)
        old = current.get(new["id"])
        changed = not same_assessment(old.resource if old else None, new)
        tagged = _tagged(patient, stratum.group)
        if not changed and tagged is None:
            counts.add("unchanged")
            continue
        writes.append((pid, new if changed else {}, old.version if old and old.resource else None, tagged, stored.version))
    if not writes:
        return
    done = Counts()
    try:
        with repo.unit_of_work(SYSTEM) as uow:
            for _pid, new, version, tagged, pversion in writes:
                _apply(uow, new, version, tagged, pversion, done)
        counts.merge(done)
    except VersionConflict:  # someone edited one of them meanwhile: one at a time, the rest still lands
        for _pid, new, version, tagged, pversion in writes:
            try:
                with repo.unit_of_work(SYSTEM) as uow:
                    _apply(uow, new, version, tagged, pversion, Counts())
            except VersionConflict:
                counts.add("conflict")
                continue
            _apply(None, new, version, tagged, pversion, counts)


def _apply(uow: Any, new: dict[str, Any], version: int | None, tagged: dict[str, Any] | None, pversion: int,
           counts: Counts) -> None:
    """Write one patient's assessment and tag (``uow`` None: count only)."""
    if new:
        if uow is not None:
            if version is None:
                uow.update(new)
            else:
                uow.update(new, if_match=version)
        counts.add("assessments-written")
    if tagged is not None:
        if uow is not None:
            uow.update(tagged, if_match=pversion)
        counts.add("group-tags-updated")


def stratify(repo: Repository, rules: RuleSet, day: date, patient_ids: Sequence[str] | None = None,
             *, batch_size: int = BATCH) -> Counts:
    """Stratify ``patient_ids`` (None: every Patient) on ``day`` and record it.

    keys: group-A … group-D (also per neighbourhood), assessments-written, group-tags-updated,
    unchanged, frailty-screen-stale, not-stratified (deceased, inactive or merged records),
    missing-patient, conflict (a concurrent edit: left for the next run)."""
    ids = population_ids(repo) if patient_ids is None else sorted(set(patient_ids))
    counts = Counts()
    for batch in chunks(ids, batch_size):
        _write(repo, rules, day, batch, counts)
    return counts
