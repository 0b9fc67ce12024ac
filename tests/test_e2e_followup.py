"""Following a case through, end to end (issue 18, spec §13): a real Synapse, the bot as a
real ``livcr run`` process, members with real E2EE clients.

An action is added and is overdue on the next meeting's agenda, then closed as not possible
and recorded in the decision list; the signaller reads the table's decision in an encrypted
direct room; a recused member is not eligible and the record says so; the reminder after
``vote_reminder`` mentions exactly the eligible members who have not voted.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from demo.homeserver import Homeserver
from demo.scenario import due_before
from tests.world import World, make_world

pytestmark = pytest.mark.e2e

AGENDA_DAY = re.compile(r"Agenda — \w+ (\d{4}-\d{2}-\d{2}) at")


_CONFIG_TEXT = World.config_text


def _short_reminder(self: World, cadence: dict[str, Any] | None = None,
                    extra_members: tuple[tuple[str, str, str, tuple[str, ...]], ...] = ()) -> str:
    """The world's configuration with a one-minute ``vote_reminder``."""
    return _CONFIG_TEXT(self, {"vote_reminder": "1m", **(cadence or {})}, extra_members)


async def test_an_action_overdue_then_not_possible_the_signaller_told_a_recusal_recorded(
    synapse: Homeserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(World, "config_text", _short_reminder)
    world = await make_world(synapse, tmp_path)
    try:
        for name in ("chair", "ocmw", "clb", "io"):
            await world.ask(name, "operational", "!ack")
        created = await world.ask("ocmw", "operational",
                                  "!signal phenomenon=PVE indicators=threats assessed=yes "
                                  "ideology=anti-government minor=no")
        found = re.search(r"C-[0-9A-Z]{5}", created.body)
        assert found, created.body
        code = found.group(0)

        # The table woke up: a meeting is planned. An action due before it is overdue there.
        shown = await world.ask("clb", "operational", "!agenda")
        day = AGENDA_DAY.search(shown.body)
        assert day, shown.body
        today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Brussels")).date()
        due = due_before(today, date.fromisoformat(day.group(1)))
        added = await world.ask(
            "clb", "operational",
            f'!action add {code} owner=CLB due={due.isoformat()} "Trajectbegeleiding opstarten"')
        assert f"Action {code}/1 recorded for CLB" in added.body, added.body
        agenda = await world.ask("ocmw", "operational", "!agenda")
        assert f"Overdue actions: {code}/1" in agenda.body, agenda.body
        refused = await world.ask("ocmw", "operational", f"!action done {code}/1")
        assert "Only the chair or a member of CLB" in refused.body

        # The meeting: the confidentiality statement, attendance, a recusal.
        chair = world.members["chair"]
        await world.ask("chair", "operational", "!meeting start")
        statement = await chair.wait_for(
            lambda s: s.sender == world.bot_user and "458ter" in s.body, timeout=60)
        assert statement.decrypted
        for name in ("ocmw", "clb", "io"):
            present = await world.ask(name, "operational", "!present")
            assert "confirms the confidentiality" in present.body
        recused = await world.ask("clb", "operational", f"!recuse {code}")
        assert "take no part" in recused.body
        opened = await world.ask("chair", "operational", f"!vote open accept {code}")
        assert "Vote #1" in opened.body
        status = await world.ask("chair", "operational", "!vote status")
        assert world.uid("clb") not in status.body  # recused: not eligible
        refusal = await world.ask("clb", "operational", "!vote yes")
        assert "recused" in refusal.body
        await world.ask("ocmw", "operational", "!vote yes")

        # After vote_reminder: exactly the eligible members who have not voted.
        io = world.members["io"]
        reminder = await io.wait_for(
            lambda s: s.sender == world.bot_user and "is still waiting for" in s.body,
            timeout=240)
        assert reminder.content["msgtype"] == "m.text"
        assert sorted(reminder.content["m.mentions"]["user_ids"]) == sorted(
            [world.uid("chair"), world.uid("io")])
        assert world.uid("clb") not in reminder.body
        assert world.uid("ocmw") not in reminder.body

        await world.ask("io", "operational", "!vote yes")
        ballot = await world.ask("chair", "operational", "!vote yes")
        assert "still missing 0 of 3" in ballot.body  # 3 eligible: the recused member apart
        closing = await chair.wait_for(
            lambda s: s.sender == world.bot_user and "1 recused" in s.body, timeout=60)
        assert "adopted" in closing.body

        # The signaller reads the decision in an encrypted direct room: code, decision, date.
        ocmw = world.members["ocmw"]
        invite = await ocmw.accept_invite(timeout=60)
        assert invite, "the signaller was not invited to a direct room"
        told = await ocmw.wait_for(
            lambda s: s.room_id == invite and s.sender == world.bot_user and code in s.body,
            timeout=60)
        assert told.decrypted
        assert ocmw.client.rooms[invite].encrypted
        assert f"**{code}** — followed up by the table, on {today.isoformat()}" in told.body

        # The action could not be done; the decision list records it with the recusal.
        changed = await world.ask("clb", "operational", f"!action status {code}/1 not-possible")
        assert "open → **not possible**" in changed.body
        decisions = await world.ask("chair", "operational", "!meeting end")
        for needle in (f"{code}/1: action not possible", f"Recusals: {code}: {world.uid('clb')}",
                       f"- CLB: {world.uid('clb')}", "adopted"):
            assert needle in decisions.body, (needle, decisions.body)
    finally:
        await world.close()
