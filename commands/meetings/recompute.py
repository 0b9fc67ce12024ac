"""The cadence recomputed on every change (spec §8): the automatic meeting of each table,
moved or cancelled with the load, and its announcements with calendar files."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal

from commands.framework import Output, Reply
from commands.meetings.cadence import Mode, cadence_mode, next_meeting
from commands.meetings.common import (
    _MAX_SKIPS,
    AUTO,
    chairs,
    load,
    meeting_attachment,
    next_planned,
    when,
)
from commands.model import OPEN, Cell, Table, parse_duration
from storage.meetings import (
    CANCELLED,
    ENDED,
    LAPSED,
    PLANNED,
    STARTED,
    MeetingRecord,
    TableStateRecord,
)
from storage.repositories import Repositories

log = logging.getLogger(__name__)

# ---- the cadence, recomputed on every change --------------------------------------------


@dataclass(frozen=True)
class TableInputs:
    """What :func:`recompute_table` needs of one table, loaded in bulk or one by one."""

    open_dossiers: int
    problematic_open: int
    state: TableStateRecord | None
    planned: tuple[MeetingRecord, ...]
    taken: frozenset[datetime]
    last_held: datetime | None


def inputs_for(repos: Repositories, cell: Cell, table: Table, now: datetime) -> TableInputs:
    """One table's inputs with a few queries (after a command)."""
    open_n, problematic = (0, 0) if table is Table.STRATEGIC else load(repos, cell)
    held = repos.meetings.of_table(cell.id, table.value, [STARTED, ENDED])
    return TableInputs(
        open_dossiers=open_n,
        problematic_open=problematic,
        state=repos.meetings.state(cell.id, table.value),
        planned=tuple(repos.meetings.of_table(cell.id, table.value, [PLANNED])),
        taken=_taken(repos.meetings.of_table(cell.id, table.value,
                                             [STARTED, ENDED, LAPSED, CANCELLED]), now),
        last_held=max((m.starts_at for m in held), default=None),
    )


def _taken(meetings: Iterable[MeetingRecord], now: datetime) -> frozenset[datetime]:
    """Automatic slots that must not be planned again: held, lapsed or cancelled by the chair.

    Slots freed by the cadence itself (``cancel_reason == "cadence"``) may come back.
    """
    recent = now - timedelta(days=2)
    return frozenset(
        m.starts_at.astimezone(UTC)
        for m in meetings
        if m.kind == AUTO and m.starts_at > recent
        and (m.status != CANCELLED or m.cancel_reason == "chair")
    )


def recompute_all(repos: Repositories, cells: Sequence[Cell], now: datetime,
                  room_ids: Mapping[str, Mapping[Table, str]]) -> dict[str, list[Output]]:
    """Every table of every cell, with five queries for all inputs (start, daily, bench).

    The messages are grouped per cell (each cell speaks its own language).
    """
    loads = repos.dossiers.open_load([s.value for s in OPEN])
    states = repos.meetings.states_all()
    planned: dict[tuple[str, str], list[MeetingRecord]] = {}
    for meeting in repos.meetings.planned_all():
        planned.setdefault((meeting.cell, meeting.table), []).append(meeting)
    taken: dict[tuple[str, str], list[MeetingRecord]] = {}
    for meeting in repos.meetings.recent_auto_all(now - timedelta(days=2)):
        taken.setdefault((meeting.cell, meeting.table), []).append(meeting)
    last_held = repos.meetings.last_held_all()
    result: dict[str, list[Output]] = {}
    for cell in cells:
        outputs = result.setdefault(cell.id, [])
        for table in cell.tables:
            key = (cell.id, table.value)
            open_n, problematic = (0, 0) if table is Table.STRATEGIC else loads.get(cell.id,
                                                                                    (0, 0))
            inputs = TableInputs(
                open_dossiers=open_n,
                problematic_open=problematic,
                state=states.get(key),
                planned=tuple(planned.get(key, ())),
                taken=_taken(taken.get(key, ()), now),
                last_held=last_held.get(key),
            )
            outputs.extend(recompute_table(repos, cell, table, now,
                                           room_ids.get(cell.id, {}).get(table), inputs))
    return result


def notice(cell: Cell, table: Table) -> timedelta:
    """How far ahead an automatic meeting is planned at least: its earliest reminder.

    So every automatic meeting gets all its reminders, and a change on the morning of a
    meeting day does not summon the table two hours later (the chair can still plan one).
    """
    return _earliest_reminder(cell.tables[table].reminders)


@lru_cache(maxsize=256)
def _earliest_reminder(reminders: tuple[str, ...]) -> timedelta:
    return max((parse_duration(r) for r in reminders), default=timedelta(0))


def target_slot(mode: Mode, cell: Cell, table: Table, now: datetime,
                last_held: datetime | None, taken: frozenset[datetime],
                ahead: timedelta | None = None) -> datetime | None:
    """The first regular slot at least :func:`notice` ahead that is not taken; None asleep
    or at the strategic table."""
    if mode is Mode.SLEEP or table is Table.STRATEGIC:
        return None
    config = cell.tables[table]
    after = now + (ahead if ahead is not None else notice(cell, table))
    for _ in range(_MAX_SKIPS):
        slot = next_meeting(mode, config, cell.tz, after, last_held)
        if slot is None:
            return None
        if slot.astimezone(UTC) not in taken:
            return slot
        after = slot
    return None


def recompute_table(repos: Repositories, cell: Cell, table: Table, now: datetime,
                    room_id: str | None, inputs: TableInputs | None = None) -> list[Output]:
    """Bring one table's mode and automatic meeting in line with its dossiers.

    Planned meetings whose time passed without ``meeting start`` lapse. The next automatic
    meeting is planned, moved (same UID, SEQUENCE raised) or cancelled (METHOD:CANCEL); the
    table is told in its room when the mode changed, with the calendar file of the change.
    """
    if table not in cell.tables:
        return []
    data = inputs or inputs_for(repos, cell, table, now)
    current: list[MeetingRecord] = []
    for meeting in data.planned:
        if meeting.ends_at <= now:
            repos.meetings.update(meeting.id, status=LAPSED)
        else:
            current.append(meeting)
    if table is Table.STRATEGIC:
        mode = Mode.SLEEP
    else:
        mode = cadence_mode(data.open_dossiers, data.problematic_open)
    ahead = notice(cell, table)
    # A slot the chair already planned a meeting at by hand is that meeting: the rhythm does
    # not add an automatic one beside it (two invitations, one labelled "auto").
    by_hand = frozenset(m.starts_at.astimezone(UTC) for m in current if m.kind != AUTO)
    target = target_slot(mode, cell, table, now, data.last_held, data.taken | by_hand, ahead)
    future_auto = [m for m in current if m.kind == AUTO and m.starts_at > now]
    change: tuple[str, MeetingRecord] | None = None
    outputs: list[Output] = []
    for extra in future_auto[1:]:  # never expected; keep one automatic meeting at most
        cancelled = repos.meetings.update(extra.id, status=CANCELLED, cancel_reason="cadence",
                                          sequence=extra.sequence + 1,
                                          ics_posted_sequence=extra.sequence + 1)
        outputs.append(_calendar_reply(cell, repos, "cancelled", cancelled, now, room_id))
    if future_auto:
        kept = future_auto[0]
        if target is None:
            change = ("cancelled", repos.meetings.update(
                kept.id, status=CANCELLED, cancel_reason="cadence", sequence=kept.sequence + 1,
                ics_posted_sequence=kept.sequence + 1))
        elif kept.starts_at <= now + ahead:
            pass  # imminent: announced and reminded already, it stays
        elif kept.starts_at != target:
            change = ("moved", repos.meetings.update(
                kept.id, starts_at=target, sequence=kept.sequence + 1,
                ics_posted_sequence=kept.sequence + 1))
    elif target is not None:
        change = ("planned", repos.meetings.create(
            cell=cell.id, table=table.value, starts_at=target,
            duration_minutes=cell.tables[table].duration_minutes, kind=AUTO, at=now,
            ics_posted=True))
    previous = Mode(data.state.mode) if data.state is not None else Mode.SLEEP
    if data.state is None or data.state.mode != mode.value:
        repos.meetings.put_state(cell.id, table.value, now, mode=mode.value)
    if mode is not previous and table is Table.OPERATIONAL:
        attachment = None
        if change is not None:
            method: Literal["REQUEST", "CANCEL"] = (
                "CANCEL" if change[0] == "cancelled" else "REQUEST")
            attachment = meeting_attachment(cell, repos, change[1], method, now)
        upcoming = next_planned(repos, cell, table, now)
        # Woken by a signal: one message says the new rhythm and, when its first meeting is
        # further than the ad hoc threshold, asks the chair (adhoc.after_signal stays silent
        # then, so the chair never reads "asleep, consider ad hoc" and "now monthly" at once).
        limit = timedelta(days=cell.tables[table].cadence.ad_hoc_if_next_meeting_beyond_days)
        ask = previous is Mode.SLEEP and mode is not Mode.SLEEP and (
            upcoming is None or upcoming.starts_at - now > limit)
        outputs.append(Reply(
            "meeting_cadence",
            {
                "mode": mode.value,
                "previous": previous.value,
                "open": data.open_dossiers,
                "problematic": data.problematic_open,
                "next": when(upcoming.starts_at, cell) if upcoming else None,
                "change": change[0] if change else None,
                "ad_hoc_days": limit.days if ask else None,
            },
            room_id=room_id,
            in_reply=False,
            attachment=attachment,
            notify=ask,
            mentions=chairs(cell, repos, table) if ask else (),
        ))
    elif change is not None:
        outputs.append(_calendar_reply(cell, repos, change[0], change[1], now, room_id))
    return outputs


def _calendar_reply(cell: Cell, repos: Repositories, what: str, meeting: MeetingRecord,
                    now: datetime, room_id: str | None) -> Reply:
    method: Literal["REQUEST", "CANCEL"] = "CANCEL" if what == "cancelled" else "REQUEST"
    return Reply(
        f"msg:meeting.auto_{what}",
        {"when": when(meeting.starts_at, cell)},
        room_id=room_id,
        in_reply=False,
        attachment=meeting_attachment(cell, repos, meeting, method, now),
    )
