"""A hostile or careless member cannot subvert a table (spec §9 and §11), end to end: real
Synapse, the bot as ``livcr run``, members with real E2EE clients.

- a chair alone cannot reach a "consensus" (the quorum holds);
- a chair changes only their own table's roster;
- the poll answer of a member removed from the roster does not count;
- Markdown/HTML a member types never reaches the bot's ``formatted_body`` as markup.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.edge.content import POLL_RESPONSE, POLL_START
from demo.homeserver import Homeserver
from tests.world import World, make_world

pytestmark = pytest.mark.e2e

FILL = ('!fiche {code} set effectiveness=positive willingness=moderate distancing=partial '
        'continue=yes options=no readiness=some-indications other="Begeleiding loopt" '
        'readiness_note="Afbouw van online contacten"')


async def _signal(world: World, acking: tuple[str, ...]) -> str:
    for name in acking:
        await world.ask(name, "operational", "!ack")
    created = await world.ask("ocmw", "operational",
                              "!signal phenomenon=HP indicators=propaganda-online assessed=yes")
    code = re.search(r"C-[0-9A-Z]{5}", created.body)
    assert code, created.body
    return code.group(0)


async def test_a_chair_alone_cannot_adopt_anything(synapse: Homeserver, tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        code = await _signal(world, ("chair", "ocmw", "clb", "io"))
        await world.ask("chair", "operational", "!meeting start")
        await world.ask("chair", "operational", FILL.format(code=code))
        refused = await world.ask("chair", "operational", f"!vote open fiche {code}")
        assert "A consensus needs a table" in refused.body, refused.body
        assert "Still missing: 2 member(s), 1 organisation(s)" in refused.body, refused.body
        # Nothing is open to vote on, so the chair's ballot decides nothing either.
        ballot = await world.ask("chair", "operational", "!vote yes")
        assert "Ballot recorded" not in ballot.body
        shown = await world.ask("chair", "operational", f"!case show {code}")
        assert "follow_up" not in shown.body
        assert "not_retained" not in shown.body
        io = world.members["io"]
        await asyncio.sleep(3)
        assert not io.client.invited_rooms, "a fiche went out without a table"
    finally:
        await world.close()


async def test_a_chair_cannot_change_another_tables_roster(synapse: Homeserver,
                                                           tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        for name, table in (("chair", "operational"), ("chair", "strategic"),
                            ("mayor", "strategic")):
            await world.ask(name, table, "!ack")
        crony = world.uid("crony")
        refused = await world.ask(
            "chair", "operational",
            f"!members add {crony} mayor Stad tables=strategic")
        assert "Refused" in refused.body, refused.body
        removal = await world.ask("chair", "operational",
                                  f"!members remove {world.uid('mayor')}")
        assert "Refused" in removal.body or "not on" in removal.body, removal.body
        roster = await world.ask("mayor", "strategic", "!members")
        assert crony not in roster.body
        assert world.uid("mayor") in roster.body
    finally:
        await world.close()


async def test_the_poll_answer_of_a_removed_member_does_not_count(
        synapse: Homeserver, tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        code = await _signal(world, ("chair", "ocmw", "clb", "io"))
        await world.ask("chair", "operational", "!meeting start")
        for name in ("ocmw", "clb", "io"):
            await world.ask(name, "operational", "!present")
        await world.ask("chair", "operational", FILL.format(code=code))
        await world.ask("chair", "operational", f"!vote open fiche {code}")
        clb = world.members["clb"]
        poll = await clb.wait_for(lambda s: s.type == POLL_START and s.sender == world.bot_user)
        for name in ("chair", "ocmw"):
            reply = await world.ask(name, "operational", "!vote yes")
            assert "Ballot recorded" in reply.body
        removed = await world.ask("chair", "operational",
                                  f"!members remove {world.uid('clb')}")
        assert world.uid("clb") in removed.body, removed.body
        await clb.send_event(world.rooms["operational"], POLL_RESPONSE, {
            "m.relates_to": {"rel_type": "m.reference", "event_id": poll.event_id},
            POLL_RESPONSE: {"answers": ["no"]},
        })
        await asyncio.sleep(3)  # the poll answer has been synced and judged by now
        status = await world.ask("chair", "operational", "!vote status")
        assert "- No: —" in status.body, status.body
        assert world.uid("clb") not in status.body, status.body
        assert world.uid("io") in status.body  # still to vote
        shown = await world.ask("chair", "operational", f"!case show {code}")
        assert "follow_up" not in shown.body
    finally:
        await world.close()


async def test_markdown_and_html_typed_by_a_member_never_become_markup(
        synapse: Homeserver, tmp_path: Path) -> None:
    world = await make_world(synapse, tmp_path)
    try:
        await world.ask("chair", "operational", "!ack")
        for body in ("!help x`[click](https://evil.example/)`",
                     "!nosuch`[click](https://evil.example/)`",
                     '!help <a href="https://evil.example/">click</a>',
                     "!case show <img src=https://evil.example/x.png>"):
            reply = await world.ask("chair", "operational", body)
            html = str(reply.content.get("formatted_body", ""))
            assert "<a " not in html, (body, html)
            assert "<img" not in html, (body, html)
            assert 'href="https://evil.example' not in html, (body, html)
    finally:
        await world.close()
