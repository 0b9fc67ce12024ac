"""Read-only looks at the homeserver for ``livcr doctor`` (spec §14): plain HTTP GETs (and the
read-only ``/keys/query``) with the bot's saved session; it never logs in, joins, sends or
changes anything. Results are plain values; the judging is in :mod:`bot.ops.doctor`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.edge.session import SESSION_FILE
from bot.edge.signing_keys import KEYS_FILE

TIMEOUT = aiohttp.ClientTimeout(total=20)


@dataclass(frozen=True)
class Session:
    user_id: str
    device_id: str
    access_token: str = field(repr=False)


def saved_session(data_dir: Path) -> Session | None:
    """The session ``livcr run``/``setup`` saved, or None."""
    path = data_dir / SESSION_FILE
    try:
        saved = json.loads(path.read_text())
        return Session(saved["user_id"], saved["device_id"], saved["access_token"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stored_master_key(data_dir: Path) -> str | None:
    """The public master key of the identity kept in ``data_dir`` (unpadded base64)."""
    try:
        value = json.loads((data_dir / KEYS_FILE).read_text()).get("master_public")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class RoomLook:
    """What the doctor needs of a table room, from its state."""

    room_id: str | None
    joined: bool
    state: dict[tuple[str, str], dict[str, Any]]
    error: str = ""
    #: The sender of ``m.room.create`` (from room version 12 on, creators have all power).
    creator: str = ""

    def content(self, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        return self.state.get((event_type, state_key))

    def members(self, membership: str = "join") -> set[str]:
        return {key for (kind, key), content in self.state.items()
                if kind == "m.room.member" and content.get("membership") == membership}


class Inspector:
    """GETs against the client-server API with the saved access token."""

    def __init__(self, homeserver: str, session: Session | None) -> None:
        self.base = homeserver.rstrip("/")
        self.session = session
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Inspector:
        self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    auth: bool = True) -> tuple[int, dict[str, Any]]:
        assert self._http is not None
        headers = {}
        if auth and self.session is not None:
            headers["Authorization"] = f"Bearer {self.session.access_token}"
        async with self._http.request(method, self.base + path, json=body,
                                      headers=headers) as response:
            try:
                data = await response.json(content_type=None)
            except ValueError:
                data = {}
            return response.status, data if isinstance(data, dict) else {}

    async def versions(self) -> list[str]:
        """Raises ``aiohttp.ClientError``/``OSError`` when the homeserver is unreachable."""
        status, data = await self._call("GET", "/_matrix/client/versions", auth=False)
        return list(data.get("versions", [])) if status == 200 else []

    async def whoami(self) -> tuple[int, dict[str, Any]]:
        return await self._call("GET", "/_matrix/client/v3/account/whoami")

    async def own_keys(self, user_id: str) -> dict[str, Any]:
        status, data = await self._call("POST", "/_matrix/client/v3/keys/query",
                                        {"device_keys": {user_id: []}})
        return data if status == 200 else {}

    async def account_data(self, user_id: str, kind: str) -> dict[str, Any] | None:
        status, data = await self._call(
            "GET", f"/_matrix/client/v3/user/{quote(user_id)}/account_data/{quote(kind)}")
        return data if status == 200 else None

    async def room(self, room: str) -> RoomLook:
        room_id = room
        if room.startswith("#"):
            status, data = await self._call(
                "GET", f"/_matrix/client/v3/directory/room/{quote(room)}")
            if status != 200 or not isinstance(data.get("room_id"), str):
                return RoomLook(None, False, {}, "the alias does not exist")
            room_id = data["room_id"]
        status, rooms = await self._call("GET", "/_matrix/client/v3/joined_rooms")
        joined = status == 200 and room_id in rooms.get("joined_rooms", [])
        assert self._http is not None
        if not joined:
            return RoomLook(room_id, False, {}, "the bot is not joined")
        async with self._http.get(
            f"{self.base}/_matrix/client/v3/rooms/{quote(room_id)}/state",
            headers={"Authorization": f"Bearer {self.session.access_token}"}
            if self.session else {},
        ) as response:
            if response.status != 200:
                return RoomLook(room_id, True, {}, f"its state could not be read "
                                f"(HTTP {response.status})")
            events = await response.json(content_type=None)
        state = {(e.get("type", ""), e.get("state_key", "")): e.get("content", {})
                 for e in events if isinstance(e, dict)}
        creator = next((str(e.get("sender", "")) for e in events if isinstance(e, dict)
                        and e.get("type") == "m.room.create"), "")
        return RoomLook(room_id, True, state, creator=creator)
