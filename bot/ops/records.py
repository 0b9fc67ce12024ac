"""``livcr audit verify|export``: the tamper-evident record, read-only (spec §14)."""

from __future__ import annotations

import csv
import json
from datetime import date
from typing import TextIO

from bot.config import Config
from storage.audit import EXPORT_FIELDS
from storage.db import Database


def verify(config: Config, out: TextIO) -> int:
    """Check every cell's chain; 0 when all are intact, 2 naming the first broken row."""
    database = Database(config.database_url)
    try:
        database.migrate()
        with database.reading() as repos:
            reports = repos.audit.verify()
    finally:
        database.dispose()
    status = 0
    for report in reports:
        if report.broken is None:
            out.write(f"{report.cell}: audit chain intact, {report.rows} row(s), "
                      f"{report.purged} replaced by their hash at retention\n")
            continue
        status = 2
        where = f" (id {report.broken.row_id})" if report.broken.row_id is not None else ""
        out.write(f"{report.cell}: audit chain BROKEN at row {report.broken.position}{where}: "
                  f"{report.broken.reason}\n")
    if not reports:
        out.write("no audit rows yet: nothing to verify\n")
    return status


def export(config: Config, out: TextIO, fmt: str, start: date | None = None,
           end: date | None = None, cell: str | None = None) -> int:
    """Write the decision record of the configured cells (or one) as CSV or JSON Lines."""
    ids = [c.id for c in config.cells]
    if cell is not None:
        if cell not in ids:
            raise ValueError(f"no cell {cell!r} in the configuration (cells: {', '.join(ids)})")
        ids = [cell]
    database = Database(config.database_url)
    try:
        database.migrate()
        with database.reading() as repos:
            rows = {cid: repos.audit.export(cid, start, end) for cid in ids}
    finally:
        database.dispose()
    fields = ("cell", *EXPORT_FIELDS)
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for cid, records in rows.items():
        for record in records:
            line = {"cell": cid, **record.as_dict()}
            if writer is not None:
                writer.writerow(line)
            else:
                out.write(json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n")
    return 0
