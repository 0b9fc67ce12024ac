"""Meetings, cadence, agenda, attendance and calendar invitations through the core with an
injected clock (spec §6, §8): every command's answers and every error path, no server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.core.render import cli_lines
from commands.framework import ChangeRecorder
from commands.meetings.status import status_data
from commands.model import Table
from storage.meetings import CANCELLED, LAPSED, PLANNED
from tests.factories import CHAIR, IO, MAYOR, OUTSIDER, PARTNER, SCHOOL, decide
from tests.meeting_harness import CODE, OP_ROOM, Harness, calendars, event, harness

BXL = ZoneInfo("Europe/Brussels")
CELL = "livc-r-voorbeeldstad"


def local(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BXL)


@pytest.fixture
def h() -> Iterator[Harness]:
    # Tuesday 24 November 2026, 08:00 in Brussels: the table has never met.
    with harness(local(2026, 11, 24, 8)) as value:
        yield value


def mode_of(h: Harness) -> str | None:
    with h.repos() as repos:
        state = repos.meetings.state(CELL, "operational")
        return state.mode if state else None


def planned(h: Harness, table: str = "operational") -> list:
    with h.repos() as repos:
        return repos.meetings.of_table(CELL, table, [PLANNED])


# ---- cadence ----------------------------------------------------------------------------


def test_each_mode_transition_is_announced_with_its_calendar_file(h: Harness) -> None:
    # sleep -> monthly: the first signal plans the first Tuesday of December.
    sent = h.say("!signal phenomenon=HTF indicators=isolation assessed=yes", sender=PARTNER)
    code = sent[0].body.split("**Signal registered: ")[1][:7]
    announcement = [s for s in sent if "now meets monthly" in s.body]
    assert len(announcement) == 1
    assert announcement[0].room == OP_ROOM
    assert not announcement[0].is_reply
    # The first meeting is more than 7 days away: the same message asks the chair for an ad
    # hoc one (one coherent message, not "asleep, consider ad hoc" beside "now monthly").
    assert announcement[0].content["msgtype"] == "m.text"
    assert announcement[0].content["m.mentions"] == {"user_ids": [CHAIR]}
    assert "more than 7 days away for a new signal" in announcement[0].body
    assert not [s for s in sent if "while the table is asleep" in s.body]
    [cal] = calendars(sent)
    assert str(cal["METHOD"]) == "REQUEST"
    assert event(cal).decoded("DTSTART") == local(2026, 12, 1)
    assert mode_of(h) == "monthly"

    # The 1 December meeting passes unopened; on 2 December the next is 5 January.
    h.clock.now = local(2026, 12, 2, 9)
    h.core.recompute_all()
    [january] = planned(h)
    assert january.starts_at == local(2027, 1, 5)
    h.new()

    def steps() -> Iterator[tuple[str, str, str, datetime | None]]:
        # command, announced mode, calendar method, meeting start afterwards
        yield f"!case flag {code} problematic", "weekly", "REQUEST", local(2026, 12, 8)
        yield f"!case flag {code} normal", "monthly", "REQUEST", local(2027, 1, 5)
        yield f"!case flag {code} problematic", "weekly", "REQUEST", local(2026, 12, 8)

    for sequence, (command, mode, method, start) in enumerate(steps(), 1):
        sent = h.say(command)
        assert f"now meets {mode}" in "\n".join(s.body for s in sent)
        assert mode_of(h) == mode
        [cal] = calendars(sent)
        moved = event(cal)
        assert str(cal["METHOD"]) == method
        assert (str(moved["UID"]), int(moved["SEQUENCE"])) == (january.uid, sequence)
        assert moved.decoded("DTSTART") == start

    # weekly -> sleep: the dossier closes by consensus; the meeting is cancelled.
    def close(repos, port, now):  # type: ignore[no-untyped-def]
        decide("reject", repos, port, h.cell, code, actor=CHAIR, at=now, decision_ref="vote:1")
        return []

    assert h.core.run_job("vote:1", CELL, Table.OPERATIONAL, close)
    sent = h.new()
    assert "now meets asleep" in sent[0].body
    assert "no automatic meetings" in sent[0].body
    [cal] = calendars(sent)
    assert str(cal["METHOD"]) == "CANCEL"
    assert (str(event(cal)["UID"]), int(event(cal)["SEQUENCE"])) == (january.uid, 4)
    assert mode_of(h) == "sleep"
    assert planned(h) == []
    # Nothing changes, nothing is said.
    h.say("!meeting")
    h.core.recompute_all()
    assert not [s for s in h.new() if "now meets" in s.body]


def test_moving_a_meeting_keeps_the_uid_and_raises_the_sequence() -> None:
    # Monthly on the 1st Tuesday; a problematic dossier brings the meeting forward.
    with harness(local(2026, 12, 2, 9)) as h:
        code = h.signal()
        [monthly] = planned(h)
        assert monthly.starts_at == local(2027, 1, 5)
        sent = h.say(f"!case flag {code} problematic")
        [cal] = calendars(sent)
        moved = event(cal)
        assert str(moved["UID"]) == monthly.uid
        assert int(moved["SEQUENCE"]) == 1
        assert moved.decoded("DTSTART") == local(2026, 12, 8)
        assert str(cal["METHOD"]) == "REQUEST"
        assert "VTIMEZONE" in cal.to_ical().decode()


def test_signal_asleep_or_far_from_the_next_meeting_asks_the_chair(h: Harness) -> None:
    sent = h.say("!signal phenomenon=HTF indicators=isolation assessed=yes", sender=PARTNER)
    [ask] = [s for s in sent if s.notifies]
    assert ask.notifies == [CHAIR]
    assert ask.content["msgtype"] == "m.text"
    assert "asleep" in ask.body
    assert not ask.is_reply
    # Monthly now, next meeting 1 December: a week away at most -> no request.
    h.clock.now = local(2026, 11, 25, 9)
    assert not [s for s in h.say("!signal phenomenon=HP indicators=threats assessed=yes",
                                 sender=SCHOOL) if s.notifies]
    # Right after that meeting the next is a month away: more than 7 days -> the chair is asked.
    h.clock.now = local(2026, 12, 1, 12)
    h.core.recompute_all()
    h.new()
    sent = h.say("!signal phenomenon=HP indicators=threats assessed=yes", sender=SCHOOL)
    [ask] = [s for s in sent if s.notifies]
    assert "2027-01-05" in ask.body
    assert "more than 7 days" in ask.body


def test_a_meeting_scheduled_by_hand_on_the_rhythms_slot_is_not_doubled_nor_called_auto(
) -> None:
    with harness(local(2026, 11, 24, 8), language="nl") as h:
        h.say("!meeting schedule 2026-12-01 10:00")  # asleep: the chair plans the first one
        h.signal()  # monthly now: its first regular slot is that same Tuesday
        with h.repos() as repos:
            kinds = sorted((m.starts_at, m.kind) for m in repos.meetings.of_table(
                CELL, "operational", [PLANNED]))
            status = "\n".join(cli_lines("status", status_data(h.cell, repos, h.clock())))
        assert kinds == [(local(2026, 12, 1), "adhoc"), (local(2027, 1, 5), "auto")]
        shown = h.text("!meeting")
        assert "dinsdag 2026-12-01 om 10:00** (ad hoc" in shown
        assert "volgens het ritme" not in shown
        assert "2026-12-01 10:00 Europe/Brussels (adhoc)" in status


def test_ad_hoc_threshold_comes_from_the_config() -> None:
    with harness(local(2026, 11, 25, 9), cadence={"ad_hoc_if_next_meeting_beyond_days": 40}) as h:
        h.signal()
        h.clock.now = local(2026, 12, 1, 12)
        h.core.recompute_all()
        assert not [s for s in h.say("!signal phenomenon=HP indicators=threats assessed=yes")
                    if s.notifies]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # The autumn switch (25 October 2026): 10:00 local stays 10:00, UTC moves an hour.
        (local(2026, 10, 20, 12), local(2026, 10, 27)),
        # The spring switch (28 March 2027).
        (local(2027, 3, 24, 12), local(2027, 3, 30)),
    ],
)
def test_weekly_meetings_across_daylight_saving_weeks(now: datetime, expected: datetime) -> None:
    with harness(now) as h:
        code = h.signal()
        sent = h.say(f"!case flag {code} problematic")
        [meeting] = planned(h)
        assert meeting.starts_at == expected
        before = now.astimezone(BXL).utcoffset()
        assert meeting.starts_at.astimezone(BXL).hour == 10
        assert meeting.starts_at.astimezone(BXL).utcoffset() != before
        cal = calendars(sent)[-1]
        start = event(cal).decoded("DTSTART")
        assert (start.hour, start.minute, str(start.tzinfo)) == (10, 0, "Europe/Brussels")


def test_a_meeting_on_a_belgian_public_holiday_moves_to_the_next_working_day() -> None:
    # Wednesday 11 November 2026 is Armistice Day: the weekly meeting goes to Thursday.
    with harness(local(2026, 11, 5, 12), meeting_weekday="wednesday") as h:
        code = h.signal()
        h.say(f"!case flag {code} problematic")
        [meeting] = planned(h)
        assert meeting.starts_at == local(2026, 11, 12)
        # Easter Monday 2027 (29 March), a Monday table: Tuesday 30 March, 10:00 summer time.
    with harness(local(2027, 3, 23, 12), meeting_weekday="monday") as h:
        code = h.signal()
        h.say(f"!case flag {code} problematic")
        [meeting] = planned(h)
        assert meeting.starts_at == local(2027, 3, 30)


def test_holidays_can_be_kept_when_configured() -> None:
    with harness(local(2026, 11, 5, 12), meeting_weekday="wednesday",
                 skip_public_holidays=False) as h:
        code = h.signal()
        h.say(f"!case flag {code} problematic")
        assert planned(h)[0].starts_at == local(2026, 11, 11)


@pytest.mark.parametrize(
    ("now", "table", "expected"),
    [
        # After the last meeting of December: the first Tuesday of January.
        (local(2026, 12, 31, 12), {}, local(2027, 1, 5)),
        # The 1st Friday of January 2027 is New Year's Day: Monday 4 January.
        (local(2026, 12, 20, 12), {"meeting_weekday": "friday"}, local(2027, 1, 4)),
        # The 5th Tuesday where the month has only four: the last one (February 2027).
        (local(2027, 1, 27, 12), {"monthly_week": 5}, local(2027, 2, 23)),
        # Across a year end with the 4th Thursday: 28 January 2027.
        (local(2026, 12, 25, 12), {"meeting_weekday": "thursday", "monthly_week": 4},
         local(2027, 1, 28)),
    ],
)
def test_monthly_meetings_across_month_ends(now: datetime, table: dict[str, object],
                                            expected: datetime) -> None:
    with harness(now, **table) as h:
        h.signal()
        assert [m.starts_at for m in planned(h)] == [expected]


def test_strategic_table_meets_ad_hoc_only(h: Harness) -> None:
    h.signal()
    h.core.recompute_all()
    assert planned(h, "strategic") == []
    answer = h.text("!meeting", sender=MAYOR, table=Table.STRATEGIC)
    assert "ad hoc only" in answer
    assert "Only the chair" in h.text("!meeting schedule 2026-12-03 15:00",
                                      table=Table.STRATEGIC)
    sent = h.say("!meeting schedule 2026-12-03 15:00", sender=MAYOR, table=Table.STRATEGIC)
    [cal] = calendars(sent)
    assert "strategic" in str(event(cal)["SUMMARY"])
    agenda = h.text("!agenda", sender=MAYOR, table=Table.STRATEGIC)
    assert not CODE.search(agenda)
    assert "2026-12-03" in agenda


def test_a_planned_meeting_never_opened_lapses_and_the_next_is_planned(h: Harness) -> None:
    h.signal()
    [first] = planned(h)
    h.clock.now = first.ends_at + timedelta(minutes=1)
    h.core.recompute_all()
    sent = h.new()
    with h.repos() as repos:
        assert repos.meetings.get(first.id).status == LAPSED
    [following] = planned(h)
    assert following.starts_at == local(2027, 1, 5)
    assert "2027-01-05" in sent[0].body
    # Recomputing again changes nothing and says nothing.
    h.core.recompute_all()
    assert h.new() == []


# ---- meeting commands -------------------------------------------------------------------


def test_meeting_shows_mode_next_meeting_and_why(h: Harness) -> None:
    answer = h.text("!meeting", sender=PARTNER)
    assert "Cadence: asleep" in answer
    assert "No meeting planned" in answer
    assert "has not met yet" in answer
    code = h.signal()
    h.say(f"!case flag {code} problematic")
    answer = h.text("!meeting", sender=IO)
    assert "Cadence: weekly" in answer
    assert "1 of 1 open dossier(s) marked problematic" in answer
    assert "Tuesday 2026-12-01 at 10:00" in answer
    assert "Usage" in h.text("!meeting tomorrow")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ("2026-13-01 10:00", "A date looks like"),
        ("01/12/2026 10:00", "A date looks like"),
        ("2026-12-01 25:00", "A time looks like"),
        ("2026-12-01 ten", "A time looks like"),
        ("2026-11-23 10:00", "has passed"),
        ("2026-11-24 07:59", "has passed"),
        ("2028-01-01 10:00", "more than a year"),
        ("2027-03-28 02:30", "does not exist"),
        ("2026-12-01", "Something is missing"),
    ],
)
def test_meeting_schedule_errors_are_clear_and_store_nothing(h: Harness, args: str,
                                                             fragment: str) -> None:
    sent = h.say(f"!meeting schedule {args}")
    assert fragment in sent[0].body
    assert "!meeting schedule YYYY-MM-DD HH:MM" in sent[0].body
    assert calendars(sent) == []
    assert planned(h) == []


def test_meeting_schedule_posts_an_invitation_in_local_time(h: Harness) -> None:
    assert "Only the chair" in h.text("!meeting schedule 2026-12-03 14:30", sender=PARTNER)
    sent = h.say("!meeting schedule 2026-12-03 14:30")
    [reply] = sent
    assert reply.is_reply
    assert "Thursday 2026-12-03 at 14:30" in reply.body
    cal = reply.calendar
    assert cal is not None
    ev = event(cal)
    assert str(cal["METHOD"]) == "REQUEST"
    assert ev.decoded("DTSTART") == local(2026, 12, 3, 14, 30)
    assert ev.decoded("DTEND") - ev.decoded("DTSTART") == timedelta(minutes=90)
    assert str(ev["UID"]).endswith(f"-{CELL}@livcr")
    assert str(ev["ORGANIZER"]).startswith("matrix:u/an.peeters")
    assert not CODE.search(cal.to_ical().decode())
    assert "already planned" in h.text("!meeting schedule 2026-12-03 14:30")
    # A holiday is allowed for an ad hoc meeting, with a warning.
    assert "public holiday" in h.text("!meeting schedule 2026-12-25 10:00")


def test_meeting_cancel_sends_a_cancellation_with_the_same_uid(h: Harness) -> None:
    assert "no planned meeting to cancel" in h.text("!meeting cancel")
    h.say("!meeting schedule 2026-12-03 14:30")
    h.say("!meeting schedule 2026-12-10 14:30")
    [first, second] = planned(h)
    assert "no planned meeting" in h.text("!meeting cancel 2026-12-04")
    assert "A date looks like" in h.text("!meeting cancel tomorrow")
    sent = h.say("!meeting cancel 2026-12-10")
    ev = event(sent[0].calendar)
    assert (str(ev["UID"]), int(ev["SEQUENCE"]), str(ev["STATUS"])) == (second.uid, 1,
                                                                         "CANCELLED")
    assert str(sent[0].calendar["METHOD"]) == "CANCEL"
    assert [m.id for m in planned(h)] == [first.id]
    h.say("!meeting cancel")
    assert planned(h) == []


def test_a_cancelled_automatic_meeting_is_not_planned_again(h: Harness) -> None:
    h.signal()
    [auto] = planned(h)
    sent = h.say("!meeting cancel")
    assert [str(c["METHOD"]) for c in calendars(sent)] == ["CANCEL", "REQUEST"]
    [following] = planned(h)
    assert following.starts_at == local(2027, 1, 5)
    with h.repos() as repos:
        assert repos.meetings.get(auto.id).status == CANCELLED
    h.core.recompute_all()
    assert [m.id for m in planned(h)] == [following.id]


def test_meeting_start_present_end_and_the_decision_list(h: Harness) -> None:
    code = h.signal()
    assert "No meeting is in progress" in h.text("!present", sender=PARTNER)
    assert "No meeting is in progress" in h.text("!meeting end")
    assert "Only the chair" in h.text("!meeting start", sender=PARTNER)
    h.say('!agenda add "Samenwerking met de jeugddienst"', sender=SCHOOL)
    h.clock.now = local(2026, 12, 1, 9, 55)  # five minutes early for the 10:00 meeting
    started = h.text("!meeting start")
    assert "The meeting is open" in started
    assert code in started
    assert "Samenwerking met de jeugddienst" in started
    assert "already in progress" in h.text("!meeting start")
    assert "(2 present)" in h.text("!present", sender=PARTNER)
    assert "already recorded" in h.text("!present", sender=PARTNER)
    assert "(3 present)" in h.text("!present", sender=IO)
    h.say(f"!case flag {code} problematic")
    h.say(f"!case scenario {code} psychosocial review=4w")
    with h.repos() as repos:
        decide("accept", repos, ChangeRecorder(), h.cell, code, actor=CHAIR, at=h.clock.now,
                        decision_ref="vote:1", meeting_id=1)
    h.say('!agenda add "Voor de volgende keer"', sender=SCHOOL)
    h.clock.now = local(2026, 12, 1, 11, 20)
    sent = h.say("!meeting end")
    decisions = sent[0].body
    assert "Decision list" in decisions
    assert f"{code}: marked problematic" in decisions
    assert f"{code}: trajectory psychosocial, next evaluation 2026-12-29" in decisions
    assert f"{code}: signalled → in follow-up" in decisions
    assert "Present (3)" in decisions
    assert PARTNER in decisions
    assert "Next meeting: **Tuesday 2026-12-08 at 10:00**" in decisions
    assert "Samenwerking" not in decisions
    with h.repos() as repos:
        state = repos.meetings.state(CELL, "operational")
        assert state is not None
        assert state.met_once
        items = [i.text for i in repos.meetings.items(CELL, "operational")]
    assert items == ["Voor de volgende keer"]  # discussed items go, later ones stay
    assert "No meeting is in progress" in h.text("!present", sender=SCHOOL)
    # The started automatic meeting is not planned again.
    assert [m.starts_at for m in planned(h)] == [local(2026, 12, 8)]


def test_meeting_start_without_a_planned_meeting_opens_an_ad_hoc_one(h: Harness) -> None:
    started = h.text("!meeting start")
    assert "The meeting is open" in started
    with h.repos() as repos:
        meeting = repos.meetings.in_progress(CELL, "operational")
    assert meeting is not None
    assert meeting.kind == "adhoc"
    assert "Present (1)" in h.text("!meeting end")


def test_meeting_request_mentions_the_chair_and_is_screened(h: Harness) -> None:
    [reply] = h.say('!meeting request "nieuwe elementen in een dossier"', sender=SCHOOL)
    assert reply.notifies == [CHAIR]
    assert reply.content["msgtype"] == "m.text"
    assert reply.is_reply
    assert "nieuwe elementen in een dossier" in reply.body
    assert "Say why" in h.text("!meeting request", sender=SCHOOL)
    assert "at most 300" in h.text(f'!meeting request "{"x" * 301}"', sender=SCHOOL)
    refused = h.say('!meeting request "gesprek met meneer Janssens"', sender=SCHOOL)
    assert "personal data" in refused[0].body
    assert "Janssens" not in "".join(s.body for s in refused)
    assert not refused[0].notifies
    assert any(s.item.event_type == "redact" for s in refused)
    # At the strategic table the mayor is asked.
    [reply] = h.say('!meeting request "begroting"', sender=CHAIR, table=Table.STRATEGIC)
    assert reply.notifies == [MAYOR]


def test_outsiders_get_nothing(h: Harness) -> None:
    assert h.say("!meeting", sender=OUTSIDER) == []
    assert h.say("!agenda", sender=OUTSIDER) == []


# ---- agenda -----------------------------------------------------------------------------


def test_agenda_is_generated_from_the_dossiers(h: Harness) -> None:
    empty = h.text("!agenda", sender=PARTNER)
    assert "none planned yet" in empty
    new = h.signal()
    evaluated = h.signal()
    problem = h.signal()
    with h.repos() as repos:
        scheduler = ChangeRecorder()
        for code in (evaluated, problem):
            decide("accept", repos, scheduler, h.cell, code, actor=CHAIR, at=h.clock.now,
                            decision_ref="vote")
    h.say(f"!case scenario {evaluated} psychosocial review=1w")
    h.say(f"!case flag {problem} problematic")
    answer = h.text("!agenda", sender=IO)
    assert f"New signals to weigh: {new}" in answer
    assert f"Dossiers due for evaluation: {evaluated}" in answer  # due before 8 December
    assert f"Problematic dossiers: {problem}" in answer
    assert "Fiches awaiting consensus: —" in answer
    assert "Agenda — Tuesday 2026-12-01 at 10:00" in answer
    assert "Next meeting after this one: Tuesday 2026-12-08 at 10:00" in answer


def test_agenda_free_items_add_remove_and_errors(h: Harness) -> None:
    assert "free item 1" in h.text('!agenda add "Samenwerking met de jeugddienst"',
                                   sender=SCHOOL)
    assert "free item 2" in h.text("!agenda add evaluatie van de werking", sender=PARTNER)
    answer = h.text("!agenda")
    assert "**1** — Samenwerking met de jeugddienst" in answer
    assert "**2** — evaluatie van de werking" in answer
    assert "Only its author or the chair" in h.text("!agenda remove 1", sender=PARTNER)
    assert "no free item 3" in h.text("!agenda remove 3", sender=PARTNER)
    assert "Give the number" in h.text("!agenda remove first", sender=PARTNER)
    assert "at most 300" in h.text(f'!agenda add "{"y" * 301}"', sender=PARTNER)
    assert "The item is empty" in h.text("!agenda add", sender=PARTNER)
    assert "removed" in h.text("!agenda remove 2", sender=PARTNER)
    assert "removed" in h.text("!agenda remove 1")  # the chair may remove any item
    with h.repos() as repos:
        assert repos.meetings.items(CELL, "operational") == []


def test_agenda_items_with_personal_data_are_refused_and_never_stored(h: Harness) -> None:
    for text in ("bespreking met mevrouw Peeters", "bel 0470 12 34 56",
                 "huisbezoek Kerkstraat 12"):
        sent = h.say(f'!agenda add "{text}"', sender=PARTNER)
        assert "personal data" in sent[0].body
        assert text.split()[-1] not in sent[0].body
    with h.repos() as repos:
        assert repos.meetings.items(CELL, "operational") == []
    assert "Free items: —" in h.text("!agenda")


def test_agenda_items_are_limited_in_number(h: Harness) -> None:
    for n in range(30):
        h.say(f'!agenda add "punt {n}"', sender=PARTNER)
    assert "already has 30 free items" in h.text('!agenda add "nog een"', sender=PARTNER)


# ---- languages and status ----------------------------------------------------------------


def test_dutch_cell_speaks_dutch() -> None:
    with harness(local(2026, 11, 24, 8), language="nl") as h:
        sent = h.say("!signal fenomeen=vroeg indicatoren=isolement getoetst=ja",
                     sender=PARTNER)
        body = "\n".join(s.body for s in sent)
        assert "De tafel vergadert nu maandelijks" in body
        assert "dinsdag 2026-12-01 om 10:00" in body
        [cal] = calendars(sent)
        assert "operationele tafel" in str(event(cal)["SUMMARY"])
        assert "Vergadering gepland" in h.text("!meeting schedule 2026-12-03 14:30")


def test_status_shows_mode_and_next_meeting_per_table(h: Harness) -> None:
    code = h.signal()
    h.say(f"!case flag {code} problematic")
    with h.repos() as repos:
        lines = cli_lines("status", status_data(h.cell, repos, h.clock.now))
    text = "\n".join(lines)
    assert "operational: room !op:example.be; mode weekly, next meeting tuesday 2026-12-01 10:00" \
        in text
    assert "strategic: room !strat:example.be; mode ad hoc only, no meeting planned" in text
    assert code not in text


def test_the_scheduler_port_hears_of_every_changed_table_after_commit(h: Harness) -> None:
    h.signal()
    assert (CELL, Table.OPERATIONAL) in h.port.changed
    h.port.changed.clear()
    h.say("!meeting schedule 2026-12-03 15:00", sender=MAYOR, table=Table.STRATEGIC)
    assert h.port.changed == [(CELL, Table.STRATEGIC)]
    h.port.changed.clear()
    h.say("!meeting schedule 2026-12-03 bad")
    assert h.port.changed == []


def test_a_signal_that_leaves_meetings_and_votes_as_they_were_replans_no_jobs(
        h: Harness) -> None:
    """The jobs come from meetings, cadence states, open votes and job marks: a second signal
    (the meeting the first one planned stays) leaves the scheduler alone, no extra transaction
    and thread hop behind it; a change to a meeting re-plans its table."""
    h.signal()  # plans the first automatic meeting
    assert h.port.changed == [(CELL, Table.OPERATIONAL)]
    h.port.changed.clear()
    plan = h.core.job_plan().jobs
    h.signal()
    assert h.port.changed == []
    assert h.core.job_plan().jobs == plan
    h.say("!meeting schedule 2026-12-03 15:00")
    assert h.port.changed == [(CELL, Table.OPERATIONAL)]



def test_the_decision_list_has_votes_and_outcomes_but_no_ballots(h: Harness) -> None:
    accepted = h.signal()
    rejected = h.signal()
    h.say("!meeting start")
    h.say("!present", sender=PARTNER)
    h.say("!present", sender=IO)
    h.say(f"!vote open accept {accepted}")
    h.say("!vote yes")
    h.say("!vote yes", sender=IO)
    h.say("!vote yes", sender=PARTNER)
    h.say("!vote close")
    h.say(f"!vote open reject {rejected}")
    h.say("!vote no", sender=PARTNER)
    [decisions] = [s.body for s in h.say("!meeting end") if "Decision list" in s.body]
    assert f"{accepted}: vote #1 (accept for follow-up): **adopted**" in decisions
    assert f"{accepted}: signalled → in follow-up" in decisions
    assert f"{rejected}: vote #2 (not retain): **not adopted**" in decisions
    assert "ballot" not in decisions
    assert "vote_open" not in decisions
    with h.repos() as repos:
        assert repos.dossiers.get(CELL, rejected).status == "signalled"


def test_the_chair_is_asked_for_an_ad_hoc_meeting_once_a_day() -> None:
    with harness(local(2026, 11, 25, 9), cadence={"ad_hoc_if_next_meeting_beyond_days": 3}) as h:
        h.signal()  # wakes the table; its first meeting is planned
        h.clock.now = local(2026, 12, 2, 12)
        h.core.recompute_all()

        def asks() -> bool:
            return any(s.notifies and "ad hoc" in s.body
                       for s in h.say("!signal phenomenon=HP indicators=threats assessed=yes",
                                      sender=PARTNER))

        assert asks()
        h.clock.now = local(2026, 12, 2, 16)
        assert not asks()  # the same day: the chair was asked already
        h.clock.now = local(2026, 12, 3, 9)
        assert asks()  # a new day, the next meeting still far
