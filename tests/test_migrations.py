"""Numbered migrations produce exactly the models' schema; a newer database is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables)
from storage.migrations import STEPS, DatabaseTooNew, upgrade


def _schema(engine: sa.Engine) -> dict[str, dict[str, tuple[bool, str]]]:
    inspector = sa.inspect(engine)
    out = {}
    for table in inspector.get_table_names():
        if table == "schema_version":
            continue
        out[table] = {
            c["name"]: (bool(c["nullable"]), type(c["type"]).__name__.upper())
            for c in inspector.get_columns(table)
        }
    return out


def _affinity(name: str) -> str:
    for key, value in (("INT", "INTEGER"), ("CHAR", "TEXT"), ("TEXT", "TEXT"), ("BOOL", "BOOL"),
                       ("TIMESTAMP", "TIME"), ("DATETIME", "TIME"), ("DATE", "DATE")):
        if key in name:
            return value
    return name


def test_migrations_on_an_empty_database_match_the_models(tmp_path: Path) -> None:
    migrated = sa.create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    assert upgrade(migrated) == len(STEPS)
    modelled = sa.create_engine(f"sqlite:///{tmp_path / 'models.db'}")
    SQLModel.metadata.create_all(modelled)
    left, right = _schema(migrated), _schema(modelled)
    assert set(left) == set(right)
    for table in left:
        assert set(left[table]) == set(right[table]), table
        for column, (nullable, kind) in left[table].items():
            other_nullable, other_kind = right[table][column]
            assert nullable == other_nullable, (table, column)
            assert _affinity(kind) == _affinity(other_kind), (table, column, kind, other_kind)


def test_upgrade_twice_is_a_no_op_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.db'}")
    upgrade(engine)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = :v"), {"v": len(STEPS) + 1})
    with pytest.raises(DatabaseTooNew):
        upgrade(engine)
