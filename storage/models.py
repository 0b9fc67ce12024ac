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
    attempts: int = 0  # failed sends so far
    next_try_at: datetime | None = ts(nullable=True)  # backoff: not before this
    dead_at: datetime | None = ts(nullable=True)  # a dead letter: kept, never sent


class DeliveryOutcome(SQLModel, table=True):
    """What became of one direct message of a delivery (a fiche to an information officer)."""

    __tablename__ = "delivery_outcome"
    group_key: str = Field(primary_key=True, max_length=255)
    user_id: str = Field(primary_key=True, max_length=255)
    delivered: bool
    at: datetime = ts()


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
    ideology: str = Field(default="", max_length=24)
    minor: str = Field(default="", max_length=3)  # yes | no | "" (not given)
    previous: str = Field(default="", max_length=16)  # an earlier case code (spec §13)


class Audit(SQLModel, table=True):
    """Who did what to which code, when, on what decision. Never free text."""

    __tablename__ = "audit"
    __table_args__ = (sa.UniqueConstraint("cell", "seq", name="uq_audit_cell_seq"),)
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
    # The hash chain (storage/audit.py): position in the cell's chain, links, purged marker.
    seq: int = 0
    prev_hash: str = Field(default="", max_length=64)
    hash: str = Field(default="", max_length=64)
    purged: bool = False


class AuditHead(SQLModel, table=True):
    """The last position and hash of each cell's audit chain (and the lock of its writers)."""

    __tablename__ = "audit_head"
    cell: str = Field(primary_key=True, max_length=64)
    seq: int = 0
    hash: str = Field(max_length=64)


class Statistic(SQLModel, table=True):
    """What remains of a closed dossier after retention: anonymous, no code."""

    __tablename__ = "statistic"
    id: int | None = Field(default=None, primary_key=True)
    cell: str = Field(max_length=64, index=True)
    phenomenon: str = Field(max_length=16)
    month_opened: str = Field(max_length=7)
    month_closed: str = Field(max_length=7)
    outcome: str = Field(max_length=16)
    ideology: str = Field(default="", max_length=24)
    minor: str = Field(default="", max_length=3)


class Meeting(SQLModel, table=True):
    """A meeting of a table: planned by the cadence (``auto``) or by the chair (``adhoc``).

    ``uid`` and ``sequence`` are the iCalendar UID and SEQUENCE: a change raises the sequence.
    Status: planned, started, ended, cancelled, or lapsed (its time passed, never started).
    """

    __tablename__ = "meeting"
    id: int | None = Field(default=None, primary_key=True)
    cell: str = Field(max_length=64, index=True)
    table_name: str = Field(max_length=16)
    starts_at: datetime = ts()
    duration_minutes: int
    status: str = Field(max_length=16, index=True)
    kind: str = Field(max_length=16)
    cancel_reason: str = Field(default="", max_length=16)  # chair | cadence
    sequence: int = 0
    uid: str = Field(default="", max_length=255)
    created_at: datetime = ts()
    started_at: datetime | None = ts(nullable=True)
    ended_at: datetime | None = ts(nullable=True)
    ics_posted_sequence: int = -1


class Attendance(SQLModel, table=True):
    """Who said ``present`` during a meeting: the effectively participating members."""

    __tablename__ = "attendance"
    meeting_id: int = Field(primary_key=True)
    user_id: str = Field(primary_key=True, max_length=255)
    at: datetime = ts()


class AgendaItem(SQLModel, table=True):
    """A member's free agenda item (screened by the privacy guard; deleted after the meeting)."""

    __tablename__ = "agenda_item"
    id: int | None = Field(default=None, primary_key=True)
    cell: str = Field(max_length=64, index=True)
    table_name: str = Field(max_length=16)
    meeting_id: int | None = None
    text: str = Field(max_length=300)
    author: str = Field(max_length=255)
    created_at: datetime = ts()
    removed: bool = False


class TableState(SQLModel, table=True):
    """The cadence of a table as last computed and announced."""

    __tablename__ = "table_state"
    cell: str = Field(primary_key=True, max_length=64)
    table_name: str = Field(primary_key=True, max_length=16)
    mode: str = Field(max_length=16)
    met_once: bool = False
    created_at: datetime = ts()
    updated_at: datetime = ts()
    first_meeting_reminded_at: datetime | None = ts(nullable=True)


class Vote(SQLModel, table=True):
    """A consensus proposal on a dossier, voted by the members present at a meeting."""

    __tablename__ = "vote"
    id: int | None = Field(default=None, primary_key=True)
    cell: str = Field(max_length=64, index=True)
    table_name: str = Field(max_length=16)
    meeting_id: int
    kind: str = Field(max_length=16)  # accept | reject | close | fiche
    code: str = Field(max_length=16, index=True)
    state: str = Field(max_length=16, index=True)  # open | adopted | not_adopted | cancelled
    opened_by: str = Field(max_length=255)
    opened_at: datetime = ts()
    deadline: datetime | None = ts(nullable=True)
    closed_by: str = Field(default="", max_length=255)
    closed_at: datetime | None = ts(nullable=True)
    close_reason: str = Field(default="", max_length=16)  # chair | meeting_end | deadline | edit
    participants: int = 0
    fiche_version: int = 0
    poll_event_id: str = Field(default="", max_length=255)


class Ballot(SQLModel, table=True):
    """Every ballot cast, in order: the latest one of a member counts."""

    __tablename__ = "ballot"
    id: int | None = Field(default=None, primary_key=True)
    vote_id: int = Field(index=True)
    user_id: str = Field(max_length=255)
    choice: str = Field(max_length=8)
    via: str = Field(max_length=8)  # command | poll
    at: datetime = ts()
    #: For ``no`` and ``abstain``: a category of a fixed list (spec §9), never free text.
    reason: str = Field(default="", max_length=24)


class Recusal(SQLModel, table=True):
    """A present member takes no part in one case's votes in this meeting (``recuse C-…``)."""

    __tablename__ = "recusal"
    meeting_id: int = Field(primary_key=True)
    code: str = Field(primary_key=True, max_length=16)
    user_id: str = Field(primary_key=True, max_length=255)
    at: datetime = ts()


class Fiche(SQLModel, table=True):
    """The feedback fiche draft of a dossier. Free text is screened; deleted with the dossier."""

    __tablename__ = "fiche"
    cell: str = Field(primary_key=True, max_length=64)
    code: str = Field(primary_key=True, max_length=16)
    effectiveness: str = Field(default="", max_length=16)
    willingness: str = Field(default="", max_length=16)
    distancing: str = Field(default="", max_length=16)
    continue_: str = Field(default="", max_length=8, sa_column_kwargs={"name": "continue_useful"})
    options: str = Field(default="", max_length=8)
    other: str = Field(default="", max_length=1000)
    readiness: str = Field(default="", max_length=24)
    readiness_note: str = Field(default="", max_length=500)
    version: int = 0
    updated_by: str = Field(default="", max_length=255)
    updated_at: datetime = ts()
    sent_at: datetime | None = ts(nullable=True)


class DirectRoom(SQLModel, table=True):
    """The encrypted direct room with a user (the information officer), reused."""

    __tablename__ = "direct_room"
    cell: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(primary_key=True, max_length=255)
    room_id: str = Field(max_length=255)


class DossierAction(SQLModel, table=True):
    """An action of a dossier (spec §13): owner organisation, due date, screened text."""

    __tablename__ = "dossier_action"
    id: int | None = Field(default=None, primary_key=True)
    cell: str = Field(max_length=64, index=True)
    code: str = Field(max_length=16, index=True)
    n: int  # numbered per dossier: C-7KQ2M/1, C-7KQ2M/2...
    owner: str = Field(max_length=128)
    due: date
    description: str = Field(max_length=200)
    status: str = Field(max_length=16)  # open | done | not-possible | not-done
    created_by: str = Field(max_length=255)
    created_at: datetime = ts()
    updated_by: str = Field(max_length=255)
    updated_at: datetime = ts()
    closed_at: datetime | None = ts(nullable=True)


class Apology(SQLModel, table=True):
    """A member's apology for a meeting, with whether a written contribution was sent."""

    __tablename__ = "apology"
    meeting_id: int = Field(primary_key=True)
    user_id: str = Field(primary_key=True, max_length=255)
    contribution: bool = False
    at: datetime = ts()


class Aftercare(SQLModel, table=True):
    """Review prompts after closure: only the code, the month of closure and the dates."""

    __tablename__ = "aftercare"
    cell: str = Field(primary_key=True, max_length=64)
    code: str = Field(primary_key=True, max_length=16)
    month_closed: str = Field(max_length=7)
    reviews: str = Field(max_length=128)  # ISO dates, comma-separated, the pending ones
