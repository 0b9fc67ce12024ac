"""``livcr status``: per table the cadence mode and next meeting, per cell open dossiers by
status (counts only, never codes)."""

from __future__ import annotations

import logging
from datetime import datetime

from commands.meetings.common import (
    current_mode,
    next_planned,
    when,
)
from commands.model import OPEN, Cell, Table
from storage.repositories import Repositories

log = logging.getLogger(__name__)

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


def status_lines(cell: Cell, repos: Repositories, now: datetime) -> list[str]:
    """``livcr status``: counts only, never codes."""
    counts = repos.dossiers.counts_by_status(cell.id)
    open_counts = ", ".join(f"{s.value} {counts.get(s.value, 0)}" for s in OPEN)
    lines = [f"{cell.id}: open dossiers — {open_counts}"]
    from commands.meetings.status import status_line

    for table in cell.tables:
        lines.append(f"{cell.id}/{table.value}: room {cell.tables[table].room}; "
                     f"{status_line(repos, cell, table, now)}")
    return lines
