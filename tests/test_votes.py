"""Consensus votes and the feedback fiche, through the dispatcher (spec §9)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Config
from bot.core.dispatcher import Dispatcher
from bot.core.render import attachment_bytes, markdown, render
from commands.framework import ChangeRecorder, Output, PollEnd, PollStart, Reply
from commands.model import Table
from commands.votes.closing import TableVotes, poll_ballot
from commands.votes.consensus import Choice, State, outcome, tally
from storage.db import Database
from tests.factories import CHAIR, IO, NOW, PARTNER, SCHOOL, ack_all, incoming, make_config
from tests.factories import memory_db as _memory_db

GOLDEN = Path(__file__).parent / "golden"
CELL = "livc-r-voorbeeldstad"


# ---- the consensus state machine, pure ----------------------------------------------------
def test_all_yes_is_adopted() -> None:
    t = tally(["a", "b", "c"], [("a", Choice.YES), ("b", Choice.YES), ("c", Choice.YES)])
    assert t.unanimous
    assert outcome(t) is State.ADOPTED


def test_one_no_blocks() -> None:
    t = tally(["a", "b"], [("a", Choice.YES), ("b", Choice.NO)])
    assert t.blocked
    assert outcome(t) is State.NOT_ADOPTED


def test_abstain_blocks() -> None:
    t = tally(["a", "b"], [("a", Choice.YES), ("b", Choice.ABSTAIN)])
    assert t.abstain == ("b",)
    assert outcome(t) is State.NOT_ADOPTED


def test_a_changed_ballot_counts_the_latest() -> None:
    t = tally(["a", "b"], [("a", Choice.YES), ("b", Choice.NO), ("b", Choice.YES)])
    assert outcome(t) is State.ADOPTED
    t = tally(["a", "b"], [("a", Choice.YES), ("b", Choice.YES), ("b", Choice.ABSTAIN)])
    assert outcome(t) is State.NOT_ADOPTED


def test_a_missing_ballot_at_close_is_not_adopted() -> None:
    t = tally(["a", "b", "c"], [("a", Choice.YES), ("b", Choice.YES)])
    assert t.missing == ("c",)
    assert outcome(t) is State.NOT_ADOPTED


def test_a_ballot_from_someone_absent_is_ignored() -> None:
    t = tally(["a"], [("a", Choice.YES), ("x", Choice.NO)])
    assert outcome(t) is State.ADOPTED
    assert "x" not in t.ballots


def test_nobody_present_is_never_adopted() -> None:
    assert outcome(tally([], [])) is State.NOT_ADOPTED


# ---- through the dispatcher ---------------------------------------------------------------
@pytest.fixture
def config() -> Config:
    return make_config(language="en")


@pytest.fixture
def db(config: Config) -> Iterator[Database]:
    with _memory_db() as database:
        ack_all(database, config)
        yield database


class VotingTable:
    """One operational table driven through the dispatcher, with its own clock."""

    def __init__(self, config: Config, db: Database) -> None:
        self.config, self.db = config, db
        self.dispatcher = Dispatcher(config, scheduler=ChangeRecorder())
        self.dispatcher.limiter.per_minute = 10**6
        self.now = NOW

    def run(self, body: str, sender: str = CHAIR) -> list[Output]:
        self.now += timedelta(seconds=10)
        with self.db.unit_of_work() as repos:
            return self.dispatcher.dispatch(incoming(body, sender=sender, at=self.now), repos,
                                            self.now)

    def say(self, body: str, sender: str = CHAIR) -> str:
        return "\n".join(render("en", o.template, o.data).body
                         for o in self.run(body, sender) if isinstance(o, Reply))

    def status(self, code: str) -> str:
        with self.db.unit_of_work() as repos:
            record = repos.dossiers.get(CELL, code)
            assert record is not None
            return record.status

    def case(self) -> str:
        answer = self.say("!signal phenomenon=HTF indicators=isolation assessed=yes", PARTNER)
        match = re.search(r"C-[0-9A-Z]{5}", answer)
        assert match
        return match.group(0)

    def meeting_with(self, *members: str) -> None:
        assert "meeting is open" in self.say("!meeting start")
        for member in members:
            self.say("!present", member)


@pytest.fixture
def table(config: Config, db: Database) -> VotingTable:
    return VotingTable(config, db)


def test_accept_by_consensus_moves_the_dossier_to_follow_up(table: VotingTable) -> None:
    code = table.case()
    table.meeting_with(PARTNER, IO)
    outputs = table.run(f"!vote open accept {code}")
    assert any(isinstance(o, PollStart) for o in outputs)
    assert "Still to vote: @an.peeters" in table.say("!vote status")
    table.say("!vote yes", PARTNER)
    assert "still missing 1 of 3" in table.say("!vote yes", CHAIR)
    closing = table.say("!vote yes", IO)
    assert "adopted" in closing
    assert table.status(code) == "follow_up"


def test_one_no_blocks_until_changed_and_close_without_all_yes_changes_nothing(
    table: VotingTable,
) -> None:
    code = table.case()
    table.meeting_with(PARTNER, SCHOOL)
    table.say(f"!vote open reject {code}")
    table.say("!vote no", PARTNER)
    table.say("!vote yes", CHAIR)
    assert table.status(code) == "signalled"
    outputs = table.run("!vote close")
    assert any(isinstance(o, PollEnd) for o in outputs)
    text = "\n".join(render("en", o.template, o.data).body for o in outputs
                     if isinstance(o, Reply))
    assert "not adopted" in text
    assert table.status(code) == "signalled"
    assert "no longer possible" in table.say("!vote yes 1", PARTNER)


def test_changed_ballot_adopts(table: VotingTable) -> None:
    code = table.case()
    table.meeting_with(PARTNER, SCHOOL)
    table.say(f"!vote open accept {code}")
    table.say("!vote abstain", PARTNER)
    table.say("!vote yes", CHAIR)
    table.say("!vote yes", SCHOOL)
    assert table.status(code) == "signalled"
    assert "adopted" in table.say("!vote yes", PARTNER)
    assert table.status(code) == "follow_up"


def test_ballots_from_absent_members_and_outside_meetings_are_refused(table: VotingTable) -> None:
    code = table.case()
    assert "during a meeting" in table.say(f"!vote open accept {code}")
    table.meeting_with(PARTNER, IO)
    assert "Only the chair" in table.say(f"!vote open accept {code}", PARTNER)
    table.say(f"!vote open accept {code}")
    assert "Send `!present` first" in table.say("!vote yes", SCHOOL)
    assert "still open" in table.say(f"!vote open reject {code}")
    table.say("!vote no", PARTNER)
    ended = table.say("!meeting end")
    assert "not adopted" in ended
    assert table.status(code) == "signalled"
    assert "no open vote" in table.say("!vote yes", PARTNER)


def test_illegal_transition_is_refused_before_voting(table: VotingTable) -> None:
    code = table.case()
    table.meeting_with(PARTNER, SCHOOL)
    assert "Allowed next" in table.say(f"!vote open close {code}")


def test_cancelled_vote_refuses_ballots(table: VotingTable) -> None:
    code = table.case()
    table.meeting_with(PARTNER, SCHOOL)
    table.say(f"!vote open accept {code}")
    assert "withdrawn" in table.say("!vote cancel")
    assert "withdrawn" in table.say("!vote yes 1", PARTNER)
    assert table.status(code) == "signalled"


def _fill(table: VotingTable, code: str) -> None:
    answer = table.say(f'!fiche {code} set effectiveness=positive willingness=moderate '
                       f'distancing=partial continue=yes options=yes readiness=no-indications '
                       f'other="Schoolbegeleiding loopt; contact met jeugddienst"')
    assert "complete" in answer


def test_fiche_vote_needs_a_complete_fiche_and_an_edit_cancels_it(table: VotingTable) -> None:
    code = table.case()
    table.meeting_with(PARTNER, IO)
    table.say(f"!vote open accept {code}")
    for who in (CHAIR, PARTNER, IO):
        table.say("!vote yes", who)
    assert "missing" in table.say(f"!vote open fiche {code}")
    assert "takes one of" in table.say(f"!fiche {code} set effectiveness=great")
    _fill(table, code)
    opened = table.say(f"!vote open fiche {code}")
    assert "458ter" in opened
    table.say("!vote yes", PARTNER)
    edited = table.say(f"!fiche {code} set willingness=high")
    assert "withdrawn because the fiche was edited" in edited
    assert "no open vote" in table.say("!vote yes", IO)


def test_adopted_fiche_goes_to_every_information_officer_only(table: VotingTable) -> None:
    code = table.case()
    table.meeting_with(PARTNER, IO)
    _fill(table, code)
    table.say(f"!vote open fiche {code}")
    table.say("!vote yes", PARTNER)
    table.say("!vote yes", CHAIR)
    outputs = table.run("!vote yes", IO)
    direct = [o for o in outputs if isinstance(o, Reply) and o.direct_to]
    assert [o.direct_to for o in direct] == [IO]
    assert direct[0].attachment is not None
    attachment = direct[0].attachment
    assert code.encode() in attachment_bytes("en", attachment.template, attachment.data)
    assert direct[0].delivery == code  # the edge reports it once it went out (spec §11)
    confirmation = [render("en", o.template, o.data).body for o in outputs
                    if isinstance(o, Reply) and not o.direct_to]
    assert not any("information officer" in c for c in confirmation)
    assert not any("Schoolbegeleiding" in c for c in confirmation)


def test_blocked_fiche_vote_delivers_nothing(table: VotingTable) -> None:
    code = table.case()
    table.meeting_with(PARTNER, SCHOOL)
    _fill(table, code)
    opened = table.run(f"!vote open fiche {code}")
    assert any(isinstance(o, PollStart) for o in opened), "the fiche vote must open"
    assert "Ballot recorded: no" in table.say("!vote no", PARTNER)
    assert "Ballot recorded: yes" in table.say("!vote yes", CHAIR)
    with table.db.unit_of_work() as repos:
        vote = repos.votes.get(1)
        assert vote is not None
        assert (vote.kind, vote.state) == ("fiche", "open")
        assert sorted((b.user_id, b.choice) for b in repos.votes.ballots(1)) == [
            (CHAIR, "yes"), (PARTNER, "no")]
    outputs = table.run("!meeting end")
    assert any(isinstance(o, PollEnd) and o.vote_id == 1 for o in outputs)
    assert not [o for o in outputs if isinstance(o, Reply) and o.direct_to]
    with table.db.unit_of_work() as repos:
        closed = repos.votes.get(1)
        assert closed is not None
        assert closed.state not in ("open", "adopted")


def test_poll_responses_of_eligible_members_count_others_are_ignored(table: VotingTable,
                                                                     config: Config) -> None:
    code = table.case()
    table.meeting_with(PARTNER, SCHOOL)
    table.say(f"!vote open accept {code}")
    with table.db.unit_of_work() as repos:
        repos.votes.update(1, poll_event_id="$poll")
    cell = config.cells[0]

    def answer(user: str, choice: str) -> list[Output]:
        with table.db.unit_of_work() as repos:
            votes = TableVotes(cell, Table.OPERATIONAL, repos, ChangeRecorder(), table.now)
            return poll_ballot(votes, "$poll", user, choice)

    assert answer(IO, "yes") == []  # not present
    assert answer(PARTNER, "maybe") == []
    answer(PARTNER, "no")
    answer(CHAIR, "yes")
    answer(SCHOOL, "yes")
    assert table.status(code) == "signalled"
    outputs = answer(PARTNER, "yes")  # the latest one wins
    assert any(isinstance(o, PollEnd) for o in outputs)
    assert table.status(code) == "follow_up"


@pytest.mark.parametrize("lang", ["nl", "fr", "en"])
def test_rendered_fiche_matches_the_golden_file(lang: str) -> None:
    data = {
        "cell": "LIVC-R Voorbeeldstad", "municipalities": ["Voorbeeldstad"],
        "table": "operational", "code": "C-7KQ2M", "phenomenon": "HTF", "date": "2026-11-24",
        "participants": 4, "recused": 0,
        "fields": {"effectiveness": "positive", "willingness": "moderate",
                   "distancing": "partial", "continue": "yes", "options": "no",
                   "other": "Schoolbegeleiding loopt; contact met jeugddienst",
                   "readiness": "some-indications", "readiness_note": "Afbouw online contacten"},
    }
    text = markdown(lang, "fiche", data) + "\n"
    golden = GOLDEN / f"fiche_{lang}.md"
    if os.environ.get("LIVCR_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    html = render(lang, "fiche", data).html
    assert "<h1>" in html
    assert "C-7KQ2M" in html
