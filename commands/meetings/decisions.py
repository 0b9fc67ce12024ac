"""The decision list of an ended meeting: outcomes of votes and transitions, by code only."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from commands.meetings.common import (
    meeting_data,
    next_planned,
    when,
)
from commands.members.roster import table_members
from commands.model import Cell, Table
from commands.votes.consensus import REASONS
from storage.meetings import (
    DecisionRecord,
    MeetingRecord,
)
from storage.repositories import Repositories

log = logging.getLogger(__name__)

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
    present = repos.meetings.attendees(meeting.id)
    return {
        "table": table.value,
        "meeting": meeting_data(meeting, cell),
        "started": when(meeting.started_at or now, cell),
        "ended": when(now, cell),
        "decisions": rows,
        "present": present,
        **meeting_record(repos, cell, table, meeting.id, present),
        "next": when(upcoming.starts_at, cell) if upcoming else None,
    }


def meeting_record(repos: Repositories, cell: Cell, table: Table, meeting_id: int,
                   present: list[str]) -> dict[str, Any]:
    """The record of who took part (spec §13): those present by organisation, apologies
    (with whether a written contribution was sent) and recusals by case code."""
    by_id = {m.user_id: m for m in table_members(cell, repos, table)}
    organisations: dict[str, list[str]] = {}
    for user in present:
        member = by_id.get(user)
        name = member.organisation.strip() if member and member.organisation.strip() else "—"
        organisations.setdefault(name, []).append(user)
    recusals: dict[str, list[str]] = {}
    for code, user in repos.votes.recusals(meeting_id):
        recusals.setdefault(code, []).append(user)
    return {
        "by_organisation": [{"organisation": o, "members": m}
                            for o, m in sorted(organisations.items())],
        "apologies": [{"user_id": a.user_id, "contribution": a.contribution}
                      for a in repos.apologies.of_meeting(meeting_id)],
        "recusals": [{"code": c, "members": m} for c, m in recusals.items()],
    }


def _action(record: DecisionRecord) -> dict[str, Any]:
    """An action created (``action:N``) or its status changed (``action:N:status``)."""
    parts = record.decision_ref.split(":")
    n = parts[1] if len(parts) > 1 else "?"
    if record.action == "action_add":
        return {"kind": "action", "change": "added", "ref": f"{record.code}/{n}"}
    return {"kind": "action", "change": "status", "ref": f"{record.code}/{n}",
            "status": parts[2] if len(parts) > 2 else ""}


#: Audit actions that are steps towards a decision, not decisions.
_NOT_DECISIONS = ("ballot_", "vote_open_", "fiche_edit", "recusal", "outcome_sent",
                  "aftercare_planned")
_OUTCOMES = {"vote_adopted": "adopted", "vote_not_adopted": "not_adopted",
             "vote_cancelled": "cancelled"}


def _reasons(repos: Repositories, vote_id: int) -> dict[str, int]:
    """How many members' latest ballots gave each reason category (never who)."""
    latest = {b.user_id: b for b in repos.votes.ballots(vote_id)}
    counts = {r: sum(1 for b in latest.values() if b.reason == r and b.choice != "yes")
              for r in REASONS}
    return {r: n for r, n in counts.items() if n}


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
        row["reasons"] = _reasons(repos, vote.id) if vote else {}
    elif record.action in ("action_add", "action_status"):
        row.update(_action(record))
    elif record.action == "fiche_sent":
        row["kind"] = "fiche_sent"
    elif record.from_status and record.to_status:
        row["kind"] = "transition"
    else:
        row["kind"] = "other"
    return row
