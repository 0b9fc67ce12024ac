"""The operators' tools: ``doctor``, ``audit verify|export``, ``gdpr-record`` (spec §14)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Any

from bot.cli.logs import setup_logging
from bot.config import Config

OPS_COMMANDS = ("audit", "gdpr-record", "doctor")


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a date YYYY-MM-DD") from exc


def _ops_parsers(sub: Any, verbose: argparse.ArgumentParser) -> None:
    audit = sub.add_parser("audit", help="check or export the tamper-evident decision record",
                           parents=[verbose])
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain; exit 2 naming the "
                                  "first broken row", parents=[verbose])
    verify.add_argument("-c", "--config", type=Path, default=Path("config.toml"))
    export = audit_sub.add_parser("export", help="the decision record as CSV or JSON Lines "
                                  "(codes only)", parents=[verbose])
    export.add_argument("-c", "--config", type=Path, default=Path("config.toml"))
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--from", dest="start", type=_day, metavar="YYYY-MM-DD")
    export.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD")
    export.add_argument("--cell", help="one cell's id (default: every configured cell)")
    gdpr = sub.add_parser("gdpr-record", help="the record of processing activities "
                          "(art. 30 GDPR) as Markdown", parents=[verbose])
    gdpr.add_argument("-c", "--config", type=Path, default=Path("config.toml"))
    gdpr.add_argument("--language", "--lang", dest="language", choices=("nl", "fr", "en"),
                      help="default: the (first) cell's language")
    doctor = sub.add_parser("doctor", help="check the deployment, one line per check; "
                            "changes nothing", parents=[verbose])
    doctor.add_argument("-c", "--config", type=Path, default=Path("config.toml"))


def _ops(args: argparse.Namespace, config: Config) -> int:
    """The operators' tools: they print to stdout and never write the bot's log file."""
    verbose = bool(args.verbose)
    setup_logging(None, verbose)
    logging.getLogger().setLevel(logging.WARNING if not verbose else logging.DEBUG)
    if args.command == "audit":
        from bot.ops import records

        if args.audit_command == "verify":
            return records.verify(config, sys.stdout)
        try:
            return records.export(config, sys.stdout, args.format, args.start, args.end,
                                  args.cell)
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
    if args.command == "gdpr-record":
        from bot.ops import gdpr

        sys.stdout.write(gdpr.record(config, args.language))
        return 0
    from bot.ops import doctor

    return asyncio.run(doctor.main(config, sys.stdout))
