"""The foundation end to end: a real Synapse, the bot as ``livcr run``, members with E2EE."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.homeserver import Homeserver
from tests.world import make_world

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
