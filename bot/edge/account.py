"""The bot's account as the operator's commands see it (issue 20): which roster users exist on
the homeserver, what ``check-config --online`` checks, and the first-day ``setup
--start-over`` (a new identity, the stray devices of the account deleted).

Nothing here runs in the bot's sync loop; every function reports problems as one line each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    DevicesResponse,
    LoginResponse,
    ProfileGetError,
    RoomResolveAliasResponse,
)

from bot.config import Config
from bot.edge.cross_signing import reset_cross_signing
from bot.edge.files import protect_tree
from bot.edge.session import login_refused, no_429_retries, save_session

log = logging.getLogger(__name__)

PROFILE_CONCURRENCY = 8


async def unknown_users(client: AsyncClient, user_ids: Iterable[str]) -> list[str]:
    """The users the homeserver says do not exist (``GET /profile`` answers 404).

    A user of another homeserver that cannot be asked (federation off) counts as existing:
    only a definite "no such user" is reported."""
    limit = asyncio.Semaphore(PROFILE_CONCURRENCY)

    async def missing(user_id: str) -> bool:
        async with limit:
            response = await client.get_profile(user_id)
        if not isinstance(response, ProfileGetError):
            return False
        # Synapse: 404 with M_NOT_FOUND, or M_UNKNOWN "No row found (profiles)".
        http = getattr(getattr(response, "transport_response", None), "status", None)
        return response.status_code == "M_NOT_FOUND" or http == 404

    wanted = sorted(set(user_ids))
    found = await asyncio.gather(*(missing(u) for u in wanted))
    return [u for u, gone in zip(wanted, found, strict=True) if gone]


async def online_problems(client: AsyncClient, config: Config) -> list[str]:
    """``check-config --online`` after a successful login: the tables' rooms (an alias that
    does not exist yet is created by ``setup``, so it is a note, not a problem) and every
    roster user exists."""
    problems: list[str] = []
    for cell in config.cells:
        for table, table_cfg in cell.tables.items():
            room = table_cfg.room
            where = f"tables.{table.value}.room" if len(config.cells) == 1 else (
                f"cells[{cell.id}].tables.{table.value}.room")
            if room.startswith("#"):
                response = await client.room_resolve_alias(room)
                if not isinstance(response, RoomResolveAliasResponse):
                    server = client.user_id.split(":", 1)[1]
                    if room.split(":", 1)[1] != server:
                        problems.append(f"{where}: {room} does not exist, and setup can create "
                                        f"aliases only on {server}")
                    else:
                        log.info("%s: %s does not exist yet; `livcr setup` creates it", where,
                                 room)
        for user_id in await unknown_users(client, (m.user_id for m in cell.members)):
            problems.append(f"members[{user_id}]: no such user on the homeserver")
    return problems


def _password_auth(client: AsyncClient, password: str, session: str | None) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": client.user_id},
        "password": password,
        **({"session": session} if session else {}),
    }


async def delete_other_devices(client: AsyncClient, password: str) -> list[str]:
    """Delete every device of the bot's account but the current one (members' clients would
    otherwise go on encrypting for them); returns the device ids deleted."""
    response = await client.devices()
    if not isinstance(response, DevicesResponse):
        raise RuntimeError(f"could not list the bot's devices ({response.status_code})")
    others = [d.id for d in response.devices if d.id != client.device_id]
    if not others:
        return []
    answer = await client.delete_devices(others)
    if isinstance(answer, DeleteDevicesAuthResponse):
        answer = await client.delete_devices(others, _password_auth(client, password,
                                                                    answer.session))
    if not isinstance(answer, DeleteDevicesResponse):
        raise RuntimeError("the homeserver refused to delete the bot's other devices "
                           f"({getattr(answer, 'status_code', '?')})")
    return others


async def new_identity(client: AsyncClient, data_dir: Path, password: str) -> str:
    """Replace the account's cross-signing identity by a new one; the new master key."""
    return await reset_cross_signing(client, data_dir, password)


async def start_over_login(client: AsyncClient, config: Config, data_dir: Path) -> list[str]:
    """``setup --start-over``: a password login as a new device, a new cross-signing identity
    signed by it, and every other device of the account deleted; the devices deleted.

    The caller has checked that the installation was never used and moved the old session,
    crypto store and identity file aside."""
    cfg = config.matrix
    if not cfg.password:
        raise RuntimeError("--start-over needs the bot's password (LIVCR_MATRIX_PASSWORD): "
                           "the homeserver asks for it to replace the identity and delete "
                           "devices")
    with no_429_retries(client):
        response = await client.login(cfg.password, device_name=cfg.device_name)
    if not isinstance(response, LoginResponse):
        raise login_refused(cfg, response)
    save_session(data_dir, cfg.user_id, response.device_id, response.access_token)
    if client.should_upload_keys:
        await client.keys_upload()
    master = await new_identity(client, data_dir, cfg.password)
    log.info("new cross-signing identity (master key %s)", master)
    deleted = await delete_other_devices(client, cfg.password)
    protect_tree(data_dir)
    return deleted
