"""What an engine run did, as ids and numbers only: safe to log and to keep as a flow result.

Per programme and per neighbourhood, because the neighbourhood team's dashboard is the audience
(the €100-per-patient financing counts enrolled patients per team).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable


@dataclass(frozen=True)
class Escalation:
    """One escalation Task raised: ids and where it goes, never patient data."""

    task_id: str
    overdue_task_id: str
    program: str
    trigger: str
    role: str
    neighbourhood: str | None


@dataclass
class Counts:
    total: Counter[str] = field(default_factory=Counter)
    by_program: dict[str, Counter[str]] = field(default_factory=dict)
    by_neighbourhood: dict[str, Counter[str]] = field(default_factory=dict)
    escalations: list[Escalation] = field(default_factory=list)

    def add(self, key: str, n: int = 1, *, program: str | None = None, neighbourhood: str | None = None) -> None:
        if n == 0:
            return
        self.total[key] += n
        if program is not None:
            self.by_program.setdefault(program, Counter())[key] += n
        if neighbourhood is not None:
            self.by_neighbourhood.setdefault(neighbourhood, Counter())[key] += n

    def merge(self, other: Counts) -> Counts:
        self.total.update(other.total)
        for mine, theirs in ((self.by_program, other.by_program), (self.by_neighbourhood, other.by_neighbourhood)):
            for k, c in theirs.items():
                mine.setdefault(k, Counter()).update(c)
        self.escalations.extend(other.escalations)
        return self

    @classmethod
    def combine(cls, parts: Iterable[Counts]) -> Counts:
        out = cls()
        for p in parts:
            out.merge(p)
        return out

    def __getitem__(self, key: str) -> int:
        return self.total[key]

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": dict(sorted(self.total.items())),
            "by_program": {k: dict(sorted(v.items())) for k, v in sorted(self.by_program.items())},
            "by_neighbourhood": {k: dict(sorted(v.items())) for k, v in sorted(self.by_neighbourhood.items())},
            "escalations": [asdict(e) for e in self.escalations],
        }
