"""Bulk loading of resources into the store: the demo region and Synthea bundles.

Large units of work (thousands of resources per transaction) keep the cost close to the inserts
themselves; ``create_if_absent`` makes a rerun after a crash or Ctrl-C finish the job without
duplicating what is already there (resources carry their ids).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from careflow.access.principal import SYSTEM
from careflow.store.port import Repository

BATCH = 2000
PROGRESS_EVERY = 10_000
CHECKPOINT_EVERY = 10  # batches between WAL checkpoints: the journal stays under ~100 MB during a load

Progress = Callable[[str], None]


@dataclass
class LoadCounts:
    """What a load did: resources written, resources that were already there."""

    created: int = 0
    existing: int = 0

    @property
    def total(self) -> int:
        return self.created + self.existing


def _batches(resources: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for resource in resources:
        batch.append(resource)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_resources(repo: Repository, resources: Iterable[dict[str, Any]], *, what: str = "load",
                   batch: int = BATCH, progress: Progress | None = None) -> LoadCounts:
    """Write every resource (each must carry its id) with create-if-absent, ``batch`` per transaction."""
    counts = LoadCounts()
    started = time.monotonic()
    next_report = PROGRESS_EVERY
    for n, chunk in enumerate(_batches(resources, batch), start=1):
        with repo.unit_of_work(SYSTEM) as uow:
            for resource in chunk:
                _, created = uow.create_if_absent(resource)
                if created:
                    counts.created += 1
                else:
                    counts.existing += 1
        if n % CHECKPOINT_EVERY == 0:
            repo.checkpoint()
        if progress is not None and counts.total >= next_report:
            rate = counts.total / max(time.monotonic() - started, 1e-9)
            progress(f"{what}: {counts.total:,} resources ({rate:,.0f}/s)")
            next_report = (counts.total // PROGRESS_EVERY + 1) * PROGRESS_EVERY
    if counts.created:
        repo.refresh_statistics()  # a bulk load leaves the planner's statistics behind (issue #13)
    repo.checkpoint()
    return counts


def region_resources(region: Any) -> Iterator[dict[str, Any]]:
    """The generated region in load order: teams and places, then each inhabitant's records."""
    yield from region.resources()
