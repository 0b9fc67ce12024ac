"""The feedback fiche of a dossier: its fields, versions and delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Fiche


@dataclass(frozen=True)
class FicheRecord:
    cell: str
    code: str
    values: dict[str, str]
    version: int
    updated_at: datetime
    sent_at: datetime | None


def _fiche(row: Fiche) -> FicheRecord:
    values = {
        "effectiveness": row.effectiveness,
        "willingness": row.willingness,
        "distancing": row.distancing,
        "continue": row.continue_,
        "options": row.options,
        "other": row.other,
        "readiness": row.readiness,
        "readiness_note": row.readiness_note,
    }
    return FicheRecord(row.cell, row.code, values, row.version, row.updated_at, row.sent_at)


class FicheRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, cell: str, code: str) -> FicheRecord | None:
        row = self._session.get(Fiche, (cell, code))
        return _fiche(row) if row else None

    def put(self, cell: str, code: str, values: dict[str, str], by: str,
                  at: datetime) -> FicheRecord:
        row = self._session.get(Fiche, (cell, code))
        if row is None:
            row = Fiche(cell=cell, code=code, updated_at=at)
        for key, value in values.items():
            setattr(row, "continue_" if key == "continue" else key, value)
        row.version += 1
        row.updated_by = by
        row.updated_at = at
        self._session.add(row)
        self._session.flush()
        return _fiche(row)

    def unsent(self, cell: str) -> list[FicheRecord]:
        query = select(Fiche).where(Fiche.cell == cell, col(Fiche.sent_at).is_(None))
        return [_fiche(r) for r in self._session.exec(query.order_by(col(Fiche.code))).all()]

    def sent(self, cell: str, code: str, at: datetime) -> None:
        row = self._session.get(Fiche, (cell, code))
        if row is not None:
            row.sent_at = at
            self._session.add(row)


    def purge_code(self, cell: str, code: str) -> None:
        """A dossier's fiche, when the dossier is purged."""
        self._session.exec(  # type: ignore[call-overload]
            sa.delete(Fiche).where(col(Fiche.cell) == cell, col(Fiche.code) == code))
