"""Fuzzing the edge with whole events (issue 15, spec §11): recorded syncs (tests/data/*.json)
whose timeline holds hypothesis-made events of every shape (tests/event_strategies.py: wrong
types anywhere, broken relations, absurd timestamps, huge bodies), in clear or encrypted with
a member's real Megolm session, with valid commands from the chair's trusted device
interleaved. Each sync goes the way a real one does: the body through nio's response parsing
(``create_matrix_response``: the edge's screening included), nio's ``receive_response`` (room
state, decryption), then the edge's sync handling into the real core and database.

Whatever the garbage, nothing raises, no event's handling fails, and every valid command is
answered exactly once, also when the same sync is delivered again (a restart before the
token was saved). ``LIVCR_FUZZ_EXAMPLES`` sets the number of examples (``make fuzz``: 10,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nio import SyncResponse
from nio.crypto import InboundGroupSession, OutboundGroupSession

from bot.core.app import Core
from bot.edge.client import MatrixBot
from bot.edge.signing_keys import public_b64
from commands.model import Table
from tests.event_strategies import events
from tests.factories import CHAIR, NOW, make_config, memory_db
from tests.test_edge import CELL, OP, Member, recorded

EXAMPLES = int(os.environ.get("LIVCR_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=EXAMPLES <= 300,
)
TS = 1_764_000_000_000


class Transport:
    """What nio's response parsing reads of an HTTP response: as aiohttp, the bytes are kept
    and each read is a fresh dict (the edge reads a body nio failed on again)."""

    content_type = "application/json"
    content_disposition = None
    status = 200

    def __init__(self, body: Any) -> None:
        self.raw = json.dumps(body)

    async def json(self) -> Any:
        return json.loads(self.raw)


class Rig:
    """One bot (real nio client, core, database) for all examples; a chair whose device is
    trusted and whose Megolm session the bot holds."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.loop = asyncio.new_event_loop()
        tmp = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        config = make_config("en")
        config = config.model_copy(update={
            "matrix": config.matrix.model_copy(update={"data_dir": tmp / "data"})})
        db = self.stack.enter_context(memory_db())
        self.core = Core(config, db, clock=lambda: NOW)
        self.core.bind_room(OP, CELL, Table.OPERATIONAL)
        self.core.dispatcher.limiter.per_minute = 10**9
        self.bot = MatrixBot(self.core)
        self.bot.client.restore_login(config.matrix.user_id, "BOTDEVICE", "not-a-token")
        self.bot.keys.exchange = AsyncMock()  # type: ignore[method-assign]  # no key traffic
        self.chair = Member(CHAIR)
        self.chair.known_to(self.bot)
        self.session: OutboundGroupSession | None = None
        logging.getLogger("nio").setLevel(logging.CRITICAL)  # it logs every bad event
        self.template = recorded("sync_encrypted_command.json")
        self.serial = itertools.count()

    def sync(self, timeline: list[tuple[Any, bool]], commands: list[int]) -> tuple[
            dict[str, Any], list[str]]:
        """A recorded sync whose timeline is ``timeline`` (each event in clear, or encrypted
        by the chair when its flag is set) with ``!help`` from the chair before the given
        positions; returns the sync and the valid commands' event ids."""
        n = next(self.serial)
        data = copy.deepcopy(self.template)
        room = data["rooms"]["join"][OP]
        room["timeline"]["events"] = []
        data["next_batch"] = f"s{n}"
        wanted: list[str] = []
        entries: list[tuple[Any, Any]] = []  # (event placeholder, payload to encrypt or None)
        for index in range(len(timeline) + 1):
            for _ in range(commands.count(index)):
                event_id = f"$valid.{n}.{len(wanted)}"
                wanted.append(event_id)
                entries.append((self._outer(event_id), {
                    "type": "m.room.message",
                    "content": {"msgtype": "m.text", "body": "!help"}}))
            if index < len(timeline):
                event, encrypted = timeline[index]
                if encrypted:
                    payload = ({k: v for k, v in event.items() if k in ("type", "content")}
                               if isinstance(event, dict) else event)
                    entries.append((self._outer(f"$garbage.{n}.{index}"), payload))
                else:
                    entries.append((copy.deepcopy(event), None))
        room["timeline"]["events"] = [event for event, _ in entries]
        for event, payload in entries:
            if payload is not None:
                self._encrypt(event, payload)
        return data, wanted

    def _encrypt(self, event: dict[str, Any], payload: Any) -> None:
        """Encrypt ``payload`` (any JSON: a member's client may encrypt anything) into
        ``event`` with a Megolm session of the chair's trusted device; a new session when
        the last one is used up (nio's limit: 100 messages)."""
        olm = self.bot.client.olm
        assert olm is not None
        session = self.session
        if session is None or session.expired:
            session = self.session = OutboundGroupSession()
            session.shared = True
            olm.inbound_group_store.add(InboundGroupSession(
                session.session_key, public_b64(self.chair.device), self.chair.curve25519,
                OP))
        if isinstance(payload, dict):
            payload = {**payload, "room_id": OP}
        event["content"] = {
            "algorithm": "m.megolm.v1.aes-sha2", "sender_key": self.chair.curve25519,
            "session_id": session.id, "device_id": self.chair.device_id,
            "ciphertext": session.encrypt(json.dumps(payload))}

    @staticmethod
    def _outer(event_id: str) -> dict[str, Any]:
        return {"type": "m.room.encrypted", "sender": CHAIR, "event_id": event_id,
                "origin_server_ts": TS, "content": {}}

    async def feed(self, data: dict[str, Any]) -> None:
        """As ``AsyncClient.sync`` then the sync loop handle one response."""
        client = self.bot.client
        response = await client.create_matrix_response(
            SyncResponse, Transport(data))  # type: ignore[arg-type]
        assert isinstance(response, SyncResponse), response
        await client.receive_response(response)
        await self.bot._after_sync(response, since="s-before")

    def answers(self, event_id: str) -> int:
        return sum(1 for item in self.core.pending()
                   if item.source_event_id == event_id and item.event_type == "message")

    def clear(self) -> None:
        """Between examples: the outbox sent, and garbage held for a key that never comes
        forgotten (the clock stands still here, so holds never time out; each sync retries
        every held event, and thousands of them would make each example slower)."""
        self.core.sent_many(self.core.pending())
        self.bot.held.events.clear()


_RIG: Rig | None = None


def rig() -> Rig:
    global _RIG
    if _RIG is None:
        _RIG = Rig()
    return _RIG


timelines = st.lists(st.tuples(events, st.booleans()), max_size=6)
positions = st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=3)


@pytest.mark.timeout(max(600, EXAMPLES // 2))
@FUZZ
@given(timeline=timelines, commands=positions)
def test_no_event_structure_stops_the_edge_and_every_command_is_answered_once(
        timeline: list[tuple[Any, bool]], commands: list[int]) -> None:
    r = rig()
    data, wanted = r.sync(timeline, commands)
    r.loop.run_until_complete(r.feed(data))
    assert not r.bot.failed_events, r.bot.failed_events  # no handling raised, even caught
    for event_id in wanted:
        assert r.answers(event_id) == 1, event_id
        assert r.core.is_processed(event_id)
    r.clear()
    r.loop.run_until_complete(r.feed(data))  # delivered again: nothing is decided twice
    assert all(r.answers(event_id) == 0 for event_id in wanted)
    assert not r.bot.failed_events, r.bot.failed_events
    r.clear()
