"""The outbox and the holds end to end (spec §11), against a real Synapse with real E2EE:

- one outbox item that keeps failing (a fiche whose officer's direct room the bot is not
  in) holds back nobody else: a member's command is answered, and the fiche is reported to
  the table as NOT delivered once it is given up (a dead letter), never as sent;
- 300 garbage ``m.room.encrypted`` events from a room member who is not on the roster: no
  hold, no notice to them, and a member's command during the flood is answered.

Latencies are printed (``-s``) for the report, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from nio import Api, RoomSendResponse

from bot.config import load_config
from demo.homeserver import Homeserver
from storage.db import Database
from tests.world import World, make_world

pytestmark = pytest.mark.e2e

FILL = ('!fiche {code} set effectiveness=positive willingness=moderate distancing=partial '
        'continue=yes options=no readiness=some-indications other="loopt"')
#: A short outbox (4 tries, 1 s doubling) so the dead letter comes within the test.
LIMITS = "outbox_attempts = 4\noutbox_retry_seconds = 1\n"


@pytest.fixture
def short_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    original = World.config_text

    def config_text(self: World, *args: Any, **kwargs: Any) -> str:
        return original(self, *args, **kwargs).replace(
            "undecryptable_timeout_seconds = 15\n",
            "undecryptable_timeout_seconds = 15\n" + LIMITS)

    monkeypatch.setattr(World, "config_text", config_text)


async def timed_ask(world: World, name: str, body: str, timeout: float = 120) -> float:
    started = time.monotonic()
    await world.ask(name, "operational", body, timeout=timeout)
    return time.monotonic() - started


async def test_a_failing_fiche_holds_back_nobody_and_is_reported_as_not_delivered(
    synapse: Homeserver, tmp_path: Path, short_outbox: None
) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        for name in ("chair", "ocmw", "clb", "io"):
            await world.ask(name, "operational", "!ack", timeout=120)
        normal = await timed_ask(world, "ocmw", "!help")
        # The officer's direct room is one the bot is not in (it left, or was kicked): every
        # send of the fiche fails.
        io = world.members["io"]
        gone = await io.client.room_create(name="not the bot's")
        cell = load_config(world.config_path, {"LIVCR_MATRIX_PASSWORD": "-"}).cells[0].id
        db = Database(world.database_url)
        with db.unit_of_work() as repos:
            repos.direct_rooms.set(cell, world.uid("io"), str(gone.room_id))
        created = await world.ask("ocmw", "operational",
                                  "!signal phenomenon=HP indicators=propaganda-online "
                                  "assessed=yes", timeout=120)
        found = re.search(r"C-[0-9A-Z]{5}", created.body)
        assert found, created.body
        code = found.group(0)
        await world.ask("chair", "operational", "!meeting start", timeout=120)
        for name in ("ocmw", "clb", "io"):
            await world.ask(name, "operational", "!present", timeout=120)
        await world.ask("chair", "operational", FILL.format(code=code), timeout=120)
        await world.ask("chair", "operational", f"!vote open fiche {code}", timeout=120)
        for name in ("ocmw", "clb", "io"):
            await world.ask(name, "operational", "!vote yes", timeout=120)
        await world.ask("chair", "operational", "!vote yes", timeout=120)  # adopted
        with_failing = await timed_ask(world, "clb", "!help")
        print(f"\nlatency of a member's command: normal {normal:.2f} s, "
              f"with a failing fiche in the outbox {with_failing:.2f} s")
        chair = world.members["chair"]
        told = await chair.wait_for(
            lambda s: s.sender == world.bot_user and code in s.body
            and "NOT delivered" in s.body, timeout=180)
        assert world.uid("io") in told.body
        assert world.uid("chair") in told.content["m.mentions"]["user_ids"]
        await chair.wait_for(lambda s: s.sender == world.bot_user
                             and "NOT delivered to any of the 1" in s.body, timeout=60)
        assert not [s for s in chair.seen if s.sender == world.bot_user
                    and f"{code} was sent to" in s.body]
        with db.unit_of_work() as repos:
            assert repos.events.dead_letters() == 1  # kept, not dropped
        db.dispose()
        answered = await world.ask("clb", "operational", "!help", timeout=120)
        assert answered.decrypted
    finally:
        await world.close()


async def _raw_encrypted(client: Any, room_id: str, n: int, size: int) -> None:
    """A garbage ``m.room.encrypted`` event sent as it is (nio would encrypt it again)."""
    content = {"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "G" * 43,
               "session_id": f"garbage{n:04d}", "device_id": "EVEPHONE",
               "ciphertext": "A" * size}
    method, path, data = Api.room_send(client.access_token, room_id, "m.room.encrypted",
                                       content, f"garbage-{n}")
    response = await client._send(RoomSendResponse, method, path, data,
                                  response_data=(room_id,))
    assert isinstance(response, RoomSendResponse), response


async def test_a_flood_of_garbage_from_a_non_member_is_bounded_and_answered_through(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path, outsiders=("eve",))
    try:
        eve = world.members["eve"]
        chair = world.members["chair"]
        room = world.rooms["operational"]
        await world.ask("chair", "operational", "!ack", timeout=120)
        await chair.client.room_invite(room, eve.user_id)
        await eve.join(room)

        async def flood() -> None:
            for n in range(300):
                await _raw_encrypted(eve.client, room, n, 8_000)

        flooding = asyncio.ensure_future(flood())
        await asyncio.sleep(1)
        started = time.monotonic()
        reply = await world.ask("chair", "operational", "!help", timeout=180)
        during = time.monotonic() - started
        assert reply.decrypted
        await flooding
        # A roster member's own undecryptable event, after the flood: once the chair is asked
        # to resend it, every hold of the flood before it was judged too.
        await _raw_encrypted(chair.client, room, 9999, 100)
        await chair.wait_for(lambda s: s.sender == world.bot_user
                             and "could not decrypt" in s.body, timeout=180)
        held = world.base / "data" / "held.json"
        entries = json.loads(held.read_text()) if held.exists() else []
        size = held.stat().st_size if held.exists() else 0
        print(f"\nflood of 300 garbage events: a member's command answered in {during:.2f} s; "
              f"held.json {size} bytes, {len(entries)} held event(s)")
        assert [e["event"]["sender"] for e in entries] == [world.uid("chair")]
        assert size < 20_000
        to_eve = [s for s in chair.seen if s.sender == world.bot_user
                  and eve.user_id in s.body and "could not decrypt" in s.body]
        assert to_eve == []
        assert not [s for s in eve.seen if s.sender == world.bot_user and s.decrypted]
        log = (world.base / "data" / "livcr.log").read_text()
        assert log.count("non-roster sender was not held") == 300  # all reached the bot
    finally:
        await world.close()
