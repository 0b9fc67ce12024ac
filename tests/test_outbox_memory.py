"""The outbox kept in memory (bot.core.outbox): reading it before a send costs no
transaction, a sent item's row goes with the core's next unit of work, and what the copy
holds is always what the table holds minus what was sent (spec §11 "Exactly once")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.core.app import Core
from bot.edge.inbound import OutsiderJoined
from commands.framework import Incoming
from commands.model import Table
from storage.db import Database
from tests.factories import CHAIR, NOW, OUTSIDER, PARTNER, make_config, memory_db

OP = "!op:example.be"
CELL = "livc-r-voorbeeldstad"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def db() -> Iterator[Database]:
    with memory_db() as database:
        yield database


def make_core(db: Database) -> Core:
    core = Core(make_config(), db, clock=Clock())
    core.bind_room(OP, CELL, Table.OPERATIONAL)
    return core


def command(n: int, body: str, sender: str = PARTNER) -> Incoming:
    return Incoming(CELL, Table.OPERATIONAL, OP, f"$cmd{n}", sender, body, NOW)


def table_ids(db: Database) -> list[int]:
    with db.reading() as repos:
        return [item.id for item in repos.events.pending()]


class Statements:
    """Counts the SQL statements an engine executes."""

    def __init__(self, db: Database) -> None:
        self.seen: list[str] = []
        sa.event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        self.seen.append(statement)


def test_reading_the_outbox_before_a_send_runs_no_statement(db: Database) -> None:
    core = make_core(db)
    core.decide(command(1, "!ack"))
    assert len(core.pending()) == 1  # the first read loads the table
    statements = Statements(db)
    core.decide(command(2, "!help"))
    statements.seen.clear()
    assert [item.source_event_id for item in core.pending()] == ["$cmd1", "$cmd2"]
    assert statements.seen == []


def test_a_sent_item_leaves_at_once_and_its_row_later_off_the_command_path(
        db: Database) -> None:
    core = make_core(db)
    core.decide(command(1, "!ack"))
    [first] = core.pending()
    statements = Statements(db)
    core.sent_many([first])
    assert statements.seen == []  # no transaction for a send
    assert core.pending() == []
    assert table_ids(db) == [first.id]  # still in the table: resent after a crash now
    core.decide(command(2, "!help"))
    assert not any(s.startswith("DELETE") for s in statements.seen)  # not on a member's path
    [second] = core.pending()
    core.sent_many([second])
    assert core.forget_sent() == 2  # one transaction for both
    assert table_ids(db) == []


def test_a_quiet_edge_deletes_the_rows_of_sent_items(db: Database) -> None:
    core = make_core(db)
    core.decide(command(1, "!ack"))
    core.sent_many(core.pending())
    assert core.forget_sent() == 1
    assert table_ids(db) == []
    assert core.forget_sent() == 0


def test_after_a_crash_an_item_sent_but_not_deleted_is_resent_with_its_transaction_id(
        db: Database) -> None:
    core = make_core(db)
    core.decide(command(1, "!ack"))
    [item] = core.pending()
    core.sent_many([item])  # ... and the process is killed before any unit of work
    restarted = make_core(db)
    [again] = restarted.pending()
    assert again.txn_id == item.txn_id  # the homeserver deduplicates the resend


def test_a_failed_delete_keeps_the_sent_rows_for_the_next_one(db: Database) -> None:
    core = make_core(db)
    core.decide(command(1, "!ack"))
    [item] = core.pending()
    core.sent_many([item])
    real = db.unit_of_work

    def broken() -> object:
        raise RuntimeError("database locked")

    db.unit_of_work = broken  # type: ignore[method-assign, assignment]
    with pytest.raises(RuntimeError):
        core.forget_sent()
    db.unit_of_work = real  # type: ignore[method-assign]
    assert table_ids(db) == [item.id]
    assert core.pending() == []  # not sent again by this process
    assert core.forget_sent() == 1
    assert table_ids(db) == []


def test_what_a_rolled_back_decision_enqueued_never_reaches_the_copy(db: Database) -> None:
    core = make_core(db)
    core.pending()

    def enqueue_then_fail() -> None:
        with core.outbox.unit_of_work() as repos:
            repos.events.enqueue("$gone", OP, "message", {"content": {"body": "x"}}, NOW)
            repos.flush()
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        enqueue_then_fail()
    assert core.pending() == []
    assert table_ids(db) == []


def test_what_a_rolled_back_savepoint_enqueued_never_reaches_the_copy(db: Database) -> None:
    """The outbox insert runs on the connection (not the ORM): a savepoint that rolls back
    takes the row with it, and the change recorded for the copy too."""
    core = make_core(db)
    core.pending()

    def fails() -> None:
        with repos.savepoint():
            repos.events.enqueue("$gone", OP, "message", {"content": {"body": "x"}}, NOW)
            raise RuntimeError("the handler failed")

    with core.outbox.unit_of_work() as repos:
        repos.events.enqueue("$kept", OP, "message", {"content": {"body": "y"}}, NOW)
        with pytest.raises(RuntimeError):
            fails()
    assert [item.source_event_id for item in core.pending()] == ["$kept"]
    assert table_ids(db) == [item.id for item in core.pending()]


def test_a_claimed_event_is_answered_without_counting_its_outbox_rows(db: Database) -> None:
    core = make_core(db)
    core.decide(command(1, "!ack"))
    statements = Statements(db)
    core.decide(command(2, "!help"))
    assert not [s for s in statements.seen if s.startswith("SELECT") and "outbox" in s]
    [item] = [i for i in core.pending() if i.source_event_id == "$cmd2"]
    assert item.seq == 0
    with db.reading() as repos:
        assert [i.txn_id for i in repos.events.pending() if i.id == item.id] == [item.txn_id]


def test_the_copy_follows_retries_dead_letters_and_merged_notices(db: Database) -> None:
    core = make_core(db)
    core.decide(command(1, "!ack"))
    core.decide(command(2, "!ack", CHAIR))
    core.decide(OutsiderJoined(OP, "$join1", OUTSIDER))
    core.decide(OutsiderJoined(OP, "$join2", "@mallory:example.be"))
    first, second, notice = sorted(core.pending(), key=lambda item: item.id)
    assert notice.content["users"] == [OUTSIDER, "@mallory:example.be"]  # merged in place
    core.retry_later(first, 1, NOW + timedelta(minutes=5))
    core.dead_letter(second, 5)
    with db.reading() as repos:
        in_table = {item.id: item for item in repos.events.pending()}
    in_memory = {item.id: item for item in core.pending()}
    assert in_memory == in_table
    assert in_memory[first.id].attempts == 1
    assert second.id not in in_memory
