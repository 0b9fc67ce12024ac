"""``livcr status``: per table the cadence mode and next meeting, per cell open dossiers by
status (counts only, never codes). The words are in ``templates/cli/status.txt.j2``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commands.meetings.common import current_mode, next_planned, when
from commands.model import OPEN, Cell, Table
from storage.repositories import Repositories


def status_data(cell: Cell, repos: Repositories, now: datetime) -> dict[str, Any]:
    """What ``livcr status`` shows of one cell."""
    counts = repos.dossiers.counts_by_status(cell.id)
    tables = []
    for table in cell.tables:
        mode, _, _ = current_mode(repos, cell, table)
        upcoming = next_planned(repos, cell, table, now)
        in_progress = repos.meetings.in_progress(cell.id, table.value)
        tables.append({
            "table": table.value,
            "room": cell.tables[table].room,
            "mode": mode.value,
            "strategic": table is Table.STRATEGIC,
            "in_progress": when(in_progress.starts_at, cell) if in_progress else None,
            "next": {"when": when(upcoming.starts_at, cell), "kind": upcoming.kind}
            if upcoming else None,
        })
    return {
        "cell": cell.id,
        "timezone": cell.timezone,
        "open": [{"status": s.value, "count": counts.get(s.value, 0)} for s in OPEN],
        "tables": tables,
    }
