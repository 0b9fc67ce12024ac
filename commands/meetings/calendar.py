"""iCalendar invitations for table meetings (RFC 5545 / iTIP RFC 5546).

One VEVENT per meeting, its start and end in the cell's time zone with the matching
VTIMEZONE, so calendar clients keep 10:00 local at 10:00 local. A change is sent again
with the same UID and a higher SEQUENCE; a cancellation uses METHOD:CANCEL.
No I/O: the bytes are returned to the caller, which attaches them to a message.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress

__all__ = ["PRODID", "meeting_ics"]

PRODID = "-//livcr-bot//EN"

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_MATRIX_USER = re.compile(r"^@([^:\s]+):(\S+)$")
_EMAIL = re.compile(r"^[^@\s:]+@[^@\s]+$")


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


def _organizer_uri(organizer: str) -> str:
    """A CAL-ADDRESS URI from an e-mail address, a Matrix user id or a URI."""
    if _EMAIL.match(organizer):
        return f"mailto:{organizer}"
    matrix = _MATRIX_USER.match(organizer)
    if matrix:
        return f"matrix:u/{matrix.group(1)}:{matrix.group(2)}"
    if _URI.match(organizer):
        return organizer
    raise ValueError("organizer must be an e-mail address, a Matrix user id or a URI")


def meeting_ics(
    *,
    uid: str,
    sequence: int,
    method: Literal["REQUEST", "CANCEL"],
    start: datetime,
    duration: timedelta,
    tz: ZoneInfo,
    summary: str,
    description: str,
    organizer: str | None = None,
    now: datetime,
) -> bytes:
    """A VCALENDAR with one meeting, ready to attach as ``text/calendar``.

    ``start`` may be in any zone; it is written in ``tz`` (DTSTART/DTEND with TZID and a
    VTIMEZONE). ``duration`` is elapsed time. ``now`` becomes DTSTAMP in UTC.
    """
    _require_aware(start, "start")
    _require_aware(now, "now")
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"unsupported method {method!r}")
    if sequence < 0:
        raise ValueError("sequence cannot be negative")
    if duration <= timedelta(0):
        raise ValueError("duration must be positive")
    begin = start.astimezone(tz)
    end = (start.astimezone(UTC) + duration).astimezone(tz)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)

    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", begin)
    event.add("dtend", end)
    event.add("summary", summary)
    event.add("description", description)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    if organizer is not None:
        event.add("organizer", vCalAddress(_organizer_uri(organizer)))
    calendar.add_component(event)

    # Transitions around the meeting only: the full 1970-2038 table is needlessly long.
    calendar.add_missing_timezones(
        first_date=date(begin.year - 1, 1, 1), last_date=date(end.year + 2, 1, 1)
    )
    return bytes(calendar.to_ical())
