"""Meetings of a table (spec §8): planning on the cadence, agenda, reminders, decision list,
calendar invitations, and the jobs a scheduler should hold.

Plain functions over the repositories, like :mod:`commands.dossiers`; they return
:class:`~commands.base.Reply` values and never send anything. ``bot.app.Core`` calls
:func:`recompute_table` in the same unit of work as every change a handler reports through
``ctx.scheduler.table_changed``, and runs the job functions (:func:`reminder`,
:func:`first_meeting_reminder`, :func:`evaluation_check`) for the scheduler in ``bot.jobs``,
which only decides *when*; :func:`job_plan` says *what* should be scheduled, derived from the
database.

Meetings are only ever shown by date, kind and counts, and dossiers by code: the calendar
files carry no case data at all, since people import them into ordinary calendars.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal

from bot.config import WEEKDAYS, Cell, parse_duration
from bot.render import text
from commands.base import Attachment, Output, Reply, Role, SchedulerPort, Table
from commands.cadence import Mode, cadence_mode, next_meeting
from commands.calendar import meeting_ics
from commands.dossiers import OPEN, Status, due_for_evaluation
from commands.members import table_members
from storage.meetings import (
    CANCELLED,
    ENDED,
    LAPSED,
    PLANNED,
    STARTED,
    DecisionRecord,
    MeetingRecord,
    TableStateRecord,
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
    role = Role.MAYOR if table is Table.STRATEGIC else Role.CHAIR
    return tuple(m.user_id for m in table_members(cell, repos, table) if m.role is role)


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


# ---- calendar --------------------------------------------------------------------------


def ics(cell: Cell, repos: Repositories, meeting: MeetingRecord,
        method: Literal["REQUEST", "CANCEL"], now: datetime) -> Attachment:
    """The meeting as an iCalendar attachment: no case data, only the table and the time.

    Callers record ``ics_posted_sequence`` with the change that the file announces.
    """
    table = Table(meeting.table)
    table_name = text(cell.language, f"table.{table.value}")
    organizer = next(iter(chairs(cell, repos, table)), None)
    data = meeting_ics(
        uid=meeting.uid,
        sequence=meeting.sequence,
        method=method,
        start=meeting.starts_at,
        duration=meeting.duration,
        tz=cell.tz,
        summary=text(cell.language, "meeting.ics_summary", cell=cell.name, table=table_name),
        description=text(cell.language, "meeting.ics_description", table=table_name),
        organizer=organizer,
        now=now,
    )
    name = "meeting-cancelled.ics" if method == "CANCEL" else "meeting.ics"
    return Attachment(name, "text/calendar", data)


def meeting_data(meeting: MeetingRecord, cell: Cell) -> dict[str, Any]:
    return {"id": meeting.id, "kind": meeting.kind, "status": meeting.status,
            "when": when(meeting.starts_at, cell), "minutes": meeting.duration_minutes}


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
    target = target_slot(mode, cell, table, now, data.last_held, data.taken, ahead)
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
            attachment = ics(cell, repos, change[1], method, now)
        upcoming = next_planned(repos, cell, table, now)
        outputs.append(Reply(
            "meeting_cadence",
            {
                "mode": mode.value,
                "previous": previous.value,
                "open": data.open_dossiers,
                "problematic": data.problematic_open,
                "next": when(upcoming.starts_at, cell) if upcoming else None,
                "change": change[0] if change else None,
            },
            room_id=room_id,
            in_reply=False,
            attachment=attachment,
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
        attachment=ics(cell, repos, meeting, method, now),
    )


# ---- ad hoc requests -------------------------------------------------------------------


def after_signal(repos: Repositories, cell: Cell, now: datetime) -> list[Output]:
    """A signal while asleep, or long before the next meeting: ask the chair for one."""
    state = repos.meetings.state(cell.id, Table.OPERATIONAL.value)
    asleep = state is None or state.mode == Mode.SLEEP.value
    upcoming = next_planned(repos, cell, Table.OPERATIONAL, now)
    in_progress = repos.meetings.in_progress(cell.id, Table.OPERATIONAL.value)
    cadence = cell.tables[Table.OPERATIONAL].cadence
    limit = timedelta(days=cadence.ad_hoc_if_next_meeting_beyond_days)
    far = upcoming is None or upcoming.starts_at - now > limit
    if in_progress is not None or not (asleep or far):
        return []
    return [Reply(
        "msg:meeting.ad_hoc_needed",
        {
            "asleep": asleep,
            "days": limit.days,
            "next": when(upcoming.starts_at, cell) if upcoming else None,
        },
        notify=True,
        mentions=chairs(cell, repos, Table.OPERATIONAL),
        in_reply=False,
    )]


# ---- the agenda ------------------------------------------------------------------------


def awaiting_consensus(repos: Repositories, cell: Cell) -> list[str]:
    """Codes whose complete feedback fiche has not yet been adopted and sent."""
    from commands.fiche_doc import missing

    open_codes = {d.code for d in repos.dossiers.list(cell.id, [s.value for s in OPEN])}
    return [f.code for f in repos.votes.unsent_fiches(cell.id)
            if f.code in open_codes and not missing(f.values)]


def agenda(repos: Repositories, cell: Cell, table: Table, now: datetime) -> dict[str, Any]:
    """The agenda of the meeting in progress, or else of the next planned meeting.

    Codes and dates only, plus the members' free items (which passed the privacy guard).
    """
    in_progress = repos.meetings.in_progress(cell.id, table.value)
    meeting = in_progress or next_planned(repos, cell, table, now)
    horizon = (meeting.starts_at if meeting else now).astimezone(cell.tz).date()
    sections: dict[str, list[str]] = {"new": [], "evaluation": [], "fiches": [],
                                      "problematic": []}
    if table is Table.OPERATIONAL:
        for record in repos.dossiers.list(cell.id, [s.value for s in OPEN]):
            if record.status in (Status.SIGNALLED, Status.ASSESSING):
                sections["new"].append(record.code)
            if record.status == Status.EVALUATION or (
                record.status == Status.FOLLOW_UP and record.next_evaluation is not None
                and record.next_evaluation <= horizon
            ):
                sections["evaluation"].append(record.code)
            if record.problematic:
                sections["problematic"].append(record.code)
        sections["fiches"] = awaiting_consensus(repos, cell)
    items = repos.meetings.items(cell.id, table.value)
    following: datetime | None = None
    if meeting is not None:
        planned_next = next_planned(repos, cell, table, now, after=meeting.starts_at)
        following = planned_next.starts_at if planned_next else following_slot(
            repos, cell, table, meeting.starts_at)
    return {
        "table": table.value,
        "meeting": meeting_data(meeting, cell) if meeting else None,
        "in_progress": in_progress is not None,
        **sections,
        "items": [{"n": i, "text": item.text} for i, item in enumerate(items, 1)],
        "next": when(following, cell) if following else None,
    }


def following_slot(repos: Repositories, cell: Cell, table: Table,
                   after: datetime) -> datetime | None:
    """The regular slot after a meeting, before it is planned (planned once that one opens)."""
    mode, _, _ = current_mode(repos, cell, table)
    if mode is Mode.SLEEP:
        return None
    return next_meeting(mode, cell.tables[table], cell.tz, after, after)


def agenda_summary(full: Mapping[str, Any]) -> dict[str, Any]:
    """The agenda with codes and counts only: the free items' text stays out (reminders)."""
    summary = {key: full[key] for key in ("table", "meeting", "new", "evaluation", "fiches",
                                          "problematic", "next")}
    summary["item_count"] = len(full["items"])
    return summary


# ---- the decision list -----------------------------------------------------------------


def decision_list(repos: Repositories, cell: Cell, table: Table, meeting: MeetingRecord,
                  now: datetime) -> dict[str, Any]:
    """What the meeting decided, by code: transitions, flags, trajectories and evaluation
    dates, votes and their outcomes, fiches sent; who took part; the next meeting.

    Individual ballots and fiche edits are not decisions and stay out (``vote status`` and
    ``case show`` have them).
    """
    rows: list[dict[str, Any]] = []
    if table is Table.OPERATIONAL and meeting.started_at is not None:
        for record in repos.meetings.decisions_between(cell.id, meeting.started_at, now):
            row = _decision(repos, cell, record)
            if row is not None:
                rows.append(row)
    upcoming = next_planned(repos, cell, table, now)
    return {
        "table": table.value,
        "meeting": meeting_data(meeting, cell),
        "started": when(meeting.started_at or now, cell),
        "ended": when(now, cell),
        "decisions": rows,
        "present": repos.meetings.attendees(meeting.id),
        "next": when(upcoming.starts_at, cell) if upcoming else None,
    }


#: Audit actions that are steps towards a decision, not decisions.
_NOT_DECISIONS = ("ballot_", "vote_open_", "fiche_edit")
_OUTCOMES = {"vote_adopted": "adopted", "vote_not_adopted": "not_adopted",
             "vote_cancelled": "cancelled"}


def _decision(repos: Repositories, cell: Cell, record: DecisionRecord) -> dict[str, Any] | None:
    if record.action.startswith(_NOT_DECISIONS):
        return None
    row: dict[str, Any] = {"code": record.code, "action": record.action,
                           "from": record.from_status, "to": record.to_status}
    if record.action == "signal":
        row["kind"] = "signal"
    elif record.action.startswith("flag_"):
        row["kind"] = "flag"
        row["flag"] = record.action.removeprefix("flag_")
    elif record.action == "scenario":
        row["kind"] = "scenario"
        dossier = repos.dossiers.get(cell.id, record.code)
        row["scenario"] = dossier.scenario if dossier else ""
        row["evaluation"] = (dossier.next_evaluation.isoformat()
                             if dossier and dossier.next_evaluation else "")
    elif record.action in _OUTCOMES:
        row["kind"] = "vote"
        row["outcome"] = _OUTCOMES[record.action]
        vote_id = record.decision_ref.removeprefix("vote:")
        vote = repos.votes.get(int(vote_id)) if vote_id.isdigit() else None
        row["vote"] = vote.id if vote else ""
        row["proposal"] = vote.kind if vote else ""
    elif record.action == "fiche_sent":
        row["kind"] = "fiche_sent"
    elif record.from_status and record.to_status:
        row["kind"] = "transition"
    else:
        row["kind"] = "other"
    return row


# ---- jobs: what runs, and when ---------------------------------------------------------


def reminder(repos: Repositories, cell: Cell, table: Table, meeting_id: int, sequence: int,
             offset: timedelta, now: datetime, grace: timedelta) -> list[Output]:
    """A reminder of a planned meeting to every member of the table, with the agenda summary.

    Nothing when the meeting changed, began, or the reminder is later than the grace period.
    """
    meeting = repos.meetings.get(meeting_id)
    if meeting is None or meeting.status != PLANNED or meeting.sequence != sequence:
        return []
    due = meeting.starts_at - offset
    if now - due > grace or now >= meeting.starts_at:
        log.info("a reminder was dropped: later than the grace period")
        return []
    summary = agenda_summary(agenda(repos, cell, table, now))
    summary["meeting"] = meeting_data(meeting, cell)
    return [Reply(
        "meeting_reminder",
        {**summary, "late": now - due > timedelta(minutes=5)},
        notify=True,
        mentions=members_of(cell, repos, table),
        in_reply=False,
    )]


def first_meeting_due(state: TableStateRecord) -> datetime:
    return (state.first_meeting_reminded_at or state.created_at) + FIRST_MEETING_EVERY


def first_meeting_reminder(repos: Repositories, cell: Cell, now: datetime) -> list[Output]:
    """Until the operational table has met once, its chair is reminded each week."""
    table = Table.OPERATIONAL
    state = repos.meetings.state(cell.id, table.value)
    if state is None or state.met_once or first_meeting_due(state) > now:
        return []
    repos.meetings.put_state(cell.id, table.value, now, first_meeting_reminded_at=now)
    upcoming = next_planned(repos, cell, table, now)
    return [Reply(
        "msg:meeting.first_meeting",
        {"next": when(upcoming.starts_at, cell) if upcoming else None},
        notify=True,
        mentions=chairs(cell, repos, table),
        in_reply=False,
    )]


def evaluation_check(repos: Repositories, scheduler: SchedulerPort, cell: Cell,
                     now: datetime) -> list[Output]:
    """Follow-up dossiers whose evaluation date arrived go on the agenda (``evaluation``)."""
    if Table.OPERATIONAL not in cell.tables:
        return []
    moved = due_for_evaluation(repos, scheduler, cell, now.astimezone(cell.tz).date(), now)
    if not moved:
        return []
    upcoming = next_planned(repos, cell, Table.OPERATIONAL, now)
    return [Reply(
        "msg:meeting.evaluation_due",
        {"codes": moved, "next": when(upcoming.starts_at, cell) if upcoming else None},
        in_reply=False,
    )]


JobKind = Literal["reminder", "lapse", "first_meeting"]


@dataclass(frozen=True)
class JobSpec:
    """A job that should exist: ``key`` is its idempotency key (a synthetic event id)."""

    kind: JobKind
    key: str
    cell: str
    table: Table
    run_at: datetime
    meeting_id: int = 0
    sequence: int = 0
    offset: timedelta = timedelta(0)
    once: bool = True

    @property
    def job_id(self) -> str:
        return f"{self.cell}|{self.table.value}|{self.key}"


@dataclass
class JobPlan:
    jobs: list[JobSpec] = field(default_factory=list)
    dropped: int = 0


def reminder_key(meeting: MeetingRecord, offset: timedelta) -> str:
    return f"reminder:{meeting.id}:{meeting.sequence}:{int(offset.total_seconds())}"


def job_plan(repos: Repositories, cells: Sequence[Cell], now: datetime, grace: timedelta,
             tables: set[tuple[str, Table]] | None = None) -> JobPlan:
    """The jobs the database calls for (all tables, or only ``tables``).

    A reminder whose time passed less than ``grace`` ago and was not sent is due now; an
    older one is marked done without being sent, so it can never go out late or twice.
    """
    plan = JobPlan()
    by_id = {c.id: c for c in cells}

    def wanted(cell_id: str, table: Table) -> bool:
        return cell_id in by_id and table in by_id[cell_id].tables and (
            tables is None or (cell_id, table) in tables)

    for meeting in repos.meetings.planned_all():
        table = Table(meeting.table)
        if not wanted(meeting.cell, table):
            continue
        cell = by_id[meeting.cell]
        plan.jobs.append(JobSpec("lapse", f"lapse:{meeting.id}:{meeting.sequence}",
                                 cell.id, table, max(meeting.ends_at, now), meeting.id,
                                 meeting.sequence, once=False))
        for offset in cell.tables[table].reminder_offsets:
            key = reminder_key(meeting, offset)
            due = meeting.starts_at - offset
            if repos.events.is_processed(key):
                continue
            if due > now:
                run_at = due
            elif now - due <= grace and now < meeting.starts_at:
                run_at = now
            else:
                repos.events.mark_processed(key, f"job:{cell.id}", now)
                plan.dropped += 1
                continue
            plan.jobs.append(JobSpec("reminder", key, cell.id, table, run_at, meeting.id,
                                     meeting.sequence, offset))
    states = repos.meetings.states_all()
    for cell in cells:
        if not wanted(cell.id, Table.OPERATIONAL):
            continue
        state = states.get((cell.id, Table.OPERATIONAL.value))
        if state is None or state.met_once:
            continue
        due = first_meeting_due(state)
        # Idempotent through ``first_meeting_reminded_at``, not through a processed id.
        plan.jobs.append(JobSpec("first_meeting", f"first-meeting:{cell.id}:{due.isoformat()}",
                                 cell.id, Table.OPERATIONAL, max(due, now), once=False))
    if plan.dropped:
        log.info("%d missed reminder(s) older than the grace period dropped", plan.dropped)
    return plan


# ---- livcr status ----------------------------------------------------------------------


def status_line(repos: Repositories, cell: Cell, table: Table, now: datetime) -> str:
    """Mode and next meeting of one table, for ``livcr status`` (no codes)."""
    mode, _, _ = current_mode(repos, cell, table)
    upcoming = next_planned(repos, cell, table, now)
    in_progress = repos.meetings.in_progress(cell.id, table.value)
    label = "ad hoc only" if table is Table.STRATEGIC else mode.value
    parts = [f"mode {label}"]
    if in_progress is not None:
        w = when(in_progress.starts_at, cell)
        parts.append(f"meeting in progress since {w['date']} {w['time']}")
    if upcoming is not None:
        w = when(upcoming.starts_at, cell)
        parts.append(f"next meeting {w['weekday']} {w['date']} {w['time']} {cell.timezone} "
                     f"({upcoming.kind})")
    else:
        parts.append("no meeting planned")
    return ", ".join(parts)
