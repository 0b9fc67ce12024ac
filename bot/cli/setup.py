"""``livcr setup`` (the first day, ``--start-over``) and ``check-config --online``."""

from __future__ import annotations

import sys
from pathlib import Path

from bot.cli.exits import EXIT_CONFIG, EXIT_FAILED
from bot.cli.identity import print_recovery_key
from bot.config import Config


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
    from bot.edge.identity_backup import store_identity
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
