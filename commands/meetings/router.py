"""``meeting`` and ``present``: the next meeting and why, requests, planning, the meeting in
progress and who takes part in it (spec §6, §8).

The cadence itself (automatic meetings, announcements) is
:mod:`commands.meetings.recompute`, run by the core after every change these handlers report
with ``ctx.scheduler.table_changed``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, time, timedelta

from commands.framework import Args, CommandContext, Output, Refusal, Reply, Router, UsageError
from commands.meetings.agenda import agenda
from commands.meetings.cadence import is_working_day
from commands.meetings.common import (
    ADHOC,
    START_WINDOW_AFTER,
    START_WINDOW_BEFORE,
    chairs,
    current_mode,
    local_start,
    meeting_attachment,
    meeting_data,
    next_planned,
    when,
)
from commands.meetings.record import confidentiality, end_meeting
from commands.model import Who, chair_role
from storage.meetings import CANCELLED, LAPSED, PLANNED, STARTED

router = Router("meeting")

MAX_REASON = 300
MAX_AHEAD = timedelta(days=366)
DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
TIME = re.compile(r"^(\d{1,2})[:.hu](\d{2})$")


def parse_date(raw: str) -> date:
    match = DATE.match(raw.strip())
    if not match:
        raise UsageError("meeting.bad_date")
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError as exc:
        raise UsageError("meeting.bad_date") from exc


def parse_time(raw: str) -> time:
    match = TIME.match(raw.strip().lower())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise UsageError("meeting.bad_time")
    return time(int(match.group(1)), int(match.group(2)))


def is_chair(ctx: CommandContext) -> bool:
    return ctx.member.role is chair_role(ctx.table)


def _changed(ctx: CommandContext) -> None:
    ctx.scheduler.table_changed(ctx.cell.id, ctx.table)


@router.command("meeting", help="meeting")
def show(ctx: CommandContext, args: Args) -> Sequence[Output]:
    mode, open_n, problematic = current_mode(ctx.repos, ctx.cell, ctx.table)
    in_progress = ctx.repos.meetings.in_progress(ctx.cell.id, ctx.table.value)
    upcoming = next_planned(ctx.repos, ctx.cell, ctx.table, ctx.now)
    state = ctx.repos.meetings.state(ctx.cell.id, ctx.table.value)
    return [Reply("meeting_show", {
        "table": ctx.table.value,
        "mode": mode.value,
        "open": open_n,
        "problematic": problematic,
        "met_once": bool(state and state.met_once),
        "in_progress": meeting_data(in_progress, ctx.cell) if in_progress else None,
        "next": meeting_data(upcoming, ctx.cell) if upcoming else None,
        "present": (ctx.repos.meetings.attendees(in_progress.id) if in_progress else []),
    })]


@router.command("meeting", sub="request", max_positional=100, help="meeting")
def request(ctx: CommandContext, args: Args) -> Sequence[Output]:
    reason = " ".join(args.positional).strip()
    if not reason:
        raise UsageError("meeting.reason_missing")
    if len(reason) > MAX_REASON:
        raise UsageError("meeting.reason_too_long", limit=MAX_REASON, length=len(reason))
    ctx.repos.audit.record(cell=ctx.cell.id, actor=ctx.member.user_id, action="meeting_request",
                           at=ctx.now, decision_ref=ctx.incoming.event_id[:64])
    upcoming = next_planned(ctx.repos, ctx.cell, ctx.table, ctx.now)
    return [Reply(
        "msg:meeting.requested",
        {"sender": ctx.member.user_id, "reason": reason,
         "next": when(upcoming.starts_at, ctx.cell) if upcoming else None},
        notify=True,
        mentions=chairs(ctx.cell, ctx.repos, ctx.table),
    )]


@router.command("meeting", sub="schedule", who=Who.CHAIR, min_positional=2, max_positional=2,
                help="meeting")
def schedule(ctx: CommandContext, args: Args) -> Sequence[Output]:
    day = parse_date(args.positional[0])
    at = parse_time(args.positional[1])
    try:
        start = local_start(day, at, ctx.cell)
    except ValueError as exc:
        raise UsageError("meeting.nonexistent_time") from exc
    if start <= ctx.now:
        raise UsageError("meeting.in_past")
    if start - ctx.now > MAX_AHEAD:
        raise UsageError("meeting.too_far")
    for planned in ctx.repos.meetings.of_table(ctx.cell.id, ctx.table.value, [PLANNED]):
        if planned.starts_at == start:
            raise Refusal("meeting.already_planned", when=when(start, ctx.cell))
    meeting = ctx.repos.meetings.create(
        cell=ctx.cell.id, table=ctx.table.value, starts_at=start,
        duration_minutes=ctx.cell.tables[ctx.table].duration_minutes, kind=ADHOC,
        at=ctx.now, ics_posted=True,
    )
    ctx.repos.audit.record(cell=ctx.cell.id, actor=ctx.member.user_id,
                           action="meeting_schedule", at=ctx.now,
                           decision_ref=f"meeting:{meeting.id}")
    _changed(ctx)
    return [Reply(
        "msg:meeting.scheduled",
        {"when": when(start, ctx.cell), "holiday": not is_working_day(day),
         "minutes": meeting.duration_minutes},
        attachment=meeting_attachment(ctx.cell, ctx.repos, meeting, "REQUEST", ctx.now),
    )]


@router.command("meeting", sub="cancel", who=Who.CHAIR, max_positional=1, help="meeting")
def cancel(ctx: CommandContext, args: Args) -> Sequence[Output]:
    candidates = [m for m in ctx.repos.meetings.of_table(ctx.cell.id, ctx.table.value, [PLANNED])
                  if m.ends_at > ctx.now]
    if args.positional:
        day = parse_date(args.positional[0])
        candidates = [m for m in candidates
                      if m.starts_at.astimezone(ctx.cell.tz).date() == day]
    if not candidates:
        raise Refusal("meeting.nothing_to_cancel")
    target = candidates[0]
    meeting = ctx.repos.meetings.update(target.id, status=CANCELLED, cancel_reason="chair",
                                        sequence=target.sequence + 1,
                                        ics_posted_sequence=target.sequence + 1)
    ctx.repos.audit.record(cell=ctx.cell.id, actor=ctx.member.user_id, action="meeting_cancel",
                           at=ctx.now, decision_ref=f"meeting:{meeting.id}")
    _changed(ctx)
    return [Reply(
        "msg:meeting.cancelled",
        {"when": when(meeting.starts_at, ctx.cell)},
        attachment=meeting_attachment(ctx.cell, ctx.repos, meeting, "CANCEL", ctx.now),
    )]


@router.command("meeting", sub="start", who=Who.CHAIR, help="meeting")
def start(ctx: CommandContext, args: Args) -> Sequence[Output]:
    running = ctx.repos.meetings.in_progress(ctx.cell.id, ctx.table.value)
    if running is not None:
        raise Refusal("meeting.already_started",
                      since=when(running.started_at or running.starts_at, ctx.cell))
    near = [
        m for m in ctx.repos.meetings.of_table(ctx.cell.id, ctx.table.value, [PLANNED, LAPSED])
        if ctx.now - START_WINDOW_AFTER <= m.starts_at
        <= ctx.now + START_WINDOW_BEFORE
    ]
    near.sort(key=lambda m: abs((m.starts_at - ctx.now).total_seconds()))
    if near:
        chosen = near[0]
    else:
        chosen = ctx.repos.meetings.create(
            cell=ctx.cell.id, table=ctx.table.value, starts_at=ctx.now,
            duration_minutes=ctx.cell.tables[ctx.table].duration_minutes, kind=ADHOC,
            at=ctx.now,
        )
    meeting = ctx.repos.meetings.update(chosen.id, status=STARTED, started_at=ctx.now)
    ctx.repos.meetings.add_attendance(meeting.id, ctx.member.user_id, ctx.now)
    ctx.repos.meetings.put_state(ctx.cell.id, ctx.table.value, ctx.now, met_once=True)
    ctx.repos.audit.record(cell=ctx.cell.id, actor=ctx.member.user_id, action="meeting_start",
                           at=ctx.now, decision_ref=f"meeting:{meeting.id}")
    _changed(ctx)
    data = agenda(ctx.repos, ctx.cell, ctx.table, ctx.now)
    return [Reply("meeting_started", {**data, "planned": bool(near)}), confidentiality()]


@router.command("meeting", sub="end", who=Who.CHAIR, help="meeting")
def end(ctx: CommandContext, args: Args) -> Sequence[Output]:
    running = ctx.repos.meetings.in_progress(ctx.cell.id, ctx.table.value)
    if running is None:
        raise Refusal("meeting.none_in_progress")
    # Open votes close with the meeting: adopted only with every present member's yes.
    return end_meeting(ctx.repos, ctx.cell, ctx.table, ctx.scheduler, running,
                       ctx.member.user_id, ctx.now)


@router.command("present", help="present")
def present(ctx: CommandContext, args: Args) -> Sequence[Output]:
    running = ctx.repos.meetings.in_progress(ctx.cell.id, ctx.table.value)
    if running is None:
        raise Refusal("meeting.none_in_progress")
    fresh = ctx.repos.meetings.add_attendance(running.id, ctx.member.user_id, ctx.now)
    if fresh:  # present after all: the apology no longer stands
        ctx.repos.apologies.withdraw(running.id, ctx.member.user_id)
    count = len(ctx.repos.meetings.attendees(running.id))
    # Being present confirms the confidentiality statement posted at ``meeting start``.
    key = "msg:record.present" if fresh else "msg:meeting.already_present"
    return [Reply(key, {"count": count, "user_id": ctx.member.user_id})]
