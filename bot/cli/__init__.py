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
from collections.abc import Sequence
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
    from bot.edge.cross_signing import store_identity
    from bot.edge.rooms import setup_rooms
    from bot.edge.signing_keys import CrossSigningError

    service = Service(config)
    await service.bot.login()
    status = 0
    try:
        try:
            stored = await store_identity(service.bot.client, config.matrix.data_dir)
        except CrossSigningError as exc:
            # The rooms are still set up; the exit status tells that recovery is not ready.
            print(f"secret storage: NOT stored: {exc}", file=sys.stderr)
            status = 1
        else:
            if stored.recovery_key is None:
                print(f"secret storage: {stored.already}")
            else:
                print_recovery_key(stored.recovery_key)
        for result in await setup_rooms(service.bot.client, config, render):
            state = "created" if result.created else "checked"
            print(f"{result.cell}/{result.table.value}: {result.room_id} {state}, "
                  f"{len(result.invited)} invited")
    finally:
        await service.bot.client.close()
    return status


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
        ("setup", "create or upgrade the tables' rooms and invite the roster; store the "
         "bot's identity in secret storage (prints the recovery key once)"),
        ("restore", "on a new machine, with an empty data_dir: bring back the bot's identity "
         f"with the recovery key ({RECOVERY_KEY_ENV} or a prompt)"),
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
    if args.command == "restore":
        setup_logging(None, args.verbose)  # nothing in data_dir unless the restore succeeds
        return asyncio.run(restore(config, read_recovery_key()))
    setup_logging(config, args.verbose)
    if args.command in ("run", "setup"):
        from bot.edge.session import StartupError
        from bot.edge.signing_keys import CrossSigningError

        try:
            return asyncio.run(run_bot(config) if args.command == "run" else setup(config))
        except (StartupError, CrossSigningError) as exc:
            log.error("%s stopped: %s", args.command, exc)
            return 1
    if args.command == "status":
        return status(config)
    if args.command == "purge":
        return purge(config)
    if args.command == "trust":
        return trust(config, args.user_id)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
