"""The engine's reports in Prefect: the enrolment's and the sweep's summaries, the sweep's escalations.

Only counts and resource ids leave the store: no names, no birth dates, no measurements.  An
escalation row names the new Task, the overdue Task it escalates, the role it goes to, the programme
and the neighbourhood: enough for a coordinator to open them in the FHIR API, nothing a bystander
could read health data from.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from careflow.engine.counts import Counts

ENROL_SUMMARY_KEY = "enrol-summary"
SUMMARY_KEY = "sweep-summary"
ESCALATIONS_KEY = "sweep-escalations"
MAX_ESCALATION_ROWS = 5000  # an artifact is for reading; the full list is in the store (Task search)


def _table(title: str, rows: dict[str, Any], keys: list[str]) -> list[str]:
    if not rows:
        return []
    lines = [f"### {title}", "", "| | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name in sorted(rows):
        counter = rows[name]
        lines.append(f"| {name} | " + " | ".join(f"{counter.get(k, 0):,}" for k in keys) + " |")
    return lines + [""]


def summary_markdown(counts: Counts, now: datetime | date, title: str = "Follow-up sweep") -> str:
    """The run at a glance: totals, then per programme and per neighbourhood."""
    keys = sorted(counts.total)
    when = now.isoformat(timespec="minutes") if isinstance(now, datetime) else now.isoformat()
    lines = [f"## {title} of {when}", ""]
    lines += [f"- **{k}**: {counts.total[k]:,}" for k in keys] or ["- nothing to do"]
    lines.append("")
    lines += _table("Per programme", counts.by_program, keys)
    lines += _table("Per neighbourhood", counts.by_neighbourhood, keys)
    return "\n".join(lines)


def escalation_rows(counts: Counts) -> list[dict[str, str]]:
    """One row per escalation: ids, role, programme, neighbourhood (sorted for a stable artifact)."""
    rows = [
        {
            "task": f"Task/{e.task_id}",
            "overdue_task": f"Task/{e.overdue_task_id}",
            "role": e.role,
            "programme": e.program,
            "trigger": e.trigger,
            "neighbourhood": e.neighbourhood or "",
        }
        for e in counts.escalations
    ]
    rows.sort(key=lambda r: (r["neighbourhood"], r["programme"], r["task"]))
    return rows[:MAX_ESCALATION_ROWS]


def publish_enrolment_summary(counts: Counts, start: date) -> None:
    """Write the enrolment's summary to the current flow run (call from inside the flow)."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(key=ENROL_SUMMARY_KEY, markdown=summary_markdown(counts, start, "Enrolment"),
                             description="Who was enrolled in which programme (counts only)")


def publish_sweep_summary(counts: Counts, now: datetime) -> None:
    """Write the summary, and the escalations table when there are any, to the current flow run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows = escalation_rows(counts)
    markdown = summary_markdown(counts, now)
    if not rows:
        markdown += "\nNo overdue Task was escalated.\n"
    create_markdown_artifact(key=SUMMARY_KEY, markdown=markdown, description="What the follow-up sweep did (counts only)")
    if not rows:
        return  # a table of one empty row says nothing; the summary says there was nothing
    shown = "" if len(rows) == len(counts.escalations) else f" (first {len(rows):,} of {len(counts.escalations):,})"
    create_table_artifact(key=ESCALATIONS_KEY, table=rows,
                          description=f"Escalated overdue Tasks{shown}: resource ids, role, programme, neighbourhood")
