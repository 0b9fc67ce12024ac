"""Repositories: the only code that touches sessions. They return plain records."""

from __future__ import annotations

import builtins
import hashlib
import json
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.identities import IdentityRepository
from storage.meetings import MeetingRepository
from storage.models import (
    Acknowledgement,
    Audit,
    Dossier,
    Outbox,
    ProcessedEvent,
    RosterEntry,
    Statistic,
    SyncState,
)
from storage.votes import VoteRepository

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_case_code() -> str:
    """``C-`` and five random Crockford base-32 characters."""
    return "C-" + "".join(secrets.choice(CROCKFORD) for _ in range(5))


@dataclass(frozen=True)
class OutboxItem:
    id: int
    source_event_id: str
    seq: int
    room_id: str
    event_type: str
    content: dict[str, Any]
    purpose: str

    @property
    def txn_id(self) -> str:
        """Stable transaction id: a resend after a crash is deduplicated by the server.

        The row id alone is not enough: a database moved with ``livcr migrate-db`` (or
        restored from an older backup) numbers its outbox from the start again, and the
        homeserver would take a new reply for the old one it remembers under that id and
        drop it. The digest of what the item answers makes a reused id a different
        transaction."""
        origin = f"{self.source_event_id}\x00{self.seq}\x00{self.room_id}".encode()
        return f"livcr-{self.id}-{hashlib.sha256(origin).hexdigest()[:12]}"


@dataclass(frozen=True)
class RosterChange:
    cell: str
    user_id: str
    role: str
    organisation: str
    tables: tuple[str, ...]
    removed: bool


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


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    actor: str
    action: str
    code: str
    from_status: str
    to_status: str
    decision_ref: str


def _dossier(row: Dossier) -> DossierRecord:
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
    )


class EventRepository:
    """Sync token, processed event ids and the reply outbox (exactly-once handling)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def sync_token(self) -> str | None:
        row = self.session.get(SyncState, "next_batch")
        return row.value if row else None

    def set_sync_token(self, token: str) -> None:
        row = self.session.get(SyncState, "next_batch")
        if row is None:
            self.session.add(SyncState(key="next_batch", value=token))
        else:
            row.value = token
            self.session.add(row)

    def get_state(self, key: str) -> str | None:
        row = self.session.get(SyncState, key)
        return row.value if row else None

    def set_state(self, key: str, value: str) -> None:
        row = self.session.get(SyncState, key)
        if row is None:
            self.session.add(SyncState(key=key, value=value))
        else:
            row.value = value
            self.session.add(row)

    def is_processed(self, event_id: str) -> bool:
        return self.session.get(ProcessedEvent, event_id) is not None

    def mark_processed(self, event_id: str, room_id: str, at: datetime) -> None:
        self.session.add(ProcessedEvent(event_id=event_id, room_id=room_id, processed_at=at))
        self.session.flush()

    def forget_processed_before(self, before: datetime) -> int:
        result = self.session.exec(  # type: ignore[call-overload]
            sa.delete(ProcessedEvent).where(col(ProcessedEvent.processed_at) < before)
        )
        return int(result.rowcount or 0)

    def enqueue(
        self,
        source_event_id: str,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        at: datetime,
        purpose: str = "",
    ) -> None:
        seq = len(self.session.exec(
            select(Outbox.id).where(Outbox.source_event_id == source_event_id)
        ).all())
        self.session.add(
            Outbox(
                source_event_id=source_event_id,
                seq=seq,
                room_id=room_id,
                event_type=event_type,
                content=json.dumps(content, ensure_ascii=False),
                purpose=purpose,
                created_at=at,
            )
        )

    def pending(self) -> list[OutboxItem]:
        rows = self.session.exec(select(Outbox).order_by(col(Outbox.id))).all()
        return [
            OutboxItem(
                id=row.id or 0,
                source_event_id=row.source_event_id,
                seq=row.seq,
                room_id=row.room_id,
                event_type=row.event_type,
                content=json.loads(row.content),
                purpose=row.purpose,
            )
            for row in rows
        ]

    def sent(self, outbox_id: int) -> None:
        row = self.session.get(Outbox, outbox_id)
        if row is not None:
            self.session.delete(row)


class AckRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def has_acked(self, cell: str, table: str, user_id: str) -> bool:
        return self.session.get(Acknowledgement, (cell, table, user_id)) is not None

    def ack(self, cell: str, table: str, user_id: str, at: datetime) -> bool:
        """Record the acknowledgement; False when it was already there."""
        if self.has_acked(cell, table, user_id):
            return False
        self.session.add(
            Acknowledgement(cell=cell, table_name=table, user_id=user_id, acked_at=at)
        )
        return True


class RosterRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def changes(self, cell: str | None = None) -> list[RosterChange]:
        query = select(RosterEntry)
        if cell is not None:
            query = query.where(RosterEntry.cell == cell)
        return [
            RosterChange(
                cell=row.cell,
                user_id=row.user_id,
                role=row.role,
                organisation=row.organisation,
                tables=tuple(t for t in row.tables.split(",") if t),
                removed=row.removed,
            )
            for row in self.session.exec(query).all()
        ]

    def put(
        self,
        change: RosterChange,
        actor: str,
        at: datetime,
    ) -> None:
        row = self.session.get(RosterEntry, (change.cell, change.user_id))
        if row is None:
            row = RosterEntry(
                cell=change.cell, user_id=change.user_id, role="", changed_by=actor, changed_at=at
            )
        row.role = change.role
        row.organisation = change.organisation
        row.tables = ",".join(change.tables)
        row.removed = change.removed
        row.changed_by = actor
        row.changed_at = at
        self.session.add(row)


class DossierRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _row(self, cell: str, code: str, lock: bool = False) -> Dossier | None:
        query = select(Dossier).where(Dossier.cell == cell, Dossier.code == code)
        if lock:
            # FOR UPDATE waits for a concurrent writer; populate_existing makes sure we then
            # use the row as that writer committed it, not a copy this session loaded before.
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.exec(query).first()

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
    ) -> DossierRecord:
        while True:
            code = new_case_code()
            if self.session.exec(select(Dossier.id).where(Dossier.code == code)).first() is None:
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
            created_at=at,
            updated_at=at,
        )
        self.session.add(row)
        self.session.flush()
        return _dossier(row)

    def get(self, cell: str, code: str) -> DossierRecord | None:
        row = self._row(cell, code)
        return _dossier(row) if row else None

    def list(self, cell: str, statuses: Iterable[str] | None = None) -> list[DossierRecord]:
        query = select(Dossier).where(Dossier.cell == cell)
        if statuses is not None:
            query = query.where(col(Dossier.status).in_(list(statuses)))
        return [_dossier(r) for r in self.session.exec(query.order_by(col(Dossier.id))).all()]

    def update(self, cell: str, code: str, at: datetime, **changes: Any) -> DossierRecord:
        """Change fields of a dossier under a row lock (PostgreSQL) / write lock (SQLite)."""
        row = self._row(cell, code, lock=True)
        if row is None:
            raise KeyError(code)
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = at
        row.version += 1
        self.session.add(row)
        self.session.flush()
        return _dossier(row)

    def lock(self, cell: str, code: str) -> DossierRecord | None:
        row = self._row(cell, code, lock=True)
        return _dossier(row) if row else None

    def counts_by_status(self, cell: str) -> Counter[str]:
        rows = self.session.exec(
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
        rows = self.session.exec(query).all()
        return {cell: (int(n), int(p or 0)) for cell, n, p in rows}

    def purge_closed(self, cell: str, closed_before: datetime, final: Sequence[str]) -> int:
        """Replace closed dossiers by anonymous statistics; return how many went."""
        rows = self.session.exec(
            select(Dossier).where(
                Dossier.cell == cell,
                col(Dossier.status).in_(list(final)),
                col(Dossier.closed_at) <= closed_before,
            )
        ).all()
        for row in rows:
            closed = row.closed_at or row.updated_at
            self.session.add(
                Statistic(
                    cell=row.cell,
                    phenomenon=row.phenomenon,
                    month_opened=row.created_at.strftime("%Y-%m"),
                    month_closed=closed.strftime("%Y-%m"),
                    outcome=row.status,
                )
            )
            self.session.exec(  # type: ignore[call-overload]
                sa.delete(Audit).where(col(Audit.cell) == row.cell, col(Audit.code) == row.code)
            )
            VoteRepository(self.session).purge_code(row.cell, row.code)
            self.session.delete(row)
        return len(rows)

    def statistics(self, cell: str) -> builtins.list[Statistic]:
        return list(self.session.exec(select(Statistic).where(Statistic.cell == cell)).all())


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def record(
        self,
        *,
        cell: str,
        actor: str,
        action: str,
        at: datetime,
        code: str = "",
        from_status: str = "",
        to_status: str = "",
        decision_ref: str = "",
        meeting_id: int | None = None,
    ) -> None:
        self.session.add(
            Audit(
                at=at,
                cell=cell,
                actor=actor,
                action=action,
                code=code,
                from_status=from_status,
                to_status=to_status,
                decision_ref=decision_ref,
                meeting_id=meeting_id,
            )
        )

    def for_code(self, cell: str, code: str) -> list[AuditRecord]:
        rows = self.session.exec(
            select(Audit).where(Audit.cell == cell, Audit.code == code).order_by(col(Audit.id))
        ).all()
        return [
            AuditRecord(
                at=r.at,
                actor=r.actor,
                action=r.action,
                code=r.code,
                from_status=r.from_status,
                to_status=r.to_status,
                decision_ref=r.decision_ref,
            )
            for r in rows
        ]


class Repositories:
    """All repositories of one unit of work (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.events = EventRepository(session)
        self.acks = AckRepository(session)
        self.roster = RosterRepository(session)
        self.dossiers = DossierRepository(session)
        self.audit = AuditRepository(session)
        self.meetings = MeetingRepository(session)
        self.votes = VoteRepository(session)
        self.identities = IdentityRepository(session)

    def savepoint(self) -> Any:
        """A nested transaction: effects of a failed handler are undone, the rest kept."""
        return self.session.begin_nested()
