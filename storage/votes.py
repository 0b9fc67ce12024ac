"""Votes, ballots, fiches and direct rooms. Plain records out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Ballot, Meeting, Recusal, Vote

FICHE_FIELDS = ("effectiveness", "willingness", "distancing", "continue", "options", "other",
                "readiness", "readiness_note")


@dataclass(frozen=True)
class VoteRecord:
    id: int
    cell: str
    table: str
    meeting_id: int
    kind: str
    code: str
    state: str
    opened_by: str
    opened_at: datetime
    deadline: datetime | None
    closed_at: datetime | None
    close_reason: str
    participants: int
    fiche_version: int
    poll_event_id: str


@dataclass(frozen=True)
class BallotRecord:
    vote_id: int
    user_id: str
    choice: str
    via: str
    at: datetime
    reason: str = ""


def _vote(row: Vote) -> VoteRecord:
    return VoteRecord(
        id=row.id or 0, cell=row.cell, table=row.table_name, meeting_id=row.meeting_id,
        kind=row.kind, code=row.code, state=row.state, opened_by=row.opened_by,
        opened_at=row.opened_at, deadline=row.deadline, closed_at=row.closed_at,
        close_reason=row.close_reason, participants=row.participants,
        fiche_version=row.fiche_version, poll_event_id=row.poll_event_id,
    )


class VoteRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    # ---- votes ----------------------------------------------------------------------
    def create(self, *, cell: str, table: str, meeting_id: int, kind: str, code: str,
               opened_by: str, at: datetime, deadline: datetime | None,
               fiche_version: int = 0) -> VoteRecord:
        row = Vote(cell=cell, table_name=table, meeting_id=meeting_id, kind=kind, code=code,
                   state="open", opened_by=opened_by, opened_at=at, deadline=deadline,
                   fiche_version=fiche_version)
        self._session.add(row)
        self._session.flush()
        return _vote(row)

    def get(self, vote_id: int, lock: bool = False) -> VoteRecord | None:
        query = select(Vote).where(Vote.id == vote_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        row = self._session.exec(query).first()
        return _vote(row) if row else None

    def open_votes(self, cell: str, table: str | None = None) -> list[VoteRecord]:
        query = select(Vote).where(Vote.cell == cell, Vote.state == "open")
        if table is not None:
            query = query.where(Vote.table_name == table)
        return [_vote(r) for r in self._session.exec(query.order_by(col(Vote.id))).all()]

    def open_all(self) -> list[VoteRecord]:
        query = select(Vote).where(Vote.state == "open").order_by(col(Vote.id))
        return [_vote(r) for r in self._session.exec(query).all()]

    def of_meeting(self, meeting_id: int) -> list[VoteRecord]:
        query = select(Vote).where(Vote.meeting_id == meeting_id).order_by(col(Vote.id))
        return [_vote(r) for r in self._session.exec(query).all()]

    def latest_for(self, cell: str, code: str) -> VoteRecord | None:
        query = (select(Vote).where(Vote.cell == cell, Vote.code == code)
                 .order_by(col(Vote.id).desc()))
        row = self._session.exec(query).first()
        return _vote(row) if row else None

    def update(self, vote_id: int, **changes: Any) -> VoteRecord:
        row = self._session.exec(
            select(Vote).where(Vote.id == vote_id).with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        for key, value in changes.items():
            setattr(row, key, value)
        self._session.add(row)
        self._session.flush()
        return _vote(row)

    def by_poll(self, poll_event_id: str) -> VoteRecord | None:
        row = self._session.exec(select(Vote).where(Vote.poll_event_id == poll_event_id)).first()
        return _vote(row) if row else None

    # ---- ballots --------------------------------------------------------------------
    def cast(self, vote_id: int, user_id: str, choice: str, via: str, at: datetime,
             reason: str = "") -> None:
        self._session.add(Ballot(vote_id=vote_id, user_id=user_id, choice=choice, via=via, at=at,
                                 reason=reason))
        self._session.flush()

    def ballots(self, vote_id: int) -> list[BallotRecord]:
        query = select(Ballot).where(Ballot.vote_id == vote_id).order_by(col(Ballot.id))
        return [BallotRecord(b.vote_id, b.user_id, b.choice, b.via, b.at, b.reason)
                for b in self._session.exec(query).all()]

    # ---- recusals -------------------------------------------------------------------
    def recuse(self, meeting_id: int, code: str, user_id: str, at: datetime) -> bool:
        """Record a recusal; False when it was recorded already."""
        if self._session.get(Recusal, (meeting_id, code, user_id)) is not None:
            return False
        self._session.add(Recusal(meeting_id=meeting_id, code=code, user_id=user_id, at=at))
        self._session.flush()
        return True

    def recused(self, meeting_id: int, code: str) -> list[str]:
        query = (select(Recusal.user_id)
                 .where(Recusal.meeting_id == meeting_id, Recusal.code == code)
                 .order_by(col(Recusal.at), col(Recusal.user_id)))
        return list(self._session.exec(query).all())

    def recusals(self, meeting_id: int) -> list[tuple[str, str]]:
        """(code, user id) of every recusal in a meeting, in order (the meeting record)."""
        query = (select(Recusal.code, Recusal.user_id)
                 .where(Recusal.meeting_id == meeting_id)
                 .order_by(col(Recusal.code), col(Recusal.at), col(Recusal.user_id)))
        return [(code, user) for code, user in self._session.exec(query).all()]

    # ---- retention ------------------------------------------------------------------
    def purge_code(self, cell: str, code: str) -> None:
        """Everything about a dossier's votes, when the dossier is purged."""
        ids = list(self._session.exec(
            select(Vote.id).where(Vote.cell == cell, Vote.code == code)).all())
        if ids:
            self._session.exec(  # type: ignore[call-overload]
                sa.delete(Ballot).where(col(Ballot.vote_id).in_(ids)))
            self._session.exec(  # type: ignore[call-overload]
                sa.delete(Vote).where(col(Vote.id).in_(ids)))
        self._session.exec(  # type: ignore[call-overload]
            sa.delete(Recusal).where(
                col(Recusal.code) == code,
                col(Recusal.meeting_id).in_(select(Meeting.id).where(Meeting.cell == cell))))

