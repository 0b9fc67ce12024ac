"""The first days of a cell (issue 20, item 10): grammatical room names in every language,
and a member who joins the room after things were said there is mentioned once and told what
is waiting (the history before a join is not theirs to read)."""

from __future__ import annotations

from bot.core import render
from bot.edge.inbound import OutsiderJoined
from bot.edge.rooms import room_name
from commands.model import Table
from tests.factories import OUTSIDER, PARTNER
from tests.meeting_harness import OP_ROOM, harness


def test_room_names_are_grammatical_in_nl_fr_and_en() -> None:
    with harness(language="nl") as h:
        cell = h.cell
    for table in Table:
        assert room_name(cell, table, render).endswith(
            {"operational": "— operationele tafel", "strategic": "— strategische tafel"}[
                table.value])
        fr = cell.model_copy(update={"language": "fr"})
        assert room_name(fr, table, render).endswith(
            {"operational": "— table opérationnelle", "strategic": "— table stratégique"}[
                table.value])


def test_a_roster_member_who_joins_is_mentioned_and_pointed_to_what_waits() -> None:
    with harness(language="nl") as h:
        h.signal()  # a meeting is planned now
        h.new()
        assert h.core.decide(OutsiderJoined(OP_ROOM, "$join1", PARTNER))
        [welcome] = h.new()
        assert welcome.notifies == [PARTNER]
        assert welcome.content["msgtype"] == "m.text"
        assert "Welkom" in welcome.body
        assert "`!agenda`" in welcome.body
        assert "Volgende vergadering: dinsdag 2026-12-01" in welcome.body
        assert not h.core.decide(OutsiderJoined(OP_ROOM, "$join1", PARTNER))  # once per event
        assert h.new() == []


def test_an_outsider_who_joins_gets_no_welcome() -> None:
    with harness(language="nl") as h:
        assert h.core.decide(OutsiderJoined(OP_ROOM, "$join2", OUTSIDER))
        sent = h.new()
        assert all("Welkom" not in s.body for s in sent)
        assert all(OUTSIDER not in s.notifies for s in sent)
