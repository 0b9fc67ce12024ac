"""A consensus needs a table (issue 15, spec §9): quorum, ballots only from present roster
members on trusted devices (when cast and at close), recusal, reason categories, the
deadline and the non-voter reminder run by the scheduler with the injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.core.jobs import Jobs
from commands.framework import ChangeRecorder, Output, PollEnd
from commands.meetings.reminders import JobSpec
from commands.model import Table
from commands.votes.closing import TableVotes, poll_ballot
from tests.factories import CHAIR, IO, MAYOR, PARTNER, SCHOOL
from tests.meeting_harness import Harness, harness

CELL = "livc-r-voorbeeldstad"
#: Tuesday 24 November 2026, 10:00 in Brussels.
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness(T0) as value:
        yield value


def tick(h: Harness, seconds: int = 10) -> None:
    h.clock.now += timedelta(seconds=seconds)


def say(h: Harness, body: str, sender: str = CHAIR, lang_table: Table = Table.OPERATIONAL) -> str:
    tick(h)
    return h.text(body, sender=sender, table=lang_table)


def status(h: Harness, code: str) -> str:
    with h.repos() as repos:
        record = repos.dossiers.get(CELL, code)
        assert record is not None
        return str(record.status)


def meeting(h: Harness, *members: str) -> str:
    code = h.signal()
    assert "!present" in say(h, "!meeting start")
    for member in members:
        say(h, "!present", member)
    return code


def run_job(h: Harness, spec: JobSpec) -> bool:
    jobs = Jobs(h.core, AsyncIOScheduler(timezone=UTC), set())
    return h.core.run_job(spec.key, spec.cell, spec.table, jobs.decision(spec), spec.once)


def vote_jobs(h: Harness) -> dict[str, JobSpec]:
    return {s.kind: s for s in h.core.job_plan().jobs if s.kind.startswith("vote_")}


# ---- 1. quorum ---------------------------------------------------------------------------
def test_the_chair_alone_cannot_open_let_alone_adopt_a_vote(h: Harness) -> None:
    code = meeting(h)
    answer = say(h, f"!vote open accept {code}")
    assert "A consensus needs a table" in answer
    assert "Still missing: 2 member(s), 1 organisation(s)" in answer
    assert "adopted" not in say(h, "!vote yes")
    assert status(h, code) == "signalled"


def test_organisations_count_not_only_heads() -> None:
    with harness(T0, quorum=3, quorum_organisations=3) as h:
        code = meeting(h, PARTNER, SCHOOL)  # Preventiedienst, OCMW, CLB: three
        assert "Vote #1" in say(h, f"!vote open accept {code}")
    with harness(T0, quorum=2, quorum_organisations=4) as h:
        code = meeting(h, PARTNER, SCHOOL)
        assert "Still missing: 0 member(s), 1 organisation(s)" in say(
            h, f"!vote open accept {code}")


def test_quorum_keys_are_validated_in_the_config() -> None:
    from bot.config import ConfigError, parse_config
    from tests.factories import raw_config

    raw = raw_config("en")
    raw["tables"]["operational"].update(quorum=0)
    with pytest.raises(ConfigError):
        parse_config(raw, environ={})
    raw = raw_config("en")
    cell = parse_config(raw, environ={}).cells[0]
    settings = cell.tables[Table.OPERATIONAL]
    assert (settings.quorum, settings.quorum_organisations) == (3, 2)
    assert settings.vote_reminder_after == timedelta(minutes=10)


# ---- 2. ballots only from roster members who are present (and trusted) --------------------
def test_a_removed_member_loses_her_open_ballot_and_her_poll_answer_never_completes(
    h: Harness,
) -> None:
    code = meeting(h, PARTNER, IO, SCHOOL)
    say(h, f"!vote open accept {code}")
    with h.repos() as repos:
        repos.votes.update(1, poll_event_id="$poll")
    say(h, "!vote yes", PARTNER)
    say(h, "!vote yes", IO)
    assert "no longer on the roster" in say(h, f"!members remove {PARTNER}")

    def answer(user: str, choice: str) -> list[Output]:
        with h.db.unit_of_work() as repos:
            votes = TableVotes(h.cell, Table.OPERATIONAL, repos, ChangeRecorder(), h.clock.now)
            return poll_ballot(votes, "$poll", user, choice)

    assert answer(PARTNER, "yes") == []  # no longer on the roster: ignored
    say(h, "!vote yes", PARTNER)  # no longer a member: not answered, not counted
    with h.repos() as repos:
        assert [b.user_id for b in repos.votes.ballots(1)] == [PARTNER, IO]
    say(h, "!vote yes", SCHOOL)
    closing = say(h, "!vote yes", CHAIR)  # the three remaining, all yes
    assert "adopted" in closing
    assert "of 3 present" in closing
    assert status(h, code) == "follow_up"
    with h.repos() as repos:
        vote = repos.votes.get(1)
        assert vote is not None
        assert vote.participants == 3


def test_a_removal_below_quorum_makes_the_close_not_adopted(h: Harness) -> None:
    code = meeting(h, PARTNER, IO)
    say(h, f"!vote open accept {code}")
    say(h, "!vote yes", PARTNER)
    say(h, "!vote yes", IO)
    say(h, f"!members remove {PARTNER}")
    assert "adopted" not in say(h, "!vote yes").replace("not adopted", "")
    closed = say(h, "!vote close")
    assert "not adopted" in closed
    assert "Too few participating members" in closed
    assert status(h, code) == "signalled"


def test_a_blocked_members_ballots_do_not_count_when_cast_or_at_close(h: Harness) -> None:
    """The edge acts only on input from a trusted device; an identity change blocks the
    member (spec §11) and from then on neither a poll answer nor an earlier yes counts."""
    code = meeting(h, PARTNER, IO, SCHOOL)
    say(h, f"!vote open accept {code}")
    with h.repos() as repos:
        repos.votes.update(1, poll_event_id="$poll")
    for who in (CHAIR, PARTNER, SCHOOL):
        say(h, "!vote yes", who)
    with h.db.unit_of_work() as repos:
        repos.identities.pin(IO, "old-master-key", "tofu", h.clock.now)
        repos.identities.block(IO, "new-master-key", h.clock.now)
    with h.db.unit_of_work() as repos:
        votes = TableVotes(h.cell, Table.OPERATIONAL, repos, ChangeRecorder(), h.clock.now)
        assert not votes.trusted(IO)
        assert votes.trusted(PARTNER)
        assert poll_ballot(votes, "$poll", IO, "yes") == []
    assert status(h, code) == "signalled"


def test_a_yes_cast_before_a_block_no_longer_counts_at_close(h: Harness) -> None:
    code = meeting(h, PARTNER, IO, SCHOOL)
    say(h, f"!vote open accept {code}")
    for who in (PARTNER, IO, SCHOOL):
        say(h, "!vote yes", who)
    with h.db.unit_of_work() as repos:
        repos.identities.pin(PARTNER, "old-master-key", "tofu", h.clock.now)
        repos.identities.block(PARTNER, "new-master-key", h.clock.now)
    # The chair's yes completes the vote among the three trusted members present; the
    # blocked partner's earlier yes is not part of the record.
    closed = say(h, "!vote yes")
    assert "adopted" in closed
    assert "3 of 3" in closed
    assert status(h, code) == "follow_up"


# ---- 3. the deadline and the non-voter reminder -------------------------------------------
def test_a_deadline_closes_the_vote_by_itself_not_adopted_without_all_yes(h: Harness) -> None:
    code = meeting(h, PARTNER, IO)
    assert "closes at 10:31" in say(h, f"!vote open accept {code} deadline=10:31")
    say(h, "!vote yes", PARTNER)
    spec = vote_jobs(h)["vote_deadline"]
    with h.repos() as repos:
        vote = repos.votes.get(1)
        assert vote is not None
        assert vote.deadline is not None
        assert spec.run_at == vote.deadline == datetime(2026, 11, 24, 9, 31, tzinfo=UTC)
    h.new()
    h.clock.now = spec.run_at
    run_job(h, spec)
    [closed, ended] = h.new()
    assert "closed at its deadline" in closed.body
    assert "not adopted" in closed.body
    assert ended.item.event_type == "poll_end"
    assert status(h, code) == "signalled"
    assert "vote_deadline" not in vote_jobs(h)  # the plan forgets a closed vote


@pytest.mark.parametrize("raw", ["30m", "10:45", "2026-11-24T10:45"])
def test_deadline_forms_are_accepted(h: Harness, raw: str) -> None:
    code = meeting(h, PARTNER, IO)
    assert "The vote closes at" in say(h, f"!vote open accept {code} deadline={raw}")


@pytest.mark.parametrize("raw", ["09:00", "2026-11-25T10:00", "soon", "0m",
                                 "2026-11-24T10:45+01:00"])
def test_bad_deadlines_are_refused_with_usage(h: Harness, raw: str) -> None:
    code = meeting(h, PARTNER, IO)
    assert "`deadline=` is a period" in say(h, f"!vote open accept {code} deadline={raw}")


def test_non_voters_are_mentioned_once_after_vote_reminder(h: Harness) -> None:
    code = meeting(h, PARTNER, IO, SCHOOL)
    say(h, f"!vote open accept {code}")
    say(h, "!vote yes", PARTNER)
    spec = vote_jobs(h)["vote_reminder"]
    with h.repos() as repos:
        vote = repos.votes.get(1)
        assert vote is not None
        assert spec.run_at == vote.opened_at + timedelta(minutes=10)
    h.new()
    h.clock.now = spec.run_at
    assert run_job(h, spec)
    [sent] = h.new()
    assert sent.content["msgtype"] == "m.text"
    assert sorted(sent.notifies) == sorted([CHAIR, IO, SCHOOL])
    assert not run_job(h, spec)  # once
    assert h.new() == []
    assert "vote_reminder" not in vote_jobs(h)


def test_the_reminder_follows_the_config_and_skips_a_finished_vote() -> None:
    with harness(T0, vote_reminder="3m") as h:
        code = meeting(h, PARTNER, IO)
        say(h, f"!vote open accept {code}")
        spec = vote_jobs(h)["vote_reminder"]
        with h.repos() as repos:
            vote = repos.votes.get(1)
            assert vote is not None
            assert spec.run_at == vote.opened_at + timedelta(minutes=3)
        for who in (CHAIR, PARTNER, IO):
            say(h, "!vote yes", who)
        h.new()
        h.clock.now = spec.run_at
        run_job(h, spec)
        assert h.new() == []


# ---- 4. reasons ----------------------------------------------------------------------------
def test_reasons_come_from_a_fixed_list_and_are_counted(h: Harness) -> None:
    code = meeting(h, PARTNER, IO, SCHOOL)
    say(h, f"!vote open accept {code}")
    assert "no free text" in say(h, '!vote no reason="I do not like it"', PARTNER)
    assert "no free text" in say(h, "!vote no reason=because", PARTNER)
    assert "goes with `!vote no`" in say(h, "!vote yes reason=other", PARTNER)
    assert "Ballot recorded: no" in say(h, "!vote no reason=more-information", PARTNER)
    assert "Ballot recorded: abstain" in say(h, "!vote abstain reason=secrecy-concern", IO)
    say(h, "!vote no reason=more-information", SCHOOL)
    closed = say(h, "!vote close")
    assert "Reasons: more information needed 2, professional secrecy concern 1." in closed
    decisions = say(h, "!meeting end")
    assert "not adopted** (more information needed 2, professional secrecy concern 1)" \
        in decisions


def test_localised_reason_values_are_accepted() -> None:
    with harness(T0, language="nl") as h:
        code = meeting(h, PARTNER, IO)
        say(h, f"!vote open accept {code}")
        assert "Stem genoteerd" in say(h, "!vote no reden=meer-informatie", PARTNER)
        with h.repos() as repos:
            [ballot] = repos.votes.ballots(1)
            assert ballot.reason == "more-information"
    with harness(T0, language="fr") as h:
        code = meeting(h, PARTNER, IO)
        say(h, f"!vote open accept {code}")
        assert "Voix enregistrée" in say(h, "!vote abstain raison=pas-pour-cette-table",
                                         PARTNER)


# ---- 5. recusal ----------------------------------------------------------------------------
@pytest.mark.parametrize(("lang", "record"), [
    ("en", "3 of 3 participating agreed; 1 recused"),
    ("nl", "3 van 3 deelnemers akkoord; 1 onthield zich van deelname"),
    ("fr", "3 sur 3 participants d'accord ; 1 récusé(s)"),
])
def test_a_recused_member_does_not_vote_and_is_counted_apart(lang: str, record: str) -> None:
    with harness(T0, language=lang) as h:
        code = meeting(h, PARTNER, IO, SCHOOL)
        assert code in say(h, f"!recuse {code}", SCHOOL)
        say(h, f"!vote open accept {code}")
        assert "!present" not in say(h, "!vote yes", SCHOOL)
        with h.repos() as repos:
            assert repos.votes.ballots(1) == []
        say(h, "!vote yes", PARTNER)
        say(h, "!vote yes", IO)
        closing = say(h, "!vote yes", CHAIR)
        assert record in closing
        assert status(h, code) == "follow_up"


def test_recusal_needs_presence_and_leaves_other_cases_alone(h: Harness) -> None:
    code = meeting(h, PARTNER, IO)
    other = h.signal()
    assert "!present" in say(h, f"!recuse {code}", SCHOOL)
    say(h, f"!recuse {code}", IO)
    assert "already" in say(h, f"!recuse {code}", IO)
    # Without IO the table is two: no quorum for this case, but the other case has one.
    assert "A consensus needs a table" in say(h, f"!vote open accept {code}")
    assert "Vote #1" in say(h, f"!vote open accept {other}")


def test_a_recused_fiche_vote_records_it_in_the_fiche() -> None:
    with harness(T0) as h:
        code = meeting(h, PARTNER, IO, SCHOOL)
        say(h, f"!vote open accept {code}")
        for who in (CHAIR, PARTNER, IO, SCHOOL):
            say(h, "!vote yes", who)
        say(h, f'!fiche {code} set effectiveness=positive willingness=moderate '
               f'distancing=partial continue=yes options=yes readiness=no-indications '
               f'other="loopt"')
        say(h, f"!recuse {code}", SCHOOL)
        say(h, f"!vote open fiche {code}")
        for who in (CHAIR, PARTNER):
            say(h, "!vote yes", who)
        tick(h)
        sent = h.say("!vote yes", sender=IO)
        [fiche] = [s for s in sent if "## Consensus" in s.body]
        assert "3 of 3 participating agreed; 1 recused" in fiche.body


def test_poll_end_is_sent_when_the_deadline_closes(h: Harness) -> None:
    code = meeting(h, PARTNER, IO)
    say(h, f"!vote open accept {code} deadline=5m")
    h.clock.now += timedelta(minutes=6)
    with h.db.unit_of_work() as repos:
        from commands.votes.closing import expire
        outputs = expire(TableVotes(h.cell, Table.OPERATIONAL, repos, ChangeRecorder(),
                                    h.clock.now))
    assert any(isinstance(o, PollEnd) for o in outputs)
    assert MAYOR  # the strategic table never votes (its members are not used here)
