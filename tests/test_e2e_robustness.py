"""One bad event never stops a table, end to end (issue 15, spec §11): a room member sends
malformed events — encrypted with their real Megolm session (``m.relates_to`` "x", 5, a
list), in clear over raw HTTP with their own access token (a body that is not a string, a
relation of the wrong type) and garbage ``m.room.encrypted`` — then the chair's ``!help`` is
answered; after ``kill -9`` and a restart a new ``!help`` is answered and nothing is re-run.
Real Synapse, the bot as a real ``livcr run`` process.
"""

from __future__ import annotations

import itertools
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from demo.homeserver import Homeserver
from demo.member import MemberClient, Seen
from tests.world import World, make_world

pytestmark = pytest.mark.e2e

_txn = itertools.count()


async def raw_send(world: World, name: str, event_type: str, content: Any) -> str | None:
    """PUT /send with the member's own token: whatever JSON a hostile client may send; the
    event id, None when Synapse refused it (a body that is not an object)."""
    member = world.members[name].client
    room = urllib.parse.quote(world.rooms["operational"], safe="")
    url = (f"{world.hs.url}/_matrix/client/v3/rooms/{room}/send/"
           f"{urllib.parse.quote(event_type, safe='')}/raw{next(_txn)}")
    async with aiohttp.ClientSession() as session, session.put(
            url, json=content, headers={"Authorization": f"Bearer {member.access_token}"},
    ) as response:
        body = await response.json()
        return str(body["event_id"]) if response.status == 200 else None


async def bot_reply(member: MemberClient, bot: str, event_id: str,
                    timeout: float = 120) -> Seen:
    # The sender is checked first: the members' own clients also hold the malformed events.
    return await member.wait_for(lambda s: s.sender == bot and s.in_reply_to == event_id,
                                 timeout)


def replies(member: MemberClient, bot: str, event_ids: list[str]) -> int:
    return sum(1 for s in member.seen if s.sender == bot and s.in_reply_to in event_ids)


async def test_malformed_events_stop_nothing_also_after_kill_and_restart(
        synapse: Homeserver, tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        assert world.bot is not None
        room = world.rooms["operational"]
        ocmw, chair = world.members["ocmw"], world.members["chair"]
        poison: list[str] = []
        # Encrypted with the member's real Megolm session (nio encrypts any content).
        for extra in ({"m.relates_to": "x"}, {"m.relates_to": 5},
                      {"m.relates_to": ["m.thread"]}, {"body": 5},
                      {"body": {"nested": [None, {"x": []}]}},
                      {"m.relates_to": {"rel_type": "m.thread", "event_id": 7}}):
            poison.append(await ocmw.send(room, "!help", extra))
        # In clear, raw HTTP (Synapse itself refuses an m.room.message whose body is not a
        # string, and a body that is not an object).
        accepted: list[str] = []
        for event_type, content in (
            ("m.room.message", {"msgtype": "m.text", "body": "!help", "m.relates_to": "x"}),
            ("m.room.message", {"msgtype": "m.text", "body": "!help", "m.relates_to": 5}),
            ("m.room.message", {"msgtype": "m.text", "body": "!help",
                                "m.relates_to": [1, {"rel_type": "m.thread"}]}),
            ("m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": 5}),
            ("m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "",
                                  "session_id": "", "device_id": "X",
                                  "ciphertext": "garbage"}),
            ("m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "k",
                                  "session_id": "s", "device_id": "X",
                                  "ciphertext": "not base64 !", "m.relates_to": "x"}),
        ):
            event_id = await raw_send(world, "ocmw", event_type, content)
            if event_id is not None:
                accepted.append(event_type)
                poison.append(event_id)
        print(f"raw events accepted by Synapse: {len(accepted)} of 6 ({accepted})")
        assert accepted.count("m.room.encrypted") == 3
        first = await chair.send(room, "!help")
        reply = await bot_reply(chair, world.bot_user, first)
        assert reply.body
        log = world.bot.log()
        assert "skipped a malformed" in log
        assert "Traceback" not in log
        # kill -9 and restart: a new command is answered, nothing is decided twice.
        world.bot.kill()
        await world.bot.start_ready(timeout=120)
        second = await chair.send(room, "!help")
        await bot_reply(chair, world.bot_user, second)
        # Everything before the restart was answered once; the second reply came after the
        # restarted bot's sync past all of it, so any re-run would have been sent by now.
        assert replies(chair, world.bot_user, [first]) == 1
        assert replies(chair, world.bot_user, [second]) == 1
        assert replies(ocmw, world.bot_user, poison) == 0
        assert "Traceback" not in world.bot.log()
    finally:
        await world.close()
