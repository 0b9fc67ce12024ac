"""Durations as the config and the commands write them: ``90m``, ``24h``, ``2d``, ``4w``."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``90m``, ``24h``, ``2d`` or ``4w``."""
    match = DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration like 24h, 90m, 2d or 4w: {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return {
        "m": timedelta(minutes=amount),
        "h": timedelta(hours=amount),
        "d": timedelta(days=amount),
        "w": timedelta(weeks=amount),
    }[unit]
