"""Database backends for the tests: SQLite always, PostgreSQL when ``LIVCR_TEST_PG_URL`` is set.

``LIVCR_TEST_PG_URL`` names a database on a server where its user may create databases
(``scripts/pg-test-server`` starts such a server). Every test or world that needs PostgreSQL gets
a database of its own, created here and dropped afterwards, so tests never share state.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.db import Database

PG_ENV = "LIVCR_TEST_PG_URL"
NO_PG = f"{PG_ENV} is not set: no PostgreSQL server for this run"


def pg_url() -> str | None:
    """The admin-capable PostgreSQL URL of this test run, or None (SQLite only)."""
    return os.environ.get(PG_ENV) or None


def default_backend() -> str:
    """The backend of the whole-suite run: ``postgresql`` when a server is given."""
    return "postgresql" if pg_url() else "sqlite"


def backend_params() -> list[object]:
    """``pytest.mark.parametrize`` values for tests that run on every backend."""
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param(
            "postgresql", id="postgresql", marks=pytest.mark.skipif(not pg_url(), reason=NO_PG)
        ),
    ]


def _admin_engine() -> sa.Engine:
    url = pg_url()
    if url is None:
        raise RuntimeError(NO_PG)
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def create_pg_database() -> str:
    """A new empty database on the test server; returns its URL."""
    name = f"livcr_test_{os.getpid()}_{secrets.token_hex(4)}"
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return sa.make_url(pg_url() or "").set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    """Drop a database made by ``create_pg_database``, closing what still uses it."""
    name = sa.make_url(url).database
    if not (name and name.startswith("livcr_test_")):
        raise ValueError(f"not a test database: {name}")
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@contextmanager
def database_url(backend: str, directory: Path | None = None) -> Iterator[str]:
    """A URL of a fresh, empty database of ``backend``.

    SQLite: a file in ``directory`` when given (needed when several connections must see the
    same database), otherwise in memory. PostgreSQL: a database of its own, dropped afterwards.
    """
    if backend == "sqlite":
        if directory is None:
            yield "sqlite://"
        else:
            yield f"sqlite:///{directory / f'livcr-{secrets.token_hex(4)}.db'}"
        return
    if backend != "postgresql":
        raise ValueError(backend)
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@contextmanager
def migrated_database(backend: str, directory: Path) -> Iterator[Database]:
    """A migrated :class:`Database` on ``backend`` (SQLite on a file in ``directory``, so two
    sessions are two connections), disposed afterwards."""
    with database_url(backend, directory) as url:
        database = Database(url)
        try:
            database.migrate()
            yield database
        finally:
            database.dispose()
