"""The database: engine, upgrades and units of work."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session

from storage.cache import CACHE, ReadCache, cache_of
from storage.identities import IdentityPin
from storage.migrations import upgrade
from storage.models import Acknowledgement, Meeting, RosterEntry, TableState, Vote
from storage.repositories import Repositories

#: Execution option that marks a read-only unit of work (see ``Database.reading``).
READING = "livcr_reading"
#: The rows whose change changes who the bot trusts: roster changes and identity pins.
TRUST_ROWS = (RosterEntry, IdentityPin)
_TRUST_CHANGED = "livcr_trust_changed"
#: The rows the job plan is derived from (``commands.meetings.reminders.job_plan``): planned
#: and started meetings, cadence states and open votes. A unit of work that wrote none of them
#: leaves the scheduler's jobs as they are. The plan also skips jobs marked processed, but a
#: job is marked by its own run, after which the scheduler holds it no more (a one-off timer),
#: so a new mark never calls for a new plan.
SCHEDULE_ROWS = (Meeting, TableState, Vote)
_SCHEDULE_CHANGED = "livcr_schedule_changed"
_SCHEDULE_TABLES = frozenset(row.__tablename__ for row in SCHEDULE_ROWS)
#: The rows kept in the read cache between units of work (storage.cache), by space.
CACHED_ROWS: dict[type, str] = {RosterEntry: "roster", Acknowledgement: "acks"}


@event.listens_for(Session, "after_flush")
def _note_trust_rows(session: Any, _context: Any) -> None:
    # Called while the flushed objects are still listed: mark the unit of work when it
    # wrote a roster change or an identity pin (see ``Database.trust_generation``).
    rows = (*session.new, *session.dirty, *session.deleted)
    if not session.info.get(_TRUST_CHANGED) and any(isinstance(row, TRUST_ROWS) for row in rows):
        session.info[_TRUST_CHANGED] = True
    if not session.info.get(_SCHEDULE_CHANGED) and any(
            isinstance(row, SCHEDULE_ROWS) for row in rows):
        session.info[_SCHEDULE_CHANGED] = True
    cache = cache_of(session)
    if cache is not None:
        for space in {CACHED_ROWS[type(row)] for row in rows if type(row) in CACHED_ROWS}:
            cache.begin_write(session, space)


@event.listens_for(Session, "do_orm_execute")
def _note_schedule_statements(state: Any) -> None:
    # A bulk INSERT, UPDATE or DELETE of those rows (``sa.delete(Vote)``) is no flush.
    if (state.is_insert or state.is_update or state.is_delete) and not state.session.info.get(
            _SCHEDULE_CHANGED):
        table = getattr(state.statement, "table", None)
        if table is None or table.name in _SCHEDULE_TABLES:
            state.session.info[_SCHEDULE_CHANGED] = True


def make_engine(url: str) -> sa.Engine:
    """An engine for SQLite (the embedded default) or PostgreSQL (production)."""
    if url.startswith("sqlite"):
        path = "" if url in ("sqlite://", "sqlite:") else url.removeprefix("sqlite:///")
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=sa.pool.StaticPool if path in ("", ":memory:") else None,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below take over
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Deleted rows are overwritten with zeros: a purged summary or fiche text cannot
            # be read back from the file, whatever the build's default (spec §11).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # IMMEDIATE: a writer takes the lock at the start, so two units of work
            # never both read a dossier's old state and both change it. A reading unit
            # (``Database.reading``) begins deferred: in WAL mode it never waits for a writer.
            reading = conn.get_execution_options().get(READING, False)
            conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

        return engine
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":  # SQLAlchemy would pick psycopg2; we ship psycopg 3
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        # READ COMMITTED (the default): DossierRepository.lock takes a row lock
        # (SELECT … FOR UPDATE), so concurrent transitions of one dossier wait for each other.
        return sa.create_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            f"{exc.name} is not installed: use a postgresql+psycopg:// URL and "
            "pip install 'livcr-bot[postgres]'"
        ) from exc


class Database:
    """Owns the engine; every command runs in one unit of work (one transaction)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._reader = self.engine.execution_options(**{READING: True})
        #: Counts committed units of work of this process that changed a roster or an
        #: identity pin: the edge reads rosters and pins again only when it moved (another
        #: process, e.g. ``livcr trust``, is seen by a periodic re-read).
        self.trust_generation = 0
        #: Rosters and acknowledgements between units of work (storage.cache).
        self.cache = ReadCache()

    def migrate(self) -> int:
        version = upgrade(self.engine)
        self._protect_files()
        return version

    def _protect_files(self) -> None:
        if not self.url.startswith("sqlite:///"):
            return
        path = Path(self.url.removeprefix("sqlite:///"))
        for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            if candidate.exists():
                os.chmod(candidate, 0o600)

    @contextmanager
    def unit_of_work(self) -> Iterator[Repositories]:
        """Repositories sharing one transaction: committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False, info={CACHE: self.cache}) as session:
            repos = Repositories(session)
            try:
                yield repos
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                self.cache.end_writes(session)
            if session.info.pop(_TRUST_CHANGED, False):
                self.trust_generation += 1
            repos.schedule_changed = session.info.pop(_SCHEDULE_CHANGED, False)

    @contextmanager
    def reading(self) -> Iterator[Repositories]:
        """Repositories for reading only: a snapshot that does not wait for (or block) a
        command being decided; whatever it might write is rolled back."""
        with Session(self._reader, expire_on_commit=False, info={CACHE: self.cache}) as session:
            try:
                yield Repositories(session)
            finally:
                session.rollback()
                self.cache.end_writes(session)

    def dispose(self) -> None:
        self.engine.dispose()
