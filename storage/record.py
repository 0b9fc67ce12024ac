"""The meeting record beyond attendance (spec §13): apologies, with or without a written
contribution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Aftercare, Apology


@dataclass(frozen=True)
class ApologyRecord:
    meeting_id: int
    user_id: str
    contribution: bool


class ApologyRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def put(self, meeting_id: int, user_id: str, contribution: bool, at: datetime) -> bool:
        """Record or update an apology; True when it is new."""
        row = self._session.get(Apology, (meeting_id, user_id))
        fresh = row is None
        if row is None:
            row = Apology(meeting_id=meeting_id, user_id=user_id, at=at)
        row.contribution = contribution
        row.at = at
        self._session.add(row)
        self._session.flush()
        return fresh

    def withdraw(self, meeting_id: int, user_id: str) -> None:
        row = self._session.get(Apology, (meeting_id, user_id))
        if row is not None:
            self._session.delete(row)
            self._session.flush()

    def of_meeting(self, meeting_id: int) -> list[ApologyRecord]:
        rows = self._session.exec(
            select(Apology).where(Apology.meeting_id == meeting_id)
            .order_by(col(Apology.at), col(Apology.user_id))
        ).all()
        return [ApologyRecord(r.meeting_id, r.user_id, r.contribution) for r in rows]


@dataclass(frozen=True)
class AftercareRecord:
    """All that is kept for aftercare: the code, the month of closure, the pending dates."""

    cell: str
    code: str
    month_closed: str
    reviews: tuple[date, ...]


def _aftercare(row: Aftercare) -> AftercareRecord:
    return AftercareRecord(row.cell, row.code, row.month_closed,
                           tuple(date.fromisoformat(d) for d in row.reviews.split(",") if d))


class AftercareRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def plan(self, cell: str, code: str, month_closed: str, reviews: list[date]) -> None:
        row = self._session.get(Aftercare, (cell, code)) or Aftercare(
            cell=cell, code=code, month_closed=month_closed, reviews="")
        row.month_closed = month_closed
        row.reviews = ",".join(d.isoformat() for d in sorted(reviews))
        self._session.add(row)
        self._session.flush()

    def get(self, cell: str, code: str) -> AftercareRecord | None:
        row = self._session.get(Aftercare, (cell, code))
        return _aftercare(row) if row else None

    def of_cell(self, cell: str) -> list[AftercareRecord]:
        rows = self._session.exec(
            select(Aftercare).where(Aftercare.cell == cell).order_by(col(Aftercare.code))
        ).all()
        return [_aftercare(r) for r in rows]

    def reviewed(self, cell: str, code: str, through: date) -> AftercareRecord | None:
        """The reviews due by ``through`` are done; the row goes after the last one.

        Returns what is left, or None when nothing is kept any more."""
        row = self._session.get(Aftercare, (cell, code))
        if row is None:
            return None
        left = [d for d in _aftercare(row).reviews if d > through]
        if not left:
            self._session.exec(  # type: ignore[call-overload]
                sa.delete(Aftercare).where(col(Aftercare.cell) == cell,
                                           col(Aftercare.code) == code)
            )
            self._session.flush()
            return None
        row.reviews = ",".join(d.isoformat() for d in left)
        self._session.add(row)
        self._session.flush()
        return _aftercare(row)
