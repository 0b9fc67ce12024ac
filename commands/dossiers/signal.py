"""``signal``: a partner registers a case (dossieraanmelding); the reply is its new code.

The guideline's filter against arbitrary signalling: a known phenomenon, observable indicators
from the cell's list, and the signalling organisation's confirmation that it first dealt with
the behaviour in its own field (``assessed=yes``).
"""

from __future__ import annotations

from collections.abc import Sequence

from commands.dossiers.case import CODE
from commands.framework import Args, CommandContext, Output, Refusal, Reply, Router, UsageError
from commands.meetings.adhoc import after_signal
from commands.model import CONTEXTS, Role, Status, Table, Who

router = Router("signal")

MAX_SUMMARY = 500


def _phenomenon(ctx: CommandContext, raw: str | None) -> str:
    """One of the cell's phenomena (the Strategy T.E.R. list unless configured)."""
    if raw is None:
        raise UsageError("signal.missing_phenomenon")
    value = ctx.english(raw)
    for item in ctx.cell.phenomena:
        if item.lower() == value.lower():
            return item
    raise UsageError("signal.bad_phenomenon", allowed=ctx.local_list(ctx.cell.phenomena))


def _ideology(ctx: CommandContext, raw: str | None) -> str:
    if raw is None:
        return ""
    value = ctx.english(raw)
    for item in ctx.cell.ideologies:
        if item.lower() == value.lower():
            return item
    raise UsageError("signal.bad_ideology", allowed=ctx.local_list(ctx.cell.ideologies))


def _minor(ctx: CommandContext, raw: str | None) -> str:
    if raw is None:
        return ""
    value = ctx.english(raw)
    if value not in ("yes", "no"):
        raise UsageError("signal.bad_minor")
    return value


def _previous(raw: str | None) -> str:
    """``previous=C-…``: an earlier code (it may be purged already; only its form counts)."""
    if raw is None:
        return ""
    code = raw.strip().upper()
    if not CODE.match(code):
        raise UsageError("signal.bad_previous")
    return code


def _indicators(ctx: CommandContext, raw: list[str]) -> list[str]:
    chosen: list[str] = []
    for item in raw:
        value = ctx.english(item)
        if value not in ctx.cell.indicators:
            raise UsageError("signal.bad_indicator", allowed=ctx.local_list(ctx.cell.indicators))
        if value not in chosen:
            chosen.append(value)
    if len(chosen) < ctx.cell.min_indicators:
        raise UsageError(
            "signal.too_few_indicators",
            minimum=ctx.cell.min_indicators,
            allowed=ctx.local_list(ctx.cell.indicators),
        )
    return chosen


def _context(ctx: CommandContext, raw: list[str]) -> list[str]:
    chosen: list[str] = []
    for item in raw:
        value = ctx.english(item)
        if value not in CONTEXTS:
            raise UsageError("signal.bad_context", allowed=", ".join(CONTEXTS))
        if value not in chosen:
            chosen.append(value)
    return chosen


@router.command(
    "signal",
    who=Who.OPERATIONAL_MEMBER,
    tables=frozenset({Table.OPERATIONAL}),
    keys=frozenset({"phenomenon", "indicators", "assessed", "context", "summary", "source",
                    "ideology", "minor", "previous"}),
)
def signal(ctx: CommandContext, args: Args) -> Sequence[Output]:
    phenomenon = _phenomenon(ctx, args.get("phenomenon"))
    indicators = _indicators(ctx, args.list("indicators"))
    assessed = args.get("assessed")
    if assessed is None or ctx.english(assessed) != "yes":
        raise Refusal("signal.not_assessed")
    context = _context(ctx, args.list("context"))
    ideology = _ideology(ctx, args.get("ideology"))
    minor = _minor(ctx, args.get("minor"))
    previous = _previous(args.get("previous"))
    summary = (args.get("summary") or "").strip()
    if len(summary) > MAX_SUMMARY:
        raise UsageError("signal.summary_too_long", limit=MAX_SUMMARY, length=len(summary))
    source = ctx.member.organisation or ctx.member.role.value
    raw_source = args.get("source")
    if raw_source is not None:
        if raw_source.strip().upper() != "LTF":
            raise UsageError("signal.bad_source")
        if ctx.member.role is not Role.INFORMATION_OFFICER:
            raise Refusal("signal.ltf_only_information_officer")
        source = "LTF"
    record = ctx.repos.dossiers.create(
        cell=ctx.cell.id,
        phenomenon=phenomenon,
        indicators=indicators,
        context=context,
        source=source[:128],
        summary=summary,
        signalled_by=ctx.member.user_id,
        status=Status.SIGNALLED.value,
        at=ctx.now,
        ideology=ideology,
        minor=minor,
        previous=previous,
    )
    ctx.repos.audit.record(
        cell=ctx.cell.id,
        actor=ctx.member.user_id,
        action="signal",
        at=ctx.now,
        code=record.code,
        to_status=Status.SIGNALLED.value,
        decision_ref=ctx.incoming.event_id,
    )
    ctx.scheduler.table_changed(ctx.cell.id, Table.OPERATIONAL)
    return [
        Reply(
            "signal_created",
            {"code": record.code, "phenomenon": phenomenon, "indicators": indicators},
        ),
        *after_signal(ctx.repos, ctx.cell, ctx.now),
    ]
