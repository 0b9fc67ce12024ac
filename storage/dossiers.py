"""Dossiers: the case records, their codes, locks, loads, and what retention keeps."""

from __future__ import annotations

import builtins
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage import audit as audit_chain
from storage.actions import ActionRepository
from storage.fiches import FicheRepository
from storage.models import (
    Dossier,
    Statistic,
)
from storage.votes import VoteRepository

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_case_code() -> str:
    """``C-`` and five random Crockford base-32 characters."""
    return "C-" + "".join(secrets.choice(CROCKFORD) for _ in range(5))


@dataclass(frozen=True)
class DossierRecord:
    code: str
    cell: str
    phenomenon: str
    indicators: tuple[str, ...]
    context: tuple[str, ...]
    source: str
    status: str
    problematic: bool
    scenario: str
    next_evaluation: date | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    has_summary: bool
    signalled_by: str = ""
    ideology: str = ""
    minor: str = ""
    previous: str = ""


@dataclass(frozen=True)
class StatisticRecord:
    """A purged dossier as statistics keep it."""

    phenomenon: str
    month_opened: str
    month_closed: str
    outcome: str
    ideology: str = ""
    minor: str = ""


_TABLE = Dossier.__table__  # type: ignore[attr-defined]
#: What a listing reads of each dossier: its record's columns, through Core (a list of a
#: hundred dossiers as ORM objects cost about 3 ms of CPU in every ``!case list``).
_LISTED = sa.select(*(_TABLE.c[name] for name in (
    "code", "cell", "phenomenon", "indicators", "context", "source", "status", "problematic",
    "scenario", "next_evaluation", "created_at", "updated_at", "closed_at", "summary",
    "signalled_by", "ideology", "minor", "previous"))).where(
    _TABLE.c.cell == sa.bindparam("cell")).order_by(_TABLE.c.id)
_LISTED_IN = _LISTED.where(_TABLE.c.status.in_(sa.bindparam("statuses", expanding=True)))


def _dossier(row: Any) -> DossierRecord:
    """The record of a ``Dossier`` row (an ORM object or a Core row of its columns)."""
    return DossierRecord(
        code=row.code,
        cell=row.cell,
        phenomenon=row.phenomenon,
        indicators=tuple(i for i in row.indicators.split(",") if i),
        context=tuple(c for c in row.context.split(",") if c),
        source=row.source,
        status=row.status,
        problematic=row.problematic,
        scenario=row.scenario,
        next_evaluation=row.next_evaluation,
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        has_summary=bool(row.summary),
        signalled_by=row.signalled_by,
        ideology=row.ideology,
        minor=row.minor,
        previous=row.previous,
    )


class DossierRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def _row(self, cell: str, code: str, lock: bool = False) -> Dossier | None:
        query = select(Dossier).where(Dossier.cell == cell, Dossier.code == code)
        if lock:
            # FOR UPDATE waits for a concurrent writer; populate_existing makes sure we then
            # use the row as that writer committed it, not a copy this session loaded before.
            query = query.with_for_update().execution_options(populate_existing=True)
        return self._session.exec(query).first()

    def create(
        self,
        *,
        cell: str,
        phenomenon: str,
        indicators: Sequence[str],
        context: Sequence[str],
        source: str,
        summary: str,
        signalled_by: str,
        status: str,
        at: datetime,
        ideology: str = "",
        minor: str = "",
        previous: str = "",
    ) -> DossierRecord:
        while True:
            code = new_case_code()
            if self._session.exec(select(Dossier.id).where(Dossier.code == code)).first() is None:
                break
        row = Dossier(
            code=code,
            cell=cell,
            phenomenon=phenomenon,
            indicators=",".join(indicators),
            context=",".join(context),
            source=source,
            summary=summary,
            status=status,
            signalled_by=signalled_by,
            ideology=ideology,
            minor=minor,
            previous=previous,
            created_at=at,
            updated_at=at,
        )
        self._session.add(row)
        self._session.flush()
        return _dossier(row)

    def get(self, cell: str, code: str) -> DossierRecord | None:
        row = self._row(cell, code)
        return _dossier(row) if row else None

    def list(self, cell: str, statuses: Iterable[str] | None = None) -> list[DossierRecord]:
        """The cell's dossiers (of ``statuses``), oldest first, read as plain rows; what this
        unit of work changed and did not flush yet is flushed first, as a query would."""
        session = self._session
        if session.new or session.dirty or session.deleted:
            session.flush()
        if statuses is None:
            rows = session.connection().execute(_LISTED, {"cell": cell})
        else:
            rows = session.connection().execute(_LISTED_IN, {"cell": cell,
                                                             "statuses": list(statuses)})
        return [_dossier(r) for r in rows.all()]

    def update(self, cell: str, code: str, at: datetime, **changes: Any) -> DossierRecord:
        """Change fields of a dossier under a row lock (PostgreSQL) / write lock (SQLite)."""
        row = self._row(cell, code, lock=True)
        if row is None:
            raise KeyError(code)
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = at
        row.version += 1
        self._session.add(row)
        self._session.flush()
        return _dossier(row)

    def lock(self, cell: str, code: str) -> DossierRecord | None:
        row = self._row(cell, code, lock=True)
        return _dossier(row) if row else None

    def counts_by_status(self, cell: str) -> Counter[str]:
        rows = self._session.exec(
            select(Dossier.status, sa.func.count()).where(Dossier.cell == cell).group_by(
                Dossier.status
            )
        ).all()
        return Counter({status: int(n) for status, n in rows})

    def open_load(self, open_statuses: Sequence[str],
                  cell: str | None = None) -> dict[str, tuple[int, int]]:
        """Per cell (or one cell): (open dossiers, open and problematic) in one query."""
        query = (
            select(
                Dossier.cell,
                sa.func.count(),
                sa.func.sum(sa.case((col(Dossier.problematic), 1), else_=0)),
            )
            .where(col(Dossier.status).in_(list(open_statuses)))
            .group_by(Dossier.cell)
        )
        if cell is not None:
            query = query.where(Dossier.cell == cell)
        rows = self._session.exec(query).all()
        return {cell: (int(n), int(p or 0)) for cell, n, p in rows}

    def purge_closed(self, cell: str, closed_before: datetime, final: Sequence[str]) -> int:
        """Replace closed dossiers by anonymous statistics; return how many went."""
        rows = self._session.exec(
            select(Dossier).where(
                Dossier.cell == cell,
                col(Dossier.status).in_(list(final)),
                col(Dossier.closed_at) <= closed_before,
            )
        ).all()
        for row in rows:
            closed = row.closed_at or row.updated_at
            self._session.add(
                Statistic(
                    cell=row.cell,
                    phenomenon=row.phenomenon,
                    month_opened=row.created_at.strftime("%Y-%m"),
                    month_closed=closed.strftime("%Y-%m"),
                    outcome=row.status,
                    ideology=row.ideology,
                    minor=row.minor,
                )
            )
            # Replaced by their hash, not deleted: the chain stays checkable (spec §14).
            audit_chain.purge_code(self._session, row.cell, row.code)
            VoteRepository(self._session).purge_code(row.cell, row.code)
            FicheRepository(self._session).purge_code(row.cell, row.code)
            ActionRepository(self._session).purge_code(row.cell, row.code)
            self._session.delete(row)
        return len(rows)

    def statistics(self, cell: str) -> builtins.list[StatisticRecord]:
        """What retention kept of purged dossiers: anonymous counts' material, no codes."""
        rows = self._session.exec(select(Statistic).where(Statistic.cell == cell)).all()
        return [StatisticRecord(r.phenomenon, r.month_opened, r.month_closed, r.outcome,
                                r.ideology, r.minor)
                for r in rows]
