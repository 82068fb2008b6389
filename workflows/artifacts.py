"""The sweep's report in Prefect: a markdown summary and a table of escalations.

Only counts and resource ids leave the store: no names, no birth dates, no measurements.  An
escalation row names the new Task, the overdue Task it escalates, the role it goes to, the programme
and the neighbourhood: enough for a coordinator to open them in the FHIR API, nothing a bystander
could read health data from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from careflow.engine.counts import Counts

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


def summary_markdown(counts: Counts, now: datetime) -> str:
    """The sweep at a glance: totals, then per programme and per neighbourhood."""
    keys = sorted(counts.total)
    lines = [f"## Follow-up sweep of {now.isoformat(timespec='minutes')}", ""]
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


def publish_sweep_summary(counts: Counts, now: datetime) -> None:
    """Write both artifacts to the current flow run (call from inside the flow)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(key=SUMMARY_KEY, markdown=summary_markdown(counts, now),
                             description="What the follow-up sweep did (counts only)")
    rows = escalation_rows(counts)
    shown = "" if len(rows) == len(counts.escalations) else f" (first {len(rows):,} of {len(counts.escalations):,})"
    create_table_artifact(key=ESCALATIONS_KEY, table=rows or [{"task": "", "overdue_task": "", "role": "",
                                                               "programme": "", "trigger": "", "neighbourhood": ""}],
                          description=f"Escalated overdue Tasks{shown}: resource ids, role, programme, neighbourhood")
