"""``stats``: anonymous aggregates for the strategic table; counts only, never codes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from commands.framework import Args, CommandContext, Output, Reply, Router
from commands.model import FINAL, OPEN, Table, Who

router = Router("stats")


@router.command("stats", who=Who.STRATEGIC_MEMBER, tables=frozenset({Table.STRATEGIC}))
def stats(ctx: CommandContext, args: Args) -> Sequence[Output]:
    dossiers = ctx.repos.dossiers.list(ctx.cell.id)
    kept = ctx.repos.dossiers.statistics(ctx.cell.id)
    open_by_status = Counter(d.status for d in dossiers if d.status in OPEN)
    phenomena = Counter(d.phenomenon for d in dossiers) + Counter(s.phenomenon for s in kept)
    months = Counter(d.created_at.astimezone(ctx.cell.tz).strftime("%Y-%m") for d in dossiers)
    months.update(s.month_opened for s in kept)
    ideologies = Counter(d.ideology for d in dossiers if d.ideology)
    ideologies.update(s.ideology for s in kept if s.ideology)
    minors = Counter(d.minor for d in dossiers if d.minor)
    minors.update(s.minor for s in kept if s.minor)
    outcomes = Counter(d.status for d in dossiers if d.status in FINAL)
    outcomes.update(s.outcome for s in kept)
    return [
        Reply(
            "stats",
            {
                "open": [(s.value, open_by_status.get(s.value, 0)) for s in OPEN],
                "open_total": sum(open_by_status.values()),
                "phenomena": sorted(phenomena.items()),
                "months": sorted(months.items())[-12:],
                "outcomes": sorted(outcomes.items()),
                "ideologies": sorted(ideologies.items()),
                "minors": [(k, minors.get(k, 0)) for k in ("yes", "no")],
            },
        )
    ]
