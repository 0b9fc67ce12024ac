"""Time ``commands.meetings.cadence.recompute`` on many tables (spec §8: 1,200 tables under
200 ms).

Run as a plain script from anywhere::

    python bench/cadence.py [--tables 1200] [--repeat 20] [--seed 7] [--db-url URL | --no-db]

Prints the median, 95th percentile and maximum wall time of one ``recompute`` call. Then the
same tables as cells in a database (a temporary SQLite file unless ``--db-url`` names one):
``commands.meetings.recompute.recompute_all`` in one unit of work, as the bot runs it at start and
daily, with a handful of queries for all loads. Its first run plans every automatic meeting
(calendar files included); the timed runs are the steady state. It reports a verdict but
never fails: machines differ.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from commands.meetings.cadence import Mode, TableLoad, recompute  # noqa: E402
from commands.model import WEEKDAYS, Cell, Table, TableConfig  # noqa: E402

TARGET_MS = 200.0
ZONES = ("Europe/Brussels", "Europe/Brussels", "Europe/Brussels", "Europe/Amsterdam", "UTC")


def build(
    count: int, seed: int, now: datetime
) -> tuple[list[TableLoad], dict[tuple[str, str], tuple[TableConfig, ZoneInfo]]]:
    """``count`` tables: about 30 % asleep, 45 % monthly, 25 % weekly; a tenth strategic."""
    rng = random.Random(seed)
    loads: list[TableLoad] = []
    tables: dict[tuple[str, str], tuple[TableConfig, ZoneInfo]] = {}
    for index in range(count):
        strategic = rng.random() < 0.1
        key = (f"cell-{index:04d}", "strategic" if strategic else "operational")
        config = TableConfig.model_validate(
            {
                "room": f"!table{index}:example.be",
                "meeting_weekday": rng.choice(WEEKDAYS[:5] * 4 + WEEKDAYS[5:]),
                "meeting_time": rng.choice(["09:00", "09:30", "10:00", "13:30", "14:00", "16:00"]),
                "monthly_week": rng.choice([1, 1, 2, 3, 4, 5]),
                "skip_public_holidays": rng.random() < 0.9,
                "cadence": {
                    "weekly_every_weeks": rng.choice([1, 1, 1, 2, 3]),
                    "monthly_every_months": rng.choice([1, 1, 1, 2, 3]),
                },
            }
        )
        draw = rng.random()
        if strategic or draw < 0.30:
            open_dossiers, problematic = 0, 0
        elif draw < 0.75:
            open_dossiers, problematic = rng.randint(1, 12), 0
        else:
            open_dossiers = rng.randint(1, 12)
            problematic = rng.randint(1, open_dossiers)
        last = None
        if rng.random() < 0.8:
            last = now - timedelta(hours=rng.randint(1, 24 * 90))
        loads.append(TableLoad(key, open_dossiers, problematic, last))
        tables[key] = (config, ZoneInfo(rng.choice(ZONES)))
    return loads, tables


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def timed(repeat: int, run: Callable[[int], object]) -> list[float]:
    timings: list[float] = []
    for round_ in range(repeat):
        began = time.perf_counter()
        run(round_)
        timings.append((time.perf_counter() - began) * 1000)
    return timings


def report(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def summary(timings: list[float]) -> list[tuple[str, str]]:
    p95 = percentile(timings, 0.95)
    return [
        ("median ms", f"{statistics.median(timings):.2f}"),
        ("p95 ms", f"{p95:.2f}"),
        ("max ms", f"{max(timings):.2f}"),
        ("target", f"< {TARGET_MS:.0f} ms"),
        ("verdict", "OK" if p95 < TARGET_MS else "TOO SLOW"),
    ]


def database_bench(url: str, loads: list[TableLoad],
                   tables: dict[tuple[str, str], tuple[TableConfig, ZoneInfo]],
                   now: datetime, repeat: int) -> list[tuple[str, str]]:
    """The same tables, one cell each, with their open dossiers in a database."""
    import sqlalchemy as sa

    from commands.meetings.recompute import recompute_all
    from storage.db import Database
    from storage.models import Dossier

    cells = []
    rows = []
    for load in loads:
        config, zone = tables[load.key]
        table = Table(load.key[1])
        members = [{"user_id": f"@chair-{load.key[0]}:example.be", "role": "chair",
                    "tables": ["operational"]}] if table is Table.OPERATIONAL else []
        cells.append(Cell.model_validate({
            "id": load.key[0], "name": load.key[0], "timezone": zone.key,
            "tables": {table.value: config}, "members": members,
        }))
        for n in range(load.open_dossiers):
            rows.append({
                "code": f"B{len(rows):07d}", "cell": load.key[0], "table_name": "operational",
                "phenomenon": "HTF", "indicators": "isolation", "context": "", "source": "OCMW",
                "summary": "", "status": "follow_up", "problematic": n < load.problematic_open,
                "scenario": "", "signalled_by": "@bench:example.be", "created_at": now,
                "updated_at": now, "version": 0,
            })
    database = Database(url)
    try:
        database.migrate()
        with database.engine.begin() as conn:
            if rows:
                conn.execute(sa.insert(Dossier.__table__), rows)  # type: ignore[attr-defined]
        began = time.perf_counter()
        with database.unit_of_work() as repos:
            recompute_all(repos, cells, now, {})
        first = (time.perf_counter() - began) * 1000
        with database.unit_of_work() as repos:
            planned = len(repos.meetings.planned_all())

        def steady(round_: int) -> None:
            with database.unit_of_work() as repos:
                recompute_all(repos, cells, now + timedelta(minutes=3 * round_), {})

        timings = timed(repeat, steady)
    finally:
        database.dispose()
    backend = url.split(":", 1)[0].split("+", 1)[0]
    return [
        ("database", f"{backend}, {len(cells)} cells, {len(rows)} open dossiers"),
        ("first run ms", f"{first:.2f} (plans {planned} meetings with their .ics)"),
        ("repeats", str(repeat)),
        *summary(timings),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tables", type=int, default=1200)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db-url", default=None,
                        help="database for the second part (default: a temporary SQLite file)")
    parser.add_argument("--no-db", action="store_true", help="only the pure computation")
    args = parser.parse_args(argv)
    if args.tables < 1 or args.repeat < 1:
        parser.error("--tables and --repeat must be at least 1")

    now = datetime(2026, 10, 20, 7, 45, tzinfo=UTC)
    loads, tables = build(args.tables, args.seed, now)
    result = recompute(loads, tables, now)  # warm-up: holiday tables, zone caches
    modes = dict.fromkeys(Mode, 0)
    for mode, _ in result.values():
        modes[mode] += 1

    # A slightly different "now" each round so nothing is served from a result cache.
    timings = timed(args.repeat,
                    lambda r: recompute(loads, tables, now + timedelta(minutes=17 * r)))
    mix = ", ".join(f"{mode.value} {count}" for mode, count in modes.items())
    print("pure computation (commands.meetings.cadence.recompute)")
    report([("tables", f"{len(tables)} ({mix})"), ("repeats", str(args.repeat)),
            *summary(timings)])
    if args.no_db:
        return 0
    print()
    print("database-backed (commands.recompute_all, one unit of work)")
    if args.db_url:
        report(database_bench(args.db_url, loads, tables, now, args.repeat))
    else:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            report(database_bench(url, loads, tables, now, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
