"""The consensus engine (spec §9), shared by the ``vote`` command, poll responses, the
fiche (an edit cancels its vote) and meeting end (open votes close).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from commands.dossiers import workflow as dossiers
from commands.dossiers.outcome import plan_aftercare, signaller_outcome
from commands.fiche.document import delivery
from commands.framework import Output, PollEnd, Refusal, Reply, SchedulerPort, UsageError
from commands.members.roster import table_members
from commands.model import Cell, Status, Table
from commands.votes.consensus import REASONS, Choice, Kind, State, Tally, outcome, tally
from storage.repositories import Repositories
from storage.votes import VoteRecord

TARGET = {Kind.ACCEPT: Status.FOLLOW_UP, Kind.REJECT: Status.NOT_RETAINED,
          Kind.CLOSE: Status.CLOSED}


@dataclass(frozen=True)
class TableVotes:
    """The votes of one table at one moment (its repositories, scheduler port and "now");
    commands and poll answers share the same logic through it.

    A ballot counts only from a member who is on the roster, present and trusted, when cast
    and at close (:meth:`trusted`).
    """

    cell: Cell
    table: Table
    repos: Repositories
    scheduler: SchedulerPort
    now: datetime

    def trusted(self, user_id: str) -> bool:
        """Whether a member's ballots count (spec §11): not blocked by an identity change.

        The edge acts only on commands and poll answers from a trusted device of their
        sender, so a ballot was cast from one; what can change before the vote closes is the
        member's identity, which blocks them (``storage.identities``) until a chair re-trusts.
        """
        record = self.repos.identities.get(user_id)
        return record is None or not record.blocked


def participants(votes: TableVotes, meeting_id: int, code: str) -> tuple[str, ...]:
    """Who may vote on ``code`` now: recorded present in the meeting, on the table's
    (effective) roster, on a trusted device, and not recused for that case."""
    roster = {m.user_id for m in table_members(votes.cell, votes.repos, votes.table)}
    recused = set(votes.repos.votes.recused(meeting_id, code))
    return tuple(u for u in votes.repos.meetings.attendees(meeting_id)
                 if u in roster and u not in recused and votes.trusted(u))


def quorum_gap(votes: TableVotes, members: Sequence[str]) -> tuple[int, int]:
    """(members, organisations) still missing for a quorum among ``members`` (spec §9)."""
    settings = votes.cell.tables[votes.table]
    by_id = {m.user_id: m for m in table_members(votes.cell, votes.repos, votes.table)}
    organisations = {by_id[u].organisation.strip().casefold() for u in members
                     if u in by_id and by_id[u].organisation.strip()}
    return (max(0, settings.quorum - len(members)),
            max(0, settings.quorum_organisations - len(organisations)))


def current_tally(votes: TableVotes, vote: VoteRecord) -> Tally:
    eligible = participants(votes, vote.meeting_id, vote.code)
    ballots = [(b.user_id, Choice(b.choice)) for b in votes.repos.votes.ballots(vote.id)]
    return tally(eligible, ballots)


def tally_data(t: Tally) -> dict[str, object]:
    return {
        "yes": list(t.yes), "no": list(t.no), "abstain": list(t.abstain),
        "missing": list(t.missing), "eligible": len(t.eligible),
    }


def reason_counts(votes: TableVotes, vote: VoteRecord, t: Tally) -> dict[str, int]:
    """How many counted no/abstain ballots gave each reason category."""
    latest = {b.user_id: b for b in votes.repos.votes.ballots(vote.id)}
    counts: dict[str, int] = {}
    for user in (*t.no, *t.abstain):
        reason = latest[user].reason if user in latest else ""
        if reason:
            counts[reason] = counts.get(reason, 0) + 1
    return {r: counts[r] for r in REASONS if r in counts}


def find_vote(votes: TableVotes, raw: str | None) -> VoteRecord:
    """The vote named by id, or the only open vote of this table."""
    if raw is not None:
        try:
            vote_id = int(raw.lstrip("#"))
        except ValueError as exc:
            raise UsageError("vote.bad_id") from exc
        vote = votes.repos.votes.get(vote_id, lock=True)
        if vote is None or vote.cell != votes.cell.id or vote.table != votes.table.value:
            raise Refusal("vote.not_found", id=vote_id)
        return vote
    open_votes = votes.repos.votes.open_votes(votes.cell.id, votes.table.value)
    if not open_votes:
        raise Refusal("vote.none_open")
    if len(open_votes) > 1:
        raise Refusal("vote.which", ids=", ".join(f"#{v.id}" for v in open_votes))
    locked = votes.repos.votes.get(open_votes[0].id, lock=True)
    assert locked is not None
    return locked


def close_vote(votes: TableVotes, vote: VoteRecord, *, actor: str, reason: str,
               adopt: bool = True) -> list[Output]:
    """Close a vote now: adopted only with every eligible member's yes; apply the effect.

    ``adopt=False`` (a meeting the secretary ends) closes it as not adopted whatever the
    ballots (spec §13)."""
    t = current_tally(votes, vote)
    short = quorum_gap(votes, t.eligible) != (0, 0)
    result = State.NOT_ADOPTED if short or not adopt else outcome(t)
    recused = len(votes.repos.votes.recused(vote.meeting_id, vote.code))
    votes.repos.votes.update(vote.id, state=result.value, closed_by=actor, closed_at=votes.now,
                             close_reason=reason, participants=len(t.eligible))
    votes.repos.audit.record(
        cell=votes.cell.id, actor=actor, action=f"vote_{result.value}", at=votes.now,
        code=vote.code, decision_ref=f"vote:{vote.id}", meeting_id=vote.meeting_id,
    )
    data = {"id": vote.id, "kind": vote.kind, "code": vote.code, "state": result.value,
            "reason": reason, "short": short, "recused": recused,
            "reasons": reason_counts(votes, vote, t), **tally_data(t)}
    outputs: list[Output] = [
        Reply("vote_closed", data, in_reply=reason == "chair"),
        PollEnd(vote.id, "msg:vote.poll_ended", {"state": result.value, "code": vote.code}),
    ]
    if result is not State.ADOPTED:
        return outputs
    kind = Kind(vote.kind)
    ref = f"vote:{vote.id}"
    if kind in TARGET:
        before = dossiers.get_dossier(votes.repos, votes.cell, vote.code).status
        record = dossiers.transition(
            votes.repos, votes.scheduler, votes.cell, vote.code, TARGET[kind], actor=actor,
            at=votes.now, decision_ref=ref, action=kind.value, meeting_id=vote.meeting_id,
        )
        if record.status == Status.CLOSED.value:
            dates = plan_aftercare(votes.repos, votes.cell, vote.code, votes.now)
            if dates:
                outputs.append(Reply("msg:aftercare.planned",
                                     {"code": vote.code,
                                      "dates": [d.isoformat() for d in dates]},
                                     in_reply=False))
        outputs.extend(signaller_outcome(votes.repos, votes.cell, before, record, votes.now))
    else:
        outputs.extend(delivery(votes.repos, votes.cell, vote.code, votes.now,
                                participants=len(t.eligible), decided=votes.now,
                                recused=recused))
    return outputs


def expire(votes: TableVotes) -> list[Output]:
    """Close the open votes of this table whose deadline passed."""
    outputs: list[Output] = []
    for vote in votes.repos.votes.open_votes(votes.cell.id, votes.table.value):
        if vote.deadline is not None and vote.deadline <= votes.now:
            outputs.extend(close_vote(votes, vote, actor="livcr-bot", reason="deadline"))
    return outputs


def remind_non_voters(votes: TableVotes, vote_id: int) -> list[Output]:
    """Once, after ``vote_reminder``: mention the eligible members who have not voted."""
    vote = votes.repos.votes.get(vote_id)
    if vote is None or vote.state != State.OPEN.value:
        return []
    missing = current_tally(votes, vote).missing
    if not missing:
        return []
    return [Reply("msg:vote.reminder", {"id": vote.id, "code": vote.code,
                                        "missing": list(missing)},
                  notify=True, mentions=missing, in_reply=False)]


def close_meeting_votes(votes: TableVotes, meeting_id: int, actor: str,
                        adopt: bool = True) -> list[Output]:
    """At meeting end every open vote closes: adopted only with all yes (never when
    ``adopt`` is False: the secretary ended the meeting)."""
    outputs: list[Output] = []
    for vote in votes.repos.votes.of_meeting(meeting_id):
        if vote.state == State.OPEN.value:
            outputs.extend(close_vote(votes, vote, actor=actor, reason="meeting_end",
                                      adopt=adopt))
    return outputs


def cancel_vote(votes: TableVotes, vote: VoteRecord, *, actor: str, reason: str) -> list[Output]:
    votes.repos.votes.update(vote.id, state=State.CANCELLED.value, closed_by=actor,
                             closed_at=votes.now, close_reason=reason)
    votes.repos.audit.record(
        cell=votes.cell.id, actor=actor, action="vote_cancelled", at=votes.now, code=vote.code,
        decision_ref=f"vote:{vote.id}", meeting_id=vote.meeting_id,
    )
    return [
        Reply("msg:vote.cancelled", {"id": vote.id, "code": vote.code, "reason": reason},
              in_reply=reason == "chair"),
        PollEnd(vote.id, "msg:vote.poll_ended", {"state": "cancelled", "code": vote.code}),
    ]


def cast(votes: TableVotes, vote: VoteRecord, user_id: str, choice: Choice,
         via: str, reason: str = "") -> tuple[Tally | None, list[Output]]:
    """Record a ballot; a unanimous yes (of a quorate table) closes the vote at once.

    Only from a member on the table's roster, present, trusted and not recused.

    Returns ``(None, outputs)`` when the vote's deadline had passed: it is closed now and the
    ballot is not counted.
    """
    if vote.state != State.OPEN.value:
        raise Refusal("vote.not_open", id=vote.id, state=vote.state)
    meeting = votes.repos.meetings.in_progress(votes.cell.id, votes.table.value)
    if meeting is None or meeting.id != vote.meeting_id:
        raise Refusal("vote.meeting_over", id=vote.id)
    if vote.deadline is not None and vote.deadline <= votes.now:
        return None, close_vote(votes, vote, actor="livcr-bot", reason="deadline")
    if user_id not in {m.user_id for m in table_members(votes.cell, votes.repos, votes.table)}:
        raise Refusal("vote.not_member", id=vote.id)
    if user_id not in votes.repos.meetings.attendees(vote.meeting_id):
        raise Refusal("vote.not_present", id=vote.id)
    if user_id in votes.repos.votes.recused(vote.meeting_id, vote.code):
        raise Refusal("vote.recused", id=vote.id, code=vote.code)
    if not votes.trusted(user_id):
        raise Refusal("vote.untrusted", id=vote.id)
    votes.repos.votes.cast(vote.id, user_id, choice.value, via, votes.now,
                           reason if choice is not Choice.YES else "")
    votes.repos.audit.record(
        cell=votes.cell.id, actor=user_id, action=f"ballot_{choice.value}", at=votes.now,
        code=vote.code, decision_ref=f"vote:{vote.id}", meeting_id=vote.meeting_id,
    )
    t = current_tally(votes, vote)
    if t.unanimous and quorum_gap(votes, t.eligible) == (0, 0):
        return t, close_vote(votes, vote, actor="livcr-bot", reason="unanimous")
    return t, []


def poll_ballot(votes: TableVotes, poll_event_id: str, user_id: str, answer: str) -> list[Output]:
    """A poll response: counts as the member's ballot when eligible; otherwise ignored."""
    vote = votes.repos.votes.by_poll(poll_event_id)
    choice = Choice(answer) if answer in {c.value for c in Choice} else None
    if vote is None or choice is None or vote.state != State.OPEN.value:
        return []
    if user_id not in participants(votes, vote.meeting_id, vote.code):
        return []
    meeting = votes.repos.meetings.in_progress(votes.cell.id, votes.table.value)
    if meeting is None or meeting.id != vote.meeting_id:
        return []
    locked = votes.repos.votes.get(vote.id, lock=True)
    assert locked is not None
    try:
        _t, outputs = cast(votes, locked, user_id, choice, "poll")
    except Refusal:
        return []
    return outputs
