"""iCalendar invitations: round trip, time zones, REQUEST and CANCEL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from commands.meetings.calendar import PRODID, meeting_ics

BXL = ZoneInfo("Europe/Brussels")
NOW = datetime(2026, 6, 1, 8, 30, 15, tzinfo=UTC)


def ics(**overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "uid": "meeting-42@livcr.example.be",
        "sequence": 0,
        "method": "REQUEST",
        "start": datetime(2026, 7, 7, 10, tzinfo=BXL),
        "duration": timedelta(minutes=90),
        "tz": BXL,
        "summary": "LIVC-R operational table",
        "description": "Agenda in the room.",
        "now": NOW,
    }
    arguments.update(overrides)
    return meeting_ics(**arguments)


def parse(data: bytes) -> tuple[Calendar, Any]:
    calendar = Calendar.from_ical(data)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return calendar, events[0]


def test_request_round_trip() -> None:
    data = ics()
    assert isinstance(data, bytes)
    calendar, event = parse(data)
    assert str(calendar["PRODID"]) == PRODID == "-//livcr-bot//EN"
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == "meeting-42@livcr.example.be"
    assert int(event["SEQUENCE"]) == 0
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["SUMMARY"]) == "LIVC-R operational table"
    assert str(event["DESCRIPTION"]) == "Agenda in the room."
    assert event.decoded("DTSTAMP") == NOW
    assert event.decoded("DTSTAMP").utcoffset() == timedelta(0)
    assert b"DTSTAMP:20260601T083015Z" in data


def test_cancel_round_trip_with_sequence() -> None:
    calendar, event = parse(ics(method="CANCEL", sequence=3))
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert int(event["SEQUENCE"]) == 3
    assert str(event["UID"]) == "meeting-42@livcr.example.be"


def test_vtimezone_is_included() -> None:
    data = ics()
    calendar, _ = parse(data)
    zones = calendar.walk("VTIMEZONE")
    assert [str(zone["TZID"]) for zone in zones] == ["Europe/Brussels"]
    assert zones[0].walk("DAYLIGHT")
    assert zones[0].walk("STANDARD")
    assert b"DTSTART;TZID=Europe/Brussels:20260707T100000" in data
    assert b"DTEND;TZID=Europe/Brussels:20260707T113000" in data
    # VTIMEZONE comes before the event that uses it.
    assert data.index(b"BEGIN:VTIMEZONE") < data.index(b"BEGIN:VEVENT")


@pytest.mark.parametrize(
    ("start", "offset"),
    [
        (datetime(2026, 7, 7, 10, tzinfo=BXL), 2),  # summer, CEST
        (datetime(2026, 12, 1, 10, tzinfo=BXL), 1),  # winter, CET
        (datetime(2027, 3, 30, 10, tzinfo=BXL), 2),  # two days after the spring switch
        (datetime(2026, 10, 27, 10, tzinfo=BXL), 1),  # two days after the autumn switch
    ],
)
def test_local_time_round_trips(start: datetime, offset: int) -> None:
    _, event = parse(ics(start=start))
    dtstart = event.decoded("DTSTART")
    dtend = event.decoded("DTEND")
    assert dtstart == start
    assert (dtstart.hour, dtstart.minute) == (10, 0)
    assert dtstart.utcoffset() == timedelta(hours=offset)
    assert str(dtstart.tzinfo) == "Europe/Brussels"
    assert dtend - dtstart == timedelta(minutes=90)
    assert dtend.astimezone(UTC) == start.astimezone(UTC) + timedelta(minutes=90)


def test_start_in_utc_is_written_in_the_cell_zone() -> None:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    data = ics(start=start)
    assert b"DTSTART;TZID=Europe/Brussels:20261201T100000" in data
    _, event = parse(data)
    assert event.decoded("DTSTART") == start


def test_duration_is_elapsed_time_across_the_spring_switch() -> None:
    # 01:30 CET on 29 March 2026 plus two hours is 04:30 CEST (02:00-03:00 does not exist).
    start = datetime(2026, 3, 29, 1, 30, tzinfo=BXL)
    data = ics(start=start, duration=timedelta(hours=2))
    assert b"DTEND;TZID=Europe/Brussels:20260329T043000" in data
    _, event = parse(data)
    end = event.decoded("DTEND")
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=2)


def test_text_is_escaped_and_round_trips() -> None:
    description = "Line one, with a comma; and a semicolon\nLine two: ü é ç"
    _, event = parse(ics(description=description, summary="Table — 7/7"))
    assert str(event["DESCRIPTION"]) == description
    assert str(event["SUMMARY"]) == "Table — 7/7"


@pytest.mark.parametrize(
    ("organizer", "uri"),
    [
        ("secretary@livcr.example.be", "mailto:secretary@livcr.example.be"),
        ("@livcr:example.be", "matrix:u/livcr:example.be"),
        ("mailto:chair@example.be", "mailto:chair@example.be"),
    ],
)
def test_organizer(organizer: str, uri: str) -> None:
    _, event = parse(ics(organizer=organizer))
    assert str(event["ORGANIZER"]) == uri


def test_no_organizer_by_default() -> None:
    _, event = parse(ics())
    assert "ORGANIZER" not in event


@pytest.mark.parametrize(
    "overrides",
    [
        {"start": datetime(2026, 7, 7, 10)},  # noqa: DTZ001
        {"now": datetime(2026, 6, 1)},  # noqa: DTZ001
        {"sequence": -1},
        {"duration": timedelta(0)},
        {"method": "PUBLISH"},
        {"organizer": "not an address"},
    ],
)
def test_bad_arguments_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        ics(**overrides)
