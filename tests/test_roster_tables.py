"""Roster changes stay in their table (issue 15, spec §11): a chair changes the roster of the
table the command is sent from, and fiches go only to information officers on the roster who
acknowledged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from commands.members.roster import effective_member
from commands.model import Table
from tests.factories import CHAIR, IO, MAYOR, PARTNER, SCHOOL
from tests.meeting_harness import Harness, harness

CELL = "livc-r-voorbeeldstad"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
CRONY = "@crony:example.be"
FAKE_IO = "@fake.io:example.be"
OP, STRAT = Table.OPERATIONAL, Table.STRATEGIC


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness(T0) as value:
        yield value


def say(h: Harness, body: str, sender: str = CHAIR, table: Table = OP) -> str:
    h.clock.now += timedelta(seconds=10)
    return h.text(body, sender=sender, table=table)


def seat(h: Harness, user_id: str) -> tuple[Table, ...] | None:
    with h.repos() as repos:
        member = effective_member(h.cell, repos, user_id)
        return None if member is None else member.tables


def test_the_operational_chair_cannot_change_the_strategic_roster(h: Harness) -> None:
    answer = say(h, f"!members add {CRONY} mayor Stad tables=strategic")
    assert "own table only" in answer
    assert seat(h, CRONY) is None
    assert "not on the roster" in say(h, f"!members remove {MAYOR}")
    assert seat(h, MAYOR) == (STRAT,)
    assert "own table only" in say(h, f"!members add {CRONY} partner X "
                                      "tables=operational,strategic")


def test_the_mayor_cannot_add_an_operational_information_officer(h: Harness) -> None:
    answer = say(h, f"!members add {FAKE_IO} information_officer Politie tables=operational",
                 sender=MAYOR, table=STRAT)
    assert "own table only" in answer
    assert seat(h, FAKE_IO) is None


def test_removing_a_member_of_both_tables_removes_only_this_tables_seat(h: Harness) -> None:
    assert "at least one chair" not in say(h, f"!members add {SCHOOL} partner CLB "
                                              "", sender=MAYOR, table=STRAT)
    assert seat(h, SCHOOL) == (OP, STRAT)
    assert "no longer on the roster" in say(h, f"!members remove {SCHOOL}", sender=MAYOR,
                                            table=STRAT)
    assert seat(h, SCHOOL) == (OP,)


def test_another_tables_role_is_not_changed_from_here(h: Harness) -> None:
    # The chair sits at both tables; the mayor may not make her an alderman from the
    # strategic room (that would change the operational roster too).
    assert "another role" in say(h, f"!members add {CHAIR} alderman Stad", sender=MAYOR,
                                 table=STRAT)
    assert seat(h, CHAIR) == (OP, STRAT)


def test_an_added_information_officer_gets_no_fiche_before_acknowledging(h: Harness) -> None:
    assert "is now on the roster" in say(h, f"!members add {FAKE_IO} information_officer "
                                            "Politiezone")
    code = h.signal()
    say(h, "!meeting start")
    for who in (PARTNER, IO):
        say(h, "!present", who)
    say(h, f"!vote open accept {code}")
    for who in (CHAIR, PARTNER, IO):
        say(h, "!vote yes", who)
    say(h, f'!fiche {code} set effectiveness=positive willingness=moderate '
           f'distancing=partial continue=yes options=yes readiness=no-indications '
           f'other="loopt"')
    say(h, f"!vote open fiche {code}")
    say(h, "!vote yes", PARTNER)
    say(h, "!vote yes", CHAIR)
    h.new()
    h.clock.now += timedelta(seconds=10)
    sent = h.say("!vote yes", sender=IO)
    assert [x.item.content.get("direct_to") for x in sent
            if x.item.content.get("direct_to")] == [IO]  # not the unacknowledged one
    # "sent to N" only once the edge delivered it (spec §11), not when it was decided.
    assert not [s.body for s in sent if "information officer" in s.body]
    [fiche] = [x.item for x in sent if x.item.content.get("direct_to")]
    h.core.delivery_outcome(fiche, True)
    confirmations = [s.body for s in h.new() if "information officer" in s.body]
    assert any("sent to 1 information officer" in c for c in confirmations), confirmations
