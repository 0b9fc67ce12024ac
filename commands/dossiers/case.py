"""``case list|show|flag|scenario``: dossiers by code, status and dates only (spec §6, §7)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

from commands.dossiers.workflow import get_dossier
from commands.framework import Args, CommandContext, Output, Refusal, Reply, Router, UsageError
from commands.model import OPEN, TRANSITIONS, Status, Table, Who, parse_duration

router = Router("case")

CODE = re.compile(r"^C-[0-9A-HJKMNP-TV-Z]{5}$", re.IGNORECASE)
OPERATIONAL = frozenset({Table.OPERATIONAL})


def parse_code(raw: str) -> str:
    """A case code as typed, normalised; a usage error when it is not one."""
    code = raw.strip().upper()
    if not CODE.match(code):
        raise UsageError("case.bad_code")
    return code


@router.command("case", sub="list", who=Who.OPERATIONAL_MEMBER, tables=OPERATIONAL,
                max_positional=1)
def case_list(ctx: CommandContext, args: Args) -> Sequence[Output]:
    show_all = bool(args.positional) and ctx.english(args.positional[0]) == "all"
    if args.positional and not show_all:
        raise UsageError("case.list_usage")
    records = ctx.repos.dossiers.list(
        ctx.cell.id, None if show_all else [s.value for s in OPEN]
    )
    rows = [
        {
            "code": r.code,
            "status": r.status,
            "problematic": r.problematic,
            "created": r.created_at.astimezone(ctx.cell.tz).date().isoformat(),
            "next_evaluation": r.next_evaluation.isoformat() if r.next_evaluation else "",
        }
        for r in records
    ]
    return [Reply("case_list", {"rows": rows, "all": show_all})]


@router.command("case", sub="show", who=Who.OPERATIONAL_MEMBER, tables=OPERATIONAL,
                min_positional=1, max_positional=1)
def case_show(ctx: CommandContext, args: Args) -> Sequence[Output]:
    record = get_dossier(ctx.repos, ctx.cell, parse_code(args.positional[0]))
    history = [
        {
            "at": a.at.astimezone(ctx.cell.tz).strftime("%Y-%m-%d %H:%M"),
            "action": a.action,
            "from": a.from_status,
            "to": a.to_status,
        }
        for a in ctx.repos.audit.for_code(ctx.cell.id, record.code)
    ]
    allowed = [s.value for s in TRANSITIONS[Status(record.status)]]
    return [
        Reply(
            "case_show",
            {
                "code": record.code,
                "status": record.status,
                "phenomenon": record.phenomenon,
                "indicators": list(record.indicators),
                "context": list(record.context),
                "source": record.source,
                "problematic": record.problematic,
                "scenario": record.scenario,
                "next_evaluation": record.next_evaluation.isoformat()
                if record.next_evaluation else "",
                "created": record.created_at.astimezone(ctx.cell.tz).date().isoformat(),
                "history": history,
                "next": allowed,
                "ideology": record.ideology,
                "minor": record.minor,
                "previous": record.previous,
                "actions": len(ctx.repos.actions.of_cell(ctx.cell.id, record.code)),
            },
        )
    ]


@router.command("case", sub="flag", who=Who.CHAIR, tables=OPERATIONAL, min_positional=2,
                max_positional=2)
def case_flag(ctx: CommandContext, args: Args) -> Sequence[Output]:
    code = parse_code(args.positional[0])
    flag = ctx.english(args.positional[1])
    if flag not in ("problematic", "normal"):
        raise UsageError("case.bad_flag")
    record = get_dossier(ctx.repos, ctx.cell, code)
    if Status(record.status) not in OPEN:
        raise Refusal("case.not_open", code=code, status=record.status)
    problematic = flag == "problematic"
    if record.problematic == problematic:
        return [Reply("msg:case.flag_unchanged", {"code": code, "flag": flag})]
    ctx.repos.dossiers.update(ctx.cell.id, code, ctx.now, problematic=problematic)
    ctx.repos.audit.record(
        cell=ctx.cell.id, actor=ctx.member.user_id, action=f"flag_{flag}", at=ctx.now,
        code=code, decision_ref=ctx.incoming.event_id,
    )
    ctx.scheduler.table_changed(ctx.cell.id, Table.OPERATIONAL)
    return [Reply("msg:case.flagged", {"code": code, "flag": flag})]


@router.command("case", sub="scenario", who=Who.CHAIR, tables=OPERATIONAL, min_positional=2,
                max_positional=2, keys=frozenset({"review"}))
def case_scenario(ctx: CommandContext, args: Args) -> Sequence[Output]:
    code = parse_code(args.positional[0])
    name = ctx.english(args.positional[1])
    if name not in ctx.cell.scenarios:
        raise UsageError("case.bad_scenario", allowed=ctx.local_list(ctx.cell.scenarios))
    review_raw = args.get("review")
    if review_raw is None:
        review = timedelta(weeks=ctx.cell.scenarios[name])
    else:
        try:
            review = parse_duration(review_raw)
        except ValueError as exc:
            raise UsageError("case.bad_review") from exc
        if not timedelta(days=1) <= review <= timedelta(weeks=52):
            raise UsageError("case.bad_review")
    record = get_dossier(ctx.repos, ctx.cell, code)
    if Status(record.status) not in OPEN:
        raise Refusal("case.not_open", code=code, status=record.status)
    evaluation = (ctx.now.astimezone(ctx.cell.tz) + review).date()
    ctx.repos.dossiers.update(ctx.cell.id, code, ctx.now, scenario=name,
                              next_evaluation=evaluation)
    ctx.repos.audit.record(
        cell=ctx.cell.id, actor=ctx.member.user_id, action="scenario", at=ctx.now, code=code,
        decision_ref=ctx.incoming.event_id,
    )
    ctx.scheduler.table_changed(ctx.cell.id, Table.OPERATIONAL)
    return [Reply("msg:case.scenario_set", {"code": code, "scenario": name,
                                            "date": evaluation.isoformat()})]
