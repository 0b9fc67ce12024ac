"""``livcr gdpr-record``: the record of processing activities (art. 30 GDPR) from the
configuration, as Markdown a data-protection officer can paste into the register (spec §14).

Everything it states comes from the configuration (cells, municipalities, tables, roster roles
and organisations, retention) or is a property of the bot itself (what it stores, its security
measures). It never opens the database and never names a member.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bot.config import Config
from bot.core.render import render
from commands.model import Cell, Role, Table

ROLE_ORDER = tuple(Role)


def cell_data(cell: Cell) -> dict[str, Any]:
    """What the record says of one cell: no user id, only roles, counts and organisations."""
    roles = Counter(m.role for m in cell.members)
    tables = []
    for table in (Table.OPERATIONAL, Table.STRATEGIC):
        settings = cell.tables.get(table)
        if settings is None:
            continue
        members = [m for m in cell.members if table in m.tables]
        tables.append({
            "name": table.value,
            "members": len(members),
            "message_retention_days": settings.message_retention_days,
        })
    return {
        "name": cell.name,
        "municipalities": list(cell.municipalities),
        "supra_local": len(cell.municipalities) > 1,
        "retention_days_after_close": cell.retention_days_after_close,
        "roles": [{"role": r.value, "count": roles[r]} for r in ROLE_ORDER if roles[r]],
        "organisations": sorted({m.organisation for m in cell.members if m.organisation}),
        "tables": tables,
    }


def record(config: Config, language: str | None = None) -> str:
    """The Markdown record for every configured cell, in ``language`` (default: the first
    cell's language)."""
    lang = language or config.cells[0].language
    data = {
        "cells": [cell_data(c) for c in config.cells],
        "homeserver": config.matrix.homeserver,
        "postgres": config.database_url.startswith("postgresql"),
    }
    return render(lang, "ops/gdpr_record", data).body.rstrip("\n") + "\n"
