"""Jobs: the reminders and checks a scheduler runs (their decisions), and the plan of jobs
the database calls for. ``bot.core.jobs`` only decides *when*."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from commands.dossiers.workflow import due_for_evaluation
from commands.framework import Output, Reply, SchedulerPort
from commands.meetings.agenda import agenda, agenda_summary
from commands.meetings.common import (
    FIRST_MEETING_EVERY,
    chairs,
    meeting_data,
    members_of,
    next_planned,
    when,
)
from commands.meetings.record import AUTO_END, OVERRUN_REMINDER
from commands.model import Cell, Table
from storage.meetings import (
    PLANNED,
    MeetingRecord,
    TableStateRecord,
)
from storage.repositories import Repositories

log = logging.getLogger(__name__)

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


JobKind = Literal["reminder", "lapse", "first_meeting", "vote_deadline", "vote_reminder",
                  "overrun", "auto_end"]


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
    vote_id: int = 0

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
    for meeting in repos.meetings.started_all():
        table = Table(meeting.table)
        if not wanted(meeting.cell, table):
            continue
        # The chair is reminded once (a processed id); the automatic end is idempotent (it
        # ends only a meeting still in progress).
        key = f"overrun:{meeting.id}"
        if not repos.events.is_processed(key):
            plan.jobs.append(JobSpec("overrun", key, meeting.cell, table,
                                     max(meeting.ends_at + OVERRUN_REMINDER, now), meeting.id))
        plan.jobs.append(JobSpec("auto_end", f"auto-end:{meeting.id}", meeting.cell, table,
                                 max(meeting.ends_at + AUTO_END, now), meeting.id, once=False))
    for vote in repos.votes.open_all():
        table = Table(vote.table)
        if not wanted(vote.cell, table):
            continue
        cell = by_id[vote.cell]
        if vote.deadline is not None:
            # Closing at the deadline is idempotent (only open votes past it close).
            plan.jobs.append(JobSpec("vote_deadline", f"vote-deadline:{vote.id}", cell.id, table,
                                     max(vote.deadline, now), once=False, vote_id=vote.id))
        key = f"vote-reminder:{vote.id}"
        due = vote.opened_at + cell.tables[table].vote_reminder_after
        if repos.events.is_processed(key) or (vote.deadline is not None
                                              and due >= vote.deadline):
            continue
        plan.jobs.append(JobSpec("vote_reminder", key, cell.id, table, max(due, now),
                                 vote_id=vote.id))
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
