"""Ad hoc meeting requests: a new signal asks for a meeting when the next one is too far."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from commands.framework import Output, Reply
from commands.meetings.cadence import Mode
from commands.meetings.common import (
    chairs,
    next_planned,
    when,
)
from commands.model import Cell, Table
from storage.repositories import Repositories

log = logging.getLogger(__name__)

# ---- ad hoc requests -------------------------------------------------------------------


def after_signal(repos: Repositories, cell: Cell, now: datetime) -> list[Output]:
    """A signal while asleep, or long before the next meeting: ask the chair for one — once
    a day (the cell's local date): the next signals of that day are in the room for all to
    see, and asking again would only ping the chair again for the same decision."""
    state = repos.meetings.state(cell.id, Table.OPERATIONAL.value)
    asleep = state is None or state.mode == Mode.SLEEP.value
    upcoming = next_planned(repos, cell, Table.OPERATIONAL, now)
    in_progress = repos.meetings.in_progress(cell.id, Table.OPERATIONAL.value)
    cadence = cell.tables[Table.OPERATIONAL].cadence
    limit = timedelta(days=cadence.ad_hoc_if_next_meeting_beyond_days)
    far = upcoming is None or upcoming.starts_at - now > limit
    if in_progress is not None or not far or asleep:
        # Asleep: this signal wakes the table, and the cadence change says so in one message
        # that also asks the chair when the first meeting is far (recompute.py).
        return []
    asked = f"adhoc-asked:{cell.id}:{now.astimezone(cell.tz).date().isoformat()}"
    if repos.events.is_processed(asked):
        return []
    repos.events.mark_processed(asked, f"job:{cell.id}", now)
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
