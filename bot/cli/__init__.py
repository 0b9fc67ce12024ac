"""``livcr``: run, demo, setup, check-config, status, purge, trust, migrate-db, doctor, audit,
gdpr-record (spec §3, §14)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bot.config import Config, ConfigError, load_config

log = logging.getLogger("livcr")


class NoSecrets(logging.Filter):
    """Last line of defence: a record that would print a secret is masked."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                record.msg, record.args = "[a log line that contained a secret was masked]", ()
        return True


def setup_logging(config: Config | None, verbose: bool = False) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config is not None:
        data_dir = config.matrix.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        path = data_dir / "livcr.log"
        path.touch(mode=0o600, exist_ok=True)
        os.chmod(path, 0o600)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    secrets = []
    if config is not None:
        secrets = [config.matrix.password or "", config.matrix.access_token or ""]
    for handler in handlers:
        handler.addFilter(NoSecrets(secrets))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers,
                        force=True)
    # nio logs event contents at debug level and some payloads at info: keep it quiet.
    for noisy in ("nio", "peewee", "aiohttp", "apscheduler", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"{key}: {message}", file=sys.stderr)
        raise SystemExit(2) from exc


async def run_bot(config: Config) -> int:
    from bot.core.service import Service

    service = Service(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.stop)
    await service.run()
    return 0


async def setup(config: Config) -> int:
    from bot.core import render
    from bot.core.service import Service
    from bot.edge.rooms import setup_rooms

    service = Service(config)
    await service.bot.login()
    try:
        for result in await setup_rooms(service.bot.client, config, render):
            state = "created" if result.created else "checked"
            print(f"{result.cell}/{result.table.value}: {result.room_id} {state}, "
                  f"{len(result.invited)} invited")
    finally:
        await service.bot.client.close()
    return 0


def status(config: Config) -> int:
    from bot.core.service import table_status

    for line in table_status(config):
        print(line)
    return 0


def purge(config: Config) -> int:
    from bot.core.service import purge_now

    removed = purge_now(config)
    print(f"retention applied: {removed} closed dossier(s) reduced to anonymous statistics")
    return 0


def trust(config: Config, user_id: str) -> int:
    from bot.core.service import trust_now
    from bot.edge.trust import fingerprint

    key = trust_now(config, user_id)
    if key is None:
        print(f"{user_id} is not blocked: nothing to accept", file=sys.stderr)
        return 1
    print(f"{user_id} is trusted again with master key {fingerprint(key)}; the running bot "
          "applies it at its next sync")
    return 0


def migrate_db(source: str, target: str) -> int:
    """Copy an installation's database into an empty one (e.g. SQLite to PostgreSQL)."""
    import sqlalchemy as sa

    from storage.transfer import TransferRefused, copy_database

    def shown(url: str) -> str:
        return sa.make_url(url).render_as_string(hide_password=True)

    for url in (source, target):
        if not (url.startswith("sqlite:") or url.startswith("postgresql")):
            print(f"{shown(url)}: must be sqlite:///… or postgresql+psycopg://…", file=sys.stderr)
            return 2
    try:
        result = copy_database(source, target)
    except TransferRefused as exc:
        print(f"migrate-db refused: {exc}", file=sys.stderr)
        return 2
    width = max((len(name) for name in result.counts), default=0)
    for name, count in result.counts.items():
        print(f"{name:<{width}}  {count}")
    print(f"copied {sum(result.counts.values())} rows from {shown(source)} to {shown(target)} "
          f"(schema version {result.schema_version})")
    return 0


OPS_COMMANDS = ("audit", "gdpr-record", "doctor")


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a date YYYY-MM-DD") from exc


def _ops_parsers(sub: Any) -> None:
    audit = sub.add_parser("audit", help="check or export the tamper-evident decision record")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain; exit 2 naming the "
                                  "first broken row")
    verify.add_argument("-c", "--config", type=Path, default=Path("config.toml"))
    export = audit_sub.add_parser("export", help="the decision record as CSV or JSON Lines "
                                  "(codes only)")
    export.add_argument("-c", "--config", type=Path, default=Path("config.toml"))
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--from", dest="start", type=_day, metavar="YYYY-MM-DD")
    export.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD")
    export.add_argument("--cell", help="one cell's id (default: every configured cell)")
    gdpr = sub.add_parser("gdpr-record", help="the record of processing activities "
                          "(art. 30 GDPR) as Markdown")
    gdpr.add_argument("-c", "--config", type=Path, default=Path("config.toml"))
    gdpr.add_argument("--language", "--lang", dest="language", choices=("nl", "fr", "en"),
                      help="default: the (first) cell's language")
    doctor = sub.add_parser("doctor", help="check the deployment, one line per check; "
                            "changes nothing")
    doctor.add_argument("-c", "--config", type=Path, default=Path("config.toml"))


def _ops(args: argparse.Namespace, config: Config) -> int:
    """The operators' tools: they print to stdout and never write the bot's log file."""
    setup_logging(None, args.verbose)
    logging.getLogger().setLevel(logging.WARNING if not args.verbose else logging.DEBUG)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livcr", description="LIVC-R secretary bot")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, about in (
        ("run", "run the bot until SIGTERM/SIGINT"),
        ("setup", "create or upgrade the tables' rooms and invite the roster"),
        ("check-config", "validate the configuration and roster rules"),
        ("status", "per table: cadence, next meeting, open dossiers (counts)"),
        ("purge", "apply the retention rules now"),
    ):
        command = sub.add_parser(name, help=about)
        command.add_argument("-c", "--config", type=Path, default=Path("config.toml"))
    trusting = sub.add_parser(
        "trust", help="accept the changed identity of a blocked member (the running bot "
        "picks it up at its next sync)")
    trusting.add_argument("-c", "--config", type=Path, default=Path("config.toml"))
    trusting.add_argument("user_id", help="the blocked member, @user:server")
    transfer = sub.add_parser(
        "migrate-db", help="copy the database into an empty one (e.g. SQLite to PostgreSQL)"
    )
    transfer.add_argument("--from", dest="source", required=True, metavar="URL",
                          help="the current database, e.g. sqlite:///data/livcr.db")
    transfer.add_argument("--to", dest="target", required=True, metavar="URL",
                          help="an empty database, e.g. postgresql+psycopg://livcr@/livcr")
    _ops_parsers(sub)
    demo = sub.add_parser("demo", help="embedded homeserver, scripted LIVC-R cycle")
    demo.add_argument("--once", action="store_true", help="exit after the scenario")
    demo.add_argument("--dir", type=Path, default=Path("demo-data"))
    args = parser.parse_args(argv)

    if args.command == "demo":
        try:  # demo/ is not part of the installed bot: it runs from a source checkout
            cycle = importlib.import_module("demo.cycle")
        except ModuleNotFoundError:
            print("the demo runs from a source checkout: make demo", file=sys.stderr)
            return 2
        setup_logging(None, args.verbose)
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("nio").setLevel(logging.CRITICAL)
        return int(asyncio.run(cycle.run_demo(args.dir, once=args.once)))
    if args.command == "migrate-db":
        setup_logging(None, args.verbose)
        return migrate_db(args.source, args.target)
    if args.command == "check-config":
        config = _load(args.config)
        cells = ", ".join(f"{c.id} ({len(c.members)} members)" for c in config.cells)
        print(f"configuration OK: {cells}")
        return 0
    config = _load(args.config)
    if args.command in OPS_COMMANDS:
        return _ops(args, config)
    setup_logging(config, args.verbose)
    if args.command == "run":
        return asyncio.run(run_bot(config))
    if args.command == "setup":
        return asyncio.run(setup(config))
    if args.command == "status":
        return status(config)
    if args.command == "purge":
        return purge(config)
    if args.command == "trust":
        return trust(config, args.user_id)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
