"""``livcr``: run, demo, setup, restore, check-config, status, purge, trust, migrate-db,
doctor, audit, gdpr-record (spec §3, §14)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bot.config import Config, ConfigError, load_config

log = logging.getLogger("livcr")

RECOVERY_KEY_ENV = "LIVCR_RECOVERY_KEY"


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
    secrets.append(os.environ.get(RECOVERY_KEY_ENV, ""))
    for handler in handlers:
        handler.addFilter(NoSecrets(secrets))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers,
                        force=True)
    # nio logs event contents at debug level and some payloads at info: keep it quiet.
    for noisy in ("nio", "peewee", "aiohttp", "apscheduler", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A missing alias (setup's first look) is a schema "error" to nio, not to us.
    logging.getLogger("nio.responses").setLevel(logging.ERROR)
    for handler in handlers:
        handler.addFilter(RateLimitNotice())


class RateLimitNotice(logging.Filter):
    """nio's "Got 429 response (ratelimited), sleeping for 292600ms" becomes a line that says
    what is happening, for how long and until when (a long silent wait looks like a hang)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("nio") and str(record.msg).startswith("Got 429 response"):
            import time

            wait_ms = record.args[0] if isinstance(record.args, tuple) and record.args else 0
            seconds = int(wait_ms) / 1000 if isinstance(wait_ms, int | float) else 0.0
            until = time.strftime("%H:%M:%S", time.localtime(record.created + seconds))
            record.name = "livcr"
            record.msg = ("the homeserver rate-limits the bot (HTTP 429): waiting %.0f s, "
                          "until %s, then it goes on by itself")
            record.args = (seconds, until)
        return True


#: Exit codes (README "Exit codes"): 0 done, 1 refused or failed (the line says why),
#: 2 the configuration or the command line is wrong, 3 the homeserver cannot be reached or
#: is not one, 4 the homeserver refused the bot's credentials, 75 rate-limited (try later).
EXIT_FAILED = 1
EXIT_CONFIG = 2

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


def _first_setup_notice(config: Config) -> list[str]:
    """What the first ``setup`` of an installation creates, said before it does."""
    from bot.edge.session import SESSION_FILE

    cfg = config.matrix
    if (cfg.data_dir / SESSION_FILE).exists():
        return []
    tables = sum(len(c.tables) for c in config.cells)
    return [
        f"first setup of this installation: {cfg.data_dir} (mode 0700) will hold the bot's "
        "session, encryption keys, cross-signing identity, database and log; back it up "
        "(README \"What must never be lost\")",
        f"logging in as {cfg.user_id} creates its one device \"{cfg.device_name}\" and its "
        "cross-signing identity",
        f"then for {tables} table(s): the room is created (or brought up to standard) and the "
        "roster invited",
    ]


def _used(config: Config) -> str | None:
    """Why ``--start-over`` is refused: the installation holds dossiers or meetings."""
    import sqlalchemy as sa

    url = config.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for table, what in (("dossier", "dossiers"), ("meeting", "meetings")):
                if inspector.has_table(table) and conn.execute(
                        sa.text(f"SELECT COUNT(*) FROM {table}")).scalar():
                    return what
    finally:
        engine.dispose()
    return None


def _move_aside(data_dir: Path) -> Path | None:
    """The session, crypto store and identity file of the abandoned start, kept (not
    deleted) in ``data_dir/before-start-over``."""
    import shutil

    from bot.edge.session import SESSION_FILE
    from bot.edge.signing_keys import KEYS_FILE

    names = [n for n in (SESSION_FILE, KEYS_FILE, "crypto") if (data_dir / n).exists()]
    if not names:
        return None
    aside = data_dir / "before-start-over"
    if aside.exists():
        shutil.rmtree(aside)
    aside.mkdir(mode=0o700)
    for name in names:
        (data_dir / name).rename(aside / name)
    return aside


async def setup(config: Config, start_over: bool = False) -> int:
    from bot.core import render
    from bot.core.service import Service
    from bot.edge.account import start_over_login, unknown_users
    from bot.edge.cross_signing import store_identity
    from bot.edge.rooms import setup_rooms
    from bot.edge.session import probe_homeserver
    from bot.edge.signing_keys import CrossSigningError

    data_dir = config.matrix.data_dir
    if start_over:
        used = _used(config)
        if used is not None:
            print(f"livcr: --start-over refused: this installation already holds {used}. To "
                  "recover an installation in use, see README \"Restore\" (livcr restore)",
                  file=sys.stderr)
            return EXIT_FAILED
    await probe_homeserver(config.matrix.homeserver)
    for line in ([] if start_over else _first_setup_notice(config)):
        print(line)
    if start_over:
        aside = _move_aside(data_dir)
        if aside is not None:
            print(f"the previous session, keys and identity are kept in {aside}")
    service = Service(config)
    client = service.bot.client
    failed = False
    try:
        if start_over:
            deleted = await start_over_login(client, config, data_dir)
            print(f"started over: new device {client.device_id} with a new cross-signing "
                  f"identity; {len(deleted)} other device(s) of {config.matrix.user_id} "
                  "deleted")
        else:
            await service.bot.login()
        try:
            stored = await store_identity(client, data_dir, replace=start_over)
        except CrossSigningError as exc:
            # The rooms are still set up; the exit status tells that recovery is not ready.
            print(f"secret storage: NOT stored: {exc}", file=sys.stderr)
            failed = True
        else:
            if stored.recovery_key is None:
                print(f"secret storage: {stored.already}")
            else:
                print_recovery_key(stored.recovery_key)
        roster = {m.user_id for c in config.cells for m in c.members}
        unknown = set(await unknown_users(client, roster))
        for user_id in sorted(unknown):
            failed = True
            print(f"error: members[{user_id}]: no such user on {config.matrix.homeserver}; "
                  "not invited (create the account or correct the user id)", file=sys.stderr)
        for result in await setup_rooms(client, config, render):
            state = "created" if result.created else "checked"
            invited = [u for u in result.invited if u not in unknown]
            print(f"{result.cell}/{result.table.value}: {result.room_id} {state}, "
                  f"{len(invited)} invited")
    finally:
        await client.close()
        service.db.dispose()
    return EXIT_FAILED if failed else 0


async def check_online(config: Config) -> int:
    from bot.edge.account import online_problems
    from bot.edge.session import end_check, login_check

    client, temporary = await login_check(config.matrix, config.matrix.data_dir)
    try:
        problems = await online_problems(client, config)
    finally:
        await end_check(client, temporary)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return EXIT_CONFIG
    print(f"homeserver OK: {config.matrix.homeserver} answers, {config.matrix.user_id} logs "
          "in, every roster user exists")
    return 0


def print_recovery_key(recovery_key: str) -> None:
    """Shown once, on the terminal only (stdout, never the log)."""
    print("secret storage: the bot's cross-signing identity is stored in its account, "
          "encrypted under this recovery key:")
    print(f"recovery key: {recovery_key}")
    print("Write it down or print it and keep it OFFLINE (a safe, not this machine, not a "
          "chat). It is shown only this once; `livcr restore -c FILE` needs it to bring the "
          "bot's identity back on a new machine.")


def read_recovery_key() -> str:
    """From LIVCR_RECOVERY_KEY, else a prompt that does not echo."""
    key = os.environ.get(RECOVERY_KEY_ENV, "")
    if not key.strip():
        try:
            key = getpass.getpass("recovery key: ")
        except (EOFError, KeyboardInterrupt):
            key = ""
    return key


def _tree(path: Path) -> set[Path]:
    return {path, *path.rglob("*")} if path.exists() else set()


async def restore(config: Config, recovery_key: str) -> int:
    """Bring the bot's cross-signing identity back from secret storage on a new machine:
    a new device (login), the secrets read and checked against the published master key,
    ``cross_signing.json`` written, the new device signed. Any failure undoes the login
    (device logged out unless it came from a configured access token) and leaves the data
    directory as it was."""
    from bot.edge.cross_signing import read_identity, restore_identity
    from bot.edge.secret_storage import SecretStorageError, decode_recovery_key
    from bot.edge.session import SESSION_FILE, StartupError, login, new_client
    from bot.edge.signing_keys import KEYS_FILE, CrossSigningError, public_b64
    from bot.edge.trust import fingerprint

    cfg = config.matrix
    data_dir = cfg.data_dir
    crypto = data_dir / "crypto"
    present = [name for name in (SESSION_FILE, KEYS_FILE) if (data_dir / name).exists()]
    if crypto.exists() and any(crypto.iterdir()):
        present.append("crypto/")
    if present:
        hint = ""
        if KEYS_FILE not in present:
            hint = (" (if `livcr run` made them on this machine before the restore: sign that "
                    "device out and empty the directory)")
        print(f"restore refused: {data_dir} already holds {', '.join(present)}; restore "
              f"brings the identity to a new machine, into an empty data directory{hint}",
              file=sys.stderr)
        return 2
    if not recovery_key.strip():
        print(f"restore needs the recovery key that setup printed: set {RECOVERY_KEY_ENV} or "
              "type it at the prompt", file=sys.stderr)
        return 2
    try:
        decode_recovery_key(recovery_key)
    except SecretStorageError as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 2
    before = _tree(data_dir)
    by_password = not cfg.access_token
    client = new_client(cfg, data_dir)
    try:
        try:
            await login(client, cfg, data_dir, cross_sign=False)
            keys, _store_key = await read_identity(client, recovery_key)
            await restore_identity(client, data_dir, keys)
        except (StartupError, CrossSigningError, SecretStorageError) as exc:
            if by_password and client.logged_in:
                await client.logout()  # the new device goes again
            for path in sorted(_tree(data_dir) - before, key=lambda p: len(p.parts),
                               reverse=True):
                if path.is_dir():
                    path.rmdir()
                else:
                    path.unlink()
            print(f"restore failed: {exc}", file=sys.stderr)
            return 1
    finally:
        await client.close()
    print(f"restored the cross-signing identity of {cfg.user_id} (master key "
          f"{fingerprint(public_b64(keys.master))}) and signed the new device "
          f"{client.device_id} with it; start the bot with `livcr run`")
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


if __name__ == "__main__":
    raise SystemExit(main())
