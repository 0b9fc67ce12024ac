"""The tamper-evident record (spec §14), on every backend: a changed or removed audit row is
named by ``livcr audit verify``; retention keeps the chain checkable; the migration chains rows
written before it; ``livcr audit export`` holds codes, never user ids."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.cli import main
from bot.config import Config
from bot.core.dispatcher import Dispatcher
from commands.dossiers import workflow as dossiers
from commands.framework import ChangeRecorder
from storage.audit import GENESIS
from storage.db import Database
from storage.migrations import STEPS, upgrade
from tests.backends import backend_params, database_url, migrated_database
from tests.factories import (
    CHAIR,
    IO,
    NOW,
    PARTNER,
    ack_all,
    decide,
    make_config,
    say,
)
from tests.processes import toml_value

VALID = "!signal phenomenon=HTF indicators=isolation,threats assessed=yes context=school"


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(backend: str, tmp_path: Path) -> Iterator[Database]:
    with migrated_database(backend, tmp_path) as database:
        yield database


def config_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("\n".join([
        "[matrix]",
        'homeserver = "https://matrix.example.be"',
        'user_id = "@livcr:example.be"',
        'password = "not-a-real-secret"',
        f"data_dir = {toml_value(str(tmp_path / 'data'))}",
        "[storage]",
        f"database_url = {toml_value(url)}",
        "[cell]",
        'name = "LIVC-R Voorbeeldstad"',
        'municipalities = ["Voorbeeldstad"]',
        'language = "en"',
        "[tables.operational]",
        'room = "!op:example.be"',
        "[[members]]", f'user_id = "{CHAIR}"', 'role = "chair"',
        'organisation = "Preventiedienst"', 'tables = ["operational"]',
        "[[members]]", f'user_id = "{IO}"', 'role = "information_officer"',
        'organisation = "Politiezone"', 'tables = ["operational"]',
        "[[members]]", f'user_id = "{PARTNER}"', 'role = "partner"', 'organisation = "OCMW"',
        'tables = ["operational"]',
    ]) + "\n")
    return path


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(list(argv))
    return status, out.getvalue()


def cases(db: Database, config: Config, n: int) -> list[str]:
    ack_all(db, config)
    dispatcher = Dispatcher(config, scheduler=ChangeRecorder())
    codes = []
    for _ in range(n):
        answer = say(dispatcher, db, VALID, sender=PARTNER)
        match = re.search(r"C-[0-9A-Z]{5}", answer)
        assert match, answer
        codes.append(match.group(0))
    return codes


def audit_ids(db: Database) -> list[int]:
    with db.engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(sa.text("SELECT id FROM audit ORDER BY seq"))]


def test_an_untouched_chain_verifies_and_links_every_row(db: Database, tmp_path: Path) -> None:
    config = make_config(language="en")
    cases(db, config, 3)
    path = config_file(tmp_path, db.url)
    status, out = cli("audit", "verify", "-c", str(path))
    assert status == 0, out
    assert "intact, 3 row(s)" in out
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT seq, prev_hash, hash FROM audit ORDER BY seq")).all()
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[0][1] == GENESIS
    assert [r[1] for r in rows[1:]] == [r[2] for r in rows[:-1]]


@pytest.mark.parametrize(("column", "value"), [("code", "R-0000-FAKE"), ("to_status", "closed"),
                                               ("actor", "@someone:example.be")])
def test_changing_one_row_in_the_database_names_that_row(
    db: Database, tmp_path: Path, column: str, value: str
) -> None:
    config = make_config(language="en")
    cases(db, config, 4)
    second = audit_ids(db)[1]
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE audit SET {column} = :v WHERE id = :i"),
                     {"v": value, "i": second})
    status, out = cli("audit", "verify", "-c", str(config_file(tmp_path, db.url)))
    assert status == 2
    assert f"BROKEN at row 2 (id {second})" in out
    assert "changed" in out


def test_removing_a_row_or_the_last_row_is_named(db: Database, tmp_path: Path) -> None:
    config = make_config(language="en")
    cases(db, config, 4)
    ids = audit_ids(db)
    path = config_file(tmp_path, db.url)
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit WHERE id = :i"), {"i": ids[-1]})
    status, out = cli("audit", "verify", "-c", str(path))
    assert (status, "BROKEN at row 4") == (2, out.split(": audit chain ")[1][:15]), out
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit WHERE id = :i"), {"i": ids[1]})
    status, out = cli("audit", "verify", "-c", str(path))
    assert status == 2
    assert "BROKEN at row 2" in out


def test_after_a_purge_the_chain_still_verifies(db: Database, tmp_path: Path) -> None:
    config = make_config(language="en")
    first, second = cases(db, config, 2)
    cell = config.cells[0]
    with db.unit_of_work() as repos:
        decide("reject", repos, ChangeRecorder(), cell, first, actor=CHAIR, at=NOW,
               decision_ref="v1")
    with db.unit_of_work() as repos:
        assert dossiers.apply_retention(cell, repos, NOW) == 1
        repos.audit.record(cell=cell.id, actor=CHAIR, action="meeting_start", at=NOW)
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT seq, code, actor, purged FROM audit ORDER BY seq")).all()
    assert [(r[1], r[2], bool(r[3])) for r in rows if r[0] in (1, 3)] == [("", "", True)] * 2
    assert first not in str(rows)
    path = config_file(tmp_path, db.url)
    status, out = cli("audit", "verify", "-c", str(path))
    assert status == 0, out
    assert "intact, 4 row(s), 2 replaced by their hash" in out
    # A purged row's hash is still a link: changing it breaks the chain at the next row.
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit SET hash = :h WHERE seq = 1"), {"h": "f" * 64})
    status, out = cli("audit", "verify", "-c", str(path))
    assert status == 2
    assert "BROKEN at row 2" in out
    status, out = cli("audit", "export", "-c", str(path), "--format", "jsonl")
    assert status == 0
    exported = [json.loads(line) for line in out.splitlines()]
    assert [e["position"] for e in exported] == [1, 2, 3, 4]
    assert [e["code"] for e in exported] == ["", second, "", ""]


def test_export_holds_codes_and_no_user_ids(db: Database, tmp_path: Path) -> None:
    config = make_config(language="en")
    codes = cases(db, config, 2)
    path = config_file(tmp_path, db.url)
    status, out = cli("audit", "export", "-c", str(path), "--format", "csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["code"] for r in rows] == codes
    assert {r["action"] for r in rows} == {"signal"}
    assert "@" not in out
    status, out = cli("audit", "export", "-c", str(path), "--format", "jsonl",
                      "--from", "2026-11-25")
    assert (status, out) == (0, "")
    status, out = cli("audit", "export", "-c", str(path), "--format", "jsonl",
                      "--from", "2026-11-24", "--to", "2026-11-24")
    assert len(out.splitlines()) == 2


def test_the_migration_chains_rows_written_before_it(backend: str, tmp_path: Path) -> None:
    with database_url(backend, tmp_path) as url:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
                conn.execute(sa.text("INSERT INTO schema_version (version) VALUES (0)"))
            chain_step = next(i for i, step in enumerate(STEPS)
                              if "audit hash chain" in (step.__doc__ or ""))
            for number, step in enumerate(STEPS[:chain_step]):
                with engine.begin() as conn:
                    step(conn)
                    conn.execute(sa.text("UPDATE schema_version SET version = :v"),
                                 {"v": number + 1})
            with engine.begin() as conn:
                for cell, code in (("a", "R-1"), ("b", "R-2"), ("a", "R-3")):
                    conn.execute(sa.text(
                        "INSERT INTO audit (at, cell, actor, action, code, from_status, "
                        "to_status, decision_ref) VALUES (:at, :c, :a, 'signal', :code, '', "
                        "'signalled', '')"), {"at": NOW, "c": cell, "a": CHAIR, "code": code})
            assert upgrade(engine) == len(STEPS)
        finally:
            engine.dispose()
        database = Database(url)
        try:
            with database.reading() as repos:
                reports = {r.cell: r for r in repos.audit.verify()}
            assert {c: (r.rows, r.broken) for c, r in reports.items()} == {
                "a": (2, None), "b": (1, None)}
            with database.unit_of_work() as repos:
                repos.audit.record(cell="a", actor=CHAIR, action="meeting_start", at=NOW)
            with database.reading() as repos:
                assert [(r.cell, r.rows, r.broken) for r in repos.audit.verify()] == [
                    ("a", 3, None), ("b", 1, None)]
        finally:
            database.dispose()


def test_concurrent_writers_never_fork_a_chain_and_rolled_back_rows_leave_no_gap(
    db: Database,
) -> None:
    def writer(n: int) -> None:
        for i in range(15):
            with db.unit_of_work() as repos:
                repos.audit.record(cell="c", actor=CHAIR, action="meeting_start", at=NOW,
                                   decision_ref=f"{n}-{i}")
                repos.audit.record(cell="d", actor=CHAIR, action="meeting_end", at=NOW)
                try:
                    with repos.savepoint():
                        repos.audit.record(cell="c", actor=CHAIR, action="undone", at=NOW)
                        raise RuntimeError
                except RuntimeError:
                    pass

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def rolled_back() -> None:
        with db.unit_of_work() as repos:
            repos.audit.record(cell="c", actor=CHAIR, action="rolled_back", at=NOW)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        rolled_back()
    with db.unit_of_work() as repos:
        repos.audit.record(cell="c", actor=CHAIR, action="meeting_start", at=NOW)
    with db.reading() as repos:
        reports = {r.cell: (r.rows, r.broken) for r in repos.audit.verify()}
    assert reports == {"c": (46, None), "d": (45, None)}
    with db.engine.connect() as conn:
        actions = {r[0] for r in conn.execute(sa.text("SELECT action FROM audit"))}
    assert actions == {"meeting_start", "meeting_end"}
