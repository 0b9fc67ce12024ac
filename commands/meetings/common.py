"""Facts about a table's meetings that every part of ``commands.meetings`` reads: when a
moment is in the cell's time zone, who chairs, the next planned meeting, the cadence mode.

Meetings are only ever shown by date, kind and counts, and dossiers by code."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from commands.framework import Attachment
from commands.meetings.cadence import Mode, cadence_mode
from commands.members.roster import table_members
from commands.model import OPEN, WEEKDAYS, Cell, Table, chairs_among
from storage.meetings import (
    PLANNED,
    MeetingRecord,
)
from storage.repositories import Repositories

log = logging.getLogger(__name__)

AUTO = "auto"
ADHOC = "adhoc"
#: ``meeting start`` opens a planned meeting whose start is this close (else an ad hoc one).
START_WINDOW_BEFORE = timedelta(hours=3)
START_WINDOW_AFTER = timedelta(hours=12)
FIRST_MEETING_EVERY = timedelta(weeks=1)
#: Planned-meeting slots are searched this many times past cancelled or taken slots.
_MAX_SKIPS = 60


# ---- small helpers ---------------------------------------------------------------------


def when(moment: datetime, cell: Cell) -> dict[str, str]:
    """A moment as template data in the cell's time zone: ISO date, HH:MM, weekday."""
    local = moment.astimezone(cell.tz)
    return {
        "date": local.date().isoformat(),
        "time": local.strftime("%H:%M"),
        "weekday": WEEKDAYS[local.weekday()],
    }


def chairs(cell: Cell, repos: Repositories, table: Table) -> tuple[str, ...]:
    """Who chairs the table: the chair(s) at the operational one, the mayor at the strategic."""
    return chairs_among(table_members(cell, repos, table), table)


def members_of(cell: Cell, repos: Repositories, table: Table) -> tuple[str, ...]:
    return tuple(m.user_id for m in table_members(cell, repos, table))


def next_planned(repos: Repositories, cell: Cell, table: Table, now: datetime,
                 after: datetime | None = None) -> MeetingRecord | None:
    """The earliest planned meeting that has not begun (after ``after`` when given)."""
    bound = max(now, after) if after is not None else now
    for meeting in repos.meetings.of_table(cell.id, table.value, [PLANNED]):
        if meeting.starts_at > bound:
            return meeting
    return None


def load(repos: Repositories, cell: Cell) -> tuple[int, int]:
    """(open dossiers, open and problematic) of a cell's operational table."""
    return repos.dossiers.open_load([s.value for s in OPEN], cell.id).get(cell.id, (0, 0))


def current_mode(repos: Repositories, cell: Cell, table: Table) -> tuple[Mode, int, int]:
    if table is Table.STRATEGIC:
        return Mode.SLEEP, 0, 0
    open_n, problematic = load(repos, cell)
    return cadence_mode(open_n, problematic), open_n, problematic


def local_start(day: date, at: time, cell: Cell) -> datetime:
    """``day`` at wall-clock ``at`` in the cell's zone; ValueError when DST skips that time."""
    start = datetime.combine(day, at, tzinfo=cell.tz)  # fold 0: the first of a repeated hour
    round_trip = start.astimezone(UTC).astimezone(cell.tz)
    if (round_trip.date(), round_trip.time()) != (day, at):
        raise ValueError("that local time does not exist (daylight-saving change)")
    return start



def meeting_data(meeting: MeetingRecord, cell: Cell) -> dict[str, Any]:
    return {"id": meeting.id, "kind": meeting.kind, "status": meeting.status,
            "when": when(meeting.starts_at, cell), "minutes": meeting.duration_minutes}


def meeting_attachment(cell: Cell, repos: Repositories, meeting: MeetingRecord,
                       method: Literal["REQUEST", "CANCEL"], now: datetime) -> Attachment:
    """The meeting as an iCalendar attachment: no case data, only the table and the time.

    It names the ``calendar`` attachment template; ``bot`` renders it (the summary in the
    cell's language) with :func:`commands.meetings.calendar.meeting_ics`. Callers record
    ``ics_posted_sequence`` with the change that the file announces.
    """
    table = Table(meeting.table)
    name = "meeting-cancelled.ics" if method == "CANCEL" else "meeting.ics"
    return Attachment(name, "text/calendar", "calendar", {
        "uid": meeting.uid,
        "sequence": meeting.sequence,
        "method": method,
        "start": meeting.starts_at,
        "duration": meeting.duration,
        "timezone": cell.timezone,
        "cell": cell.name,
        "table": table.value,
        "organizer": next(iter(chairs(cell, repos, table)), None),
        "now": now,
    })
