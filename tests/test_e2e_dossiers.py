"""Signals end to end: codes, refusals, and the privacy canary (spec §6, §10)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from demo.homeserver import Homeserver
from tests.world import make_world

pytestmark = pytest.mark.e2e

VALID = "!signal phenomenon=early indicators=isolation,propaganda-online assessed=yes"

#: Known personal data that must never reach any file the bot writes.
CANARIES = {
    "national_number": "85.07.30-033.28",
    "phone": "0470 98 76 54",
    "email": "yasmine.canary@example.org",
    "street": "Kanariestraat 17",
    "name": "mevrouw Kanarievogel",
    "iban": "BE71 0961 2345 6769",
}


async def test_valid_signal_gets_a_code_that_case_list_shows_and_invalid_ones_do_not(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        for name in ("ocmw", "chair", "mayor"):
            table = "strategic" if name == "mayor" else "operational"
            await world.ask(name, table, "!ack")
        await world.ask("chair", "strategic", "!ack")
        created = await world.ask("ocmw", "operational", VALID)
        code = re.search(r"C-[0-9A-Z]{5}", created.body)
        assert code, created.body
        listing = await world.ask("chair", "operational", "!case list")
        assert code.group(0) in listing.body
        refusals = {
            "!signal indicators=isolation assessed=yes": "`phenomenon=` is missing",
            "!signal phenomenon=martian indicators=isolation assessed=yes": "Unknown phenomenon",
            "!signal phenomenon=HTF indicators= assessed=yes": "at least 1 indicator",
            "!signal phenomenon=HTF indicators=isolation": "first dealt with the behaviour",
            '!signal phenomenon=HTF indicators=isolation assessed=yes summary="tel 0470 11 22 33"':
                "a phone number",
        }
        for body, fragment in refusals.items():
            reply = await world.ask("ocmw", "operational", body)
            assert fragment in reply.body, (body, reply.body)
        strategic = await world.ask("chair", "strategic", VALID)
        assert "cannot be used at the strategic table" in strategic.body
        # A non-member gets silence and creates nothing.
        listing = await world.ask("chair", "operational", "!case list")
        assert len(re.findall(r"C-[0-9A-Z]{5}", listing.body)) == 1
        stats = await world.ask("mayor", "strategic", "!stats")
        assert "Open dossiers: 1" in stats.body
        assert code.group(0) not in stats.body
    finally:
        await world.close()


async def test_privacy_canaries_are_refused_redacted_and_never_written(
    synapse: Homeserver, tmp_path: Path
) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        for name in ("ocmw", "chair"):
            await world.ask(name, "operational", "!ack")
        ocmw = world.members["ocmw"]
        room = world.rooms["operational"]
        sent: list[str] = []
        for kind, canary in CANARIES.items():
            body = f'{VALID} summary="Situatie besproken, {canary}"'
            event_id = await ocmw.send(room, body)
            sent.append(event_id)
            reply = await ocmw.reply_to(event_id, world.bot_user)
            assert "personal data" in reply.body, kind
            assert canary not in reply.body
            assert canary not in reply.content.get("formatted_body", "")
        # Free text in another command is screened the same way.
        event_id = await ocmw.send(room, '!agenda add "bespreking met meneer Kanarievogel"')
        sent.append(event_id)
        reply = await ocmw.reply_to(event_id, world.bot_user)
        assert "personal data" in reply.body
        # The room no longer shows the offending messages: they are redacted.
        for event_id in sent:
            for _ in range(50):
                response = await ocmw.client.room_get_event(room, event_id)
                content = getattr(getattr(response, "event", None), "source", {}).get(
                    "content", {"x": 1})
                if not content:
                    break
                await asyncio.sleep(0.2)
            assert content == {}, "the message with personal data is still in the room"
        listing = await world.ask("chair", "operational", "!case list")
        assert "No open dossiers" in listing.body
    finally:
        await world.close()
    assert world.bot is not None
    files = world.written_files() + world.bot.outputs()
    assert len(files) > 3
    for path in files:
        data = path.read_bytes()
        for canary in CANARIES.values():
            for variant in {canary, canary.replace(" ", ""), canary.lower()}:
                assert variant.encode() not in data, (path, variant)
