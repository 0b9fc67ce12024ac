"""``livcr doctor``: placeholder."""

from __future__ import annotations

from typing import TextIO

from bot.config import Config


async def main(config: Config, out: TextIO) -> int:
    return 2
