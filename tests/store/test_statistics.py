"""``refresh_statistics``: the planner's statistics exist after bulk work (issue #13: after a bulk
load PostgreSQL estimated one row where an owner had 8,000 Tasks; SQLite had no statistics at all)."""

from __future__ import annotations

from sqlalchemy import text

from careflow.access.principal import SYSTEM
from careflow.fhir.search_query import parse_search
from careflow.store.sql import SqlRepository


def test_statistics_are_fresh_after_a_load(repo):
    with repo.unit_of_work(SYSTEM) as uow:
        for i in range(30):
            uow.update({"resourceType": "Task", "id": f"t{i}", "intent": "order", "status": "requested",
                        "owner": {"reference": "PractitionerRole/a"}, "restriction": {"period": {"end": "2026-01-05"}}})
    repo.refresh_statistics()
    query = parse_search("Task", [("owner", "PractitionerRole/a"), ("status", "requested")], strict=True)
    assert repo.search(query).total == 30  # and searching afterwards answers as before
    if not isinstance(repo, SqlRepository):
        return  # the memory twin has no planner
    with repo.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            tables = set(conn.execute(text("SELECT tbl FROM sqlite_stat1")).scalars())
        else:
            tables = set(conn.execute(text(
                "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
                "AND last_analyze IS NOT NULL")).scalars())
    assert {"resource", "idx_token", "idx_reference", "idx_date"} <= tables


def test_totals_past_the_cap(repo):
    """The default total stops counting at the cap (and is left out); accurate counts every match;
    estimate is at least past the cap (PostgreSQL's planner estimate, the count elsewhere)."""
    from careflow.fhir.search_query import TOTAL_CAP

    n = TOTAL_CAP + 5
    with repo.unit_of_work(SYSTEM) as uow:
        for _ in range(n):
            uow.create({"resourceType": "Task", "intent": "order", "status": "requested",
                        "owner": {"reference": "PractitionerRole/a"}})
    repo.refresh_statistics()
    base = [("owner", "PractitionerRole/a"), ("status", "requested"), ("_count", "10")]

    def total(*extra):
        return repo.search(parse_search("Task", [*base, *extra], strict=True)).total

    assert total() is None
    assert total(("_total", "accurate")) == n
    estimate = total(("_total", "estimate"))
    assert isinstance(estimate, int) and estimate > TOTAL_CAP
    if not (isinstance(repo, SqlRepository) and repo.engine.dialect.name == "postgresql"):
        assert estimate == n
    assert total(("_total", "none")) is None
