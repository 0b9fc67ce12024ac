"""A table member's Matrix client with real E2EE: used by the demo, the tests and benchmarks.

It is what a person's Element does, reduced to what we need: join, send a command, and see
the bot's decrypted answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    DownloadResponse,
    LoginResponse,
    MegolmEvent,
    RoomMessage,
    RoomSendResponse,
    UnknownEvent,
)
from nio.crypto.attachments import decrypt_attachment

from bot.edge.cross_signing import ensure_cross_signing, reset_cross_signing
from bot.edge.devices import exchange_keys


@dataclass
class Seen:
    """An event a member received, decrypted when possible."""

    room_id: str
    event_id: str
    sender: str
    type: str
    content: dict[str, Any]
    decrypted: bool
    verified: bool

    @property
    def body(self) -> str:
        return str(self.content.get("body", ""))

    @property
    def in_reply_to(self) -> str | None:
        relates = self.content.get("m.relates_to") or {}
        return (relates.get("m.in_reply_to") or {}).get("event_id")


@dataclass
class MemberClient:
    homeserver: str
    user_id: str
    password: str
    store_dir: Path
    seen: list[Seen] = field(default_factory=list)
    client: AsyncClient = field(init=False)
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _undecrypted: list[tuple[str, MegolmEvent]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(
            self.homeserver,
            self.user_id,
            store_path=str(self.store_dir),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        )
        self.client.add_event_callback(self._on_event, (RoomMessage, MegolmEvent, UnknownEvent))

    async def _on_event(self, room: Any, event: Any) -> None:
        self._record(room.room_id, event)
        if isinstance(event, MegolmEvent):
            self._undecrypted.append((room.room_id, event))

    def _retry_undecrypted(self) -> None:
        """Like Element: an event whose room key arrives later is decrypted then."""
        still: list[tuple[str, MegolmEvent]] = []
        for room_id, event in self._undecrypted:
            try:
                decrypted = self.client.decrypt_event(event)
            except Exception:
                decrypted = None
            if decrypted is None or isinstance(decrypted, MegolmEvent):
                still.append((room_id, event))
                continue
            self._record(room_id, decrypted)  # the undecrypted sighting stays, content-less
        self._undecrypted = still

    def _record(self, room_id: str, event: Any) -> None:
        source = event.source
        decrypted = not isinstance(event, MegolmEvent)
        self.seen.append(
            Seen(
                room_id=room_id,
                event_id=event.event_id,
                sender=event.sender,
                type=source.get("type", ""),
                content=dict(source.get("content", {})) if decrypted else {},
                decrypted=decrypted,
                verified=bool(getattr(event, "verified", False)),
            )
        )
        self._changed.set()

    async def login(self, *, cross_sign: bool = True, device_name: str = "member") -> None:
        """Log in a new device. Like Element at first login, the member's client publishes a
        cross-signing identity (master, self-signing, user-signing key; the password answers
        the homeserver's user-interactive auth) and signs its own device with it, through the
        bot's own code (:mod:`bot.edge.cross_signing`). ``cross_sign=False`` is a second
        login the member never verified: a device the bot must not trust."""
        response = await self.client.login(self.password, device_name=device_name)
        if not isinstance(response, LoginResponse):
            raise RuntimeError(f"login failed for {self.user_id}: {response}")
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if cross_sign:
            await ensure_cross_signing(self.client, self.store_dir, self.password)

    async def reset_identity(self) -> str:
        """Replace the member's cross-signing identity (a new master key) and sign this
        device with it, as Element's "reset cryptographic identity"; returns the new key."""
        return await reset_cross_signing(self.client, self.store_dir, self.password)

    async def start(self) -> None:
        await self.client.sync(timeout=0, full_state=True)
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.client.sync(timeout=1000)
                await exchange_keys(self.client)
                if self._undecrypted:
                    self._retry_undecrypted()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.client.close()

    async def join(self, room_id: str, timeout: float = 30) -> None:
        async def joined() -> bool:
            if room_id in self.client.rooms and self.client.rooms[room_id].encrypted is not None:
                return True
            response = await self.client.join(room_id)
            return hasattr(response, "room_id")

        deadline = asyncio.get_running_loop().time() + timeout
        while not await joined():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{self.user_id} could not join {room_id}")
            await asyncio.sleep(0.3)
        while room_id not in self.client.rooms:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{self.user_id} never saw {room_id}")
            await asyncio.sleep(0.1)

    async def accept_invite(self, timeout: float = 20) -> str | None:
        """Join the first room this member is invited to; None when no invite comes."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.client.invited_rooms:
            if asyncio.get_running_loop().time() > deadline:
                return None
            await asyncio.sleep(0.2)
        room_id = str(next(iter(self.client.invited_rooms)))
        await self.join(room_id)
        return room_id

    async def send(self, room_id: str, body: str, extra: dict[str, Any] | None = None) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": body}
        content.update(extra or {})
        return await self.send_event(room_id, "m.room.message", content)

    async def send_event(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        for _ in range(50):
            if room_id in self.client.rooms:
                break
            await asyncio.sleep(0.1)
        response = await self.client.room_send(
            room_id, event_type, content, ignore_unverified_devices=True
        )
        if not isinstance(response, RoomSendResponse):
            raise RuntimeError(f"send failed: {response}")
        return str(response.event_id)

    async def wait_for(
        self, predicate: Callable[[Seen], bool], timeout: float = 30
    ) -> Seen:
        deadline = asyncio.get_running_loop().time() + timeout
        checked = 0
        while True:
            for item in self.seen[checked:]:
                if predicate(item):
                    return item
            checked = len(self.seen)
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"{self.user_id}: expected event did not arrive")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 1.0))

    async def reply_to(self, event_id: str, sender: str | None = None,
                       timeout: float = 30) -> Seen:
        return await self.wait_for(
            lambda s: s.in_reply_to == event_id and (sender is None or s.sender == sender),
            timeout,
        )

    async def ask(self, room_id: str, body: str, bot: str, timeout: float = 30) -> Seen:
        """Send a command and wait for the bot's reply to it."""
        event_id = await self.send(room_id, body)
        return await self.reply_to(event_id, bot, timeout)

    async def download(self, seen: Seen) -> bytes:
        """Fetch and decrypt an encrypted attachment (``m.file`` with a ``file`` dict)."""
        info = seen.content["file"]
        server, media_id = info["url"].removeprefix("mxc://").split("/", 1)
        response = await self.client.download(server_name=server, media_id=media_id)
        if not isinstance(response, DownloadResponse):
            raise RuntimeError(f"download failed: {response}")
        return bytes(
            decrypt_attachment(
                response.body, info["key"]["k"], info["hashes"]["sha256"], info["iv"]
            )
        )
