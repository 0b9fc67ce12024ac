"""``help [command]``: what the bot can do here, or how one command works."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from commands.framework import Args, CommandContext, Output, Reply, Router, UsageError, local_list
from commands.model import Cell

router = Router("help")


@router.command("help", max_positional=2)
def help_(ctx: CommandContext, args: Args) -> Sequence[Output]:
    available = [c for c in ctx.commands if ctx.table in c.tables]
    if not args.positional:
        names = sorted({c.help_template for c in available})
        return [Reply("help/index", {"commands": names, "table": ctx.table.value})]
    wanted = args.positional[0].lstrip("!/").lower()
    matches = {c.help_template for c in available if c.name == wanted}
    if not matches:
        raise UsageError("error.unknown_help_topic", name=wanted[:40])
    return [Reply(f"help/{sorted(matches)[0]}", help_data(ctx.cell, ctx.values))]


def help_data(cell: Cell, values: Mapping[str, str]) -> dict[str, str]:
    """What the help texts show of the cell's own configuration (also in usage errors): its
    indicators and trajectories, not the defaults."""
    return {"indicators": local_list(cell.indicators, values),
            "scenarios": local_list(cell.scenarios, values),
            "phenomena": local_list(cell.phenomena, values),
            "ideologies": local_list(cell.ideologies, values)}
