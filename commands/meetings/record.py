"""The meeting record (spec §13): the confidentiality statement, apologies, the end of a
meeting (by the chair or, three hours after its planned end, by the secretary) and the
chair's reminder 30 minutes after the planned end.

``absent [contribution=yes]`` is the one command here; ``present`` and ``meeting start|end``
(:mod:`commands.meetings.router`) use the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from commands.dossiers.outcome import aftercare_reviewed
from commands.framework import (
    Args,
    CommandContext,
    Output,
    Refusal,
    Reply,
    Router,
    SchedulerPort,
    UsageError,
)
from commands.meetings.common import chairs, next_planned, when
from commands.meetings.decisions import decision_list
from commands.model import Cell, Table
from commands.votes.closing import TableVotes, close_meeting_votes
from storage.meetings import ENDED, STARTED, MeetingRecord
from storage.repositories import Repositories

router = Router("record")

#: After the planned end, the chair is reminded once that the meeting is still open...
OVERRUN_REMINDER = timedelta(minutes=30)
#: ...and at this point the secretary ends it; open votes are not adopted.
AUTO_END = timedelta(hours=3)


def confidentiality() -> Reply:
    """The statement posted at ``meeting start`` (art. 458ter Sw.); ``present`` confirms it."""
    return Reply("msg:record.confidentiality", in_reply=False)


def end_meeting(repos: Repositories, cell: Cell, table: Table, scheduler: SchedulerPort,
                meeting: MeetingRecord, actor: str, now: datetime, *,
                automatic: bool = False) -> list[Output]:
    """Close the meeting: open votes close with it (adopted only with every present
    member's yes; never when the secretary ends it), then the decision list."""
    votes = TableVotes(cell, table, repos, scheduler, now)
    closing = close_meeting_votes(votes, meeting.id, actor, adopt=not automatic)
    ended = repos.meetings.update(meeting.id, status=ENDED, ended_at=now)
    data = decision_list(repos, cell, table, ended, now)
    reviewed: list[Output] = []
    if table is Table.OPERATIONAL:
        day = max(meeting.starts_at, now).astimezone(cell.tz).date()
        codes = aftercare_reviewed(repos, cell, day)
        if codes:
            reviewed.append(Reply("msg:aftercare.reviewed", {"codes": codes}, in_reply=False))
    repos.meetings.close_items(cell.id, table.value, ended.id)
    repos.audit.record(cell=cell.id, actor=actor,
                       action="meeting_auto_end" if automatic else "meeting_end", at=now,
                       decision_ref=f"meeting:{ended.id}")
    scheduler.table_changed(cell.id, table)
    if automatic:
        return [Reply("msg:record.auto_ended", in_reply=False), *closing,
                Reply("meeting_decisions", data, in_reply=False), *reviewed]
    return [*closing, Reply("meeting_decisions", data), *reviewed]


def overrun_reminder(repos: Repositories, cell: Cell, table: Table, meeting_id: int,
                     now: datetime) -> list[Output]:
    """Once, 30 minutes after the planned end of a meeting still open: mention the chair."""
    meeting = repos.meetings.get(meeting_id)
    if meeting is None or meeting.status != STARTED or now < meeting.ends_at + OVERRUN_REMINDER:
        return []
    return [Reply("msg:record.overrun",
                  {"end": when(meeting.ends_at, cell)["time"],
                   "auto": when(meeting.ends_at + AUTO_END, cell)["time"]},
                  notify=True, mentions=chairs(cell, repos, table), in_reply=False)]


def auto_end(repos: Repositories, cell: Cell, table: Table, scheduler: SchedulerPort,
             meeting_id: int, now: datetime) -> list[Output]:
    """Three hours after its planned end the secretary ends a meeting still open."""
    meeting = repos.meetings.get(meeting_id)
    if meeting is None or meeting.status != STARTED or now < meeting.ends_at + AUTO_END:
        return []
    return end_meeting(repos, cell, table, scheduler, meeting, "livcr-bot", now, automatic=True)


@router.command("absent", keys=frozenset({"contribution"}), help="absent")
def absent(ctx: CommandContext, args: Args) -> Sequence[Output]:
    raw = args.get("contribution")
    contribution = False
    if raw is not None:
        word = ctx.english(raw)
        if word not in ("yes", "no"):
            raise UsageError("record.bad_contribution")
        contribution = word == "yes"
    running = ctx.repos.meetings.in_progress(ctx.cell.id, ctx.table.value)
    meeting = running or next_planned(ctx.repos, ctx.cell, ctx.table, ctx.now)
    if meeting is None:
        raise Refusal("record.absent_no_meeting")
    if running is not None and ctx.member.user_id in ctx.repos.meetings.attendees(running.id):
        raise Refusal("record.absent_already_present")
    ctx.repos.apologies.put(meeting.id, ctx.member.user_id, contribution, ctx.now)
    ctx.repos.audit.record(cell=ctx.cell.id, actor=ctx.member.user_id, action="apology",
                           at=ctx.now, decision_ref=f"meeting:{meeting.id}",
                           meeting_id=meeting.id)
    return [Reply("msg:record.absent_recorded",
                  {"when": when(meeting.starts_at, ctx.cell), "contribution": contribution})]
