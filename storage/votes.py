"""Votes, ballots, fiches and direct rooms. Plain records out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Ballot, DirectRoom, Fiche, Vote

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


@dataclass(frozen=True)
class FicheRecord:
    cell: str
    code: str
    values: dict[str, str]
    version: int
    updated_at: datetime
    sent_at: datetime | None


def _vote(row: Vote) -> VoteRecord:
    return VoteRecord(
        id=row.id or 0, cell=row.cell, table=row.table_name, meeting_id=row.meeting_id,
        kind=row.kind, code=row.code, state=row.state, opened_by=row.opened_by,
        opened_at=row.opened_at, deadline=row.deadline, closed_at=row.closed_at,
        close_reason=row.close_reason, participants=row.participants,
        fiche_version=row.fiche_version, poll_event_id=row.poll_event_id,
    )


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


class VoteRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # ---- votes ----------------------------------------------------------------------
    def create(self, *, cell: str, table: str, meeting_id: int, kind: str, code: str,
               opened_by: str, at: datetime, deadline: datetime | None,
               fiche_version: int = 0) -> VoteRecord:
        row = Vote(cell=cell, table_name=table, meeting_id=meeting_id, kind=kind, code=code,
                   state="open", opened_by=opened_by, opened_at=at, deadline=deadline,
                   fiche_version=fiche_version)
        self.session.add(row)
        self.session.flush()
        return _vote(row)

    def get(self, vote_id: int, lock: bool = False) -> VoteRecord | None:
        query = select(Vote).where(Vote.id == vote_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        row = self.session.exec(query).first()
        return _vote(row) if row else None

    def open_votes(self, cell: str, table: str | None = None) -> list[VoteRecord]:
        query = select(Vote).where(Vote.cell == cell, Vote.state == "open")
        if table is not None:
            query = query.where(Vote.table_name == table)
        return [_vote(r) for r in self.session.exec(query.order_by(col(Vote.id))).all()]

    def open_all(self) -> list[VoteRecord]:
        query = select(Vote).where(Vote.state == "open").order_by(col(Vote.id))
        return [_vote(r) for r in self.session.exec(query).all()]

    def of_meeting(self, meeting_id: int) -> list[VoteRecord]:
        query = select(Vote).where(Vote.meeting_id == meeting_id).order_by(col(Vote.id))
        return [_vote(r) for r in self.session.exec(query).all()]

    def latest_for(self, cell: str, code: str) -> VoteRecord | None:
        query = (select(Vote).where(Vote.cell == cell, Vote.code == code)
                 .order_by(col(Vote.id).desc()))
        row = self.session.exec(query).first()
        return _vote(row) if row else None

    def update(self, vote_id: int, **changes: Any) -> VoteRecord:
        row = self.session.exec(
            select(Vote).where(Vote.id == vote_id).with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        for key, value in changes.items():
            setattr(row, key, value)
        self.session.add(row)
        self.session.flush()
        return _vote(row)

    def by_poll(self, poll_event_id: str) -> VoteRecord | None:
        row = self.session.exec(select(Vote).where(Vote.poll_event_id == poll_event_id)).first()
        return _vote(row) if row else None

    # ---- ballots --------------------------------------------------------------------
    def cast(self, vote_id: int, user_id: str, choice: str, via: str, at: datetime) -> None:
        self.session.add(Ballot(vote_id=vote_id, user_id=user_id, choice=choice, via=via, at=at))
        self.session.flush()

    def ballots(self, vote_id: int) -> list[BallotRecord]:
        query = select(Ballot).where(Ballot.vote_id == vote_id).order_by(col(Ballot.id))
        return [BallotRecord(b.vote_id, b.user_id, b.choice, b.via, b.at)
                for b in self.session.exec(query).all()]

    # ---- fiches ---------------------------------------------------------------------
    def fiche(self, cell: str, code: str) -> FicheRecord | None:
        row = self.session.get(Fiche, (cell, code))
        return _fiche(row) if row else None

    def put_fiche(self, cell: str, code: str, values: dict[str, str], by: str,
                  at: datetime) -> FicheRecord:
        row = self.session.get(Fiche, (cell, code))
        if row is None:
            row = Fiche(cell=cell, code=code, updated_at=at)
        for key, value in values.items():
            setattr(row, "continue_" if key == "continue" else key, value)
        row.version += 1
        row.updated_by = by
        row.updated_at = at
        self.session.add(row)
        self.session.flush()
        return _fiche(row)

    def unsent_fiches(self, cell: str) -> list[FicheRecord]:
        query = select(Fiche).where(Fiche.cell == cell, col(Fiche.sent_at).is_(None))
        return [_fiche(r) for r in self.session.exec(query.order_by(col(Fiche.code))).all()]

    def fiche_sent(self, cell: str, code: str, at: datetime) -> None:
        row = self.session.get(Fiche, (cell, code))
        if row is not None:
            row.sent_at = at
            self.session.add(row)

    # ---- direct rooms ---------------------------------------------------------------
    def direct_room(self, cell: str, user_id: str) -> str | None:
        row = self.session.get(DirectRoom, (cell, user_id))
        return row.room_id if row else None

    def set_direct_room(self, cell: str, user_id: str, room_id: str) -> None:
        row = self.session.get(DirectRoom, (cell, user_id))
        if row is None:
            self.session.add(DirectRoom(cell=cell, user_id=user_id, room_id=room_id))
        else:
            row.room_id = room_id
            self.session.add(row)

    # ---- retention ------------------------------------------------------------------
    def purge_code(self, cell: str, code: str) -> None:
        """Everything about a dossier's votes and fiche, when the dossier is purged."""
        ids = list(self.session.exec(
            select(Vote.id).where(Vote.cell == cell, Vote.code == code)).all())
        if ids:
            self.session.exec(  # type: ignore[call-overload]
                sa.delete(Ballot).where(col(Ballot.vote_id).in_(ids)))
            self.session.exec(  # type: ignore[call-overload]
                sa.delete(Vote).where(col(Vote.id).in_(ids)))
        self.session.exec(  # type: ignore[call-overload]
            sa.delete(Fiche).where(col(Fiche.cell) == cell, col(Fiche.code) == code))
