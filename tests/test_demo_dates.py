"""The demo's extra meeting is computed from what is already planned (issue 12): whatever the
day of the week and the cadence, ``!meeting schedule`` in the scripted cycle never collides
with a planned meeting and never falls on a weekend or a Belgian public holiday."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from commands.meetings.cadence import is_working_day
from commands.model import Table
from demo.scenario import free_day
from tests.meeting_harness import harness


def test_on_a_tuesday_of_a_weekly_table_the_extra_meeting_avoids_next_tuesdays_meeting() -> None:
    # Tuesday 12 January 2027, 09:00 in Brussels: the weekly meeting is Tuesday 19 January.
    with harness(datetime(2027, 1, 12, 8, tzinfo=UTC)) as h:
        code = h.signal()
        h.say(f"!case flag {code} problematic")
        with h.repos() as repos:
            planned = {m.starts_at.astimezone(h.cell.tz).date() for m in
                       repos.meetings.of_table(h.cell.id, Table.OPERATIONAL.value, ["planned"])}
        assert date(2027, 1, 19) in planned
        day = free_day(h.core)
        assert day == date(2027, 1, 20)
        assert "Meeting planned" in h.text(f"!meeting schedule {day} 10:00")


@pytest.mark.parametrize("today", [
    datetime(2027, 1, 12, 9, tzinfo=UTC),  # a Tuesday
    datetime(2027, 3, 27, 23, tzinfo=UTC),  # the spring DST night
    datetime(2027, 10, 30, 23, tzinfo=UTC),  # the autumn DST night
    datetime(2026, 12, 31, 22, 30, tzinfo=UTC),  # New Year's Eve
    datetime(2028, 2, 29, 9, tzinfo=UTC),  # a leap day
    datetime(2028, 8, 8, 9, tzinfo=UTC),  # a week before Assumption Day (a Tuesday)
    datetime(2027, 7, 14, 8, tzinfo=UTC),  # a week before National Day
])
def test_the_extra_meeting_is_a_free_working_day_a_week_or_more_ahead(today: datetime) -> None:
    with harness(today) as h:
        code = h.signal()
        h.say(f"!case flag {code} problematic")
        with h.repos() as repos:
            planned = {m.starts_at.astimezone(h.cell.tz).date() for m in
                       repos.meetings.of_table(h.cell.id, Table.OPERATIONAL.value, ["planned"])}
        day = free_day(h.core)
        local_today = today.astimezone(h.cell.tz).date()
        assert day >= local_today + timedelta(days=7)
        assert is_working_day(day)
        assert day not in planned
        assert "Meeting planned" in h.text(f"!meeting schedule {day} 10:00")
