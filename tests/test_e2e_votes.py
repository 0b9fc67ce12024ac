"""Consensus end to end: ballots by command and by native poll, fiche delivered by direct room."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.edge.content import POLL_END, POLL_RESPONSE, POLL_START
from demo.homeserver import Homeserver
from tests.world import World, make_world

pytestmark = pytest.mark.e2e

FILL = ('!fiche {code} set effectiveness=positive willingness=moderate distancing=partial '
        'continue=yes options=no readiness=some-indications other="Begeleiding via school loopt" '
        'readiness_note="Afbouw van online contacten"')


async def _case_in_meeting(world: World) -> str:
    for name in ("chair", "ocmw", "clb", "io"):
        await world.ask(name, "operational", "!ack")
    created = await world.ask("ocmw", "operational",
                              "!signal phenomenon=HP indicators=propaganda-online assessed=yes")
    code = re.search(r"C-[0-9A-Z]{5}", created.body)
    assert code, created.body
    await world.ask("chair", "operational", "!meeting start")
    for name in ("ocmw", "clb", "io"):
        await world.ask(name, "operational", "!present")
    return code.group(0)


async def test_four_present_adopt_a_fiche_by_command_and_poll_and_the_officer_gets_it(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        code = await _case_in_meeting(world)
        await world.ask("chair", "operational", FILL.format(code=code))
        opened = await world.ask("chair", "operational", f"!vote open fiche {code}")
        assert "458ter" in opened.body
        clb = world.members["clb"]
        poll = await clb.wait_for(lambda s: s.type == POLL_START and s.sender == world.bot_user)
        assert poll.decrypted
        question = poll.content[POLL_START]
        assert [a["id"] for a in question["answers"]] == ["yes", "no", "abstain"]
        assert question["kind"] == "org.matrix.msc3381.poll.disclosed"
        assert "org.matrix.msc1767.text" in poll.content
        for name in ("chair", "ocmw", "io"):
            reply = await world.ask(name, "operational", "!vote yes")
            assert "Ballot recorded" in reply.body
        await clb.send_event(world.rooms["operational"], POLL_RESPONSE, {
            "m.relates_to": {"rel_type": "m.reference", "event_id": poll.event_id},
            POLL_RESPONSE: {"answers": ["yes"]},
        })
        delivered = await clb.wait_for(
            lambda s: s.sender == world.bot_user and "was sent to 1 information officer" in s.body,
            timeout=60)
        assert "Begeleiding" not in delivered.body
        ended = await clb.wait_for(lambda s: s.type == POLL_END and s.sender == world.bot_user)
        assert ended.content["m.relates_to"]["event_id"] == poll.event_id
        io = world.members["io"]
        invite = await io.accept_invite()
        assert invite, "the information officer was not invited to a direct room"
        fiche = await io.wait_for(
            lambda s: s.room_id == invite and s.sender == world.bot_user and code in s.body,
            timeout=60)
        assert fiche.decrypted
        for needle in ("positive", "moderate", "partial", "Begeleiding via school loopt",
                       "some indications", "Afbouw van online contacten", "HP",
                       "all 4 effectively participating members"):
            assert needle in fiche.body, needle
        attachment = await io.wait_for(
            lambda s: s.room_id == invite and s.content.get("msgtype") == "m.file", timeout=60)
        data = await io.download(attachment)
        assert code.encode() in data
        assert b"Begeleiding via school loopt" in data
        room = io.client.rooms[invite]
        assert room.encrypted
    finally:
        await world.close()


async def test_a_blocked_fiche_vote_delivers_nothing(synapse: Homeserver,
                                                     tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        code = await _case_in_meeting(world)
        await world.ask("chair", "operational", FILL.format(code=code))
        await world.ask("chair", "operational", f"!vote open fiche {code}")
        for name, choice in (("chair", "yes"), ("ocmw", "yes"), ("clb", "no"), ("io", "yes")):
            await world.ask(name, "operational", f"!vote {choice}")
        closed = await world.ask("chair", "operational", "!vote close")
        assert "not adopted" in closed.body
        await asyncio.sleep(3)
        io = world.members["io"]
        assert not io.client.invited_rooms
        assert not [s for s in io.seen if s.sender == world.bot_user
                    and s.room_id != world.rooms["operational"]]
    finally:
        await world.close()
