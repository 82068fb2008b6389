"""Stratification over the store: read what the rules look at for many patients at once, place each
in the pyramid, record the RiskAssessment and keep the Patient's group tag in step.

Reads are batched (``_id=…``/``patient=…`` lists, ``careflow.engine.reading``); each batch is written
in one unit of work as SYSTEM. A patient whose assessment says the same as before is not written
again, so a rerun over an unchanged population writes nothing and the RiskAssessment's ``_history``
shows each change of group, reasons or rule version. ``assess`` computes without writing: the replay
of an old rule version at an old date, and the per-patient explanation.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Sequence

from careflow.access.principal import SYSTEM
from careflow.engine.counts import Counts
from careflow.engine.reading import chunks, ref_id, search_pages
from careflow.errors import Gone, NotFound, VersionConflict
from careflow.naming import EXT_STRATIFICATION_WATERMARK, POPULATION_GROUP, POPULATION_RULES, STRATIFICATION_RUN
from careflow.planning.patient import _neighbourhood, replaced_by
from careflow.population.assessment import assessment_id, group_coding, risk_assessment, same_assessment
from careflow.population.case_model import CaseFindingSet
from careflow.population.evaluate import Stratum
from careflow.population.evaluate import stratify_all as place_all
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
    return _inhabitants(repo, {s.id: s for s in repo.search_many("Patient", [], "_id", patient_ids) if s.resource}, rules)


def _patient_batches(repo: Repository, patient_ids: Sequence[str] | None, batch_size: int
                     ) -> Iterator[tuple[int, dict[str, Stored]]]:
    """(how many ids were asked for, the stored Patients found) per batch, in id order: every Patient
    page by page when ``patient_ids`` is None (each read once), else the ids in batches."""
    if patient_ids is None:
        for page in search_pages(repo, "Patient", [], page_size=batch_size):
            found = {s.id: s for s in page.matches if s.resource}
            yield len(found), found
        return
    for batch in chunks(sorted(set(patient_ids)), batch_size):
        yield len(batch), {s.id: s for s in repo.search_many("Patient", [], "_id", batch) if s.resource}


def _inhabitants(repo: Repository, patients: dict[str, Stored],
                 rules: RuleSet | CaseFindingSet | Iterable[RuleSet | CaseFindingSet]
                 ) -> dict[str, tuple[Stored, Inhabitant]]:
    """The facts of ``patients``, each related type read set-wise for all of them at once."""
    sets = [rules] if isinstance(rules, (RuleSet, CaseFindingSet)) else list(rules)
    codes: set[str] = set()
    meds = stays = False
    for rs in sets:
        c, m, s = _needs(rs)
        codes |= set(c)
        meds, stays = meds or m, stays or s
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
        # by id within each type, as the paged ``_sort=_id`` searches read them (the order of a
        # patient's Observations and medicines decides ties and the order of the evidence)
        for s in sorted(repo.search_many(rtype, extra, "patient", present), key=lambda s: s.id):
            pid = _subject(s.resource or {})
            if pid in related:
                related[pid].append(s.resource or {})
    return {pid: (patients[pid], inhabitant(patients[pid].resource or {}, related[pid])) for pid in present}


def assess(repo: Repository, rules: RuleSet, day: date, patient_ids: Sequence[str] | None = None,
           *, batch_size: int = BATCH) -> list[Stratum]:
    """Where each patient stands on ``day`` under ``rules``, written nowhere (replay, explain)."""
    out: list[Stratum] = []
    for _asked, patients in _patient_batches(repo, None if patient_ids is None else list(patient_ids), batch_size):
        found = sorted(_inhabitants(repo, patients, rules).items())
        out += place_all([who for _pid, (stored, who) in found if _stratified(stored.resource or {}, who)], rules, day)
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


def _write(repo: Repository, rules: RuleSet, day: date, asked: int, patients: dict[str, Stored], counts: Counts) -> None:
    found = _inhabitants(repo, patients, rules)
    counts.add("missing-patient", asked - len(found))
    wanted = {assessment_id(pid, rules.id): pid for pid in found}
    current = {s.id: s for s in repo.search_many("RiskAssessment", [], "_id", list(wanted))}
    writes: list[tuple[str, dict[str, Any], int | None, dict[str, Any] | None, int]] = []
    placed: list[tuple[str, Stored, str | None]] = []
    for pid, (stored, who) in sorted(found.items()):
        hood = _neighbourhood(stored.resource or {})
        if _stratified(stored.resource or {}, who):
            placed.append((pid, stored, hood))
        else:
            counts.add("not-stratified", neighbourhood=hood)
    strata = place_all([found[pid][1] for pid, _s, _h in placed], rules, day)
    for (pid, stored, hood), stratum in zip(placed, strata):
        patient = stored.resource or {}
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
    counts = Counts()
    for asked, patients in _patient_batches(repo, patient_ids, batch_size):
        _write(repo, rules, day, asked, patients, counts)
    return counts


# --- incremental runs ------------------------------------------------------------------------------
# What a patient's group rests on: a new version (or deletion) of any of these since the last run puts
# the patient in the next incremental run; RiskAssessments are the output, not an input.
INPUT_TYPES = ("Patient", "Condition", "Observation", *MEDICATION_TYPES, "Encounter")
# a transaction stamps its versions when it writes, not when it commits: a change made just before the
# last run began may have become visible only after that run read it; looking back this far from the
# run's start catches it (recomputing a patient twice changes nothing)
LOOK_BACK = timedelta(minutes=10)


def run_id(rules: RuleSet) -> str:
    return f"stratify-run-{rules.id}"[:64]


def run_record(rules: RuleSet, day: date, started: datetime, look_back: timedelta = LOOK_BACK) -> dict[str, Any]:
    """The Basic resource saying a run of ``rules`` on ``day`` finished and saw every change made
    before ``started`` (less ``look_back``): what the next run on the same day starts from."""
    return {
        "resourceType": "Basic", "id": run_id(rules),
        "code": {"coding": [{"system": STRATIFICATION_RUN, "code": "stratification-run"}],
                 "text": f"stratification run, rule set {rules.id} {rules.version}"},
        "created": day.isoformat(),
        "identifier": [{"system": POPULATION_RULES, "value": f"{rules.id}|{rules.version}"}],
        "extension": [{"url": EXT_STRATIFICATION_WATERMARK,
                       "valueInstant": (started - look_back).astimezone(timezone.utc).isoformat().replace("+00:00", "Z")}],
    }


def watermark(repo: Repository, rules: RuleSet, day: date) -> datetime | None:
    """Since when changes must be looked at for an incremental run of ``rules`` on ``day``; None when
    the last finished run was of another rule version or another day (the day moves ages, windows and
    the frailty screen's validity for everyone: a full refresh), or there was none."""
    try:
        record = repo.read("Basic", run_id(rules)).resource or {}
    except (NotFound, Gone):
        return None
    same = record.get("created") == day.isoformat() and \
        any(i.get("value") == f"{rules.id}|{rules.version}" for i in record.get("identifier") or ())
    for ext in record.get("extension") or ():
        if same and ext.get("url") == EXT_STRATIFICATION_WATERMARK and isinstance(ext.get("valueInstant"), str):
            return datetime.fromisoformat(ext["valueInstant"].replace("Z", "+00:00"))
    return None


def changed_patients(repo: Repository, since: datetime, *, page: int = 1000) -> list[str]:
    """Ids of the patients with a new version or a deletion of an input (INPUT_TYPES) since ``since``;
    a resource moved to another patient or deleted counts for whom it was about before as well."""
    out: set[str] = set()
    for rtype in INPUT_TYPES:
        first: dict[str, Stored] = {}
        offset = 0
        while True:
            total, versions = repo.history(rtype, since=since, count=page, offset=offset)
            for s in versions:
                if rtype == "Patient":
                    out.add(s.id)
                elif s.resource is not None and (pid := _subject(s.resource)):
                    out.add(pid)
                if s.id not in first or s.version < first[s.id].version:
                    first[s.id] = s
            offset += len(versions)
            if not versions or offset >= total:
                break
        for rid, s in first.items():
            if rtype != "Patient" and s.version > 1:  # whom it was about before the change
                try:
                    before = repo.vread(rtype, rid, s.version - 1).resource
                except NotFound:
                    continue
                if before is not None and (pid := _subject(before)):
                    out.add(pid)
    return sorted(out)


def record_run(repo: Repository, rules: RuleSet, day: date, started: datetime,
               look_back: timedelta = LOOK_BACK) -> None:
    """Remember a finished run (called after every partition landed; a run cut short, or one that
    left a conflicting patient for later, records nothing, so the next starts from the earlier
    watermark)."""
    with repo.unit_of_work(SYSTEM) as uow:
        uow.update(run_record(rules, day, started, look_back))


def plan_run(repo: Repository, rules: RuleSet, day: date, *, incremental: bool = True) -> tuple[list[str], bool]:
    """(the patients to stratify, whether that is an incremental subset): the patients changed since
    the last finished run of ``rules`` on ``day``, else everyone."""
    since = watermark(repo, rules, day) if incremental else None
    if since is None:
        return population_ids(repo), False
    return changed_patients(repo, since), True


def refresh(repo: Repository, rules: RuleSet, day: date, *, incremental: bool = False,
            batch_size: int = BATCH, look_back: timedelta = LOOK_BACK) -> Counts:
    """``stratify`` everyone, or (``incremental``) the patients changed since the last finished run
    on the same day (everyone when there was none), then record this run. Counts as ``stratify``, plus ``incremental`` (1 when only the changed were
    read) and ``recomputed`` (how many patients were). ``look_back``: see LOOK_BACK (zero only where
    nothing else writes, as in the benchmark)."""
    started = datetime.now(timezone.utc)
    ids, partial = plan_run(repo, rules, day, incremental=incremental)
    counts = stratify(repo, rules, day, ids, batch_size=batch_size)
    counts.add("recomputed", len(ids))
    if partial:
        counts.add("incremental")
    if not counts["conflict"]:  # a patient left for the next run must be in it
        record_run(repo, rules, day, started, look_back)
    return counts
