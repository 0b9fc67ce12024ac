"""``livcr migrate-db``: copy an installation's database to another backend.

Typically from the embedded SQLite file to PostgreSQL when a cell moves to a regional
installation. Both sides are brought to the newest schema first (the same numbered upgrades
``livcr run`` applies); the target must be empty. Every table is copied in dependency order in
one transaction on the target, through the models' column types, so timestamps stay aware
UTC on both sides. PostgreSQL identity sequences are moved past the copied ids afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables)
from storage.db import Database
from storage.migrations import DatabaseTooNew

BATCH = 1000


class TransferRefused(RuntimeError):
    """The copy would lose or mix data; nothing was written."""


@dataclass(frozen=True)
class TransferResult:
    schema_version: int
    counts: dict[str, int]


def _same_database(a: sa.URL, b: sa.URL) -> bool:
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        return bool(a.database) and Path(a.database or "").resolve() == Path(
            b.database or ""
        ).resolve()
    return (a.host, a.port, a.database) == (b.host, b.port, b.database)


def _tables() -> list[sa.Table]:
    return list(SQLModel.metadata.sorted_tables)


def _unknown_tables(engine: sa.Engine) -> set[str]:
    known = {t.name for t in _tables()} | {"schema_version"}
    return set(sa.inspect(engine).get_table_names()) - known


def _fix_identity_sequences(conn: sa.Connection, tables: list[sa.Table]) -> None:
    """After explicit ids were inserted, the next generated id must come after them."""
    for table in tables:
        for column in table.primary_key.columns:
            if not column.autoincrement or not isinstance(column.type, sa.Integer):
                continue
            if len(table.primary_key.columns) != 1:
                continue
            sequence = conn.execute(
                sa.select(sa.func.pg_get_serial_sequence(table.name, column.name))
            ).scalar()
            if sequence is None:
                continue
            highest = conn.execute(sa.select(sa.func.max(column))).scalar()
            conn.execute(
                sa.select(sa.func.setval(sequence, (highest or 0) + 1, False))
            )


def _refuse_unless_empty(conn: sa.Connection, tables: list[sa.Table]) -> None:
    present = set(sa.inspect(conn).get_table_names())
    for table in tables:
        if table.name in present and conn.execute(
            sa.select(sa.func.count()).select_from(table)
        ).scalar():
            raise TransferRefused(
                f"the target is not empty (table {table.name} has rows); "
                "migrate-db only copies into an empty database"
            )


def copy_database(source_url: str, target_url: str) -> TransferResult:
    """Copy every table from ``source_url`` to the empty database at ``target_url``.

    Raises:
        TransferRefused: same database on both sides, no livcr-bot database at the source, a
            table the code does not know, or a target that already holds data. The target
            is then left as it was.
    """
    source_u, target_u = sa.make_url(source_url), sa.make_url(target_url)
    if _same_database(source_u, target_u):
        raise TransferRefused("source and target are the same database")
    if source_u.get_backend_name() == "sqlite" and not (
        source_u.database and Path(source_u.database).is_file()
    ):
        raise TransferRefused(f"no SQLite database at {source_u.database or '(memory)'}")
    tables = _tables()
    source, target = Database(source_url), Database(target_url)
    try:
        if not sa.inspect(source.engine).has_table("schema_version"):
            raise TransferRefused("the source is not a livcr-bot database (no schema_version)")
        for side, db in (("source", source), ("target", target)):
            unknown = _unknown_tables(db.engine)
            if unknown:
                raise TransferRefused(
                    f"the {side} has tables this livcr-bot does not know: "
                    + ", ".join(sorted(unknown))
                )
        with target.engine.connect() as conn:
            _refuse_unless_empty(conn, tables)
        try:
            version = source.migrate()
            target.migrate()
        except DatabaseTooNew as exc:
            raise TransferRefused(str(exc)) from exc
        counts: dict[str, int] = {}
        with source.engine.connect() as reader, target.engine.begin() as writer:
            _refuse_unless_empty(writer, tables)  # nobody wrote in the meantime
            for table in tables:
                copied = 0
                order = list(table.primary_key.columns) or list(table.columns)
                result = reader.execution_options(yield_per=BATCH).execute(
                    sa.select(table).order_by(*order)
                )
                for rows in result.mappings().partitions(BATCH):
                    writer.execute(table.insert(), [dict(row) for row in rows])
                    copied += len(rows)
                counts[table.name] = copied
            if writer.dialect.name == "postgresql":
                _fix_identity_sequences(writer, tables)
        return TransferResult(schema_version=version, counts=counts)
    finally:
        source.dispose()
        target.dispose()
