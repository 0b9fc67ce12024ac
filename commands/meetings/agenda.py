"""The agenda of the next meeting (spec §8): dossiers to discuss, evaluations due, votes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from commands.actions.rules import ActionStatus, overdue_on
from commands.fiche.document import missing
from commands.meetings.cadence import Mode, next_meeting
from commands.meetings.common import (
    current_mode,
    meeting_data,
    next_planned,
    when,
)
from commands.model import OPEN, Cell, Status, Table
from storage.repositories import Repositories

log = logging.getLogger(__name__)

# ---- the agenda ------------------------------------------------------------------------


def awaiting_consensus(repos: Repositories, cell: Cell) -> list[str]:
    """Codes whose complete feedback fiche has not yet been adopted and sent."""
    open_codes = {d.code for d in repos.dossiers.list(cell.id, [s.value for s in OPEN])}
    return [f.code for f in repos.fiches.unsent(cell.id)
            if f.code in open_codes and not missing(f.values)]


def agenda(repos: Repositories, cell: Cell, table: Table, now: datetime) -> dict[str, Any]:
    """The agenda of the meeting in progress, or else of the next planned meeting.

    Codes and dates only, plus the members' free items (which passed the privacy guard).
    """
    in_progress = repos.meetings.in_progress(cell.id, table.value)
    meeting = in_progress or next_planned(repos, cell, table, now)
    horizon = (meeting.starts_at if meeting else now).astimezone(cell.tz).date()
    sections: dict[str, list[str]] = {"new": [], "evaluation": [], "fiches": [],
                                      "problematic": [], "overdue": [], "aftercare": []}
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
        day = max(horizon, now.astimezone(cell.tz).date())
        sections["overdue"] = [
            a.ref for a in repos.actions.of_cell(cell.id, statuses=[ActionStatus.OPEN.value])
            if overdue_on(a.status, a.due, day)]
        sections["aftercare"] = [r.code for r in repos.aftercare.of_cell(cell.id)
                                 if r.reviews and r.reviews[0] <= day]
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
                                          "problematic", "overdue", "aftercare", "next")}
    summary["item_count"] = len(full["items"])
    return summary
