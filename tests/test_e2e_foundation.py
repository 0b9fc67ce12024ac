"""The foundation end to end: a real Synapse, the bot as ``livcr run``, members with E2EE."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from demo.homeserver import Homeserver
from tests.world import PASSWORD, make_world

pytestmark = pytest.mark.e2e


async def test_help_with_both_prefixes_is_answered_by_an_encrypted_notice_reply(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        first = await world.ask("chair", "operational", "!help")
        assert first.decrypted
        assert first.content["msgtype"] == "m.notice"
        assert "!ack" in first.body  # not yet acknowledged: only the request to ack
        acked = await world.ask("chair", "operational", "!ack")
        assert acked.content["m.mentions"] == {}
        for body in ("!help", "/help"):
            reply = await world.ask("chair", "operational", body)
            assert reply.content["msgtype"] == "m.notice"
            assert "`!members`" in reply.body
            assert "<code>!members</code>" in reply.content["formatted_body"]
            assert reply.content["format"] == "org.matrix.custom.html"
    finally:
        await world.close()


async def test_outsider_in_the_room_gets_no_answer_and_the_chair_is_told(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path, outsiders=("eve",))
    try:
        eve = world.members["eve"]
        chair = world.members["chair"]
        room = world.rooms["operational"]
        # The chair invites someone who is not on the roster.
        await chair.client.room_invite(room, eve.user_id)
        await eve.join(room)
        warning = await chair.wait_for(
            lambda s: s.sender == world.bot_user and eve.user_id in s.body
            and s.content.get("msgtype") == "m.text"
        )
        assert world.uid("chair") in warning.content["m.mentions"]["user_ids"]
        asked = await eve.send(room, "!help")
        probe = await world.ask("chair", "operational", "!ack")  # later command is answered
        assert probe.decrypted
        await asyncio.sleep(1)
        assert not [s for s in chair.seen if s.in_reply_to == asked]
        assert not [s for s in eve.seen if s.in_reply_to == asked]
    finally:
        await world.close()


async def test_unencrypted_configured_room_refuses_every_command(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path, unencrypted_strategic=True)
    try:
        reply = await world.ask("mayor", "strategic", "!help")
        assert reply.content["msgtype"] == "m.notice"
        assert "not end-to-end encrypted" in reply.body
        again = await world.ask("mayor", "strategic", "!ack")
        assert "not end-to-end encrypted" in again.body
    finally:
        await world.close()


async def test_bot_killed_keeps_its_device_and_answers_a_missed_command_exactly_once(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        assert world.bot is not None
        session = json.loads((world.base / "data" / "session.json").read_text())
        await world.ask("chair", "operational", "!ack")
        world.bot.kill()
        chair = world.members["chair"]
        missed = await chair.send(world.rooms["operational"], "!members")
        await world.bot.start_ready()
        reply = await chair.reply_to(missed, world.bot_user, timeout=60)
        assert "Roster" in reply.body
        after = json.loads((world.base / "data" / "session.json").read_text())
        assert after["device_id"] == session["device_id"]
        # Once more: a second restart must not answer it again.
        await world.bot.stop()
        await world.bot.start_ready()
        await world.ask("chair", "operational", "!help")
        replies = [s for s in chair.seen if s.in_reply_to == missed]
        assert len(replies) == 1
        devices = await chair.client.devices()  # the member's own devices: unaffected
        assert devices is not None
        mode = (world.base / "data").stat().st_mode & 0o777
        assert mode == 0o700
        for path in world.written_files():
            assert path.stat().st_mode & 0o077 == 0, path
    finally:
        await world.close()


async def test_setup_makes_private_encrypted_rooms_with_the_chair_as_moderator(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path, with_bot=False)
    try:
        chair = world.members["chair"].client
        for table, room in world.rooms.items():
            async def state(event_type: str, room: str = room) -> dict[str, object]:
                response = await chair.room_get_state_event(room, event_type)
                return dict(getattr(response, "content", {}))

            assert (await state("m.room.encryption"))["algorithm"] == "m.megolm.v1.aes-sha2"
            assert (await state("m.room.join_rules"))["join_rule"] == "invite"
            assert (await state("m.room.history_visibility"))["history_visibility"] == "joined"
            assert (await state("m.room.guest_access"))["guest_access"] == "forbidden"
            levels = await state("m.room.power_levels")
            users = levels["users"]
            assert isinstance(users, dict)
            chair_id = world.uid("chair") if table == "operational" else world.uid("mayor")
            assert users[chair_id] == 50
            topic = str((await state("m.room.topic")).get("topic", ""))
            assert "C-" not in topic
        # Running setup again is idempotent and keeps the same rooms.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "setup", "-c", str(world.config_path),
            env={**os.environ, "LIVCR_MATRIX_PASSWORD": PASSWORD},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await proc.communicate()
        assert proc.returncode == 0, output
        assert b"checked" in output
        for room in world.rooms.values():
            assert room.encode() in output
    finally:
        await world.close()
