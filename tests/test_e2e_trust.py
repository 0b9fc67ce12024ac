"""Trust end to end: keys only for the roster, no secrets in logs, outages ridden out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from demo.homeserver import Homeserver
from tests.world import PASSWORD, make_world

pytestmark = pytest.mark.e2e


async def test_outsider_device_receives_only_undecryptable_events_from_the_bot(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path, outsiders=("eve",))
    try:
        chair, eve = world.members["chair"], world.members["eve"]
        room = world.rooms["operational"]
        await chair.client.room_invite(room, eve.user_id)
        await eve.join(room)
        await world.ask("chair", "operational", "!ack")
        for body in ("!help", "!members", "!case list"):
            reply = await world.ask("chair", "operational", body)
            assert reply.decrypted
        await asyncio.sleep(2)
        from_bot = [s for s in eve.seen if s.sender == world.bot_user]
        assert len(from_bot) >= 4  # the outsider warning, ack and three answers
        assert all(not s.decrypted for s in from_bot), [s.type for s in from_bot]
        # The chair's own messages are keyed for the whole room by the chair's client:
        # the bot cannot control that; it only guarantees its own messages.
    finally:
        await world.close()


async def test_secrets_never_appear_in_logs_or_output(synapse: Homeserver,
                                                     tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        await world.ask("chair", "operational", "!ack")
        await world.ask("chair", "operational", "!help")
        assert world.bot is not None
        await world.bot.stop()
    finally:
        await world.close()
    session = json.loads((world.base / "data" / "session.json").read_text())
    token = session["access_token"]
    logs = [world.base / "data" / "livcr.log", *sorted(world.base.glob("bot-*.out"))]
    assert logs[0].exists()
    for path in logs:
        text = path.read_text(errors="replace")
        assert PASSWORD not in text, path
        assert token not in text, path
    assert PASSWORD not in world.config_path.read_text()


async def test_homeserver_outage_is_ridden_out_and_every_command_answered(
    tmp_path: Path,
) -> None:
    hs = Homeserver(tmp_path / "own-synapse")
    await hs.start()
    world = await make_world(hs, tmp_path)
    try:
        chair = world.members["chair"]
        room = world.rooms["operational"]
        await world.ask("chair", "operational", "!ack")
        before = [await chair.send(room, f"!help {name}") for name in ("ack", "members")]
        await hs.restart()
        await asyncio.sleep(3)  # the bot's sync fails meanwhile and backs off
        after = []
        for name in ("help", "case"):
            for _ in range(30):
                try:
                    after.append(await chair.send(room, f"!help {name}"))
                    break
                except Exception:
                    await asyncio.sleep(1)
        sent = before + after
        replies = {}
        for event_id in sent:
            replies[event_id] = await chair.reply_to(event_id, world.bot_user, timeout=90)
        await asyncio.sleep(1)
        duplicates = sum(
            len([s for s in chair.seen if s.in_reply_to == e]) - 1 for e in sent
        )
        print(f"outage: commands sent {len(sent)}, replies {len(replies)}, "
              f"duplicates {duplicates}, lost {len(sent) - len(replies)}")
        assert duplicates == 0
        assert len(replies) == len(sent)
    finally:
        await world.close()
        await hs.stop()


async def test_undecryptable_command_is_held_then_the_sender_is_asked_to_resend_once(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        chair = world.members["chair"]
        room = world.rooms["operational"]
        await world.ask("chair", "operational", "!ack")
        # The chair's client withholds its room key from the bot's device.
        for device in chair.client.device_store.active_user_devices(world.bot_user):
            chair.client.blacklist_device(device)
        chair.client.olm.outbound_group_sessions.pop(room, None)
        secret = await chair.send(room, "!help")
        notice = await chair.reply_to(secret, world.bot_user, timeout=90)
        assert "could not decrypt your last message" in notice.body
        assert notice.content["msgtype"] == "m.notice"
        for device in chair.client.device_store.active_user_devices(world.bot_user):
            chair.client.unblacklist_device(device)
        chair.client.olm.outbound_group_sessions.pop(room, None)
        again = await world.ask("chair", "operational", "!help")
        assert "`!members`" in again.body
        await asyncio.sleep(6)
        assert len([s for s in chair.seen if s.in_reply_to == secret]) == 1
    finally:
        await world.close()
