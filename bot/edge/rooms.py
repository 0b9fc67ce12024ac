"""``livcr setup``: create or upgrade the tables' rooms (spec §3).

Encryption on, invite-only, history visible to joined members only, no guests, the bot as
admin and the chair as moderator, the roster invited. Room state is not encrypted, so the name
and topic say which table it is and nothing about cases.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nio import (
    AsyncClient,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomResolveAliasResponse,
    RoomVisibility,
)

from bot.config import Config
from bot.edge.content import Renderer
from commands.model import Cell, Table, chair_role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetupResult:
    cell: str
    table: Table
    room_id: str
    created: bool
    invited: tuple[str, ...]


def _power_levels(bot: str | None, cell: Cell, table: Table) -> dict[str, Any]:
    """``bot`` is None when it created a room of version 12+ (creators have unbounded power
    there and may not be listed)."""
    chair = chair_role(table)
    users = {bot: 100} if bot else {}
    for member in cell.members_of(table):
        if member.role is chair:
            users[member.user_id] = 50
    return {
        "users": users,
        "users_default": 0,
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50,
        "events": {
            "m.room.name": 50,
            "m.room.topic": 50,
            "m.room.avatar": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.encryption": 100,
            "m.room.join_rules": 100,
            "m.room.guest_access": 100,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.canonical_alias": 50,
        },
    }


def _desired_state(bot: str | None, cell: Cell, table: Table) -> dict[str, dict[str, Any]]:
    state = {
        "m.room.encryption": {"algorithm": "m.megolm.v1.aes-sha2"},
        "m.room.join_rules": {"join_rule": "invite"},
        "m.room.history_visibility": {"history_visibility": "joined"},
        "m.room.guest_access": {"guest_access": "forbidden"},
        "m.room.power_levels": _power_levels(bot, cell, table),
    }
    days = cell.tables[table].message_retention_days
    if days is not None:
        state["m.room.retention"] = {"max_lifetime": days * 24 * 3600 * 1000}
    return state


def room_name(cell: Cell, table: Table, words: Renderer) -> str:
    return f"{cell.name} — {words.text(cell.language, 'room_name.' + table.value)}"


async def _existing(client: AsyncClient, room: str) -> str | None:
    if room.startswith("!"):
        return room
    response = await client.room_resolve_alias(room)
    if isinstance(response, RoomResolveAliasResponse):
        return str(response.room_id)
    return None


async def _unbounded_creator(client: AsyncClient, room_id: str) -> bool:
    """True when the bot created this room and the room version gives creators all power."""
    create = await client.room_get_state_event(room_id, "m.room.create")
    if not isinstance(create, RoomGetStateEventResponse):
        return False
    version = str(create.content.get("room_version", "1"))
    creators = {create.content.get("creator")} | set(
        create.content.get("additional_creators", [])
    )
    modern = version.isdigit() and int(version) >= 12
    return modern and (client.user_id in creators or create.content.get("creator") is None)


async def setup_rooms(client: AsyncClient, config: Config, words: Renderer
                      ) -> list[SetupResult]:
    """Create missing rooms, bring existing ones to the required state, invite the roster."""
    results: list[SetupResult] = []
    bot = client.user_id
    server = bot.split(":", 1)[1]
    for cell in config.cells:
        for table, table_cfg in cell.tables.items():
            room_id = await _existing(client, table_cfg.room)
            created = False
            if room_id is None:
                desired = _desired_state(None, cell, table)
                alias_local, alias_server = table_cfg.room[1:].split(":", 1)
                if alias_server != server:
                    raise RuntimeError(
                        f"cannot create {table_cfg.room}: aliases on {alias_server} are not ours"
                    )
                response = await client.room_create(
                    visibility=RoomVisibility.private,
                    alias=alias_local,
                    name=room_name(cell, table, words),
                    topic=words.text(cell.language, "setup.topic"),
                    initial_state=[
                        {"type": t, "state_key": "", "content": c}
                        for t, c in desired.items()
                        if t != "m.room.power_levels"
                    ],
                    power_level_override=desired["m.room.power_levels"],
                )
                if not isinstance(response, RoomCreateResponse):
                    raise RuntimeError(f"could not create {table_cfg.room}: {response}")
                room_id = str(response.room_id)
                created = True
            else:
                join = await client.join(room_id)
                if not hasattr(join, "room_id"):
                    raise RuntimeError(f"the bot cannot join {table_cfg.room}; invite it first")
                creator = await _unbounded_creator(client, room_id)
                desired = _desired_state(None if creator else bot, cell, table)
                for event_type, content in desired.items():
                    current = await client.room_get_state_event(room_id, event_type)
                    if isinstance(current, RoomGetStateEventResponse):
                        if event_type == "m.room.encryption" and current.content:
                            continue  # encryption can never be switched off or changed
                        if event_type == "m.room.power_levels":
                            merged = dict(current.content)
                            merged_users = dict(merged.get("users", {}))
                            merged_users.update(content["users"])
                            content = {**merged, **content, "users": merged_users}
                        if current.content == content:
                            continue
                    await client.room_put_state(room_id, event_type, content)
            joined = await client.joined_members(room_id)
            present = {m.user_id for m in getattr(joined, "members", [])}
            invited: list[str] = []
            for member in cell.members_of(table):
                if member.user_id not in present:
                    response = await client.room_invite(room_id, member.user_id)
                    if not hasattr(response, "status_code"):
                        invited.append(member.user_id)
            results.append(SetupResult(cell.id, table, room_id, created, tuple(invited)))
            log.info("table room ready: %s/%s", cell.id, table.value)
    return results
