"""SQLModel tables. No column holds personal data of a discussed person: cases are codes.

Free text that passed the privacy guard (signal summary, agenda items, fiche ``other``) is the
only prose stored, and it is deleted with the dossier at retention time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def ts(nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable))


class SyncState(SQLModel, table=True):
    __tablename__ = "sync_state"
    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=512)


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_event"
    event_id: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(max_length=255)
    processed_at: datetime = ts()


class Outbox(SQLModel, table=True):
    """Replies decided in the same transaction as the command's effect, sent afterwards."""

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    source_event_id: str = Field(max_length=255, index=True)
    seq: int
    room_id: str = Field(max_length=255)
    event_type: str = Field(max_length=128)
    content: str  # JSON, rendered reply (codes, statuses, dates only)
    purpose: str = Field(default="", max_length=64)  # e.g. "poll:12" to link a sent event
    created_at: datetime = ts()


class Acknowledgement(SQLModel, table=True):
    __tablename__ = "acknowledgement"
    cell: str = Field(primary_key=True, max_length=64)
    table_name: str = Field(primary_key=True, max_length=16)
    user_id: str = Field(primary_key=True, max_length=255)
    acked_at: datetime = ts()


class RosterEntry(SQLModel, table=True):
    """Roster changes made in chat by a chair (``members add/remove``) on top of the config."""

    __tablename__ = "roster_entry"
    cell: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(primary_key=True, max_length=255)
    role: str = Field(max_length=32)
    organisation: str = Field(default="", max_length=128)
    tables: str = Field(default="operational", max_length=64)
    removed: bool = False
    changed_by: str = Field(max_length=255)
    changed_at: datetime = ts()


class Dossier(SQLModel, table=True):
    __tablename__ = "dossier"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=16, unique=True)
    cell: str = Field(max_length=64, index=True)
    table_name: str = Field(default="operational", max_length=16)
    phenomenon: str = Field(max_length=16)
    indicators: str = Field(max_length=512)
    context: str = Field(default="", max_length=512)
    source: str = Field(max_length=128)
    summary: str = Field(default="", max_length=500)
    status: str = Field(max_length=16, index=True)
    problematic: bool = False
    scenario: str = Field(default="", max_length=64)
    next_evaluation: date | None = None
    signalled_by: str = Field(max_length=255)
    created_at: datetime = ts()
    updated_at: datetime = ts()
    closed_at: datetime | None = ts(nullable=True)
    version: int = 0


class Audit(SQLModel, table=True):
    """Who did what to which code, when, on what decision. Never free text."""

    __tablename__ = "audit"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = ts()
    cell: str = Field(max_length=64, index=True)
    actor: str = Field(max_length=255)
    action: str = Field(max_length=32)
    code: str = Field(default="", max_length=16, index=True)
    from_status: str = Field(default="", max_length=16)
    to_status: str = Field(default="", max_length=16)
    decision_ref: str = Field(default="", max_length=64)
    meeting_id: int | None = None


class Statistic(SQLModel, table=True):
    """What remains of a closed dossier after retention: anonymous, no code."""

    __tablename__ = "statistic"
    id: int | None = Field(default=None, primary_key=True)
    cell: str = Field(max_length=64, index=True)
    phenomenon: str = Field(max_length=16)
    month_opened: str = Field(max_length=7)
    month_closed: str = Field(max_length=7)
    outcome: str = Field(max_length=16)
