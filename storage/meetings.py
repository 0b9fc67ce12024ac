"""Meetings, attendance, free agenda items and table cadence state. Plain records out.

Part of :class:`storage.repositories.Repositories` as ``repos.meetings``; the queries that
serve many tables at once (``*_all``) are single statements, so recomputing the cadence of
1,200 tables costs a handful of queries, not thousands.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import AgendaItem, Attendance, Audit, Meeting, TableState

PLANNED = "planned"
STARTED = "started"
ENDED = "ended"
CANCELLED = "cancelled"
LAPSED = "lapsed"
HELD = (STARTED, ENDED)


@dataclass(frozen=True)
class MeetingRecord:
    id: int
    cell: str
    table: str
    starts_at: datetime
    duration_minutes: int
    status: str
    kind: str
    cancel_reason: str
    sequence: int
    uid: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + self.duration


@dataclass(frozen=True)
class AgendaRecord:
    id: int
    text: str
    author: str
    created_at: datetime
    meeting_id: int | None


@dataclass(frozen=True)
class TableStateRecord:
    cell: str
    table: str
    mode: str
    met_once: bool
    created_at: datetime
    updated_at: datetime
    first_meeting_reminded_at: datetime | None


@dataclass(frozen=True)
class DecisionRecord:
    """An audit row with a case code, as the decision list shows it (never free text)."""

    at: datetime
    action: str
    code: str
    from_status: str
    to_status: str
    decision_ref: str


#: Columns in the order of the record fields (bulk queries build records from tuples).
_MEETING_COLUMNS: tuple[Any, ...] = (
    Meeting.id, Meeting.cell, Meeting.table_name, Meeting.starts_at,
    Meeting.duration_minutes, Meeting.status, Meeting.kind, Meeting.cancel_reason,
    Meeting.sequence, Meeting.uid, Meeting.created_at, Meeting.started_at, Meeting.ended_at,
)
_STATE_COLUMNS: tuple[Any, ...] = (
    TableState.cell, TableState.table_name, TableState.mode, TableState.met_once,
    TableState.created_at, TableState.updated_at, TableState.first_meeting_reminded_at,
)


def _meeting(row: Meeting) -> MeetingRecord:
    return MeetingRecord(
        id=row.id or 0,
        cell=row.cell,
        table=row.table_name,
        starts_at=row.starts_at,
        duration_minutes=row.duration_minutes,
        status=row.status,
        kind=row.kind,
        cancel_reason=row.cancel_reason,
        sequence=row.sequence,
        uid=row.uid,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def _state(row: TableState) -> TableStateRecord:
    return TableStateRecord(
        cell=row.cell,
        table=row.table_name,
        mode=row.mode,
        met_once=row.met_once,
        created_at=row.created_at,
        updated_at=row.updated_at,
        first_meeting_reminded_at=row.first_meeting_reminded_at,
    )


class MeetingRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        #: Every meeting of a table and its cadence state, read once per unit of work (a
        #: signal's decision and its cadence recomputation asked for them seven times);
        #: forgotten at every write of either and when a savepoint rolls back
        #: (``Repositories.savepoint``).
        self._of_tables: dict[tuple[str, str], list[MeetingRecord]] = {}
        self._states: dict[tuple[str, str], TableStateRecord | None] = {}

    def forget(self) -> None:
        self._of_tables.clear()
        self._states.clear()

    # ---- meetings -------------------------------------------------------------------
    def create(self, *, cell: str, table: str, starts_at: datetime, duration_minutes: int,
               kind: str, at: datetime, ics_posted: bool = False) -> MeetingRecord:
        """A planned meeting; ``ics_posted`` when its invitation goes out with it."""
        self.forget()
        row = Meeting(cell=cell, table_name=table, starts_at=starts_at,
                      duration_minutes=duration_minutes, status=PLANNED, kind=kind,
                      created_at=at, ics_posted_sequence=0 if ics_posted else -1)
        self._session.add(row)
        self._session.flush()
        row.uid = f"meeting-{row.id}-{cell}@livcr"
        self._session.add(row)
        self._session.flush()
        return _meeting(row)

    def get(self, meeting_id: int) -> MeetingRecord | None:
        row = self._session.get(Meeting, meeting_id)
        return _meeting(row) if row else None

    def update(self, meeting_id: int, **changes: Any) -> MeetingRecord:
        self.forget()
        row = self._session.get(Meeting, meeting_id, with_for_update=True)
        if row is None:
            raise KeyError(meeting_id)
        for key, value in changes.items():
            setattr(row, key, value)
        self._session.add(row)
        self._session.flush()
        return _meeting(row)

    def of_table(self, cell: str, table: str, statuses: Iterable[str]) -> list[MeetingRecord]:
        """Meetings of one table with these statuses, earliest first."""
        meetings = self._of_tables.get((cell, table))
        if meetings is None:
            rows = self._session.exec(
                select(Meeting)
                .where(Meeting.cell == cell, Meeting.table_name == table)
                .order_by(col(Meeting.starts_at), col(Meeting.id))
            ).all()
            meetings = self._of_tables[(cell, table)] = [_meeting(r) for r in rows]
        wanted = set(statuses)
        return [m for m in meetings if m.status in wanted]

    def in_progress(self, cell: str, table: str) -> MeetingRecord | None:
        found = self.of_table(cell, table, [STARTED])
        return found[-1] if found else None

    def planned_all(self) -> list[MeetingRecord]:
        """Every planned meeting of every cell (job derivation, batch recomputation)."""
        return self._bulk(Meeting.status == PLANNED)

    def started_all(self) -> list[MeetingRecord]:
        """Every meeting in progress of every cell (overrun and automatic-end jobs)."""
        return self._bulk(Meeting.status == STARTED)

    def recent_auto_all(self, after: datetime) -> list[MeetingRecord]:
        """Automatic meetings after ``after`` that are no longer planned (taken slots)."""
        return self._bulk(Meeting.kind == "auto", Meeting.status != PLANNED,
                          col(Meeting.starts_at) > after)

    def _bulk(self, *where: Any) -> list[MeetingRecord]:
        """Many meetings as plain rows: a column query, no ORM objects (1,200 tables)."""
        rows = self._session.exec(  # type: ignore[call-overload]
            sa.select(*_MEETING_COLUMNS).where(*where)
            .order_by(col(Meeting.starts_at), col(Meeting.id))
        ).all()
        return [MeetingRecord(*row) for row in rows]

    def last_held_all(self) -> dict[tuple[str, str], datetime]:
        """Per (cell, table): the start of the latest meeting that was held."""
        rows = self._session.exec(
            select(Meeting.cell, Meeting.table_name, sa.func.max(Meeting.starts_at))
            .where(col(Meeting.status).in_(list(HELD)))
            .group_by(Meeting.cell, Meeting.table_name)
        ).all()
        out: dict[tuple[str, str], datetime] = {}
        for cell, table, start in rows:
            if start is not None:
                out[(cell, table)] = _aware(start)
        return out

    # ---- attendance -----------------------------------------------------------------
    def add_attendance(self, meeting_id: int, user_id: str, at: datetime) -> bool:
        """Record a member as present; False when already recorded."""
        if self._session.get(Attendance, (meeting_id, user_id)) is not None:
            return False
        self._session.add(Attendance(meeting_id=meeting_id, user_id=user_id, at=at))
        self._session.flush()
        return True

    def attendees(self, meeting_id: int) -> list[str]:
        rows = self._session.exec(
            select(Attendance.user_id).where(Attendance.meeting_id == meeting_id)
            .order_by(col(Attendance.at), col(Attendance.user_id))
        ).all()
        return list(rows)

    # ---- free agenda items ----------------------------------------------------------
    def add_item(self, *, cell: str, table: str, text: str, author: str, at: datetime,
                 meeting_id: int | None = None) -> AgendaRecord:
        row = AgendaItem(cell=cell, table_name=table, text=text, author=author, created_at=at,
                         meeting_id=meeting_id)
        self._session.add(row)
        self._session.flush()
        return AgendaRecord(row.id or 0, row.text, row.author, row.created_at, row.meeting_id)

    def items(self, cell: str, table: str) -> list[AgendaRecord]:
        rows = self._session.exec(
            select(AgendaItem)
            .where(AgendaItem.cell == cell, AgendaItem.table_name == table,
                   col(AgendaItem.removed).is_(False))
            .order_by(col(AgendaItem.id))
        ).all()
        return [AgendaRecord(r.id or 0, r.text, r.author, r.created_at, r.meeting_id)
                for r in rows]

    def delete_item(self, item_id: int) -> None:
        row = self._session.get(AgendaItem, item_id)
        if row is not None:
            self._session.delete(row)
            self._session.flush()

    def close_items(self, cell: str, table: str, meeting_id: int) -> int:
        """When a meeting ends: the items that were on its agenda when it opened are deleted;
        items added during it stay for the next meeting."""
        of_table = (col(AgendaItem.cell) == cell, col(AgendaItem.table_name) == table)
        result = self._session.exec(  # type: ignore[call-overload]
            sa.delete(AgendaItem).where(
                *of_table,
                sa.or_(col(AgendaItem.meeting_id).is_(None),
                       col(AgendaItem.meeting_id) != meeting_id),
            )
        )
        self._session.exec(  # type: ignore[call-overload]
            sa.update(AgendaItem)
            .where(*of_table, col(AgendaItem.meeting_id) == meeting_id)
            .values(meeting_id=None)
        )
        return int(result.rowcount or 0)

    # ---- cadence state --------------------------------------------------------------
    def state(self, cell: str, table: str) -> TableStateRecord | None:
        if (cell, table) not in self._states:  # read once per unit of work, as of_table
            row = self._session.get(TableState, (cell, table))
            self._states[(cell, table)] = _state(row) if row else None
        return self._states[(cell, table)]

    def states_all(self) -> dict[tuple[str, str], TableStateRecord]:
        rows = self._session.exec(  # type: ignore[call-overload]
            sa.select(*_STATE_COLUMNS)
        ).all()
        return {(row[0], row[1]): TableStateRecord(*row) for row in rows}

    def put_state(self, cell: str, table: str, at: datetime, **changes: Any) -> TableStateRecord:
        self.forget()
        row = self._session.get(TableState, (cell, table))
        if row is None:
            row = TableState(cell=cell, table_name=table, mode=str(changes.get("mode", "sleep")),
                             created_at=at, updated_at=at)
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = at
        self._session.add(row)
        self._session.flush()
        return _state(row)

    # ---- the decision list ----------------------------------------------------------
    def decisions_between(self, cell: str, start: datetime, end: datetime) -> list[DecisionRecord]:
        """Audit rows about dossiers (with a code) of a cell in a time window, in order."""
        rows = self._session.exec(
            select(Audit)
            .where(Audit.cell == cell, Audit.code != "", col(Audit.at) >= start,
                   col(Audit.at) <= end)
            .order_by(col(Audit.id))
        ).all()
        return [DecisionRecord(r.at, r.action, r.code, r.from_status, r.to_status,
                               r.decision_ref) for r in rows]


def _aware(value: datetime) -> datetime:
    """Aggregates may bypass the column type on SQLite: an aware UTC datetime either way."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
