"""The repository contract, run on every backend: SQLite always, PostgreSQL when
``LIVCR_TEST_PG_URL`` is set (STYLE.md, "Storage and migrations")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot.core.app import send_order
from commands.model import FINAL, OPEN, Status
from storage.db import Database, make_engine
from storage.models import Dossier
from storage.repositories import OutboxItem, RosterChange
from tests.backends import backend_params, database_url

CELL = "livc-r-voorbeeldstad"
OTHER = "livc-r-elders"
T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night Belgium moves to summer time


@pytest.fixture(params=backend_params())
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    with database_url(request.param) as url:
        database = Database(url)
        try:
            database.migrate()
            yield database
        finally:
            database.dispose()


def _new(db: Database, cell: str = CELL, status: str = Status.SIGNALLED.value,
         at: datetime = T0, **kw: str) -> str:
    with db.unit_of_work() as repos:
        record = repos.dossiers.create(
            cell=cell, phenomenon=kw.get("phenomenon", "HTF"),
            indicators=("isolation", "threats"), context=("school",), source="OCMW",
            summary=kw.get("summary", ""), signalled_by="@sara:example.be", status=status, at=at,
        )
    return record.code


def test_sync_token_and_state_are_kept_and_replaced(db: Database) -> None:
    with db.unit_of_work() as repos:
        assert repos.events.sync_token() is None
        assert repos.events.get_state("x") is None
        repos.events.set_sync_token("s1")
        repos.events.set_state("x", "1")
    with db.unit_of_work() as repos:
        assert repos.events.sync_token() == "s1"
        repos.events.set_sync_token("s2_" + "9" * 400)
        repos.events.set_state("x", "2")
    with db.unit_of_work() as repos:
        assert repos.events.sync_token() == "s2_" + "9" * 400
        assert repos.events.get_state("x") == "2"


def test_processed_events_are_remembered_and_forgotten_by_age(db: Database) -> None:
    with db.unit_of_work() as repos:
        repos.events.mark_processed("$old", "!r:x", T0 - timedelta(days=31))
        repos.events.mark_processed("$new", "!r:x", T0)
    with db.unit_of_work() as repos:
        assert repos.events.is_processed("$old")
        assert repos.events.is_processed("$new")
        assert not repos.events.is_processed("$other")
        assert repos.events.forget_processed_before(T0 - timedelta(days=30)) == 1
    with db.unit_of_work() as repos:
        assert not repos.events.is_processed("$old")
        assert repos.events.is_processed("$new")


def test_a_processed_event_twice_is_an_integrity_error_and_rolls_everything_back(
    db: Database,
) -> None:
    with db.unit_of_work() as repos:
        repos.events.mark_processed("$e", "!r:x", T0)

    def again() -> None:
        with db.unit_of_work() as repos:
            repos.events.set_sync_token("lost")
            repos.events.mark_processed("$e", "!r:x", T0)

    with pytest.raises(sa.exc.IntegrityError):
        again()
    with db.unit_of_work() as repos:
        assert repos.events.sync_token() is None


def test_outbox_keeps_order_sequence_and_unicode_content(db: Database) -> None:
    with db.unit_of_work() as repos:
        repos.events.enqueue("$a", "!r:x", "m.room.message", {"body": "één — ✓"}, T0)
        repos.events.enqueue("$a", "!r:x", "m.room.message", {"body": "2"}, T0, purpose="poll:1")
        repos.events.enqueue("$b", "!s:x", "m.reaction", {"k": [1, 2]}, T0)
    with db.unit_of_work() as repos:
        pending = repos.events.pending()
        assert [(p.source_event_id, p.seq) for p in pending] == [("$a", 0), ("$a", 1), ("$b", 0)]
        assert pending[0].content == {"body": "één — ✓"}
        assert pending[1].purpose == "poll:1"
        assert pending[2].content == {"k": [1, 2]}
        assert len({p.txn_id for p in pending}) == 3
        repos.events.sent(pending[0].id)
        repos.events.sent(pending[0].id)  # twice is harmless
    with db.unit_of_work() as repos:
        assert [p.id for p in repos.events.pending()] == [pending[1].id, pending[2].id]


def test_acknowledgements_are_per_cell_table_and_user(db: Database) -> None:
    with db.unit_of_work() as repos:
        assert repos.acks.ack(CELL, "operational", "@a:x", T0)
        assert not repos.acks.ack(CELL, "operational", "@a:x", T0)
    with db.unit_of_work() as repos:
        assert repos.acks.has_acked(CELL, "operational", "@a:x")
        assert not repos.acks.has_acked(CELL, "strategic", "@a:x")
        assert not repos.acks.has_acked(OTHER, "operational", "@a:x")


def test_roster_changes_are_upserted_per_cell(db: Database) -> None:
    added = RosterChange(CELL, "@b:x", "partner", "CLB", ("operational",), False)
    with db.unit_of_work() as repos:
        repos.roster.put(added, "@chair:x", T0)
        repos.roster.put(RosterChange(OTHER, "@c:x", "partner", "", (), False), "@chair:x", T0)
    with db.unit_of_work() as repos:
        repos.roster.put(
            RosterChange(CELL, "@b:x", "partner", "CLB", ("operational", "strategic"), True),
            "@chair:x", T0 + timedelta(hours=1),
        )
    with db.unit_of_work() as repos:
        mine = repos.roster.changes(CELL)
        assert mine == (
            RosterChange(CELL, "@b:x", "partner", "CLB", ("operational", "strategic"), True),
        )
        assert {c.cell for c in repos.roster.changes()} == {CELL, OTHER}
        assert repos.roster.changes(OTHER)[0].tables == ()


def test_dossiers_get_unique_codes_and_come_back_as_plain_records(db: Database) -> None:
    codes = [_new(db) for _ in range(25)]
    assert len(set(codes)) == 25
    with db.unit_of_work() as repos:
        record = repos.dossiers.get(CELL, codes[0])
        assert record is not None
        assert record.indicators == ("isolation", "threats")
        assert record.context == ("school",)
        assert record.status == "signalled"
        assert record.created_at == T0
        assert record.closed_at is None
        assert not record.has_summary
        assert repos.dossiers.get(OTHER, codes[0]) is None  # a code belongs to one cell
        assert [r.code for r in repos.dossiers.list(CELL)] == codes  # in order of creation


def test_a_duplicate_code_is_refused_by_the_database(db: Database) -> None:
    code = _new(db)
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO dossier (code, cell, table_name, phenomenon, indicators, context,"
                " source, summary, status, problematic, scenario, signalled_by, created_at,"
                " updated_at, version) VALUES (:code, :cell, 'operational', 'HTF', '', '', '',"
                " '', 'signalled', false, '', '', :at, :at, 0)"
            ),
            {"code": code, "cell": OTHER, "at": T0},
        )


def test_aware_datetimes_round_trip_as_utc_and_naive_ones_are_refused(db: Database) -> None:
    brussels = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Brussels"))
    code = _new(db, at=brussels)
    with db.unit_of_work() as repos:
        repos.dossiers.update(CELL, code, datetime(2026, 1, 1, 12, tzinfo=timezone(
            timedelta(hours=-5))), next_evaluation=date(2026, 12, 31))
    with db.unit_of_work() as repos:
        record = repos.dossiers.get(CELL, code)
        assert record is not None
        # The second 02:30 of the night summer time ends (fold=1) is 01:30 UTC.
        assert record.created_at == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
        assert record.created_at.tzinfo == UTC
        assert record.updated_at == datetime(2026, 1, 1, 17, tzinfo=UTC)
        assert record.next_evaluation == date(2026, 12, 31)
    with pytest.raises(sa.exc.StatementError), db.unit_of_work() as repos:
        repos.events.mark_processed("$naive", "!r:x", datetime(2026, 1, 1))  # noqa: DTZ001


def test_update_changes_fields_bumps_version_and_unknown_codes_fail(db: Database) -> None:
    code = _new(db)
    with db.unit_of_work() as repos:
        locked = repos.dossiers.lock(CELL, code)
        assert locked is not None
        assert repos.dossiers.lock(CELL, "C-NOPE0") is None
        record = repos.dossiers.update(CELL, code, T0 + timedelta(days=1),
                                       status="follow_up", problematic=True, scenario="s1")
        assert record.status == "follow_up"
        assert record.updated_at == T0 + timedelta(days=1)
    with db.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT version, problematic FROM dossier WHERE code = :c"), {"c": code}
        ).one()
        assert (row[0], bool(row[1])) == (1, True)
    with pytest.raises(KeyError), db.unit_of_work() as repos:
        repos.dossiers.update(CELL, "C-NOPE0", T0, status="closed")


def test_a_failed_savepoint_keeps_the_rest_of_the_unit_of_work(db: Database) -> None:
    with db.unit_of_work() as repos:
        repos.events.set_state("kept", "yes")

        def twice() -> None:
            with repos.savepoint():
                repos.events.mark_processed("$dup", "!r:x", T0)
                repos.events.mark_processed("$dup", "!r:x", T0)

        with pytest.raises(sa.exc.IntegrityError):
            twice()
        repos.events.set_state("after", "yes")
    with db.unit_of_work() as repos:
        assert repos.events.get_state("kept") == "yes"
        assert repos.events.get_state("after") == "yes"
        assert not repos.events.is_processed("$dup")


def test_counts_list_by_status_and_open_load_per_cell(db: Database) -> None:
    a = _new(db)
    _new(db)
    c = _new(db, status=Status.FOLLOW_UP.value)
    _new(db, status=Status.CLOSED.value)
    _new(db, cell=OTHER)
    with db.unit_of_work() as repos:
        repos.dossiers.update(CELL, c, T0, problematic=True)
        assert repos.dossiers.counts_by_status(CELL) == {"signalled": 2, "follow_up": 1,
                                                          "closed": 1}
        assert repos.dossiers.counts_by_status("nobody") == {}
        listed = repos.dossiers.list(CELL, ["signalled", "follow_up"])
        assert listed[0].code == a
        assert len(listed) == 3
        assert repos.dossiers.list(CELL, []) == []
        load = repos.dossiers.open_load([s.value for s in OPEN])
        assert load == {CELL: (3, 1), OTHER: (1, 0)}


def test_a_listing_sees_what_its_unit_of_work_changed_before_it_flushed(db: Database) -> None:
    code = _new(db)
    with db.unit_of_work() as repos:
        repos.dossiers.create(
            cell=CELL, phenomenon="HTF", indicators=("isolation",), context=(), source="CLB",
            summary="", signalled_by="@sara:example.be", status=Status.SIGNALLED.value, at=T0)
        row = repos._session.exec(sa.select(Dossier).where(Dossier.code == code)).scalar_one()
        row.status = Status.CLOSED.value  # changed, not flushed
        listed = repos.dossiers.list(CELL, [Status.SIGNALLED.value])
        assert len(listed) == 1
        assert listed[0].code != code
        [closed] = repos.dossiers.list(CELL, [Status.CLOSED.value])
        assert closed == repos.dossiers.get(CELL, code)
        assert closed.created_at.tzinfo is not None
        assert closed.indicators == ("isolation", "threats")


def test_purge_closed_leaves_anonymous_statistics_and_drops_the_audit(db: Database) -> None:
    old = _new(db, summary="free text that passed the guard")
    recent = _new(db)
    still_open = _new(db)
    with db.unit_of_work() as repos:
        repos.dossiers.update(CELL, old, T0, status="closed", closed_at=T0)
        repos.dossiers.update(CELL, recent, T0, status="not_retained",
                              closed_at=T0 + timedelta(days=10))
        for code in (old, recent, still_open):
            repos.audit.record(cell=CELL, actor="@chair:x", action="accept", at=T0, code=code,
                               from_status="signalled", to_status="follow_up",
                               decision_ref="vote:1", meeting_id=7)
    with db.unit_of_work() as repos:
        final = [s.value for s in FINAL]
        assert repos.dossiers.purge_closed(CELL, T0 + timedelta(days=1), final) == 1
        assert repos.dossiers.purge_closed(OTHER, T0 + timedelta(days=99), final) == 0
    with db.unit_of_work() as repos:
        assert repos.dossiers.get(CELL, old) is None
        assert repos.audit.for_code(CELL, old) == []
        assert len(repos.audit.for_code(CELL, recent)) == 1
        [stat] = repos.dossiers.statistics(CELL)
        assert (stat.phenomenon, stat.month_opened, stat.month_closed, stat.outcome) == (
            "HTF", "2026-03", "2026-03", "closed")
        assert repos.dossiers.statistics(OTHER) == []


def test_audit_is_per_cell_and_code_in_order(db: Database) -> None:
    with db.unit_of_work() as repos:
        for i, (frm, to) in enumerate((("signalled", "assessing"), ("assessing", "follow_up"))):
            repos.audit.record(cell=CELL, actor="@chair:x", action="transition",
                               at=T0 + timedelta(minutes=i), code="C-AAAAA", from_status=frm,
                               to_status=to, decision_ref=f"vote:{i}")
        repos.audit.record(cell=OTHER, actor="@chair:x", action="transition", at=T0,
                           code="C-AAAAA")
    with db.unit_of_work() as repos:
        trail = repos.audit.for_code(CELL, "C-AAAAA")
        assert [(a.from_status, a.to_status, a.decision_ref) for a in trail] == [
            ("signalled", "assessing", "vote:0"), ("assessing", "follow_up", "vote:1")]
        assert trail[1].at == T0 + timedelta(minutes=1)
        assert len(repos.audit.for_code(OTHER, "C-AAAAA")) == 1


def test_a_plain_postgresql_url_uses_psycopg_3() -> None:
    """SQLAlchemy's default PostgreSQL driver is psycopg2; the ``postgres`` extra ships 3."""
    engine = make_engine("postgresql://livcr@/livcr?host=/run/postgresql")
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", backend_params())
def test_a_reading_unit_sees_the_last_commit_without_waiting_for_a_writer(
    backend: str, tmp_path: Path
) -> None:
    """The outbox is read (to send replies) while the next command is being decided: the
    read must not queue behind that command's transaction, and must not see it half done."""
    with database_url(backend, tmp_path) as url:
        db = Database(url)
        db.migrate()
        try:
            with db.unit_of_work() as repos:
                repos.events.enqueue("$one", "!r:x", "m.room.message", {"body": "1"}, T0)
            writer_inside = threading.Event()
            release = threading.Event()

            def decide() -> None:
                with db.unit_of_work() as repos:
                    repos.events.enqueue("$two", "!r:x", "m.room.message", {"body": "2"}, T0)
                    repos.flush()
                    writer_inside.set()
                    release.wait(10)

            writer = threading.Thread(target=decide)
            writer.start()
            assert writer_inside.wait(10)
            with db.reading() as repos:  # had it waited, the writer would have committed
                seen = [p.source_event_id for p in repos.events.pending()]
            release.set()
            writer.join(10)
            assert seen == ["$one"]
            with db.reading() as repos:
                assert [p.source_event_id for p in repos.events.pending()] == ["$one", "$two"]
                repos.events.sent(repos.events.pending()[0].id)  # a write here is undone
            with db.reading() as repos:
                assert len(repos.events.pending()) == 2
        finally:
            db.dispose()


def _item(id_: int, source: str, room: str, kind: str = "message") -> OutboxItem:
    return OutboxItem(id=id_, source_event_id=source, seq=0, room_id=room, event_type=kind,
                      content={}, purpose="")


def test_replies_to_members_go_before_a_backlog_of_announcements_but_never_jump_their_room(
) -> None:
    """Hundreds of start-up announcements must not keep a member's reply waiting, yet nothing
    overtakes an earlier item for the same room (a poll's start stays before its end)."""
    backlog = [_item(i, f"recompute:{i}", f"!room{i}:x") for i in range(1, 301)]
    items = [
        *backlog[:150],
        _item(400, "job:meeting-start", "!busy:x", "poll_start"),
        _item(401, "$ballot", "!busy:x", "poll_end"),      # must stay after its start
        _item(402, "$case-list", "!quiet:x"),                # jumps the backlog
        *backlog[150:],
        _item(403, "$help", "!room7:x"),                     # room7 has an announcement first
        _item(404, "$members", "!quiet:x"),
    ]
    ordered = send_order(items)
    assert sorted(i.id for i in ordered) == sorted(i.id for i in items)  # nothing lost
    assert [i.id for i in ordered[:2]] == [402, 404]
    position = {item.id: n for n, item in enumerate(ordered)}
    for room in {i.room_id for i in items}:
        in_room = [i.id for i in items if i.room_id == room]
        assert sorted(in_room, key=position.__getitem__) == in_room, room
    assert position[400] < position[401]
    assert position[7] < position[403]
    assert send_order([]) == []


def test_purged_texts_cannot_be_read_back_from_the_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``secure_delete`` on every connection: a purged summary and fiche text are overwritten,
    not merely unlinked, whatever the SQLite build's default (spec §11 "Nothing left behind").
    Connections start with it off here, as on builds without SQLITE_SECURE_DELETE."""
    import sqlite3

    plain_connect = sqlite3.dbapi2.connect

    def connect_without_secure_delete(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = plain_connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete=OFF")
        return conn

    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect_without_secure_delete)
    path = tmp_path / "livcr.db"
    database = Database(f"sqlite:///{path}")
    try:
        database.migrate()
        summary, other = "SUMMARY-MARKER-7f3a9c", "FICHE-MARKER-b41e02"
        code = _new(database, summary=summary)
        with database.unit_of_work() as repos:
            repos.fiches.put(CELL, code, {"other": other}, by="@chair:x", at=T0)
            repos.dossiers.update(CELL, code, T0, status="closed", closed_at=T0)
        with database.unit_of_work() as repos:
            assert repos.dossiers.purge_closed(CELL, T0 + timedelta(days=1),
                                               [s.value for s in FINAL]) == 1
        raw = database.engine.raw_connection()
        try:
            assert raw.cursor().execute("PRAGMA secure_delete").fetchone()[0] == 1
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    finally:
        database.dispose()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert summary.encode() not in data
    assert other.encode() not in data
