"""Numbered migrations produce exactly the models' schema on every backend (SQLite always,
PostgreSQL when ``LIVCR_TEST_PG_URL`` is set); a newer database is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

import storage.identities  # registers the identity tables
import storage.models  # noqa: F401  (registers the tables)
from storage.migrations import STEPS, DatabaseTooNew, upgrade
from tests.backends import backend_params, database_url

Schema = dict[str, dict[str, Any]]


@pytest.fixture(params=backend_params())
def engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[sa.Engine, ...]]:
    """Two empty databases of one backend: one for the migrations, one for the models."""
    with database_url(request.param, tmp_path) as left, \
            database_url(request.param, tmp_path) as right:
        pair = (sa.create_engine(left), sa.create_engine(right))
        try:
            yield pair
        finally:
            for engine in pair:
                engine.dispose()


def _schema(engine: sa.Engine) -> Schema:
    inspector = sa.inspect(engine)
    out: Schema = {}
    for table in inspector.get_table_names():
        if table == "schema_version":
            continue
        columns = {}
        for c in inspector.get_columns(table):
            kind = c["type"]
            columns[c["name"]] = (
                bool(c["nullable"]),
                type(kind).__name__.upper(),
                getattr(kind, "timezone", None),
            )
        unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
        if engine.dialect.name == "sqlite":
            unique |= _sqlite_unique(engine, table)
        indexes = set()
        for index in inspector.get_indexes(table):
            if index.get("duplicates_constraint"):
                continue
            key = tuple(str(c) for c in index["column_names"])
            if index["unique"]:
                unique.add(key)  # SQLite reports a UNIQUE column as a unique index
            else:
                indexes.add((index["name"], key))
        out[table] = {
            "columns": columns,
            "primary key": tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
            "unique": unique,
            "indexes": indexes,
        }
    return out


def _sqlite_unique(engine: sa.Engine, table: str) -> set[tuple[str, ...]]:
    """SQLite's inspector misses a column's inline UNIQUE; its index list has it."""
    found = set()
    with engine.connect() as conn:
        for _seq, name, _unique, origin, *_ in conn.exec_driver_sql(
            f'PRAGMA index_list("{table}")'
        ):
            if origin == "u":
                info = conn.exec_driver_sql(f'PRAGMA index_info("{name}")').all()
                found.add(tuple(row[2] for row in sorted(info)))
    return found


def _affinity(name: str) -> str:
    for key, value in (("INT", "INTEGER"), ("CHAR", "TEXT"), ("TEXT", "TEXT"), ("BOOL", "BOOL"),
                       ("TIMESTAMP", "TIME"), ("DATETIME", "TIME"), ("DATE", "DATE")):
        if key in name:
            return value
    return name


def test_migrations_on_an_empty_database_match_the_models(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    migrated, modelled = engines
    assert upgrade(migrated) == len(STEPS)
    SQLModel.metadata.create_all(modelled)
    left, right = _schema(migrated), _schema(modelled)
    assert set(left) == set(right)
    postgres = migrated.dialect.name == "postgresql"
    for table in left:
        ours, theirs = left[table], right[table]
        assert set(ours["columns"]) == set(theirs["columns"]), table
        for column, (nullable, kind, tz) in ours["columns"].items():
            other_nullable, other_kind, other_tz = theirs["columns"][column]
            assert nullable == other_nullable, (table, column)
            assert _affinity(kind) == _affinity(other_kind), (table, column, kind, other_kind)
            if postgres and _affinity(kind) == "TIME":
                assert tz is True, (table, column, "migration lacks WITH TIME ZONE")
                assert other_tz is True, (table, column, "model lacks WITH TIME ZONE")
        for key in ("primary key", "unique", "indexes"):
            assert ours[key] == theirs[key], (table, key)


def test_upgrade_twice_is_a_no_op_and_a_newer_database_is_refused(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    engine = engines[0]
    upgrade(engine)
    upgrade(engine)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT version FROM schema_version")).scalar() == len(STEPS)
        conn.execute(sa.text("UPDATE schema_version SET version = :v"), {"v": len(STEPS) + 1})
    with pytest.raises(DatabaseTooNew):
        upgrade(engine)
