"""Two commands on the same dossier at the same moment: exactly one transition wins.

Each command runs in its own unit of work (its own connection) in its own thread. On
PostgreSQL both first read the dossier (as ``!case`` handlers do), meet at a barrier, and then
both try their transition: ``DossierRepository.lock`` (``SELECT … FOR UPDATE``) makes the
second wait for the first to commit and then see the new status, so it gets the workflow's
refusal. The winner holds its transaction open until the database reports the other one
waiting on a lock, so the race is real every time, not a matter of timing. On SQLite,
``BEGIN IMMEDIATE`` serialises whole units of work instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from commands.framework import ChangeRecorder, Refusal
from commands.model import Status
from storage.db import Database
from storage.dossiers import DossierRepository
from tests.backends import NO_PG, backend_params, database_url, migrated_database, pg_url
from tests.factories import NOW, decide, make_config

CELL = make_config().cells[0]
TIMEOUT = 20.0


@pytest.fixture(params=backend_params())
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path) as database:
        yield database


def _signal(db: Database) -> str:
    with db.unit_of_work() as repos:
        return repos.dossiers.create(
            cell=CELL.id, phenomenon="HTF", indicators=("isolation",), context=(),
            source="OCMW", summary="", signalled_by="@sara:example.be",
            status=Status.SIGNALLED.value, at=NOW,
        ).code


def _others_waiting_on_a_lock(db: Database) -> bool:
    """Whether another session of this database is blocked on a lock (PostgreSQL)."""
    with db.engine.connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )).scalar())


def _race(db: Database, code: str) -> dict[str, Any]:
    """``accept`` and ``reject`` at once; returns each one's record status or Refusal."""
    postgres = db.engine.dialect.name == "postgresql"
    start = threading.Barrier(2, timeout=TIMEOUT)
    both_read = threading.Barrier(2, timeout=TIMEOUT)
    first_lock = threading.Lock()
    outcome: dict[str, Any] = {}

    def attempt(name: str, decide: Callable[..., Any]) -> None:
        try:
            start.wait()
            with db.unit_of_work() as repos:
                before = repos.dossiers.get(CELL.id, code)
                assert before is not None
                outcome[f"{name} read"] = before.status
                if postgres:
                    both_read.wait()  # neither has committed: both saw `signalled`
                record = decide(repos, ChangeRecorder(), CELL, code, actor=f"@{name}:x",
                                at=NOW + timedelta(minutes=1), decision_ref=f"vote:{name}")
                with first_lock:
                    first = not outcome.get("first")
                    outcome.setdefault("first", name)
                if first:
                    # The first to change the dossier keeps its transaction open until the
                    # other one is blocked.
                    deadline = time.monotonic() + TIMEOUT
                    while postgres and not _others_waiting_on_a_lock(db):
                        assert time.monotonic() < deadline, "the other command never waited"
                        time.sleep(0.01)
                    if not postgres:
                        time.sleep(0.3)
                    outcome[f"{name} blocked the other"] = True
            outcome[name] = record.status
        except Refusal as refusal:
            outcome[name] = refusal
        except BaseException as exc:  # reported by the test, not lost in the thread
            outcome[name] = exc

    threads = [
        threading.Thread(target=attempt, args=("accept", partial(decide, "accept"))),
        threading.Thread(target=attempt, args=("reject", partial(decide, "reject"))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
        assert not thread.is_alive()
    return outcome


@pytest.mark.parametrize("rounds", [5])
def test_two_transitions_of_one_dossier_at_once_exactly_one_wins(
    db: Database, rounds: int
) -> None:
    for _ in range(rounds):
        code = _signal(db)
        outcome = _race(db, code)
        if db.engine.dialect.name == "postgresql":
            assert outcome["accept read"] == outcome["reject read"] == "signalled"
        results = {k: v for k, v in outcome.items() if k in ("accept", "reject")}
        winners = [k for k, v in results.items() if isinstance(v, str)]
        losers = [v for v in results.values() if isinstance(v, Refusal)]
        assert len(winners) == 1, outcome
        assert len(losers) == 1, outcome
        [refusal] = losers
        assert refusal.key == "case.illegal_transition"
        won = Status.FOLLOW_UP if winners == ["accept"] else Status.NOT_RETAINED
        if db.engine.dialect.name == "postgresql":
            print(f"postgresql: both read {outcome['accept read']}; {winners[0]} won "
                  f"({won.value}) and committed once the other waited on the row lock; the "
                  f"other was refused: {refusal.key} from {refusal.data['current']}")
        else:
            print(f"sqlite: {winners[0]} won ({won.value}); the other's BEGIN IMMEDIATE waited "
                  f"for its commit and was refused: {refusal.key} from "
                  f"{refusal.data['current']}")
        assert refusal.data["current"] == won.value  # the loser saw the winner's commit
        with db.unit_of_work() as repos:
            record = repos.dossiers.get(CELL.id, code)
            assert record is not None
            assert record.status == won.value
            trail = repos.audit.for_code(CELL.id, code)
            assert [(a.action, a.to_status) for a in trail] == [(winners[0], won.value)]


@pytest.mark.skipif(not pg_url(), reason=NO_PG)
def test_without_the_row_lock_both_would_win_on_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the same race with ``FOR UPDATE`` removed lets both commands win, so the
    test above passes because of the row lock and not by luck."""
    original = DossierRepository._row

    def unlocked(self: DossierRepository, cell: str, code: str, lock: bool = False) -> Any:
        return original(self, cell, code, lock=False)

    monkeypatch.setattr(DossierRepository, "_row", unlocked)
    with database_url("postgresql") as url:
        db = Database(url)
        try:
            db.migrate()
            code = _signal(db)
            outcome = _race(db, code)
            print(f"without FOR UPDATE: accept -> {outcome['accept']}, "
                  f"reject -> {outcome['reject']}")
            assert outcome["accept"] == Status.FOLLOW_UP.value, outcome
            assert outcome["reject"] == Status.NOT_RETAINED.value, outcome
            with db.unit_of_work() as repos:
                assert len(repos.audit.for_code(CELL.id, code)) == 2  # a corrupted history
        finally:
            db.dispose()
