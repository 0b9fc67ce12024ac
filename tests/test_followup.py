"""Following a case through (issue 18, spec §13): actions, the signaller's outcome, aftercare,
the meeting record and the phenomena of today — every rule and refusal, through the core with
an injected clock (no server)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.config import ConfigError, parse_config
from bot.core.jobs import Jobs
from commands.actions.rules import (
    ActionStatus,
    is_overdue,
    may_change,
    on_a_day_off,
    overdue_on,
    owner_organisation,
    parse_ref,
    parse_status,
)
from commands.dossiers.outcome import add_period, review_dates
from commands.meetings.agenda import agenda, agenda_summary
from commands.meetings.reminders import JobSpec
from commands.model import DEFAULT_PHENOMENA, Member, Role, Table
from storage.migrations import STEPS
from tests.factories import CHAIR, IO, PARTNER, SCHOOL, raw_config
from tests.meeting_harness import Harness, Sent, harness

CELL = "livc-r-voorbeeldstad"
BRUSSELS = ZoneInfo("Europe/Brussels")
#: Tuesday 24 November 2026, 10:00 in Brussels.
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
REF = re.compile(r"C-[0-9A-Z]{5}/\d+")


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness(T0) as value:
        yield value


def say(h: Harness, body: str, sender: str = CHAIR) -> str:
    h.clock.now += timedelta(seconds=10)
    return h.text(body, sender=sender)


def sent(h: Harness, body: str, sender: str = CHAIR) -> list[Sent]:
    h.clock.now += timedelta(seconds=10)
    return h.say(body, sender=sender)


def add_action(h: Harness, code: str, owner: str = "OCMW", due: str = "2026-12-01",
               sender: str = PARTNER) -> str:
    answer = say(h, f'!action add {code} owner={owner} due={due} "Trajectbegeleiding opstarten"',
                 sender)
    match = REF.search(answer)
    assert match, answer
    return match.group(0)


def action_status(h: Harness, ref: str) -> str:
    code, n = ref.split("/")
    with h.repos() as repos:
        action = repos.actions.get(CELL, code, int(n))
        assert action is not None
        return str(action.status)


def count_actions(h: Harness) -> int:
    with h.repos() as repos:
        return len(repos.actions.of_cell(CELL))


def run_job(h: Harness, spec: JobSpec) -> bool:
    jobs = Jobs(h.core, AsyncIOScheduler(timezone=UTC), set())
    return h.core.run_job(spec.key, spec.cell, spec.table, jobs.decision(spec), spec.once)


def jobs_of(h: Harness, kind: str) -> list[JobSpec]:
    return [s for s in h.core.job_plan().jobs if s.kind == kind]


def vote_through(h: Harness, kind: str, code: str) -> list[Sent]:
    """Open a vote on ``code`` and have the three present members agree."""
    say(h, f"!vote open {kind} {code}")
    say(h, "!vote yes", PARTNER)
    say(h, "!vote yes", IO)
    return sent(h, "!vote yes")


# ---- actions: the pure rules ------------------------------------------------------------
def test_action_references_and_statuses_parse_strictly() -> None:
    assert parse_ref("c-7kq2m/2") == ("C-7KQ2M", 2)
    for bad in ("C-7KQ2M", "C-7KQ2M/0", "7KQ2M/1", "C-7KQ2M/x", "3"):
        assert parse_ref(bad) is None
    assert [parse_status(s) for s in ("open", "done", "not-possible", "not-done")] == list(
        ActionStatus)
    assert parse_status("not-undertaken") is ActionStatus.NOT_DONE
    assert parse_status("maybe") is None
    assert not ActionStatus.OPEN.closed
    assert all(s.closed for s in ActionStatus if s is not ActionStatus.OPEN)


def test_who_may_change_an_action_is_the_chair_or_the_owning_organisation() -> None:
    chair = Member(user_id=CHAIR, role=Role.CHAIR, organisation="Preventiedienst")
    ocmw = Member(user_id=PARTNER, role=Role.PARTNER, organisation="OCMW")
    clb = Member(user_id=SCHOOL, role=Role.PARTNER, organisation="CLB")
    police = Member(user_id=IO, role=Role.INFORMATION_OFFICER, organisation="Politiezone")
    nobody = Member(user_id="@x:example.be", role=Role.PARTNER, organisation="")
    assert may_change(chair, "OCMW")
    assert may_change(ocmw, "ocmw ")
    assert not may_change(clb, "OCMW")
    assert not may_change(police, "OCMW")
    assert not may_change(nobody, "")
    assert owner_organisation("clb", [chair, ocmw, clb]) == "CLB"
    assert owner_organisation("VDAB", [chair, ocmw, clb]) is None


def test_holidays_and_weekends_do_not_stop_the_clock_of_an_action() -> None:
    christmas = date(2026, 12, 25)  # a Friday and a public holiday
    assert on_a_day_off(christmas)
    assert on_a_day_off(date(2026, 12, 26))  # a Saturday
    assert not on_a_day_off(date(2026, 12, 1))  # a plain Tuesday
    assert not overdue_on("open", christmas, christmas)
    assert overdue_on("open", christmas, date(2026, 12, 26))  # overdue over the weekend
    due = date(2026, 12, 24)  # the day before the holiday weekend
    assert all(overdue_on("open", due, date(2026, 12, d)) for d in (25, 26, 27, 28))
    assert not overdue_on("done", christmas, date(2027, 1, 30))  # closed: never overdue


def test_overdue_follows_the_cells_calendar_across_daylight_saving() -> None:
    due = date(2026, 3, 30)  # the Monday after the clocks went forward (29 March)
    # 23:30 in Brussels (CEST, UTC+2) on the due day: not overdue yet...
    assert not is_overdue("open", due, datetime(2026, 3, 30, 21, 30, tzinfo=UTC), BRUSSELS)
    # ...00:30 the next day in Brussels, still 22:30 on the due day in UTC: overdue.
    assert is_overdue("open", due, datetime(2026, 3, 30, 22, 30, tzinfo=UTC), BRUSSELS)
    autumn = date(2026, 10, 26)  # the Monday after the clocks went back (25 October)
    assert not is_overdue("open", autumn, datetime(2026, 10, 26, 22, 30, tzinfo=UTC), BRUSSELS)
    assert is_overdue("open", autumn, datetime(2026, 10, 26, 23, 30, tzinfo=UTC), BRUSSELS)


# ---- actions through the core -----------------------------------------------------------
def test_actions_are_numbered_per_dossier_and_listed(h: Harness) -> None:
    code = h.signal()
    first = add_action(h, code)
    reply = say(h, f'!action add {code} owner=clb due=2026-12-25 "Huisbezoek plannen"', SCHOOL)
    assert "due 2026-12-25 (note: a weekend day or a Belgian public holiday)" in reply
    second = f"{code}/2"
    assert (first, second) == (f"{code}/1", f"{code}/2")
    listing = say(h, f"!action list {code}")
    assert f"{code}/1** — OCMW, due 2026-12-01, open" in listing
    assert f"{code}/2** — CLB, due 2026-12-25, open" in listing
    assert "Trajectbegeleiding opstarten" in listing
    overview = say(h, "!action list")
    assert f"{code}/1" in overview
    assert "Trajectbegeleiding" not in overview  # the cell-wide list: codes, owners, dates only
    assert "Actions: 2" in say(h, f"!case show {code}")


@pytest.mark.parametrize(("command", "answer"), [
    ('!action add {code} due=2026-12-01 "Opvolgen"', "`owner=` is missing"),
    ('!action add {code} owner=VDAB due=2026-12-01 "Opvolgen"',
     "`owner=` is an organisation of this table: CLB, OCMW, Politiezone, Preventiedienst"),
    ('!action add {code} owner=OCMW "Opvolgen"', "`due=` is a date"),
    ('!action add {code} owner=OCMW due=1-12-2026 "Opvolgen"', "`due=` is a date"),
    ('!action add {code} owner=OCMW due=2026-02-30 "Opvolgen"', "`due=` is a date"),
    ('!action add {code} owner=OCMW due=2026-11-23 "Opvolgen"', "lies in the past"),
    ('!action add {code} owner=OCMW due=2029-01-01 "Opvolgen"', "more than two years"),
    ("!action add {code} owner=OCMW due=2026-12-01", "Describe the action"),
    ('!action add {code} owner=OCMW due=2026-12-01 "' + "x" * 201 + '"', "at most 200"),
    ('!action add C-12 owner=OCMW due=2026-12-01 "Opvolgen"', "case code"),
    ('!action add C-ZZZZZ owner=OCMW due=2026-12-01 "Opvolgen"', "C-ZZZZZ"),
    ("!action done {code}", "like `C-7KQ2M/1`"),
    ("!action done {code}/9", "There is no action"),
    ("!action status {code}/1 perhaps", "`open`, `done`, `not-possible`"),
])
def test_bad_action_input_is_refused_and_changes_nothing(h: Harness, command: str,
                                                         answer: str) -> None:
    code = h.signal()
    add_action(h, code)
    reply = say(h, command.format(code=code), PARTNER)
    assert answer in reply, reply
    assert count_actions(h) == 1
    assert action_status(h, f"{code}/1") == "open"


def test_an_action_description_goes_through_the_privacy_guard(h: Harness) -> None:
    code = h.signal()
    reply = say(h, f'!action add {code} owner=OCMW due=2026-12-01 "Bel 0470 12 34 56"', PARTNER)
    assert "personal data" in reply
    assert count_actions(h) == 0


def test_a_closed_dossier_takes_no_new_actions(h: Harness) -> None:
    code = h.signal()
    say(h, "!meeting start")
    for member in (PARTNER, IO):
        say(h, "!present", member)
    vote_through(h, "reject", code)
    reply = say(h, f'!action add {code} owner=OCMW due=2026-12-01 "Opvolgen"', PARTNER)
    assert "no new actions" in reply
    assert count_actions(h) == 0


def test_only_the_chair_or_the_owning_organisation_changes_an_action(h: Harness) -> None:
    code = h.signal()
    ref = add_action(h, code)  # owner OCMW (PARTNER's organisation)
    assert "Only the chair or a member of OCMW" in say(h, f"!action done {ref}", SCHOOL)
    assert "Only the chair or a member of OCMW" in say(h, f"!action done {ref}", IO)
    assert action_status(h, ref) == "open"
    assert "open → **done**" in say(h, f"!action done {ref}", PARTNER)
    assert "already done" in say(h, f"!action done {ref}", PARTNER)
    assert "done → **open**" in say(h, f"!action status {ref} open")  # the chair reopens
    assert "open → **not possible**" in say(h, f"!action status {ref} not-possible")
    assert "not possible → **not done**" in say(h, f"!action status {ref} not-undertaken")
    assert action_status(h, ref) == "not-done"
    with h.repos() as repos:
        action = repos.actions.get(CELL, code, 1)
        assert action is not None
        assert action.closed_at is not None


def test_statuses_in_the_cell_language() -> None:
    with harness(T0, language="nl") as h:
        code = h.signal()
        ref = add_action(h, code)
        assert "**niet mogelijk**" in say(h, f"!action status {ref} niet-mogelijk", PARTNER)
        assert "**afgerond**" in say(h, f"!action status {ref} afgerond", PARTNER)
        reply = say(h, f'!action add {code} eigenaar=CLB tegen=2026-12-02 "Huisbezoek"', SCHOOL)
        assert f"{code}/2" in reply


def test_overdue_actions_are_on_the_agenda_and_counted_in_reminders(h: Harness) -> None:
    code = h.signal()
    assert "Overdue actions: —" in say(h, "!agenda")
    late = add_action(h, code, due="2026-11-26")  # Thursday, before the meeting of 1 December
    later = add_action(h, code, due="2026-12-02")  # after it: not overdue at that meeting
    done = add_action(h, code, due="2026-11-25")
    say(h, f"!action done {done}", PARTNER)
    shown = say(h, "!agenda")
    assert "Agenda — Tuesday 2026-12-01" in shown
    assert f"Overdue actions: {late}\n" in shown
    assert later not in shown
    assert done not in shown
    with h.repos() as repos:
        summary = agenda_summary(agenda(repos, h.cell, Table.OPERATIONAL, h.clock.now))
    assert summary["overdue"] == [late]
    spec = next(s for s in jobs_of(h, "reminder"))
    h.clock.now = spec.run_at
    h.new()
    assert run_job(h, spec)
    [reminder] = h.new()
    assert f"Overdue actions: 1 ({late})" in reminder.body


def test_the_decision_list_records_actions_created_and_closed(h: Harness) -> None:
    code = h.signal()
    before = add_action(h, code)  # before the meeting: not in its record
    say(h, "!meeting start")
    ref = add_action(h, code, owner="CLB", sender=SCHOOL)
    say(h, f"!action status {ref} not-possible", SCHOOL)
    say(h, f"!action done {before}", PARTNER)
    decisions = say(h, "!meeting end")
    assert f"{ref}: action created" in decisions
    assert f"{ref}: action not possible" in decisions
    assert f"{before}: action done" in decisions
    assert f"{before}: action created" not in decisions


# ---- the signaller hears the outcome ----------------------------------------------------
def _meeting(h: Harness) -> str:
    code = h.signal()  # PARTNER signals
    say(h, "!meeting start")
    for member in (PARTNER, IO):
        say(h, "!present", member)
    return code


def _direct(items: list[Sent]) -> list[Sent]:
    return [s for s in items if s.item.content.get("direct_to")]


def test_the_signaller_gets_code_decision_and_date_in_a_direct_message(h: Harness) -> None:
    code = _meeting(h)
    [message] = _direct(vote_through(h, "accept", code))
    assert message.item.content["direct_to"] == PARTNER
    assert message.body == (f"Decision of the operational table on the dossier you signalled: "
                            f"**{code}** — followed up by the table, on 2026-11-24.")
    assert message.notifies == []


def test_a_rejected_signal_and_a_closure_are_told_an_evaluation_is_not() -> None:
    with harness(T0) as h:
        code = _meeting(h)
        [message] = _direct(vote_through(h, "reject", code))
        assert "not retained" in message.body
    with harness(T0) as h:
        code = _meeting(h)
        vote_through(h, "accept", code)
        with h.repos() as repos:  # evaluation reached, then follow-up continues: no message
            repos.dossiers.update(CELL, code, h.clock.now, status="evaluation")
        assert _direct(vote_through(h, "accept", code)) == []
        [message] = _direct(vote_through(h, "close", code))
        assert "follow-up closed" in message.body


def test_a_signaller_no_longer_on_the_roster_gets_nothing(h: Harness) -> None:
    code = _meeting(h)
    say(h, "!present", SCHOOL)
    say(h, f"!members remove {PARTNER}")
    say(h, f"!vote open accept {code}")
    say(h, "!vote yes", IO)
    say(h, "!vote yes", SCHOOL)
    assert _direct(sent(h, "!vote yes")) == []


# ---- aftercare --------------------------------------------------------------------------
def test_aftercare_dates_are_calendar_months() -> None:
    assert add_period(date(2026, 8, 31), "6mo") == date(2027, 2, 28)
    assert add_period(date(2026, 12, 15), "12mo") == date(2027, 12, 15)
    assert add_period(date(2026, 12, 15), "4w") == date(2027, 1, 12)
    assert add_period(date(2026, 12, 15), "10d") == date(2026, 12, 25)
    assert review_dates(date(2026, 12, 15), ["12mo", "6mo", "6mo"]) == [
        date(2027, 6, 15), date(2027, 12, 15)]
    with pytest.raises(ValueError, match="period"):
        add_period(date(2026, 1, 1), "6 months")


def test_closure_plans_reviews_that_reach_the_agenda_and_are_deleted_after_the_last(
    h: Harness,
) -> None:
    code = _meeting(h)
    vote_through(h, "accept", code)
    items = vote_through(h, "close", code)
    assert any(f"Aftercare for {code}: review on 2027-05-24, 2027-11-24" in s.body
               for s in items)
    with h.repos() as repos:
        kept = repos.aftercare.get(CELL, code)
        assert kept is not None
        assert kept.month_closed == "2026-11"
        assert kept.reviews == (date(2027, 5, 24), date(2027, 11, 24))
    say(h, "!meeting end")
    assert "Aftercare review: —" in say(h, "!agenda")
    h.clock.now = datetime(2027, 5, 25, 8, 0, tzinfo=UTC)
    assert f"Aftercare review: {code}" in say(h, "!agenda")
    say(h, "!meeting start")
    assert f"Aftercare reviewed: {code}" in say(h, "!meeting end")
    with h.repos() as repos:
        kept = repos.aftercare.get(CELL, code)
        assert kept is not None
        assert kept.reviews == (date(2027, 11, 24),)
    assert "Aftercare review: —" in say(h, "!agenda")
    h.clock.now = datetime(2027, 11, 30, 8, 0, tzinfo=UTC)
    say(h, "!meeting start")
    say(h, "!meeting end")
    with h.repos() as repos:
        assert repos.aftercare.get(CELL, code) is None


def test_empty_aftercare_reviews_disable_them() -> None:
    with harness(T0, aftercare_reviews=[]) as h:
        code = _meeting(h)
        vote_through(h, "accept", code)
        items = vote_through(h, "close", code)
        assert not any("Aftercare" in s.body for s in items)
        with h.repos() as repos:
            assert repos.aftercare.of_cell(CELL) == []


def test_aftercare_reviews_are_validated_at_start() -> None:
    raw = raw_config("en")
    raw["tables"]["operational"]["aftercare_reviews"] = ["6 months"]
    with pytest.raises(ConfigError, match="aftercare_reviews"):
        parse_config(raw, environ={})


def test_a_new_signal_may_name_the_earlier_code(h: Harness) -> None:
    answer = say(h, "!signal phenomenon=HTF indicators=isolation assessed=yes previous=c-7kq2m",
                 PARTNER)
    code = re.search(r"C-[0-9A-Z]{5}", answer)
    assert code
    with h.repos() as repos:
        record = repos.dossiers.get(CELL, code.group(0))
        assert record is not None
        assert record.previous == "C-7KQ2M"
    assert "Earlier case: C-7KQ2M" in say(h, f"!case show {code.group(0)}")
    bad = say(h, "!signal phenomenon=HTF indicators=isolation assessed=yes previous=x", PARTNER)
    assert "`previous=` is an earlier case code" in bad


# ---- the meeting record -----------------------------------------------------------------
def test_meeting_start_states_confidentiality_and_present_confirms_it(h: Harness) -> None:
    opened = say(h, "!meeting start")
    assert "art. 458ter" in opened
    assert "confirms the confidentiality" in say(h, "!present", PARTNER)


def test_apologies_with_a_contribution_and_the_record_by_organisation(h: Harness) -> None:
    assert "no meeting in progress or planned" in say(h, "!absent", SCHOOL)
    code = h.signal()
    say(h, "!meeting start")
    say(h, "!present", PARTNER)
    say(h, "!present", IO)
    assert "with a written contribution" in say(h, "!absent contribution=yes", SCHOOL)
    assert "`contribution=` is `yes` or `no`" in say(h, "!absent contribution=maybe", SCHOOL)
    assert "apologies are no longer possible" in say(h, "!absent", PARTNER)
    say(h, f"!recuse {code}", IO)
    decisions = say(h, "!meeting end")
    assert "- OCMW: @sara.jacobs:example.be" in decisions
    assert "- Politiezone: @inspecteur.wouters:example.be" in decisions
    assert "- Preventiedienst: @an.peeters:example.be" in decisions
    assert "Apologies: @tom.maes:example.be (written contribution)" in decisions
    assert f"Recusals: {code}: @inspecteur.wouters:example.be" in decisions


def test_apologies_go_to_the_next_planned_meeting_and_its_record(h: Harness) -> None:
    h.signal()  # the table wakes up: a meeting is planned on Tuesday 1 December
    assert ("apologies are recorded for the meeting of Tuesday 2026-12-01 at 10:00"
            in say(h, "!absent", SCHOOL))
    h.clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    say(h, "!meeting start")  # opens the planned meeting
    assert "Apologies: @tom.maes:example.be" in say(h, "!meeting end")


def test_present_after_an_apology_withdraws_it(h: Harness) -> None:
    say(h, "!meeting start")
    say(h, "!absent", SCHOOL)
    say(h, "!present", SCHOOL)
    assert "Apologies: —" in say(h, "!meeting end")


def test_the_chair_is_reminded_once_after_the_planned_end_and_the_meeting_ends_at_three_hours(
    h: Harness,
) -> None:
    code = _meeting(h)  # an ad hoc meeting from 10:00, 90 minutes: planned end 11:30
    say(h, f"!vote open accept {code}")
    say(h, "!vote yes", PARTNER)
    [overrun] = jobs_of(h, "overrun")
    [end] = jobs_of(h, "auto_end")
    with h.repos() as repos:
        meeting = repos.meetings.in_progress(CELL, "operational")
        assert meeting is not None
    assert meeting.ends_at == meeting.starts_at + timedelta(minutes=90)
    assert overrun.run_at == meeting.ends_at + timedelta(minutes=30)
    assert end.run_at == meeting.ends_at + timedelta(hours=3)
    h.new()
    h.clock.now = overrun.run_at - timedelta(minutes=1)
    assert run_job(h, overrun.__class__(**{**overrun.__dict__, "key": "early-check"}))
    assert h.new() == []  # not yet
    h.clock.now = overrun.run_at
    assert run_job(h, overrun)
    [reminder] = h.new()
    assert reminder.notifies == [CHAIR]
    assert "planned to end at 11:30" in reminder.body
    assert "at 14:30 the secretary closes it" in reminder.body
    assert not run_job(h, overrun)  # once
    assert jobs_of(h, "overrun") == []
    say(h, "!vote yes", IO)  # all but the chair: still open
    h.clock.now = end.run_at
    assert run_job(h, end)
    texts = [s.body for s in h.new()]
    assert any("the secretary closes it" in t for t in texts)
    assert any("Decision list" in t for t in texts)
    with h.repos() as repos:
        vote = repos.votes.get(1)
        assert vote is not None
        assert vote.state == "not_adopted"
        assert repos.meetings.in_progress(CELL, "operational") is None
        assert repos.dossiers.get(CELL, code).status == "signalled"  # type: ignore[union-attr]
    assert jobs_of(h, "auto_end") == []


def test_the_automatic_end_does_not_adopt_even_a_unanimous_vote(h: Harness) -> None:
    code = _meeting(h)
    say(h, "!present", SCHOOL)
    say(h, f"!vote open accept {code}")
    for member in (PARTNER, IO, SCHOOL):
        say(h, "!vote yes", member)
    say(h, f"!recuse {code}")  # the chair steps aside: every eligible ballot is yes now
    [end] = jobs_of(h, "auto_end")
    with h.repos() as repos:  # nothing closed it: still open (``meeting end`` would adopt)
        assert repos.votes.get(1).state == "open"  # type: ignore[union-attr]
    h.clock.now = end.run_at
    assert run_job(h, end)
    with h.repos() as repos:
        assert repos.votes.get(1).state == "not_adopted"  # type: ignore[union-attr]


# ---- phenomena of today -----------------------------------------------------------------
def test_the_default_phenomena_follow_strategy_ter() -> None:
    assert DEFAULT_PHENOMENA == ("FTF", "HTF", "HP", "PVE", "convict", "child", "early")


def test_pve_convict_ideology_and_minor_are_stored_and_counted(h: Harness) -> None:
    answer = say(h, "!signal phenomenon=pve indicators=threats assessed=yes ideology=right-wing "
                    "minor=no", PARTNER)
    code = re.search(r"C-[0-9A-Z]{5}", answer)
    assert code
    say(h, "!signal phenomenon=convict indicators=isolation assessed=yes minor=yes", PARTNER)
    with h.repos() as repos:
        record = repos.dossiers.get(CELL, code.group(0))
        assert record is not None
        assert (record.phenomenon, record.ideology, record.minor) == ("PVE", "right-wing", "no")
    stats = h.text("!stats", table=Table.STRATEGIC)
    assert "PVE 1" in stats
    assert "convict 1" in stats
    assert "By ideology: right-wing 1" in stats
    assert "Minors: yes 1, no 1" in stats
    assert "ideology right-wing; minor: no" in say(h, f"!case show {code.group(0)}")


@pytest.mark.parametrize(("options", "answer"), [
    ("phenomenon=jihad", "Unknown phenomenon. Use one of: FTF, HTF, HP, PVE, convict"),
    ("phenomenon=HTF ideology=green", "Unknown ideology. Use one of: jihadist, right-wing"),
    ("phenomenon=HTF minor=maybe", "`minor=` is `yes` or `no`"),
])
def test_bad_phenomena_ideologies_and_minor_are_refused(h: Harness, options: str,
                                                        answer: str) -> None:
    reply = say(h, f"!signal {options} indicators=isolation assessed=yes", PARTNER)
    assert answer in reply, reply
    with h.repos() as repos:
        assert repos.dossiers.list(CELL) == []


def test_a_cell_configures_its_own_phenomena() -> None:
    raw = raw_config("en", phenomena=["HTF", "PVE"], ideologies=["jihadist"])
    config = parse_config(raw, environ={})
    assert config.cells[0].phenomena == ("HTF", "PVE")
    for bad in ([], ["two words"], ["x" * 17]):
        with pytest.raises(ConfigError, match="phenomena"):
            parse_config(raw_config("en", phenomena=bad), environ={})


def test_existing_dossiers_keep_their_values_through_the_migration() -> None:
    # This step, wherever the merge numbers it (found by its docstring).
    [ours] = [i for i, step in enumerate(STEPS) if "Following a case through" in (step.__doc__
                                                                                   or "")]
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        for step in STEPS[:ours]:
            step(conn)
        conn.execute(sa.text(
            "INSERT INTO dossier (code, cell, table_name, phenomenon, indicators, context, "
            "source, summary, status, problematic, scenario, signalled_by, created_at, "
            "updated_at, version) VALUES ('C-7KQ2M', 'c', 'operational', 'HTF', 'isolation', "
            "'', 'OCMW', '', 'follow_up', 0, '', '@a:b', '2026-01-01', '2026-01-01', 0)"))
        conn.execute(sa.text(
            "INSERT INTO statistic (cell, phenomenon, month_opened, month_closed, outcome) "
            "VALUES ('c', 'early', '2025-01', '2025-06', 'closed')"))
        STEPS[ours](conn)
        row = conn.execute(sa.text(
            "SELECT phenomenon, status, ideology, minor, previous FROM dossier")).one()
        assert tuple(row) == ("HTF", "follow_up", "", "", "")
        stat = conn.execute(sa.text("SELECT phenomenon, ideology, minor FROM statistic")).one()
        assert tuple(stat) == ("early", "", "")
    engine.dispose()


@pytest.mark.parametrize("today", [
    datetime(2026, 11, 24, 9, tzinfo=UTC),  # a Tuesday, the meeting day
    datetime(2026, 11, 30, 9, tzinfo=UTC),  # the Monday before the meeting
    datetime(2026, 11, 28, 9, tzinfo=UTC),  # a Saturday
    datetime(2026, 12, 24, 9, tzinfo=UTC),  # before Christmas
    datetime(2026, 3, 28, 23, tzinfo=UTC),  # the spring DST night (Sunday 01:00 in Brussels)
    datetime(2027, 3, 28, 0, 58, tzinfo=UTC),  # Easter Sunday 2027, before Easter Monday
    datetime(2027, 10, 31, 0, 58, tzinfo=UTC),  # the autumn DST night, before All Saints' Day
])
def test_the_demos_action_is_overdue_by_the_next_meeting(today: datetime) -> None:
    from demo.scenario import overdue_by_next_meeting

    with harness(today) as h:
        code = h.signal()
        h.say(f"!case flag {code} problematic")  # weekly: the next meeting is days away
        due = overdue_by_next_meeting(h.core)
        assert due >= today.astimezone(BRUSSELS).date()
        ref = add_action(h, code, due=due.isoformat())
        assert f"Overdue actions: {ref}" in say(h, "!agenda")
