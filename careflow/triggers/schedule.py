"""When the next Task of an activity opens: recurrence, later first occurrences and dependencies.

Rules (``today`` is the injected day; nothing here reads the clock):

* occurrence ``n`` of an activity opens at ``base + (n-1) * every`` where ``base`` is the plan start
  plus ``timing.start`` (or, for an activity with ``after``, the opening of its first occurrence);
  months are added from ``base`` each time, so a monthly check started on the 31st stays at month end
  instead of drifting;
* recurrence stops after ``times`` occurrences and never opens at or after the plan period's end;
* catching up after downtime: only the *current* occurrence (the latest whose window has opened) is
  created, never the missed ones before it. A burst of stale tasks would all be overdue at once and
  escalate in a flood; the one current task carries the work, and the missed windows are visible as
  gaps in the occurrence numbers;
* an activity with ``after: [X, Y]`` starts once the latest occurrence of every prerequisite is
  completed: its first window opens at (latest completion day + ``timing.start``), the completion day
  being the Task's ``executionPeriod.end`` or else its ``lastModified``. A prerequisite the patient's
  plan does not include (``only_if`` excludes it) is not waited on. Later occurrences recur from the
  first one (whose window is the anchor every later occurrence counts from, so a dependant whose
  first window opened during downtime gets occurrence 1, then the current one on the next sweep);
* a seasonal activity (``timing.season``) has one occurrence per season, open only while its window
  lasts (``careflow.programs.seasons``): a season missed during downtime is not opened late;
* ``only_if`` is honoured through the planner's ``applies``: group, age and new diagnosis as at the
  plan's start, the facts (latest Observation, medication, Condition) as known ``today``. An activity
  whose facts only come to hold later (the patient starts smoking) opens its current occurrence on the
  day it does, never in the past, so it is not overdue on creation;
* days are the calendar days of ``now`` as given: pass it in the region's time zone (the flows pass
  an early-morning instant, the same day in UTC and in Belgium);
* a shared activity (``careflow.planning.shared``) is opened only by the programme that leads its key
  for this patient, based on every part that needs it; the leader skips a window that another
  programme's Task of the key already covers (one opened on or after the window's opening), so a
  change of leader never doubles the work.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any, Iterable

from careflow.planning.patient import PatientContext
from careflow.planning.planner import applies, build_task
from careflow.planning.shared import NO_SHARING, Sharing
from careflow.programs.durations import Duration, parse_duration
from careflow.programs.model import Activity, Program, Timing
from careflow.programs.seasons import current_season, season_opening
from careflow.triggers.actions import CreateTask
from careflow.triggers.building import reason_concept
from careflow.triggers.task_facts import TaskFacts, parse_date


def plan_period(careplan: dict[str, Any]) -> tuple[date | None, date | None]:
    period = careplan.get("period") or {}
    return parse_date(period.get("start")), parse_date(period.get("end"))


def opening(timing: Timing, base: date, occurrence: int) -> date:
    if timing.season is not None:
        return season_opening(timing.season, base, occurrence)
    if occurrence == 1 or not timing.every:
        return base
    return parse_duration(timing.every).after(base, occurrence - 1)


def current_occurrence(timing: Timing, base: date, today: date, end: date | None) -> int | None:
    """The latest occurrence whose window has opened by ``today``; None when none has (or all are past
    the plan end)."""
    if timing.season is not None:
        found = current_season(timing.season, base, today, end, timing.times)
        return found[0] if found else None
    if base > today or (end is not None and base >= end):
        return None
    if not timing.every:
        return 1
    every: Duration = parse_duration(timing.every)
    limit = timing.times

    def allowed(n: int) -> bool:
        o = every.after(base, n - 1)
        return o <= today and (limit is None or n <= limit) and (end is None or o < end)

    step = max(every.approx_days, 1.0)
    n = max(1, int((today - base).days / step))  # a jump close to the answer, then exact steps
    while n > 1 and not allowed(n):
        n -= 1
    while allowed(n + 1):
        n += 1
    return n


def by_activity(facts: Iterable[TaskFacts]) -> dict[str, list[TaskFacts]]:
    out: dict[str, list[TaskFacts]] = defaultdict(list)
    for f in facts:
        if f.activity is not None:
            out[f.activity].append(f)
    return out


def dependency_anchor(
    program: Program, activity: Activity, tasks: dict[str, list[TaskFacts]], ctx: PatientContext, plan_start: date,
    today: date | None = None,
) -> date | None:
    """The day the activity's prerequisites were all done (latest completion), or None while one is open."""
    latest: date | None = None
    for pre_id in activity.after:
        pre = program.activity(pre_id)
        occurrences = [f for f in tasks.get(pre_id, ()) if f.occurrence is not None]
        if not occurrences:
            if not applies(pre, program, ctx, plan_start, today=today):
                continue  # not part of this patient's plan: nothing to wait for
            return None
        top = max(f.occurrence or 0 for f in occurrences)
        done = [f.completed_on or plan_start for f in occurrences if f.occurrence == top and f.status == "completed"]
        if not done:
            return None
        latest = max(done) if latest is None else max(latest, *done)
    return latest if latest is not None else plan_start


def _gate_opened(activity: Activity, program: Program, ctx: PatientContext, start: date, opens: date,
                 today: date) -> date:
    """The day a fact-gated activity's window really opened: ``opens`` when its facts already held
    then, else ``today`` (they came to hold since; a Task opened in the past would be overdue at once)."""
    return opens if applies(activity, program, ctx, start, today=opens) else today


def _create(program: Program, activity: Activity, ctx: PatientContext, careplan_id: str, n: int, opens: date,
            today: date, reason: str | None, share: Sharing) -> CreateTask:
    based_on = share.based_on(activity, careplan_id) if activity.shared else None
    task = build_task(program, activity, ctx, careplan_id, n, opens, today, based_on)
    if reason:
        task["reasonCode"] = reason_concept(reason)
    return CreateTask(task, reason or "scheduled", activity.role)


def openings(
    program: Program,
    careplan: dict[str, Any],
    facts: list[TaskFacts],
    ctx: PatientContext,
    today: date,
    *,
    only_dependent: bool = False,
    share: Sharing = NO_SHARING,
) -> list[CreateTask]:
    """Tasks whose window has opened by ``today`` and that the plan does not hold yet.

    ``facts`` may include other programmes' Tasks of shared activities (``own`` False), for coverage."""
    start, end = plan_period(careplan)
    if start is None:
        return []
    careplan_id = str(careplan["id"])
    tasks = by_activity(facts)
    out: list[CreateTask] = []
    for activity in program.activities:
        if only_dependent and not activity.after:
            continue
        if not share.leads(program, activity) or not applies(activity, program, ctx, start, today=today):
            continue
        gated = activity.only_if is not None and activity.only_if.has_facts
        regular = {f.occurrence: f for f in tasks.get(activity.id, ()) if f.regular and f.own}
        covered = [f.opens for f in tasks.get(activity.id, ()) if not f.own and f.opens is not None]
        if activity.after:
            if not regular:
                anchor = dependency_anchor(program, activity, tasks, ctx, start, today)
                if anchor is None:
                    continue
                # never before the plan's start: a plan activated after its care-planning
                # conversation runs from that day, whenever the conversation was marked done
                opens = max(parse_duration(activity.timing.start).after(anchor), start)
                if gated:
                    opens = max(opens, _gate_opened(activity, program, ctx, start, opens, today))
                if opens <= today and (end is None or opens < end) and not any(c >= opens for c in covered):
                    out.append(_create(program, activity, ctx, careplan_id, 1, opens, today, "dependency", share))
                continue
            first = regular.get(1)
            if first is None or first.opens is None:
                continue
            base = first.opens
        else:
            base = parse_duration(activity.timing.start).after(start)
        n = current_occurrence(activity.timing, base, today, end)
        if n is None or max((k for k in regular if k is not None), default=0) >= n:
            continue
        opens = opening(activity.timing, base, n)
        if any(c >= opens for c in covered):
            continue  # another programme's Task of this shared activity already serves the window
        if gated:
            opens = max(opens, _gate_opened(activity, program, ctx, start, opens, today))
        out.append(_create(program, activity, ctx, careplan_id, n, opens, today, "recurring" if n > 1 else None, share))
    return out

