"""``livcr``: run, demo, setup, restore, check-config, status, purge, trust, migrate-db,
doctor, audit, gdpr-record (spec §3, §14)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.cli.exits import EXIT_CONFIG, EXIT_FAILED
from bot.cli.identity import RECOVERY_KEY_ENV, print_recovery_key, read_recovery_key, restore
from bot.cli.logs import RateLimitNotice, setup_logging
from bot.cli.ops import OPS_COMMANDS, _ops, _ops_parsers
from bot.cli.setup import check_online, setup
from bot.config import Config, ConfigError, load_config

log = logging.getLogger("livcr")




_logging_ready = False


def _load(path: Path, need_secret: bool = True) -> Config:
    try:
        return load_config(path, need_secret=need_secret)
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"{key}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from exc


def _fail(message: str, verbose: bool) -> None:
    """One line on stderr (and in the log file when there is one); the traceback only with
    ``-v``."""
    if verbose:
        log.debug("details", exc_info=True)
    if _logging_ready:
        log.error("%s", message)
    else:
        print(f"livcr: {message}", file=sys.stderr)


def _guarded(config: Config | None, verbose: bool, work: Callable[[], int]) -> int:
    """Run a command; every failure the operator can fix is one actionable line and an exit
    code, never a traceback (unless ``-v``)."""
    import aiohttp

    from bot.edge.session import StartupError, connection_problem
    from bot.edge.signing_keys import CrossSigningError

    try:
        return work()
    except StartupError as exc:
        _fail(str(exc), verbose)
        return exc.exit_code
    except CrossSigningError as exc:
        hint = ""
        if "is missing: refusing to replace it" in str(exc):
            hint = (" On an installation never used (no dossier, no meeting yet): "
                    "`livcr setup --start-over` (README \"Starting over\").")
        _fail(f"cross-signing: {exc}{hint}", verbose)
        return EXIT_FAILED
    except PermissionError as exc:
        _fail(f"cannot write {exc.filename or 'a file'} ({exc.strerror}): run livcr as the "
              "service user (README \"Deploying\", step 6), or fix the owner of data_dir",
              verbose)
        return EXIT_FAILED
    except (aiohttp.ClientError, TimeoutError) as exc:
        url = config.matrix.homeserver if config is not None else "the homeserver"
        problem = connection_problem(url, exc)
        _fail(str(problem), verbose)
        return problem.exit_code
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or type(exc).__name__}:{where}", verbose)
        return EXIT_FAILED


def _database_problem(config: Config) -> str | None:
    """``status``, ``purge`` and ``trust`` read an existing installation: a database that does
    not exist (a wrong -c, a typo in database_url) is refused instead of created empty."""
    import sqlalchemy as sa

    from storage.migrations import current_version

    url = config.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            return (f"no database at {path}: is -c the configuration of this installation? "
                    "(`livcr setup` creates it)")
        return None
    try:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                version = current_version(conn)
        finally:
            engine.dispose()
    except Exception as exc:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        return f"cannot open the database {shown} ({type(exc).__name__})"
    if version == 0:
        return "the database has no livcr tables: is -c the configuration of this installation?"
    return None


async def run_bot(config: Config, config_path: Path | None = None) -> int:
    from bot.core.service import Service

    service = Service(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.stop)
    if config_path is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload, service, config_path)
    try:
        await service.run()
    finally:
        await service.bot.client.close()
    return 0


def _reload(service: Any, config_path: Path) -> None:
    """SIGHUP (``systemctl reload livcr-bot``): read the file again; a file with problems, or
    a change that needs a restart, leaves the running configuration as it is."""
    log.info("SIGHUP: reading %s again", config_path)
    try:
        new = load_config(config_path)
    except ConfigError as exc:
        for key, message in exc.problems:
            log.error("reload refused, the bot keeps its configuration: %s: %s", key, message)
        return
    for problem in service.reload(new):
        log.error("reload refused, the bot keeps its configuration: %s", problem)


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


def main(argv: Sequence[str] | None = None) -> int:
    global _logging_ready
    parser = argparse.ArgumentParser(prog="livcr", description="LIVC-R secretary bot")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging and tracebacks (also after the command)")
    # -v after the command too: the subparsers' flag must not reset the main one.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, argparse.ArgumentParser] = {}
    for name, about in (
        ("run", "run the bot until SIGTERM/SIGINT; SIGHUP reads the roster again"),
        ("setup", "create or upgrade the tables' rooms and invite the roster; store the "
         "bot's identity in secret storage (prints the recovery key once)"),
        ("restore", "on a new machine, with an empty data_dir: bring back the bot's identity "
         f"with the recovery key ({RECOVERY_KEY_ENV} or a prompt)"),
        ("check-config", "validate the configuration and roster rules"),
        ("status", "per table: cadence, next meeting, open dossiers (counts)"),
        ("purge", "apply the retention rules now"),
    ):
        command = sub.add_parser(name, help=about, parents=[verbose])
        command.add_argument("-c", "--config", type=Path, default=Path("config.toml"))
        commands[name] = command
    commands["check-config"].add_argument(
        "--online", action="store_true",
        help="also contact the homeserver: login, the rooms, every roster user exists")
    commands["setup"].add_argument(
        "--start-over", action="store_true",
        help="only on an installation never used (no dossier, no meeting): a new device and "
        "identity for the bot's account, its other devices deleted")
    trusting = sub.add_parser(
        "trust", help="accept the changed identity of a blocked member (the running bot "
        "picks it up at its next sync)", parents=[verbose])
    trusting.add_argument("-c", "--config", type=Path, default=Path("config.toml"))
    trusting.add_argument("user_id", help="the blocked member, @user:server")
    transfer = sub.add_parser(
        "migrate-db", help="copy the database into an empty one (e.g. SQLite to PostgreSQL)",
        parents=[verbose],
    )
    transfer.add_argument("--from", dest="source", required=True, metavar="URL",
                          help="the current database, e.g. sqlite:///data/livcr.db")
    transfer.add_argument("--to", dest="target", required=True, metavar="URL",
                          help="an empty database, e.g. postgresql+psycopg://livcr@/livcr")
    _ops_parsers(sub, verbose)
    demo = sub.add_parser("demo", help="embedded homeserver, scripted LIVC-R cycle",
                          parents=[verbose])
    demo.add_argument("--once", action="store_true", help="exit after the scenario")
    demo.add_argument("--dir", type=Path, default=Path("demo-data"))
    args = parser.parse_args(argv)
    verbose_flag = bool(args.verbose)

    if args.command == "demo":
        try:  # demo/ is not part of the installed bot: it runs from a source checkout
            cycle = importlib.import_module("demo.cycle")
        except ModuleNotFoundError:
            print("the demo runs from a source checkout: make demo", file=sys.stderr)
            return 2
        setup_logging(None, verbose_flag)
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("nio").setLevel(logging.CRITICAL)
        return int(asyncio.run(cycle.run_demo(args.dir, once=args.once)))
    if args.command == "migrate-db":
        setup_logging(None, verbose_flag)
        return migrate_db(args.source, args.target)
    if args.command == "check-config":
        config = _load(args.config)
        cells = ", ".join(f"{c.id} ({len(c.members)} members)" for c in config.cells)
        print(f"configuration OK: {cells}")
        if not args.online:
            print("(the file only: `check-config --online` also contacts the homeserver)")
            return 0
        setup_logging(None, verbose_flag)
        _logging_ready = True
        return _guarded(config, verbose_flag, lambda: asyncio.run(check_online(config)))
    if args.command in ("status", "purge", "trust"):
        # Local commands: no Matrix secret needed, and an existing database only.
        config = _load(args.config, need_secret=False)
        setup_logging(None, verbose_flag)
        problem = _database_problem(config)
        if problem is not None:
            print(f"livcr: {problem}", file=sys.stderr)
            return EXIT_FAILED
        if args.command == "status":
            return status(config)
        if args.command == "purge":
            return purge(config)
        return trust(config, args.user_id)
    config = _load(args.config)
    if args.command in OPS_COMMANDS:
        _logging_ready = True
        return _guarded(config, verbose_flag, lambda: _ops(args, config))
    if args.command == "restore":
        setup_logging(None, verbose_flag)  # nothing in data_dir unless the restore succeeds
        _logging_ready = True
        return _guarded(config, verbose_flag,
                        lambda: asyncio.run(restore(config, read_recovery_key())))
    try:
        setup_logging(config, verbose_flag)
    except PermissionError as exc:
        print(f"livcr: cannot write {exc.filename} ({exc.strerror}): run livcr as the service "
              "user (README \"Deploying\", step 6), or fix the owner of data_dir",
              file=sys.stderr)
        return EXIT_FAILED
    _logging_ready = True
    if args.command == "run":
        return _guarded(config, verbose_flag,
                        lambda: asyncio.run(run_bot(config, args.config.resolve())))
    if args.command == "setup":
        return _guarded(config, verbose_flag,
                        lambda: asyncio.run(setup(config, start_over=args.start_over)))
    return 2


__all__ = ["RECOVERY_KEY_ENV", "RateLimitNotice", "main", "print_recovery_key",
           "read_recovery_key", "restore", "run_bot", "setup", "setup_logging"]


if __name__ == "__main__":
    raise SystemExit(main())
