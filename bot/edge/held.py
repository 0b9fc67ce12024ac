"""Held events: commands we could not decrypt yet, retried when their keys arrive.

Kept in ``data_dir/held.json`` (ciphertext only) so a restart does not lose them. One that
stays undecryptable past the timeout becomes an :class:`~bot.edge.inbound.Undecryptable`
(the sender is asked to resend it).
"""

from __future__ import annotations

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


@dataclass
class Held:
    """A command we could not decrypt yet."""

    event: MegolmEvent
    room_id: str
    since: float  # seconds since the epoch, by the core's clock
    warned: bool = False


@dataclass
class HeldEvents:
    """The held events of one bot, by event id, saved on every change."""

    client: AsyncClient
    data_dir: Path
    undecryptable_timeout: float
    events: dict[str, Held] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._load()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.events

    async def hold(self, event: MegolmEvent, room_id: str, now: float) -> None:
        self.events[event.event_id] = Held(event, room_id, now)
        self._save()
        log.info("holding an undecryptable event until its room key arrives")
        try:
            await self.client.request_room_key(event)
        except Exception as exc:
            log.info("room key request not sent (%s)", type(exc).__name__)

    def _save(self) -> None:
        data = [
            {"room_id": h.room_id, "since": h.since, "warned": h.warned, "event": h.event.source}
            for h in self.events.values()
        ]
        write_secret(self.data_dir / HELD_FILE, json.dumps(data))

    def _load(self) -> None:
        path = self.data_dir / HELD_FILE
        if not path.exists():
            return
        try:
            for item in json.loads(path.read_text()):
                event = MegolmEvent.from_dict(item["event"])
                if isinstance(event, MegolmEvent):
                    event.room_id = item["room_id"]
                    self.events[event.event_id] = Held(event, item["room_id"], item["since"],
                                                     item["warned"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("held events file unreadable (%s); starting without it",
                        type(exc).__name__)

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
                del self.events[event_id]
                changed = True
                decrypted.room_id = held.room_id
                await decrypted_event(held.room_id, decrypted)
            elif not held.warned and now - held.since > self.undecryptable_timeout:
                held.warned = True
                changed = True
                await undecryptable(held.room_id, held.event.sender, event_id)
            elif held.warned and now - held.since > HELD_FORGET_SECONDS:
                del self.events[event_id]
                changed = True
        if changed:
            self._save()
        return changed
