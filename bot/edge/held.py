"""Held events: commands we could not decrypt yet, retried when their keys arrive.

Kept in ``data_dir/held.json`` (ciphertext only) so a restart does not lose them. One that
stays undecryptable past the timeout becomes an :class:`~bot.edge.inbound.Undecryptable`
(the sender is asked to resend it).

Spec §11 "Undecryptable commands": only a roster member of the room's table is held (no
one else can give the bot a command, so nobody else gets a hold, a key request or a
notice); the holds are bounded per sender and in total (count and bytes; the oldest of a
sender, then the oldest of all, make room); key requests are limited per sender; the file
is written off the event loop, debounced, atomically (tmp + fsync + rename, mode 0600).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nio import AsyncClient, MegolmEvent

from bot.edge.files import write_secret

log = logging.getLogger(__name__)

HELD_FILE = "held.json"
#: A held event whose sender was already asked to resend is kept this long: if its key comes
#: late it is recognised as answered (not run twice); afterwards it is forgotten.
HELD_FORGET_SECONDS = 24 * 3600
#: Bounds of the holds (a member who sends more undecryptable events than this at once has
#: a broken client; the oldest make room).
MAX_PER_SENDER = 20
MAX_TOTAL = 500
MAX_TOTAL_BYTES = 4 * 1024 * 1024
#: Room key requests outstanding per sender (one per Megolm session at most).
MAX_KEY_REQUESTS_PER_SENDER = 5
#: Several holds in a burst are written once.
SAVE_DEBOUNCE_SECONDS = 0.5

#: Is this user on the roster of this room's table? (``Core.roster_user_ids``; a database
#: read, run in a thread.)
RosterOf = Callable[[str], set[str]]


@dataclass
class Held:
    """A command we could not decrypt yet."""

    event: MegolmEvent
    room_id: str
    since: float  # seconds since the epoch, by the core's clock
    warned: bool = False
    size: int = 0  # bytes of its JSON (the bound of the file)

    def __post_init__(self) -> None:
        self.size = len(json.dumps(self.event.source))


@dataclass
class HeldEvents:
    """The held events of one bot, by event id (oldest first), saved after every change."""

    client: AsyncClient
    data_dir: Path
    undecryptable_timeout: float
    roster_of: RosterOf | None = None
    events: dict[str, Held] = field(default_factory=dict)
    #: Not held, by why (``outsider``: not on the table's roster; ``evicted``: the bounds).
    refused: dict[str, int] = field(default_factory=dict)
    key_requests: dict[str, set[str]] = field(default_factory=dict)
    _bytes: int = 0
    _saver: asyncio.Task[None] | None = None
    _dirty: bool = False

    def __post_init__(self) -> None:
        self._load()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.events

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def _count(self, why: str) -> None:
        self.refused[why] = self.refused.get(why, 0) + 1

    async def hold(self, event: MegolmEvent, room_id: str, now: float) -> None:
        sender = str(event.sender)
        if self.roster_of is not None and sender not in await asyncio.to_thread(
                self.roster_of, room_id):
            self._count("outsider")
            log.info("an undecryptable event from a non-roster sender was not held")
            return
        held = Held(event, room_id, now)
        if held.size > MAX_TOTAL_BYTES // 4:
            self._count("too_large")
            log.warning("an undecryptable event too large to hold was dropped")
            return
        self._add(event.event_id, held)
        self._make_room(sender)
        self._save_soon()
        log.info("holding an undecryptable event until its room key arrives")
        await self._request_key(event, sender)

    def _add(self, event_id: str, held: Held) -> None:
        self.events[event_id] = held
        self._bytes += held.size

    def _drop(self, event_id: str, settled: bool = False) -> None:
        """Forget a hold; ``settled`` (decrypted or timed out, not evicted) also ends its key
        request, so a flood cannot cycle through new requests by evicting its own holds."""
        held = self.events.pop(event_id, None)
        if held is None:
            return
        self._bytes -= held.size
        if not settled:
            return
        sender, session = str(held.event.sender), str(held.event.session_id or "")
        if not any(h.event.sender == sender and h.event.session_id == session
                   for h in self.events.values()):
            self.key_requests.get(sender, set()).discard(session)

    def _make_room(self, sender: str) -> None:
        mine = [i for i, h in self.events.items() if h.event.sender == sender]
        for event_id in mine[:max(len(mine) - MAX_PER_SENDER, 0)]:
            self._drop(event_id)
            self._count("evicted")
        while self.events and (len(self.events) > MAX_TOTAL or self._bytes > MAX_TOTAL_BYTES):
            self._drop(next(iter(self.events)))
            self._count("evicted")

    async def _request_key(self, event: MegolmEvent, sender: str) -> None:
        asked = self.key_requests.setdefault(sender, set())
        session_id = str(getattr(event, "session_id", "") or "")
        if session_id in asked or len(asked) >= MAX_KEY_REQUESTS_PER_SENDER:
            return
        asked.add(session_id)
        try:
            await self.client.request_room_key(event)
        except Exception as exc:
            log.info("room key request not sent (%s)", type(exc).__name__)

    # ---- the file -------------------------------------------------------------------
    def _snapshot(self) -> list[dict[str, Any]]:
        return [
            {"room_id": h.room_id, "since": h.since, "warned": h.warned, "event": h.event.source}
            for h in self.events.values()
        ]

    def _save_soon(self) -> None:
        """Write the file in a thread, once per burst (never on the event loop)."""
        self._dirty = True
        if self._saver is None or self._saver.done():
            self._saver = asyncio.create_task(self._save_later())

    async def _save_later(self) -> None:
        await asyncio.sleep(SAVE_DEBOUNCE_SECONDS)
        while self._dirty:
            self._dirty = False
            snapshot = self._snapshot()
            try:
                await asyncio.to_thread(self._write, snapshot)
            except OSError as exc:
                log.warning("held events not saved (%s)", type(exc).__name__)

    def _write(self, snapshot: list[dict[str, Any]]) -> None:
        write_secret(self.data_dir / HELD_FILE, json.dumps(snapshot))

    async def saved(self) -> None:
        """Wait until the last change is on disk (at stop, and in tests)."""
        if self._saver is not None:
            await self._saver

    def _load(self) -> None:
        path = self.data_dir / HELD_FILE
        if not path.exists():
            return
        try:
            for item in json.loads(path.read_text()):
                event = MegolmEvent.from_dict(item["event"])
                if isinstance(event, MegolmEvent):
                    event.room_id = item["room_id"]
                    self._add(event.event_id, Held(event, item["room_id"], item["since"],
                                                   item["warned"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("held events file unreadable (%s); starting without it",
                        type(exc).__name__)
        while self.events and (len(self.events) > MAX_TOTAL or self._bytes > MAX_TOTAL_BYTES):
            self._drop(next(iter(self.events)))

    async def retry(self, now: float, decrypted_event: Callable[[str, Any], Awaitable[None]],
                    undecryptable: Callable[[str, str, str], Awaitable[None]]) -> bool:
        """Held events whose key arrived go to ``decrypted_event``; those past the timeout to
        ``undecryptable`` (room, sender, event id), once. True when anything changed."""
        changed = False
        for event_id, held in list(self.events.items()):
            try:
                decrypted = self.client.decrypt_event(held.event)
            except Exception:
                decrypted = None
            if decrypted is not None and not isinstance(decrypted, MegolmEvent):
                self._drop(event_id, settled=True)
                changed = True
                decrypted.room_id = held.room_id
                await decrypted_event(held.room_id, decrypted)
            elif not held.warned and now - held.since > self.undecryptable_timeout:
                held.warned = True
                changed = True
                self.key_requests.get(str(held.event.sender), set()).discard(
                    str(held.event.session_id or ""))  # the request timed out
                await undecryptable(held.room_id, held.event.sender, event_id)
            elif held.warned and now - held.since > HELD_FORGET_SECONDS:
                self._drop(event_id, settled=True)
                changed = True
        if changed:
            self._save_soon()
        return changed
