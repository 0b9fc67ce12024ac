"""Repositories: the only code that touches sessions. They return plain records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from storage import audit as audit_chain
from storage.actions import ActionRepository
from storage.cache import cache_of
from storage.direct_rooms import DirectRoomRepository
from storage.dossiers import DossierRecord, DossierRepository, StatisticRecord, new_case_code
from storage.fiches import FicheRepository
from storage.identities import IdentityRepository
from storage.meetings import MeetingRepository
from storage.models import (
    Acknowledgement,
    Audit,
    DeliveryOutcome,
    Outbox,
    ProcessedEvent,
    RosterEntry,
    SyncState,
)
from storage.record import AftercareRepository, ApologyRepository
from storage.votes import VoteRepository


@dataclass(frozen=True)
class OutboxItem:
    id: int
    source_event_id: str
    seq: int
    room_id: str
    event_type: str
    content: dict[str, Any]
    purpose: str
    attempts: int = 0
    next_try_at: datetime | None = None

    @property
    def lane(self) -> str:
        """What the item keeps its order in: its room, or the direct room of its recipient
        (a fiche to an officer waits for nobody in the table room, nor they for it), or a
        lane of its own (a coalesced notice waiting for its batch)."""
        direct = self.content.get("direct_to") or self.content.get("lane")
        return f"{self.room_id}\x00{direct}" if direct else self.room_id

    @property
    def answers_member(self) -> bool:
        """Answers a member's Matrix event (ids start with ``$``), not a job or the cadence."""
        return self.source_event_id.startswith("$")

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
class AuditRecord:
    at: datetime
    actor: str
    action: str
    code: str
    from_status: str
    to_status: str
    decision_ref: str


@dataclass(frozen=True)
class OutboxChange:
    """One change this unit of work made to the outbox, for the copy the core keeps in memory
    (``bot.core.outbox``): applied once the unit committed, dropped when it rolled back.
    ``kind`` is ``new`` (the ``item``), ``content`` (its JSON), ``retry`` or ``dead``. A
    savepoint that rolls back drops the changes made within it (``Repositories.savepoint``)."""

    kind: str
    outbox_id: int = 0
    item: OutboxItem | None = None
    content: str = ""
    attempts: int = 0
    next_try_at: datetime | None = None


#: The outbox insert of :meth:`EventRepository.enqueue`, built once (Core, not the ORM).
_INSERT_OUTBOX = sa.insert(Outbox.__table__).returning(  # type: ignore[attr-defined]
    Outbox.__table__.c.id)  # type: ignore[attr-defined]
_CLAIMS: dict[str, Any] = {}


def _claim_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING for the processed mark, per dialect."""
    statement = _CLAIMS.get(dialect)
    if statement is None:
        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        table = ProcessedEvent.__table__  # type: ignore[attr-defined]
        statement = _CLAIMS[dialect] = (
            insert(table).on_conflict_do_nothing(index_elements=["event_id"])
            .returning(table.c.event_id))
    return statement


def outbox_item(row: Outbox) -> OutboxItem:
    return OutboxItem(
        id=row.id or 0,
        source_event_id=row.source_event_id,
        seq=row.seq,
        room_id=row.room_id,
        event_type=row.event_type,
        content=json.loads(row.content),
        purpose=row.purpose,
        attempts=row.attempts,
        next_try_at=row.next_try_at,
    )


class EventRepository:
    """Sync token, processed event ids and the reply outbox (exactly-once handling)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        #: What this unit of work changed in the outbox, in order (see :class:`OutboxChange`).
        self.outbox_changes: list[OutboxChange] = []
        #: The next ``seq`` of each source event this unit enqueued for (one count query each).
        self._next_seq: dict[str, int] = {}

    def sync_token(self) -> str | None:
        row = self._session.get(SyncState, "next_batch")
        return row.value if row else None

    def set_sync_token(self, token: str) -> None:
        row = self._session.get(SyncState, "next_batch")
        if row is None:
            self._session.add(SyncState(key="next_batch", value=token))
        else:
            row.value = token
            self._session.add(row)

    def get_state(self, key: str) -> str | None:
        row = self._session.get(SyncState, key)
        return row.value if row else None

    def set_state(self, key: str, value: str) -> None:
        row = self._session.get(SyncState, key)
        if row is None:
            self._session.add(SyncState(key=key, value=value))
        else:
            row.value = value
            self._session.add(row)

    def is_processed(self, event_id: str) -> bool:
        return self._session.get(ProcessedEvent, event_id) is not None

    def claim(self, event_id: str, room_id: str, at: datetime) -> bool:
        """Mark an event processed in this unit of work unless it was: False when an earlier
        unit committed its decision (one statement instead of a read and a write).

        It runs on the unit's connection, not through the ORM (it is on every command's
        path; an ORM insert cost about four times as much CPU). A claimed event has no outbox
        items yet, so its replies are numbered from 0 without a count query."""
        connection = self._session.connection()
        result = connection.execute(_claim_statement(connection.dialect.name),
                                    {"event_id": event_id, "room_id": room_id,
                                     "processed_at": at})
        if result.first() is None:  # rowcount is not reliable across drivers
            return False
        self._next_seq.setdefault(event_id, 0)
        return True

    def mark_processed(self, event_id: str, room_id: str, at: datetime) -> None:
        self._session.add(ProcessedEvent(event_id=event_id, room_id=room_id, processed_at=at))
        self._session.flush()

    def forget_processed_before(self, before: datetime) -> int:
        result = self._session.exec(  # type: ignore[call-overload]
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
        next_try_at: datetime | None = None,
    ) -> None:
        seq = self._next_seq.get(source_event_id)
        if seq is None:
            seq = len(self._session.exec(
                select(Outbox.id).where(Outbox.source_event_id == source_event_id)
            ).all())
        self._next_seq[source_event_id] = seq + 1
        text = json.dumps(content, ensure_ascii=False)
        outbox_id = self._session.connection().execute(_INSERT_OUTBOX, {
            "source_event_id": source_event_id, "seq": seq, "room_id": room_id,
            "event_type": event_type, "content": text, "purpose": purpose, "created_at": at,
            "attempts": 0, "next_try_at": next_try_at}).scalar_one()
        item = OutboxItem(id=int(outbox_id), source_event_id=source_event_id, seq=seq,
                          room_id=room_id, event_type=event_type, content=json.loads(text),
                          purpose=purpose, next_try_at=next_try_at)
        self.outbox_changes.append(OutboxChange("new", item=item))

    def waiting(self, room_id: str, purpose: str, after: datetime) -> tuple[int, Any] | None:
        """The id and content of an item of ``purpose`` for ``room_id`` that will not be
        sent before ``after`` (a notice still collecting its batch), if any."""
        row = self._session.exec(
            select(Outbox).where(Outbox.room_id == room_id, Outbox.purpose == purpose,
                                 col(Outbox.dead_at).is_(None),
                                 col(Outbox.next_try_at) > after)
            .order_by(col(Outbox.id))).first()
        return (row.id or 0, json.loads(row.content)) if row is not None else None

    def replace_content(self, outbox_id: int, content: dict[str, Any]) -> None:
        row = self._session.get(Outbox, outbox_id)
        if row is not None:
            row.content = json.dumps(content, ensure_ascii=False)
            self._session.add(row)
            self.outbox_changes.append(OutboxChange("content", outbox_id,
                                                    content=row.content))

    def pending(self) -> list[OutboxItem]:
        """What is still to be sent, in order (dead letters are not)."""
        rows = self._session.exec(
            select(Outbox).where(col(Outbox.dead_at).is_(None)).order_by(col(Outbox.id))
        ).all()
        return [outbox_item(row) for row in rows]

    def sent(self, outbox_id: int) -> None:
        self.sent_many([outbox_id])

    def sent_many(self, outbox_ids: list[int]) -> None:
        """Items the homeserver has: out of the outbox (one statement)."""
        if outbox_ids:
            self._session.exec(  # type: ignore[call-overload]
                sa.delete(Outbox).where(col(Outbox.id).in_(outbox_ids)))

    def retry_later(self, outbox_id: int, attempts: int, next_try_at: datetime) -> None:
        """A failed send: tried again not before ``next_try_at``."""
        row = self._session.get(Outbox, outbox_id)
        if row is not None:
            row.attempts = attempts
            row.next_try_at = next_try_at
            self._session.add(row)
            self.outbox_changes.append(OutboxChange("retry", outbox_id, attempts=attempts,
                                                    next_try_at=next_try_at))

    def dead_letter(self, outbox_id: int, attempts: int, at: datetime) -> bool:
        """Give an item up: it stays in the outbox, marked, never sent. False when it was
        gone or already dead."""
        row = self._session.get(Outbox, outbox_id)
        if row is None or row.dead_at is not None:
            return False
        row.attempts = attempts
        row.dead_at = at
        self._session.add(row)
        self.outbox_changes.append(OutboxChange("dead", outbox_id))
        return True

    def dead_letters(self) -> int:
        return len(self._session.exec(
            select(Outbox.id).where(col(Outbox.dead_at).is_not(None))).all())

    def record_delivery(self, group: str, user_id: str, delivered: bool,
                        at: datetime) -> bool:
        """One recipient's outcome of a delivery; False when it was recorded before (a
        resend after a crash)."""
        if self._session.get(DeliveryOutcome, (group, user_id)) is not None:
            return False
        self._session.add(DeliveryOutcome(group_key=group, user_id=user_id,
                                          delivered=delivered, at=at))
        self._session.flush()
        return True

    def delivery_outcomes(self, group: str) -> dict[str, bool]:
        rows = self._session.exec(
            select(DeliveryOutcome).where(DeliveryOutcome.group_key == group)).all()
        return {row.user_id: row.delivered for row in rows}


class AckRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def has_acked(self, cell: str, table: str, user_id: str) -> bool:
        return user_id in self.acked(cell, table)

    def acked(self, cell: str, table: str) -> frozenset[str]:
        """Who acknowledged the table's confidentiality statement (read cache, storage.cache)."""
        def load() -> frozenset[str]:
            return frozenset(self._session.exec(
                select(Acknowledgement.user_id).where(Acknowledgement.cell == cell,
                                                      Acknowledgement.table_name == table)
            ).all())

        cache = cache_of(self._session)
        return cache.read(self._session, "acks", (cell, table), load) if cache else load()

    def ack(self, cell: str, table: str, user_id: str, at: datetime) -> bool:
        """Record the acknowledgement; False when it was already there."""
        if self.has_acked(cell, table, user_id):
            return False
        self._session.add(
            Acknowledgement(cell=cell, table_name=table, user_id=user_id, acked_at=at)
        )
        self._session.flush()  # a writer of the read cache's "acks" from here (storage.cache)
        return True


class RosterRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def changes(self, cell: str | None = None) -> tuple[RosterChange, ...]:
        """The chair's stored roster changes (of one cell); read cache, storage.cache."""
        def load() -> tuple[RosterChange, ...]:
            query = select(RosterEntry)
            if cell is not None:
                query = query.where(RosterEntry.cell == cell)
            return tuple(
                RosterChange(
                    cell=row.cell,
                    user_id=row.user_id,
                    role=row.role,
                    organisation=row.organisation,
                    tables=tuple(t for t in row.tables.split(",") if t),
                    removed=row.removed,
                )
                for row in self._session.exec(query).all()
            )

        cache = cache_of(self._session)
        return cache.read(self._session, "roster", cell, load) if cache else load()

    def put(
        self,
        change: RosterChange,
        actor: str,
        at: datetime,
    ) -> None:
        row = self._session.get(RosterEntry, (change.cell, change.user_id))
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
        self._session.add(row)
        self._session.flush()  # a writer of the read cache's "roster" from here


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

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
        audit_chain.append(
            self._session, at=at, cell=cell, actor=actor, action=action, code=code,
            from_status=from_status, to_status=to_status, decision_ref=decision_ref,
            meeting_id=meeting_id,
        )

    def for_code(self, cell: str, code: str) -> list[AuditRecord]:
        rows = self._session.exec(
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


    def verify(self) -> list[audit_chain.ChainReport]:
        """Every cell's hash chain checked from its start (spec §14)."""
        return [audit_chain.verify_cell(self._session, cell)
                for cell in audit_chain.cells(self._session)]

    def export(self, cell: str, start: date | None = None,
               end: date | None = None) -> list[audit_chain.ExportRow]:
        """The cell's decision record in chain order (codes only, no actor)."""
        return audit_chain.export_rows(self._session, cell, start, end)


class Repositories:
    """All repositories of one unit of work (one transaction)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        #: Set when the unit committed: it wrote rows the job plan is derived from
        #: (``storage.db.SCHEDULE_ROWS``), so the scheduler must derive its jobs again.
        self.schedule_changed = False
        self.events = EventRepository(session)
        self.acks = AckRepository(session)
        self.roster = RosterRepository(session)
        self.dossiers = DossierRepository(session)
        self.audit = AuditRepository(session)
        self.meetings = MeetingRepository(session)
        self.votes = VoteRepository(session)
        self.fiches = FicheRepository(session)
        self.direct_rooms = DirectRoomRepository(session)
        self.identities = IdentityRepository(session)
        self.actions = ActionRepository(session)
        self.apologies = ApologyRepository(session)
        self.aftercare = AftercareRepository(session)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: effects of a failed handler are undone, the rest kept (and
        what a repository remembered within it is forgotten when it rolls back; a released
        savepoint keeps what it wrote, so what was read after those writes stays true)."""
        mark = len(self.events.outbox_changes)
        try:
            with self._session.begin_nested():
                yield
        except BaseException:
            del self.events.outbox_changes[mark:]  # rolled back with the savepoint
            self.meetings.forget()
            raise

    def flush(self) -> None:
        """Send this unit's writes to the database now (its locks are taken; no commit)."""
        self._session.flush()


__all__ = ["DossierRecord", "OutboxChange", "OutboxItem", "Repositories", "RosterChange",
           "StatisticRecord", "new_case_code"]
