"""Rosters and acknowledgements are read once and kept between units of work (storage.cache):
no statement while nothing changed, the change seen by the next unit as soon as it
committed, the writer's own view inside its unit, nothing kept that a writer in flight could
make stale, and a bounded age for what another process changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.cache import ReadCache
from storage.db import Database
from storage.repositories import RosterChange
from tests.backends import default_backend
from tests.factories import memory_db

CELL = "livc-r-voorbeeldstad"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A database two connections can use at once (a file, or PostgreSQL in make test-pg)."""
    if default_backend() != "sqlite":
        with memory_db() as database:
            yield database
        return
    database = Database(f"sqlite:///{tmp_path / 'livcr.db'}")
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


def selects(db: Database) -> list[str]:
    seen: list[str] = []

    def listen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", listen)
    return seen


def change(user: str, removed: bool = False) -> RosterChange:
    return RosterChange(CELL, user, "partner", "CLB", ("operational",), removed)


def test_an_unchanged_roster_and_acknowledgements_cost_no_statement(db: Database) -> None:
    with db.unit_of_work() as repos:
        repos.roster.changes(CELL)
        repos.acks.has_acked(CELL, "operational", "@a:x")
    seen = selects(db)
    for _ in range(3):
        with db.unit_of_work() as repos:
            assert repos.roster.changes(CELL) == ()
            assert not repos.acks.has_acked(CELL, "operational", "@a:x")
        with db.reading() as repos:
            assert repos.roster.changes(CELL) == ()
    assert seen == []


def test_a_committed_change_is_seen_by_the_next_unit_of_work(db: Database) -> None:
    with db.unit_of_work() as repos:
        assert repos.roster.changes(CELL) == ()
        assert not repos.acks.has_acked(CELL, "operational", "@a:x")
    with db.unit_of_work() as repos:
        repos.roster.put(change("@b:x"), "@chair:x", T0)
        repos.acks.ack(CELL, "operational", "@a:x", T0)
        # the writer sees its own changes at once
        assert [c.user_id for c in repos.roster.changes(CELL)] == ["@b:x"]
        assert repos.acks.has_acked(CELL, "operational", "@a:x")
    with db.reading() as repos:
        assert [c.user_id for c in repos.roster.changes(CELL)] == ["@b:x"]
        assert repos.acks.has_acked(CELL, "operational", "@a:x")


def test_a_rolled_back_change_leaves_the_old_view(db: Database) -> None:
    with db.unit_of_work() as repos:
        repos.roster.changes(CELL)

    def put_then_fail() -> None:
        with db.unit_of_work() as repos:
            repos.roster.put(change("@b:x"), "@chair:x", T0)
            raise RuntimeError("the command failed")

    with pytest.raises(RuntimeError):
        put_then_fail()
    with db.unit_of_work() as repos:
        assert repos.roster.changes(CELL) == ()


def test_nothing_is_served_or_kept_while_a_writer_is_in_flight(db: Database) -> None:
    with db.unit_of_work() as repos:
        repos.roster.changes(CELL)
    seen = selects(db)
    with db.unit_of_work() as writer:
        writer.roster.put(change("@b:x"), "@chair:x", T0)  # flushed, not committed
        seen.clear()
        with db.reading() as reader:
            assert reader.roster.changes(CELL) == ()  # the committed state, read anew
        assert seen, "a writer is in flight: the cache must not answer"
        loads = db.cache.loads
        with db.reading() as reader:
            reader.roster.changes(CELL)
        assert db.cache.loads == loads + 1  # and what was read then was not kept
    with db.reading() as reader:
        assert [c.user_id for c in reader.roster.changes(CELL)] == ["@b:x"]


def test_what_another_process_changed_is_seen_within_the_cache_age(db: Database) -> None:
    now = [0.0]
    db.cache = ReadCache(ttl=10.0, clock=lambda: now[0])
    with db.unit_of_work() as repos:
        assert repos.roster.changes(CELL) == ()
    other = Database(db.url)  # another process
    try:
        with other.unit_of_work() as repos:
            repos.roster.put(RosterChange(CELL, "@op:x", "partner", "", ("operational",),
                                          False), "@operator:x", T0)
    finally:
        other.dispose()
    with db.unit_of_work() as repos:
        assert repos.roster.changes(CELL) == ()  # still the kept value
    now[0] = 10.5
    with db.unit_of_work() as repos:
        assert [c.user_id for c in repos.roster.changes(CELL)] == ["@op:x"]
