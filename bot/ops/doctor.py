"""``livcr doctor``: the deployment as the bot sees it, one line per check (spec §14).

Each line is ``OK``, ``WARN`` or ``FAIL`` with what was checked and, when it is not OK, what to
do. Exit 0 when every check is OK, 1 with warnings only, 2 with a failure. It only reads: the
homeserver through the bot's saved session (no login, no new device, no join, no state
change), the database without upgrading it, the data directory's modes. It names members only
by the user ids the configuration already holds, and never prints a case code.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import sqlalchemy as sa

from bot.config import Config
from bot.edge.inspect import Inspector, RoomLook, saved_session, stored_master_key
from bot.edge.signing_keys import single_ed25519_key
from commands.model import Cell, Role, Table
from storage.db import Database
from storage.migrations import STEPS, current_version

CHAIR_ROLE = {Table.OPERATIONAL: Role.CHAIR, Table.STRATEGIC: Role.MAYOR}
SECRETS = ("m.cross_signing.master", "m.cross_signing.self_signing",
           "m.cross_signing.user_signing")


class Level(enum.IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2


@dataclass(frozen=True)
class Check:
    level: Level
    what: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level.name:<4} {self.what}"
        return f"{text} — fix: {self.fix}" if self.level is not Level.OK and self.fix else text


def ok(what: str) -> Check:
    return Check(Level.OK, what)


def warn(what: str, fix: str) -> Check:
    return Check(Level.WARN, what, fix)


def fail(what: str, fix: str) -> Check:
    return Check(Level.FAIL, what, fix)


# ---- the homeserver ----------------------------------------------------------------------
async def matrix_checks(config: Config) -> list[Check]:
    data_dir = config.matrix.data_dir
    hs = config.matrix.homeserver
    session = saved_session(data_dir)
    out: list[Check] = []
    async with Inspector(hs, session) as api:
        try:
            versions = await api.versions()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return [fail(f"homeserver {hs} unreachable ({type(exc).__name__})",
                         "check [matrix] homeserver, DNS, the proxy and that the homeserver runs")]
        if not versions:
            return [fail(f"homeserver {hs} does not answer as a Matrix homeserver",
                         "[matrix] homeserver must be the client API URL (as in .well-known)")]
        out.append(ok(f"homeserver {hs} reachable"))
        if session is None:
            out.append(fail(f"no saved session in {data_dir}",
                            "run `livcr setup -c FILE` (it logs in once and keeps one device)"))
            return out
        status, who = await api.whoami()
        if status != 200 or who.get("user_id") != config.matrix.user_id:
            out.append(fail(f"login: the saved access token of {config.matrix.user_id} is "
                            f"refused (HTTP {status})",
                            "the device was logged out: move session.json and the crypto store "
                            "away and run `livcr setup` again, then `livcr restore` to keep the "
                            "identity"))
            return out
        if who.get("device_id") not in (None, session.device_id):
            out.append(fail("login: the access token belongs to another device than the "
                            "saved one", "use the data_dir of this bot's device"))
            return out
        out.append(ok(f"login as {config.matrix.user_id}, device {session.device_id}"))
        out.append(await _identity(api, config, session.device_id))
        out.append(await _recovery(api, config.matrix.user_id))
        for cell in config.cells:
            for table, settings in cell.tables.items():
                look = await api.room(settings.room)
                out.extend(room_checks(cell, table, settings.room, look,
                                       config.matrix.user_id))
    return out


async def _identity(api: Inspector, config: Config, device_id: str) -> Check:
    user = config.matrix.user_id
    keys = await api.own_keys(user)
    published = single_ed25519_key(keys.get("master_keys", {}).get(user))
    stored = stored_master_key(config.matrix.data_dir)
    if published is None:
        return fail("the bot has no published cross-signing identity",
                    "run `livcr run` once (it bootstraps cross-signing with the password)")
    if stored is None:
        return fail("the bot's identity is published but not stored in data_dir",
                    "run `livcr restore -c FILE` with the recovery key")
    if stored != published:
        return fail("the published identity of the bot is not the stored one",
                    "someone reset the bot's cross-signing: restore it with `livcr restore` "
                    "and tell members to verify the bot again")
    self_signing = single_ed25519_key(keys.get("self_signing_keys", {}).get(user))
    device = keys.get("device_keys", {}).get(user, {}).get(device_id, {})
    signatures = device.get("signatures", {}).get(user, {}) if isinstance(device, dict) else {}
    if self_signing is None or f"ed25519:{self_signing}" not in signatures:
        return fail("the bot's device is not cross-signed",
                    "restart `livcr run` (it signs its own device at start)")
    return ok("the bot's device is cross-signed and its identity is the stored one")


async def _recovery(api: Inspector, user: str) -> Check:
    default = await api.account_data(user, "m.secret_storage.default_key")
    key_id = default.get("key") if default else None
    missing = "no recovery key is stored (server-side secret storage)"
    fix = ("store the identity under a recovery key (`livcr setup`) and keep the key offline; "
           "without it a lost machine means a new identity")
    if not isinstance(key_id, str):
        return warn(missing, fix)
    for name in SECRETS:
        content = await api.account_data(user, name)
        if not content or key_id not in content.get("encrypted", {}):
            return warn(f"secret storage lacks {name} under its default key", fix)
    return ok("recovery key stored: the identity is in secret storage")


def _level(power: dict[str, Any], user: str) -> int:
    users = power.get("users", {})
    value = users.get(user, power.get("users_default", 0)) if isinstance(users, dict) else 0
    return int(value) if isinstance(value, int) else 0


def _unbounded(look: RoomLook, user: str) -> bool:
    create = look.content("m.room.create") or {}
    version = str(create.get("room_version", "1"))
    creators = {look.creator, create.get("creator")} | set(
        create.get("additional_creators", []))
    return version.isdigit() and int(version) >= 12 and user in creators


def room_checks(cell: Cell, table: Table, room: str, look: RoomLook, bot: str) -> list[Check]:
    """The settings of one table room (spec §14 / ``livcr setup``)."""
    name = f"{cell.id}/{table.value} ({room})"
    setup = "run `livcr setup -c FILE`"
    if look.room_id is None:
        return [fail(f"{name}: {look.error}", f"{setup} (it creates the room)")]
    if not look.joined or look.error:
        return [fail(f"{name}: {look.error or 'the bot is not joined'}",
                     f"invite the bot and {setup}")]
    out = [ok(f"{name}: exists, the bot is joined")]
    encryption = look.content("m.room.encryption")
    if not encryption or not encryption.get("algorithm"):
        out.append(fail(f"{name}: not encrypted — the bot refuses to work there",
                        "encryption can never be switched off: create a new encrypted room "
                        f"(remove the room from the config and {setup}) and move the table"))
    else:
        out.append(ok(f"{name}: encrypted"))
    join_rule = (look.content("m.room.join_rules") or {}).get("join_rule", "invite")
    out.append(ok(f"{name}: invite-only") if join_rule == "invite" else fail(
        f"{name}: join rule is {join_rule!r}, not invite-only", setup))
    history = (look.content("m.room.history_visibility") or {}).get("history_visibility",
                                                                   "shared")
    out.append(ok(f"{name}: history visible to joined members only")
               if history == "joined" else fail(
                   f"{name}: history visibility is {history!r}, not 'joined'", setup))
    guests = (look.content("m.room.guest_access") or {}).get("guest_access", "forbidden")
    out.append(ok(f"{name}: no guests") if guests == "forbidden" else fail(
        f"{name}: guests may join (guest_access {guests!r})", setup))
    power = look.content("m.room.power_levels") or {}
    redact = power.get("redact", 50)
    if _unbounded(look, bot) or _level(power, bot) >= (redact if isinstance(redact, int)
                                                       else 50):
        out.append(ok(f"{name}: the bot may redact"))
    else:
        out.append(fail(f"{name}: the bot may not redact (its level {_level(power, bot)}, "
                        f"redact needs {redact}) — refused messages with personal data stay "
                        "visible", f"{setup}, or give the bot power level 100"))
    chairs = [m.user_id for m in cell.members_of(table) if m.role is CHAIR_ROLE[table]]
    weak = [c for c in chairs if _level(power, c) < 50 and not _unbounded(look, c)]
    if weak:
        out.append(warn(f"{name}: not a moderator: {', '.join(weak)}",
                        f"{setup} (it makes the table's chair a moderator)"))
    else:
        out.append(ok(f"{name}: the chair is a moderator"))
    roster = [m.user_id for m in cell.members_of(table)]
    joined = look.members("join")
    absent = [u for u in roster if u not in joined]
    if absent:
        out.append(warn(f"{name}: {len(roster) - len(absent)}/{len(roster)} roster members "
                        f"joined; not joined: {', '.join(absent)}",
                        f"{setup} invites them; ask them to accept the invitation"))
    else:
        out.append(ok(f"{name}: {len(roster)}/{len(roster)} roster members joined"))
    return out


# ---- the database and the disk -------------------------------------------------------------
def database_checks(config: Config) -> list[Check]:
    url = config.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return [fail(f"database file {url.removeprefix('sqlite:///')} does not exist",
                     "check [storage] database_url; `livcr run` creates it at first start")]
    database = Database(url)
    try:
        try:
            with database.engine.connect() as conn:
                version = current_version(conn)
        except sa.exc.SQLAlchemyError as exc:
            return [fail(f"database unreachable ({type(exc).__name__})",
                         "check [storage] database_url and that the database server runs")]
        if version != len(STEPS):
            return [fail(f"database schema version {version}, this livcr-bot needs "
                         f"{len(STEPS)}", "start `livcr run` once (it upgrades the schema)"
                         if version < len(STEPS) else "upgrade livcr-bot")]
        out = [ok(f"database reachable at schema version {version}")]
        with database.reading() as repos:
            for cell in config.cells:
                out.extend(_member_checks(cell, repos))
        return out
    finally:
        database.dispose()


def _member_checks(cell: Cell, repos: Any) -> list[Check]:
    out = []
    for table in cell.tables:
        members = cell.members_of(table)
        missing = [m.user_id for m in members
                   if not repos.acks.has_acked(cell.id, table.value, m.user_id)]
        name = f"{cell.id}/{table.value}"
        if missing:
            out.append(warn(f"{name}: {len(members) - len(missing)}/{len(members)} members "
                            f"acknowledged; never acknowledged: {', '.join(missing)}",
                            "ask them to send `!ack` in the table room (art. 458ter Sw.); "
                            "until then the bot answers them only with that request"))
        else:
            out.append(ok(f"{name}: {len(members)}/{len(members)} members acknowledged"))
    users = sorted({m.user_id for m in cell.members})
    pins = repos.identities.pins(users)
    blocked = sorted(r.user_id for r in repos.identities.list_blocked() if r.user_id in users)
    trusted = len([u for u in users if u in pins and u not in blocked])
    counts = f"{trusted} trusted, {len(blocked)} blocked, {len(users) - trusted - len(blocked)} " \
             "not yet seen"
    if blocked:
        out.append(warn(f"{cell.id}: members' identities: {counts}; blocked: "
                        f"{', '.join(blocked)}",
                        "a chair checks the new key with the person and sends `!members trust "
                        "@user`, or run `livcr trust -c FILE @user`"))
    else:
        out.append(ok(f"{cell.id}: members' identities: {counts}"))
    return out


def _loose(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def data_dir_checks(data_dir: Path) -> list[Check]:
    if not data_dir.is_dir():
        return [fail(f"data_dir {data_dir} does not exist",
                     "check [matrix] data_dir (relative paths are relative to the config file)")]
    fix = f"chmod -R go= {data_dir} (and run the bot as its own user)"
    if _loose(data_dir):
        return [fail(f"data_dir {data_dir} is open to other users "
                     f"(mode {stat.S_IMODE(data_dir.stat().st_mode):o})", fix)]
    loose = [p for p in _walk(data_dir) if _loose(p)]
    if loose:
        return [fail(f"data_dir: {len(loose)} file(s) readable by other users, e.g. "
                     f"{loose[0].relative_to(data_dir)}", fix)]
    owner = data_dir.stat().st_uid
    if owner != os.geteuid():
        return [warn(f"data_dir {data_dir} belongs to uid {owner}, not to this user",
                     "run doctor as the bot's service user")]
    return [ok(f"data_dir {data_dir} is private (0700, files not readable by others)")]


def _walk(root: Path) -> Iterable[Path]:
    for path in root.rglob("*"):
        if not path.is_symlink():
            yield path


async def checks(config: Config) -> list[Check]:
    return [*await matrix_checks(config), *database_checks(config),
            *data_dir_checks(config.matrix.data_dir)]


async def main(config: Config, out: TextIO) -> int:
    found = await checks(config)
    for check in found:
        out.write(check.line() + "\n")
    worst = max((c.level for c in found), default=Level.OK)
    summary = {Level.OK: "all checks passed", Level.WARN: "warnings only",
               Level.FAIL: "failures"}[worst]
    counts = {lvl: sum(1 for c in found if c.level is lvl) for lvl in Level}
    out.write(f"doctor: {summary} ({counts[Level.OK]} ok, {counts[Level.WARN]} warnings, "
              f"{counts[Level.FAIL]} failures)\n")
    return int(worst)
