"""Meeting cadence of the operational table (spec §8).

The mode follows the open dossiers: ``weekly`` while at least one open dossier is flagged
problematic, ``monthly`` while dossiers are open but none is problematic, ``sleep`` (no
automatic meetings) when nothing is open. It is recomputed on every dossier change.

Meetings fall on the table's weekday and time of day in the cell's time zone, so 10:00 local
stays 10:00 local across the daylight-saving switches. In monthly mode the meeting is the
``monthly_week``-th such weekday of the month (the last one when the month has no fifth).
``CadenceConfig`` stretches the intervals: weekly every N weeks and monthly every N months,
counted from the last meeting when one is known. With ``skip_public_holidays`` a meeting on
a weekend or a Belgian public holiday moves to the next working day at the same local time.

Pure functions: no I/O, no logging, no clock; the caller passes ``now`` / ``after``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from commands.model import Table, TableConfig

__all__ = [
    "Mode",
    "TableLoad",
    "cadence_mode",
    "is_working_day",
    "next_meeting",
    "next_working_day",
    "recompute",
    "reminder_times",
]

#: A holiday shift never exceeds a few days (longest Belgian run: weekend + 2 holidays);
#: candidates are searched from this far before ``after`` so a shifted one is not missed.
_LOOKBACK_DAYS = 7


class Mode(enum.StrEnum):
    """Cadence mode of the operational table."""

    WEEKLY = "weekly"
    MONTHLY = "monthly"
    SLEEP = "sleep"


def cadence_mode(open_dossiers: int, problematic_open: int) -> Mode:
    """The mode for a table with ``open_dossiers`` open, ``problematic_open`` of them flagged.

    Raises :class:`ValueError` on negative counts or more problematic than open dossiers.
    """
    if open_dossiers < 0 or problematic_open < 0:
        raise ValueError("dossier counts cannot be negative")
    if problematic_open > open_dossiers:
        raise ValueError("more problematic dossiers than open dossiers")
    if open_dossiers == 0:
        return Mode.SLEEP
    if problematic_open > 0:
        return Mode.WEEKLY
    return Mode.MONTHLY


@lru_cache(maxsize=64)
def _belgian_holidays(year: int) -> frozenset[date]:
    """Belgian public holidays of one year (computed once per year)."""
    return frozenset(holidays.country_holidays("BE", years=year).keys())


def prepare_holidays(year: int) -> None:
    """Load the holiday calendar of ``year`` and the next one now (at start, daily): the
    ``holidays`` package imports its country module on first use, which costs a third of a
    second that would otherwise fall on the first signal's reply."""
    _belgian_holidays(year)
    _belgian_holidays(year + 1)


def is_working_day(day: date) -> bool:
    """Not a Saturday or Sunday and not a Belgian public holiday."""
    return day.weekday() < 5 and day not in _belgian_holidays(day.year)


def next_working_day(day: date) -> date:
    """``day`` itself when it is a working day, else the first working day after it."""
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    """``day`` at wall-clock ``at`` in ``tz``; a time skipped by a DST gap moves forward."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC).astimezone(tz)


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    """The ``nth`` (1..5) ``weekday`` of a month; the last one when there is no such."""
    first = date(year, month, 1)
    day = 1 + (weekday - first.weekday()) % 7 + 7 * (nth - 1)
    next_month = date(year + month // 12, month % 12 + 1, 1)
    days_in_month = (next_month - first).days
    while day > days_in_month:
        day -= 7
    return date(year, month, day)


def _month_date(index: int, table: TableConfig, weekday: int) -> date:
    """Regular monthly meeting date for a month counted as ``year * 12 + month - 1``."""
    return _nth_weekday(index // 12, index % 12 + 1, weekday, table.monthly_week)


def _weekly_dates(
    table: TableConfig, weekday: int, after_day: date, last: date | None
) -> Iterator[date]:
    """Regular weekly dates from shortly before ``after_day`` on, in order."""
    every = table.cadence.weekly_every_weeks if last is not None else 1
    reference = last if last is not None else after_day
    # The series is anchored on the configured weekday on or before the last meeting, so a
    # meeting moved a few days by a holiday does not shift the series.
    anchor = reference - timedelta(days=(reference.weekday() - weekday) % 7)
    step = 7 * every
    start = after_day - timedelta(days=_LOOKBACK_DAYS)
    k = -((anchor - start).days // step)  # ceil((start - anchor) / step)
    day = anchor + timedelta(days=k * step)
    while True:
        yield day
        day += timedelta(days=step)


def _monthly_dates(
    table: TableConfig, weekday: int, after_day: date, last: date | None
) -> Iterator[date]:
    """Regular monthly dates from the month before ``after_day`` on, in order."""
    every = table.cadence.monthly_every_months if last is not None else 1
    if last is None:
        anchor = after_day.year * 12 + after_day.month - 1
    else:
        anchor = last.year * 12 + last.month - 1
        if _month_date(anchor, table, weekday) > last:
            # The last meeting came before this month's regular date: it was the previous
            # month's meeting moved by a holiday, or an ad hoc one.
            anchor -= 1
    start = after_day.year * 12 + after_day.month - 2
    index = anchor + -((anchor - start) // every) * every
    while True:
        yield _month_date(index, table, weekday)
        index += every


def next_meeting(
    mode: Mode,
    table: TableConfig,
    tz: ZoneInfo,
    after: datetime,
    last_meeting: datetime | None = None,
) -> datetime | None:
    """The first regular meeting strictly after ``after``, as an aware datetime in ``tz``.

    ``None`` in :attr:`Mode.SLEEP`. Without ``last_meeting`` the interval overrides do not
    matter for the next meeting: it is the first regular slot after ``after``. With it, the
    series runs every ``weekly_every_weeks`` weeks (or ``monthly_every_months`` months) from
    the regular slot the last meeting belonged to.
    """
    _require_aware(after, "after")
    if last_meeting is not None:
        _require_aware(last_meeting, "last_meeting")
    if mode is Mode.SLEEP:
        return None
    after_utc = after.astimezone(UTC)
    after_day = after_utc.astimezone(tz).date()
    last_day = last_meeting.astimezone(tz).date() if last_meeting is not None else None
    weekday = table.weekday_index
    at = table.time_of_day
    if mode is Mode.WEEKLY:
        days = _weekly_dates(table, weekday, after_day, last_day)
    else:
        days = _monthly_dates(table, weekday, after_day, last_day)
    for day in days:
        held = next_working_day(day) if table.skip_public_holidays else day
        candidate = _local(held, at, tz)
        # Compare in UTC: aware datetimes sharing a tzinfo compare by wall time only.
        if candidate.astimezone(UTC) > after_utc:
            return candidate
    raise AssertionError("unreachable: the date series is infinite")  # pragma: no cover


@dataclass(frozen=True)
class TableLoad:
    """Dossier counts of one table; ``key`` is ``(cell id, table name)``."""

    key: tuple[str, str]
    open_dossiers: int
    problematic_open: int
    last_meeting: datetime | None


def recompute(
    loads: Iterable[TableLoad],
    tables: Mapping[tuple[str, str], tuple[TableConfig, ZoneInfo]],
    now: datetime,
) -> dict[tuple[str, str], tuple[Mode, datetime | None]]:
    """Mode and next meeting for every load, keyed like the loads.

    The strategic table has no automatic meetings: it is always ``(SLEEP, None)``.
    A load whose key is missing from ``tables`` raises :class:`KeyError`.
    """
    _require_aware(now, "now")
    result: dict[tuple[str, str], tuple[Mode, datetime | None]] = {}
    for load in loads:
        table, tz = tables[load.key]
        if load.key[1] == Table.STRATEGIC:
            result[load.key] = (Mode.SLEEP, None)
            continue
        mode = cadence_mode(load.open_dossiers, load.problematic_open)
        result[load.key] = (mode, next_meeting(mode, table, tz, now, load.last_meeting))
    return result


def reminder_times(start: datetime, offsets: Sequence[timedelta]) -> list[datetime]:
    """``start - offset`` for every offset, ascending and without duplicates.

    Offsets are elapsed time (``24h`` before 10:00 on the Sunday of the spring switch is
    Saturday 09:00 local); the results are in ``start``'s time zone.
    """
    _require_aware(start, "start")
    start_utc = start.astimezone(UTC)
    instants = sorted({start_utc - offset for offset in offsets})
    return [instant.astimezone(start.tzinfo) for instant in instants]
