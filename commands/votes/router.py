"""``vote``: consensus among the members present (spec §9).

``vote open accept|reject|close|fiche C-…`` (chair, during a meeting with attendance),
``vote yes|no|abstain [id]`` (present members), ``vote status [id]``, ``vote close [id]`` and
``vote cancel [id]`` (chair). Each vote is mirrored by a native poll.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from commands.dossiers.case import parse_code
from commands.dossiers.workflow import get_dossier
from commands.fiche.document import fiche_complete
from commands.framework import (
    Args,
    Command,
    CommandContext,
    Handler,
    Output,
    PollStart,
    Refusal,
    Reply,
    Router,
    UsageError,
)
from commands.model import TRANSITIONS, Status, Table, Who, parse_duration
from commands.votes.closing import (
    TARGET,
    TableVotes,
    cancel_vote,
    cast,
    close_vote,
    current_tally,
    find_vote,
    participants,
    quorum_gap,
    tally_data,
)
from commands.votes.consensus import REASONS, Choice, Kind, State

router = Router("vote")
OPERATIONAL = frozenset({Table.OPERATIONAL})


def _table_votes(ctx: CommandContext) -> TableVotes:
    return TableVotes(ctx.cell, ctx.table, ctx.repos, ctx.scheduler, ctx.now)


_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")


def parse_deadline(raw: str, ctx: CommandContext) -> datetime:
    """``deadline=``: a period (``30m``), a time today (``14:30``) or a local date and time
    (``2026-11-24T14:30``) in the cell's zone; between 1 minute and 12 hours ahead."""
    text = raw.strip()
    local_now = ctx.now.astimezone(ctx.cell.tz)
    try:
        match = _CLOCK.fullmatch(text)
        if match:
            at = local_now.replace(hour=int(match.group(1)), minute=int(match.group(2)),
                                   second=0, microsecond=0)
        elif "T" in text:
            at = datetime.fromisoformat(text)
            if at.tzinfo is not None:
                raise ValueError("local time only")
            at = at.replace(tzinfo=ctx.cell.tz)
        else:
            at = ctx.now + parse_duration(text)
    except ValueError as exc:
        raise UsageError("vote.bad_deadline") from exc
    if not timedelta(minutes=1) <= at - ctx.now <= timedelta(hours=12):
        raise UsageError("vote.bad_deadline")
    return at


@router.command("vote", sub="open", who=Who.CHAIR, tables=OPERATIONAL, min_positional=2,
                max_positional=2, keys=frozenset({"deadline"}), help="vote")
def vote_open(ctx: CommandContext, args: Args) -> Sequence[Output]:
    try:
        kind = Kind(ctx.english(args.positional[0]))
    except ValueError as exc:
        raise UsageError("vote.bad_kind") from exc
    code = parse_code(args.positional[1])
    raw_deadline = args.get("deadline")
    deadline = parse_deadline(raw_deadline, ctx) if raw_deadline is not None else None
    meeting = ctx.repos.meetings.in_progress(ctx.cell.id, ctx.table.value)
    if meeting is None:
        raise Refusal("vote.no_meeting")
    if not ctx.repos.meetings.attendees(meeting.id):
        raise Refusal("vote.no_attendance")
    votes = _table_votes(ctx)
    present = participants(votes, meeting.id, code)
    members, organisations = quorum_gap(votes, present)
    if members or organisations:
        settings = ctx.cell.tables[ctx.table]
        raise Refusal("vote.no_quorum", members=members, organisations=organisations,
                      quorum=settings.quorum,
                      quorum_organisations=settings.quorum_organisations)
    record = get_dossier(ctx.repos, ctx.cell, code)
    status = Status(record.status)
    fiche_version = 0
    if kind in TARGET:
        if TARGET[kind] not in TRANSITIONS[status]:
            allowed = ", ".join(s.value for s in TRANSITIONS[status]) or "—"
            raise Refusal("case.illegal_transition", code=code, current=status.value,
                          to=TARGET[kind].value, allowed=allowed)
    else:
        missing = fiche_complete(ctx.repos, ctx.cell, code)
        if missing:
            raise Refusal("vote.fiche_incomplete", code=code, missing=", ".join(missing))
        fiche = ctx.repos.fiches.get(ctx.cell.id, code)
        fiche_version = fiche.version if fiche else 0
    for other in ctx.repos.votes.open_votes(ctx.cell.id, ctx.table.value):
        if other.code == code:
            raise Refusal("vote.already_open", id=other.id, code=code)
    vote = ctx.repos.votes.create(
        cell=ctx.cell.id, table=ctx.table.value, meeting_id=meeting.id, kind=kind.value,
        code=code, opened_by=ctx.member.user_id, at=ctx.now, deadline=deadline,
        fiche_version=fiche_version,
    )
    ctx.repos.audit.record(
        cell=ctx.cell.id, actor=ctx.member.user_id, action=f"vote_open_{kind.value}",
        at=ctx.now, code=code, decision_ref=f"vote:{vote.id}", meeting_id=meeting.id,
    )
    ctx.scheduler.table_changed(ctx.cell.id, ctx.table)  # its deadline and reminder jobs
    data = {"id": vote.id, "kind": kind.value, "code": code, "eligible": len(present),
            "deadline": deadline.astimezone(ctx.cell.tz).strftime("%H:%M") if deadline else ""}
    return [Reply("vote_opened", data), PollStart(vote.id, "vote_question", data)]


def _reason(ctx: CommandContext, args: Args, choice: Choice) -> str:
    """``reason=`` of a no or abstain: one category of the fixed list (localised words
    accepted), never free text."""
    raw = args.get("reason")
    if raw is None:
        return ""
    if choice is Choice.YES:
        raise UsageError("vote.reason_only_against")
    reason = ctx.english(raw)
    if reason not in REASONS:
        raise UsageError("vote.bad_reason")
    return reason


def _ballot(choice: Choice) -> Handler:
    def handler(ctx: CommandContext, args: Args) -> Sequence[Output]:
        reason = _reason(ctx, args, choice)
        votes = _table_votes(ctx)
        vote = find_vote(votes, args.positional[0] if args.positional else None)
        t, outputs = cast(votes, vote, ctx.member.user_id, choice, "command", reason)
        if t is None:
            return [Reply("msg:vote.deadline_passed", {"id": vote.id}), *outputs]
        data = {"id": vote.id, "code": vote.code, "choice": choice.value, **tally_data(t)}
        return [Reply("msg:vote.ballot_recorded", data), *outputs]

    return handler


for _choice in Choice:
    router.commands.append(
        Command(name="vote", sub=_choice.value, handler=_ballot(_choice), tables=OPERATIONAL,
                max_positional=1, help="vote", keys=frozenset({"reason"}))
    )


@router.command("vote", sub="status", tables=OPERATIONAL, max_positional=1, help="vote")
def vote_status(ctx: CommandContext, args: Args) -> Sequence[Output]:
    votes = _table_votes(ctx)
    if args.positional:
        vote = find_vote(votes, args.positional[0])
    else:
        open_votes = ctx.repos.votes.open_votes(ctx.cell.id, ctx.table.value)
        if not open_votes:
            raise Refusal("vote.none_open")
        vote = open_votes[-1]
    t = current_tally(votes, vote)
    return [Reply("vote_status", {"id": vote.id, "kind": vote.kind, "code": vote.code,
                                  "state": vote.state, **tally_data(t)})]


@router.command("vote", sub="close", who=Who.CHAIR, tables=OPERATIONAL, max_positional=1,
                help="vote")
def vote_close(ctx: CommandContext, args: Args) -> Sequence[Output]:
    votes = _table_votes(ctx)
    vote = find_vote(votes, args.positional[0] if args.positional else None)
    if vote.state != State.OPEN.value:
        raise Refusal("vote.not_open", id=vote.id, state=vote.state)
    return close_vote(votes, vote, actor=ctx.member.user_id, reason="chair")


@router.command("vote", sub="cancel", who=Who.CHAIR, tables=OPERATIONAL, max_positional=1,
                help="vote")
def vote_cancel(ctx: CommandContext, args: Args) -> Sequence[Output]:
    votes = _table_votes(ctx)
    vote = find_vote(votes, args.positional[0] if args.positional else None)
    if vote.state != State.OPEN.value:
        raise Refusal("vote.not_open", id=vote.id, state=vote.state)
    return cancel_vote(votes, vote, actor=ctx.member.user_id, reason="chair")


@router.command("recuse", tables=OPERATIONAL, min_positional=1, max_positional=1, help="vote")
def recuse(ctx: CommandContext, args: Args) -> Sequence[Output]:
    """A present member takes no part in one case's votes in this meeting (spec §9)."""
    code = parse_code(args.positional[0])
    meeting = ctx.repos.meetings.in_progress(ctx.cell.id, ctx.table.value)
    if meeting is None:
        raise Refusal("vote.no_meeting")
    if ctx.member.user_id not in ctx.repos.meetings.attendees(meeting.id):
        raise Refusal("vote.recuse_not_present")
    get_dossier(ctx.repos, ctx.cell, code)
    if not ctx.repos.votes.recuse(meeting.id, code, ctx.member.user_id, ctx.now):
        return [Reply("msg:vote.already_recused", {"code": code})]
    ctx.repos.audit.record(cell=ctx.cell.id, actor=ctx.member.user_id, action="recusal",
                           at=ctx.now, code=code, meeting_id=meeting.id)
    return [Reply("msg:vote.recusal_recorded", {"code": code})]
