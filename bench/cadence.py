"""Time ``commands.cadence.recompute`` on many tables (spec §8: 1,200 tables under 200 ms).

Run as a plain script from anywhere::

    python bench/cadence.py [--tables 1200] [--repeat 20] [--seed 7]

Prints the median, 95th percentile and maximum wall time of one ``recompute`` call. It
reports a verdict but never fails: machines differ.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.config import WEEKDAYS, TableConfig  # noqa: E402
from commands.cadence import Mode, TableLoad, recompute  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tables", type=int, default=1200)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.tables < 1 or args.repeat < 1:
        parser.error("--tables and --repeat must be at least 1")

    now = datetime(2026, 10, 20, 7, 45, tzinfo=UTC)
    loads, tables = build(args.tables, args.seed, now)
    result = recompute(loads, tables, now)  # warm-up: holiday tables, zone caches
    modes = dict.fromkeys(Mode, 0)
    for mode, _ in result.values():
        modes[mode] += 1

    timings: list[float] = []
    for repeat in range(args.repeat):
        # A slightly different "now" each round so nothing is served from a result cache.
        moment = now + timedelta(minutes=17 * repeat)
        began = time.perf_counter()
        recompute(loads, tables, moment)
        timings.append((time.perf_counter() - began) * 1000)

    median = statistics.median(timings)
    p95 = percentile(timings, 0.95)
    worst = max(timings)
    verdict = "OK" if p95 < TARGET_MS else "TOO SLOW"
    mix = ", ".join(f"{mode.value} {count}" for mode, count in modes.items())
    rows = [
        ("tables", f"{len(tables)} ({mix})"),
        ("repeats", str(args.repeat)),
        ("median ms", f"{median:.2f}"),
        ("p95 ms", f"{p95:.2f}"),
        ("max ms", f"{worst:.2f}"),
        ("target", f"< {TARGET_MS:.0f} ms"),
        ("verdict", verdict),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
