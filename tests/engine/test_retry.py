"""Which failures the flows retry: passing database trouble yes, data conflicts and bugs no."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import OperationalError

from careflow.engine.retry import is_transient
from careflow.errors import TransientStoreError, VersionConflict


class TestOnlyPassingFailuresAreRetried:
    def test_transient_store_error(self) -> None:
        assert is_transient(TransientStoreError("connection lost"))

    def test_sqlalchemy_operational_error_and_its_cause(self) -> None:
        err = OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))
        assert is_transient(err)
        try:
            try:
                raise err
            except OperationalError as inner:
                raise RuntimeError("sweep step failed") from inner
        except RuntimeError as outer:
            assert is_transient(outer)

    def test_conflicts_and_bugs_are_not(self) -> None:
        assert not is_transient(VersionConflict("Task", "t", 1, 2))
        assert not is_transient(ValueError("bad"))
        assert not is_transient(KeyError("x"))
