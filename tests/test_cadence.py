"""Cadence modes, meeting dates and reminders (spec §8)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from commands.meetings.cadence import (
    Mode,
    TableLoad,
    cadence_mode,
    is_working_day,
    next_meeting,
    next_working_day,
    recompute,
    reminder_times,
)
from commands.model import WEEKDAYS, CadenceConfig, TableConfig

BXL = ZoneInfo("Europe/Brussels")
HOUR = timedelta(hours=1)


def table(room: str = "!x:example.be", **kwargs: Any) -> TableConfig:
    return TableConfig(room=room, **kwargs)


def local(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BXL)


# --- modes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("open_dossiers", "problematic", "mode"),
    [
        (0, 0, Mode.SLEEP),
        (1, 0, Mode.MONTHLY),
        (7, 0, Mode.MONTHLY),
        (1, 1, Mode.WEEKLY),
        (7, 2, Mode.WEEKLY),
    ],
)
def test_cadence_mode(open_dossiers: int, problematic: int, mode: Mode) -> None:
    assert cadence_mode(open_dossiers, problematic) is mode


def test_mode_transitions_follow_the_dossiers() -> None:
    # sleep -> monthly (first dossier opened) -> weekly (flagged) -> monthly (unflagged)
    # -> weekly -> sleep (everything closed, flag included).
    steps = [(0, 0), (1, 0), (1, 1), (2, 1), (2, 0), (2, 2), (1, 1), (0, 0)]
    modes = [cadence_mode(o, p) for o, p in steps]
    assert modes == [
        Mode.SLEEP,
        Mode.MONTHLY,
        Mode.WEEKLY,
        Mode.WEEKLY,
        Mode.MONTHLY,
        Mode.WEEKLY,
        Mode.WEEKLY,
        Mode.SLEEP,
    ]


@pytest.mark.parametrize(("open_dossiers", "problematic"), [(-1, 0), (0, -1), (1, 2), (0, 1)])
def test_cadence_mode_rejects_inconsistent_counts(open_dossiers: int, problematic: int) -> None:
    with pytest.raises(ValueError, match="dossier"):
        cadence_mode(open_dossiers, problematic)


def test_mode_values_are_strings() -> None:
    assert [m.value for m in Mode] == ["weekly", "monthly", "sleep"]


def test_sleep_has_no_meeting() -> None:
    assert next_meeting(Mode.SLEEP, table(), BXL, local(2026, 5, 5)) is None
    assert next_meeting(Mode.SLEEP, table(), BXL, local(2026, 5, 5), local(2026, 5, 5)) is None


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_meeting(Mode.WEEKLY, table(), BXL, datetime(2026, 5, 5, 10))  # noqa: DTZ001
    with pytest.raises(ValueError, match="aware"):
        next_meeting(
            Mode.WEEKLY,
            table(),
            BXL,
            local(2026, 5, 5),
            datetime(2026, 5, 5),  # noqa: DTZ001
        )


# --- working days ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 11, 11), False),  # Armistice, Wednesday
        (date(2026, 12, 25), False),  # Christmas, Friday
        (date(2027, 3, 29), False),  # Easter Monday
        (date(2026, 7, 21), False),  # National Day, Tuesday
        (date(2027, 1, 1), False),  # New Year, Friday
        (date(2026, 11, 14), False),  # Saturday
        (date(2026, 11, 15), False),  # Sunday
        (date(2026, 11, 12), True),
        (date(2026, 12, 28), True),
    ],
)
def test_is_working_day(day: date, working: bool) -> None:
    assert is_working_day(day) is working


def test_next_working_day() -> None:
    assert next_working_day(date(2026, 11, 12)) == date(2026, 11, 12)
    assert next_working_day(date(2026, 11, 11)) == date(2026, 11, 12)
    assert next_working_day(date(2026, 12, 25)) == date(2026, 12, 28)
    assert next_working_day(date(2027, 3, 27)) == date(2027, 3, 30)  # Sat, Sun, Easter Monday
    assert next_working_day(date(2026, 12, 31)) == date(2026, 12, 31)
    assert next_working_day(date(2027, 1, 1)) == date(2027, 1, 4)  # across the year end


# --- weekly and daylight saving ----------------------------------------------------------


def chain(mode: Mode, config: TableConfig, after: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    for _ in range(count):
        meeting = next_meeting(mode, config, BXL, after)
        assert meeting is not None
        out.append(meeting)
        after = meeting
    return out


@pytest.mark.parametrize(
    ("start", "switch", "before", "later"),
    [
        (date(2026, 3, 10), date(2026, 3, 29), 1, 2),
        (date(2026, 10, 6), date(2026, 10, 25), 2, 1),
        (date(2027, 3, 9), date(2027, 3, 28), 1, 2),
        (date(2027, 10, 12), date(2027, 10, 31), 2, 1),
    ],
)
def test_weekly_stays_at_ten_local_across_dst(
    start: date, switch: date, before: int, later: int
) -> None:
    after = local(start.year, start.month, start.day, 11)
    meetings = chain(Mode.WEEKLY, table(meeting_weekday="tuesday"), after, 5)
    assert [m.date() for m in meetings] == [start + timedelta(weeks=k) for k in range(1, 6)]
    for meeting in meetings:
        assert meeting.tzinfo is BXL
        assert (meeting.hour, meeting.minute) == (10, 0)
        offset = before if meeting.date() < switch else later
        assert meeting.utcoffset() == timedelta(hours=offset)
        assert meeting.astimezone(UTC).hour == 10 - offset
    # Exactly one week apart in the calendar, 167 or 169 hours across the switch.
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in pairwise(meetings)}
    assert gaps == {timedelta(weeks=1), timedelta(weeks=1) + (before - later) * HOUR}


def test_weekly_easter_monday_2027_after_dst_switch() -> None:
    config = table(meeting_weekday="monday")
    meeting = next_meeting(Mode.WEEKLY, config, BXL, local(2027, 3, 22, 12))
    # Easter Monday 29 March 2027, the day after the spring switch: Tuesday, 10:00 CEST.
    assert meeting == local(2027, 3, 30)
    assert meeting is not None
    assert meeting.utcoffset() == timedelta(hours=2)
    assert meeting.astimezone(UTC) == datetime(2027, 3, 30, 8, tzinfo=UTC)
    # The series goes back to Monday afterwards.
    assert next_meeting(Mode.WEEKLY, config, BXL, meeting) == local(2027, 4, 5)


def test_after_is_strict() -> None:
    config = table(meeting_weekday="tuesday")
    meeting = local(2026, 5, 5)
    assert next_meeting(Mode.WEEKLY, config, BXL, meeting) == local(2026, 5, 12)
    assert next_meeting(Mode.WEEKLY, config, BXL, meeting - timedelta(seconds=1)) == meeting
    # The same instant given in UTC.
    assert next_meeting(Mode.WEEKLY, config, BXL, meeting.astimezone(UTC)) == local(2026, 5, 12)


def test_result_is_in_the_cell_zone_whatever_after_zone() -> None:
    after = datetime(2026, 5, 4, 23, 30, tzinfo=UTC)  # already Tuesday 01:30 in Brussels
    meeting = next_meeting(Mode.WEEKLY, table(), BXL, after)
    assert meeting == local(2026, 5, 5)
    assert meeting is not None
    assert meeting.tzinfo is BXL


def test_time_in_the_spring_gap_moves_forward() -> None:
    config = table(meeting_weekday="sunday", meeting_time="02:30", skip_public_holidays=False)
    meeting = next_meeting(Mode.WEEKLY, config, BXL, local(2026, 3, 22, 12))
    assert meeting is not None
    assert meeting.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert (meeting.hour, meeting.minute) == (3, 30)


# --- public holidays ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weekday", "after", "expected"),
    [
        ("wednesday", local(2026, 11, 4, 12), local(2026, 11, 12)),  # Armistice
        ("friday", local(2026, 12, 18, 12), local(2026, 12, 28)),  # Christmas -> Monday
        ("monday", local(2027, 3, 22, 12), local(2027, 3, 30)),  # Easter Monday
        ("tuesday", local(2026, 7, 14, 12), local(2026, 7, 22)),  # National Day
        ("saturday", local(2026, 5, 4, 12), local(2026, 5, 11)),  # weekend -> Monday
    ],
)
def test_holiday_moves_to_next_working_day(
    weekday: str, after: datetime, expected: datetime
) -> None:
    config = table(meeting_weekday=weekday)
    assert next_meeting(Mode.WEEKLY, config, BXL, after) == expected


def test_moved_meeting_is_found_after_its_regular_date() -> None:
    # Asked on the holiday itself, after 10:00: the moved meeting is still ahead.
    config = table(meeting_weekday="wednesday")
    assert next_meeting(Mode.WEEKLY, config, BXL, local(2026, 11, 11, 15)) == local(2026, 11, 12)
    assert next_meeting(Mode.WEEKLY, config, BXL, local(2026, 11, 12)) == local(2026, 11, 18)


@pytest.mark.parametrize(
    ("weekday", "after", "expected"),
    [
        ("wednesday", local(2026, 11, 4, 12), local(2026, 11, 11)),
        ("friday", local(2026, 12, 18, 12), local(2026, 12, 25)),
        ("monday", local(2027, 3, 22, 12), local(2027, 3, 29)),
    ],
)
def test_skip_public_holidays_false_keeps_the_holiday(
    weekday: str, after: datetime, expected: datetime
) -> None:
    config = table(meeting_weekday=weekday, skip_public_holidays=False)
    assert next_meeting(Mode.WEEKLY, config, BXL, after) == expected


# --- monthly -----------------------------------------------------------------------------


def test_monthly_first_tuesday_from_january_31() -> None:
    config = table(meeting_weekday="tuesday", monthly_week=1)
    assert next_meeting(Mode.MONTHLY, config, BXL, local(2026, 1, 31)) == local(2026, 2, 3)


def test_monthly_across_the_year_end() -> None:
    config = table(meeting_weekday="tuesday", monthly_week=1)
    assert next_meeting(Mode.MONTHLY, config, BXL, local(2026, 12, 1)) == local(2027, 1, 5)
    # First Friday of January 2027 is New Year's Day: moved to Monday 4 January.
    friday = table(meeting_weekday="friday", monthly_week=1)
    assert next_meeting(Mode.MONTHLY, friday, BXL, local(2026, 12, 20)) == local(2027, 1, 4)
    kept = table(meeting_weekday="friday", monthly_week=1, skip_public_holidays=False)
    assert next_meeting(Mode.MONTHLY, kept, BXL, local(2026, 12, 20)) == local(2027, 1, 1)


def test_monthly_fifth_weekday_falls_back_to_the_last() -> None:
    config = table(meeting_weekday="tuesday", monthly_week=5)
    # January and February 2026 have four Tuesdays, March 2026 has five.
    meetings = chain(Mode.MONTHLY, config, local(2026, 1, 1), 3)
    assert meetings == [local(2026, 1, 27), local(2026, 2, 24), local(2026, 3, 31)]
    assert [m.utcoffset() for m in meetings] == [HOUR, HOUR, 2 * HOUR]


def test_monthly_nth_weekday() -> None:
    config = table(meeting_weekday="thursday", monthly_week=3)
    meetings = chain(Mode.MONTHLY, config, local(2026, 9, 1), 4)
    assert meetings == [
        local(2026, 9, 17),
        local(2026, 10, 15),
        local(2026, 11, 19),
        local(2026, 12, 17),
    ]


def test_monthly_across_dst_keeps_local_time() -> None:
    config = table(meeting_weekday="tuesday", monthly_week=1, meeting_time="14:15")
    meetings = chain(Mode.MONTHLY, config, local(2026, 2, 10), 2)
    assert meetings == [local(2026, 3, 3, 14, 15), local(2026, 4, 7, 14, 15)]
    assert [m.utcoffset() for m in meetings] == [HOUR, 2 * HOUR]


# --- interval overrides ------------------------------------------------------------------


def test_weekly_every_two_weeks_counts_from_the_last_meeting() -> None:
    config = table(meeting_weekday="tuesday", cadence=CadenceConfig(weekly_every_weeks=2))
    last = local(2026, 9, 1)
    assert next_meeting(Mode.WEEKLY, config, BXL, local(2026, 9, 1, 12), last) == local(
        2026, 9, 15
    )
    assert next_meeting(Mode.WEEKLY, config, BXL, local(2026, 9, 9), last) == local(2026, 9, 15)
    assert next_meeting(Mode.WEEKLY, config, BXL, local(2026, 9, 15), last) == local(2026, 9, 29)
    # Without a last meeting, the first regular slot.
    assert next_meeting(Mode.WEEKLY, config, BXL, local(2026, 9, 1, 12)) == local(2026, 9, 8)


def test_weekly_every_two_weeks_ignores_a_holiday_move() -> None:
    config = table(meeting_weekday="wednesday", cadence=CadenceConfig(weekly_every_weeks=2))
    last = local(2026, 11, 12)  # the 11 November meeting, moved to Thursday
    assert next_meeting(Mode.WEEKLY, config, BXL, last, last) == local(2026, 11, 25)


def test_weekly_override_series_continues_across_dst() -> None:
    config = table(meeting_weekday="tuesday", cadence=CadenceConfig(weekly_every_weeks=3))
    last = local(2026, 10, 6)
    meeting = next_meeting(Mode.WEEKLY, config, BXL, last, last)
    assert meeting == local(2026, 10, 27)
    assert meeting is not None
    assert meeting.utcoffset() == HOUR


def test_monthly_every_two_months() -> None:
    config = table(
        meeting_weekday="tuesday", monthly_week=1, cadence=CadenceConfig(monthly_every_months=2)
    )
    last = local(2026, 1, 6)
    assert next_meeting(Mode.MONTHLY, config, BXL, last, last) == local(2026, 3, 3)
    assert next_meeting(Mode.MONTHLY, config, BXL, local(2026, 2, 10), last) == local(2026, 3, 3)
    # November -> January of the next year.
    last = local(2026, 11, 3)
    assert next_meeting(Mode.MONTHLY, config, BXL, last, last) == local(2027, 1, 5)
    # Without a last meeting, the first regular slot.
    assert next_meeting(Mode.MONTHLY, config, BXL, local(2026, 1, 6, 12)) == local(2026, 2, 3)


def test_monthly_override_anchors_on_the_regular_slot() -> None:
    config = table(
        meeting_weekday="tuesday", monthly_week=1, cadence=CadenceConfig(monthly_every_months=2)
    )
    # An ad hoc meeting on Monday 2 March, before March's regular slot: the series of
    # February (every other month) goes on in April.
    last = local(2026, 3, 2)
    assert next_meeting(Mode.MONTHLY, config, BXL, last, last) == local(2026, 4, 7)
    # New Year's Day meeting moved to 4 January 2027: the series is January's.
    friday = table(
        meeting_weekday="friday", monthly_week=1, cadence=CadenceConfig(monthly_every_months=2)
    )
    last = local(2027, 1, 4)
    assert next_meeting(Mode.MONTHLY, friday, BXL, last, last) == local(2027, 3, 5)


# --- properties over two years -----------------------------------------------------------


@pytest.mark.parametrize("weekday", WEEKDAYS)
@pytest.mark.parametrize("mode", [Mode.WEEKLY, Mode.MONTHLY])
def test_every_result_is_a_working_day_at_local_time(mode: Mode, weekday: str) -> None:
    config = table(meeting_weekday=weekday, monthly_week=4, meeting_time="09:30")
    day = local(2026, 1, 1, 0)
    limit = timedelta(days=12) if mode is Mode.WEEKLY else timedelta(days=40)
    while day < local(2028, 1, 1, 0):
        for hour in (0, 9, 10, 23):
            after = day.replace(hour=hour)
            meeting = next_meeting(mode, config, BXL, after)
            assert meeting is not None
            assert after < meeting <= after + limit
            assert (meeting.hour, meeting.minute) == (9, 30)
            assert is_working_day(meeting.date())
        day += timedelta(days=1)


# --- batch -------------------------------------------------------------------------------


def random_tables(
    count: int, seed: int = 1
) -> tuple[list[TableLoad], dict[tuple[str, str], tuple[TableConfig, ZoneInfo]]]:
    rng = random.Random(seed)
    zones = [BXL, ZoneInfo("Europe/Amsterdam"), ZoneInfo("UTC")]
    loads: list[TableLoad] = []
    tables: dict[tuple[str, str], tuple[TableConfig, ZoneInfo]] = {}
    for index in range(count):
        key = (f"cell-{index // 2}", "operational" if index % 2 == 0 else "strategic")
        config = table(
            room=f"!t{index}:example.be",
            meeting_weekday=rng.choice(WEEKDAYS[:5]),
            meeting_time=f"{rng.randint(8, 17)}:{rng.choice(['00', '30'])}",
            monthly_week=rng.randint(1, 5),
            skip_public_holidays=rng.random() < 0.9,
            cadence=CadenceConfig(
                weekly_every_weeks=rng.randint(1, 2), monthly_every_months=rng.randint(1, 2)
            ),
        )
        open_dossiers = rng.choice([0, 0, 1, 2, 3, 5, 8])
        problematic = rng.randint(0, open_dossiers) if rng.random() < 0.4 else 0
        last = None
        if rng.random() < 0.7:
            last = datetime(2026, 1, 1, 9, tzinfo=UTC) + timedelta(hours=rng.randint(0, 24 * 300))
        loads.append(TableLoad(key, open_dossiers, problematic, last))
        tables[key] = (config, rng.choice(zones))
    return loads, tables


def test_recompute_matches_next_meeting_one_by_one() -> None:
    loads, tables = random_tables(1200)
    now = datetime(2026, 10, 20, 7, 45, tzinfo=UTC)
    result = recompute(loads, tables, now)
    assert len(result) == 1200
    seen_modes = set()
    for load in loads:
        config, tz = tables[load.key]
        mode, meeting = result[load.key]
        if load.key[1] == "strategic":
            assert (mode, meeting) == (Mode.SLEEP, None)
            continue
        seen_modes.add(mode)
        assert mode is cadence_mode(load.open_dossiers, load.problematic_open)
        expected = next_meeting(mode, config, tz, now, load.last_meeting)
        assert meeting == expected
        if meeting is not None:
            assert meeting.tzinfo is tz
            assert meeting > now
    assert seen_modes == {Mode.SLEEP, Mode.MONTHLY, Mode.WEEKLY}


def test_recompute_unknown_table_raises() -> None:
    load = TableLoad(("nowhere", "operational"), 1, 0, None)
    with pytest.raises(KeyError):
        recompute([load], {}, datetime(2026, 1, 1, tzinfo=UTC))


# --- reminders ---------------------------------------------------------------------------


def test_reminder_times_sorted_ascending() -> None:
    start = local(2026, 5, 5)
    offsets = [HOUR, timedelta(hours=24), timedelta(minutes=15)]
    assert reminder_times(start, offsets) == [
        local(2026, 5, 4),
        local(2026, 5, 5, 9),
        local(2026, 5, 5, 9, 45),
    ]
    assert reminder_times(start, []) == []


def test_reminder_times_drop_duplicates() -> None:
    start = local(2026, 5, 5)
    assert reminder_times(start, [timedelta(days=1), timedelta(hours=24)]) == [local(2026, 5, 4)]


def test_reminder_offsets_are_elapsed_time_across_dst() -> None:
    start = local(2026, 3, 29)  # Sunday of the spring switch, 10:00 CEST
    (reminder,) = reminder_times(start, [timedelta(hours=24)])
    assert reminder.astimezone(UTC) == start.astimezone(UTC) - timedelta(hours=24)
    assert reminder == local(2026, 3, 28, 9)  # Saturday 09:00 CET
    assert reminder.utcoffset() == HOUR
    assert reminder.tzinfo is BXL


def test_reminder_times_from_config() -> None:
    config = table(reminders=("1h", "24h", "2d"))
    start = local(2026, 6, 2)
    assert reminder_times(start, config.reminder_offsets) == [
        local(2026, 5, 31),
        local(2026, 6, 1),
        local(2026, 6, 2, 9),
    ]
