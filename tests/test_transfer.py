"""``livcr migrate-db``: an installation's data copied whole into an empty database, SQLite to
SQLite always, to and from PostgreSQL when ``LIVCR_TEST_PG_URL`` is set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from bot.cli import main
from storage.db import Database
from storage.models import UTCDateTime
from storage.transfer import TransferRefused, copy_database
from tests.backends import backend_params, database_url

T0 = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
CELL = "livc-r-voorbeeldstad"


def _value(column: sa.Column[Any], i: int) -> Any:
    kind = column.type
    if isinstance(kind, sa.types.TypeDecorator) and not isinstance(kind, UTCDateTime):
        kind = sa.String(getattr(kind, "length", None)) if isinstance(
            kind.impl_instance, sa.String) else kind.impl_instance
    if isinstance(kind, UTCDateTime):
        return T0 + timedelta(days=i, microseconds=i)
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.Date):
        return date(2026, 1, 1) + timedelta(days=i)
    if isinstance(kind, sa.Integer):
        return 1 + i
    if isinstance(kind, sa.String):
        text = f"{column.name[:6]}-{i}-é"
        return text[: kind.length] if kind.length else text + " — ✓"
    raise AssertionError(f"no sample value for {column.table.name}.{column.name} ({kind!r})")


def _fill(db: Database, rows_per_table: int = 3) -> None:
    """Every table of the models gets rows with explicit keys and every column set."""
    with db.engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            conn.execute(
                table.insert(),
                [{c.name: _value(c, i) for c in table.columns} for i in range(rows_per_table)],
            )


def _dump(db: Database) -> dict[str, list[dict[str, Any]]]:
    out = {}
    with db.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns))
            out[table.name] = [dict(r) for r in rows.mappings()]
    return out


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Database]:
    with database_url("sqlite", tmp_path) as url:
        db = Database(url)
        db.migrate()
        _fill(db)
        with db.unit_of_work() as repos:
            repos.dossiers.create(
                cell=CELL, phenomenon="HTF", indicators=("isolation",), context=("school",),
                source="OCMW", summary="", signalled_by="@sara:x", status="signalled", at=T0,
            )
        yield db
        db.dispose()


@pytest.fixture(params=backend_params())
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


def test_everything_is_copied_and_new_ids_continue_after_the_copied_ones(
    source: Database, target_url: str
) -> None:
    result = copy_database(source.url, target_url)
    expected = _dump(source)
    assert result.counts == {name: len(rows) for name, rows in expected.items()}
    assert result.counts["dossier"] == 4
    target = Database(target_url)
    try:
        assert _dump(target) == expected
        with target.unit_of_work() as repos:
            [record] = repos.dossiers.list(CELL)
            assert record.created_at == T0
            assert record.created_at.tzinfo == UTC
            # Identity columns continue after the copied ids: no duplicate key.
            repos.dossiers.create(
                cell=CELL, phenomenon="HP", indicators=("threats",), context=(), source="CLB",
                summary="", signalled_by="@tom:x", status="signalled", at=T0,
            )
            repos.audit.record(cell=CELL, actor="@chair:x", action="accept", at=T0)
            repos.events.enqueue("$new", "!r:x", "m.room.message", {"body": "x"}, T0)
        with target.unit_of_work() as repos:
            assert len(repos.dossiers.list(CELL)) == 2
    finally:
        target.dispose()


def test_replies_after_a_move_never_reuse_a_transaction_id_the_homeserver_remembers(
    tmp_path: Path, target_url: str
) -> None:
    """The outbox is usually empty when a database is moved, so the target numbers its items
    from 1 again; the homeserver still remembers the transaction ids of the replies sent just
    before the move and would drop a new reply that reused one."""
    with database_url("sqlite", tmp_path / "old") as url:
        old = Database(url)
        old.migrate()
        with old.unit_of_work() as repos:
            repos.events.enqueue("$before", "!r:x", "m.room.message", {"body": "1"}, T0)
        with old.unit_of_work() as repos:
            [sent] = repos.events.pending()
            repos.events.sent(sent.id)
        copy_database(url, target_url)
        old.dispose()
    target = Database(target_url)
    try:
        with target.unit_of_work() as repos:
            repos.events.enqueue("$after", "!r:x", "m.room.message", {"body": "2"}, T0)
        with target.reading() as repos:
            [fresh] = repos.events.pending()
        assert fresh.id == sent.id  # numbering restarted: the case this guards against
        assert fresh.txn_id != sent.txn_id
        with target.reading() as repos:  # and the same again for a resend after a crash
            assert [p.txn_id for p in repos.events.pending()] == [fresh.txn_id]
    finally:
        target.dispose()


def test_a_non_empty_target_or_the_same_database_is_refused_and_left_alone(
    source: Database, target_url: str
) -> None:
    copy_database(source.url, target_url)
    target = Database(target_url)
    try:
        before = _dump(target)
        with pytest.raises(TransferRefused, match="not empty"):
            copy_database(source.url, target_url)
        assert _dump(target) == before
    finally:
        target.dispose()
    with pytest.raises(TransferRefused, match="same database"):
        copy_database(source.url, source.url)


def test_a_missing_source_and_unknown_tables_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TransferRefused, match="no SQLite database"):
        copy_database(f"sqlite:///{tmp_path / 'missing.db'}", f"sqlite:///{tmp_path / 't.db'}")
    assert not (tmp_path / "missing.db").exists()
    foreign = sa.create_engine(f"sqlite:///{tmp_path / 'foreign.db'}")
    with foreign.begin() as conn:
        conn.execute(sa.text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
        conn.execute(sa.text("CREATE TABLE payroll (id INTEGER)"))
    foreign.dispose()
    with pytest.raises(TransferRefused, match="payroll"):
        copy_database(f"sqlite:///{tmp_path / 'foreign.db'}", f"sqlite:///{tmp_path / 't.db'}")


def test_copy_back_from_the_target_gives_the_same_data(
    source: Database, target_url: str, tmp_path: Path
) -> None:
    """PostgreSQL to SQLite works too: a portable backup of a regional installation."""
    copy_database(source.url, target_url)
    back = f"sqlite:///{tmp_path / 'back.db'}"
    copy_database(target_url, back)
    copy = Database(back)
    try:
        assert _dump(copy) == _dump(source)
    finally:
        copy.dispose()


def test_cli_prints_the_count_per_table_and_refuses_with_status_2(
    source: Database, target_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate-db", "--from", source.url, "--to", target_url]) == 0
    out = capsys.readouterr().out
    assert "dossier" in out
    assert "copied" in out
    lines = dict(line.split() for line in out.splitlines()[:-1])
    assert lines["dossier"] == "4"
    assert main(["migrate-db", "--from", source.url, "--to", target_url]) == 2
    assert "not empty" in capsys.readouterr().err
