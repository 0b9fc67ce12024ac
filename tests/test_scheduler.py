"""Jobs derived from the database (spec §8, §11): what is scheduled, reminders exactly once
within the grace period and never after it, the weekly first-meeting reminder, evaluation
dates, and the same jobs after a restart. The job logic runs with an injected clock and no
APScheduler; the derivation is checked on a real (not started or started) scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.config import parse_config
from bot.core.jobs import Jobs
from bot.core.service import Service
from commands.framework import ChangeRecorder
from commands.meetings.reminders import JobPlan, JobSpec
from commands.model import Table
from tests.factories import CHAIR, IO, PARTNER, SCHOOL, ack_all, decide, incoming, raw_config
from tests.meeting_harness import Clock, Harness, harness

CELL = "livc-r-voorbeeldstad"
#: Tuesday 24 November 2026, 08:00 in Brussels (07:00 UTC).
T0 = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
#: The first automatic meeting once a dossier is open: Tuesday 1 December, 10:00 local.
MEETING = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness(T0) as value:
        yield value


def jobs_of(h: Harness) -> Jobs:
    return Jobs(h.core, AsyncIOScheduler(timezone=UTC), set())


def run(h: Harness, spec: JobSpec) -> bool:
    return h.core.run_job(spec.key, spec.cell, spec.table, jobs_of(h).decision(spec), spec.once)


def reminders(plan: JobPlan) -> dict[timedelta, JobSpec]:
    return {s.offset: s for s in plan.jobs if s.kind == "reminder"}


def test_a_planned_meeting_gets_its_reminders_and_a_lapse_check(h: Harness) -> None:
    assert h.core.job_plan().jobs == []
    h.signal()
    plan = h.core.job_plan()
    found = reminders(plan)
    assert {o: s.run_at for o, s in found.items()} == {
        timedelta(hours=24): MEETING - timedelta(hours=24),
        timedelta(hours=1): MEETING - timedelta(hours=1),
    }
    [lapse] = [s for s in plan.jobs if s.kind == "lapse"]
    assert lapse.run_at == MEETING + timedelta(minutes=90)
    [first] = [s for s in plan.jobs if s.kind == "first_meeting"]
    assert first.run_at == T0 + timedelta(weeks=1)
    assert all(s.job_id.startswith(f"{CELL}|operational|") for s in plan.jobs)
    # Only the tables asked for.
    assert h.core.job_plan({(CELL, Table.STRATEGIC)}).jobs == []


def test_a_reminder_goes_to_every_member_with_codes_and_counts_only(h: Harness) -> None:
    code = h.signal()
    h.say('!agenda add "Samenwerking met de jeugddienst"', sender=SCHOOL)
    h.clock.now = MEETING - timedelta(hours=24)
    spec = reminders(h.core.job_plan())[timedelta(hours=24)]
    assert spec.run_at == h.clock.now
    assert run(h, spec)
    [sent] = h.new()
    assert sent.content["msgtype"] == "m.text"
    assert sorted(sent.notifies) == sorted([CHAIR, IO, PARTNER, SCHOOL])
    assert not sent.is_reply
    assert "Reminder: meeting of the operational table on Tuesday 2026-12-01 at 10:00" \
        in sent.body
    assert f"New signals: 1 ({code})" in sent.body
    assert "Free items: 1" in sent.body
    assert "Samenwerking" not in sent.body
    assert "sent late" not in sent.body
    assert not run(h, spec)  # exactly once
    assert h.new() == []


def test_a_reminder_missed_within_grace_is_sent_once_and_beyond_grace_never(h: Harness) -> None:
    h.signal()
    # The bot was down; it comes back 30 minutes after the 1h reminder was due.
    h.clock.now = MEETING - timedelta(minutes=30)
    plan = h.core.job_plan()
    assert plan.dropped == 1  # the 24h reminder, 23.5 hours late
    found = reminders(plan)
    assert list(found) == [timedelta(hours=1)]
    late = found[timedelta(hours=1)]
    assert late.run_at == h.clock.now
    assert run(h, late)
    [sent] = h.new()
    assert "sent late" in sent.body
    # A restart derives the jobs again: the sent one and the dropped one never come back.
    again = h.core.job_plan()
    assert reminders(again) == {}
    assert again.dropped == 0
    assert not run(h, late)
    missed = JobSpec("reminder", "reminder:1:0:86400", CELL, Table.OPERATIONAL,
                              MEETING - timedelta(hours=24), 1, 0, timedelta(hours=24))
    assert not run(h, missed)
    assert h.new() == []


def test_a_reminder_run_late_beyond_grace_sends_nothing(h: Harness) -> None:
    h.signal()
    spec = reminders(h.core.job_plan())[timedelta(hours=24)]
    h.clock.now = spec.run_at + timedelta(hours=1, minutes=1)  # the loop was stuck
    assert run(h, spec)
    assert h.new() == []
    h.clock.now = MEETING + timedelta(minutes=5)  # the meeting began: no 1h reminder
    spec = reminders(h.core.job_plan())
    assert spec == {}


def test_the_grace_period_comes_from_the_config() -> None:
    with harness(T0, limits={"reminder_grace": "30h"}) as h:
        h.signal()
        h.clock.now = MEETING - timedelta(minutes=30)
        assert set(reminders(h.core.job_plan())) == {timedelta(hours=24), timedelta(hours=1)}


def test_a_changed_meeting_gets_new_reminders_and_the_old_ones_do_nothing(h: Harness) -> None:
    code = h.signal()
    old = reminders(h.core.job_plan())[timedelta(hours=24)]
    h.clock.now = datetime(2026, 12, 2, 8, tzinfo=UTC)
    h.core.recompute_all()  # 1 December lapsed; 5 January is planned
    h.say(f"!case flag {code} problematic")  # moved to 8 December: SEQUENCE 1
    new = reminders(h.core.job_plan())[timedelta(hours=24)]
    assert new.key != old.key
    assert new.run_at == datetime(2026, 12, 7, 9, tzinfo=UTC)
    h.new()
    h.clock.now = new.run_at
    stale = JobSpec("reminder", "reminder:2:0:86400", CELL, Table.OPERATIONAL,
                             new.run_at, new.meeting_id, 0, timedelta(hours=24))
    assert run(h, stale)
    assert h.new() == []
    assert run(h, new)
    assert len(h.new()) == 1


def test_the_chair_is_reminded_weekly_until_the_table_has_met(h: Harness) -> None:
    h.core.recompute_all()  # the table's state exists from the first start
    [spec] = [s for s in h.core.job_plan().jobs if s.kind == "first_meeting"]
    assert spec.run_at == T0 + timedelta(weeks=1)
    h.clock.now = T0 + timedelta(days=6)
    assert run(h, spec)  # too early: nothing, and the key stays usable
    assert h.new() == []
    h.clock.now = T0 + timedelta(weeks=1)
    [spec] = [s for s in h.core.job_plan().jobs if s.kind == "first_meeting"]
    assert run(h, spec)
    [sent] = h.new()
    assert sent.notifies == [CHAIR]
    assert sent.content["msgtype"] == "m.text"
    assert "has not met yet" in sent.body
    assert run(h, spec)  # again (a restart, a late duplicate): the state says it was sent
    assert h.new() == []
    [following] = [s for s in h.core.job_plan().jobs if s.kind == "first_meeting"]
    assert following.run_at == T0 + timedelta(weeks=2)
    h.say("!meeting start")
    h.say("!meeting end")
    assert [s for s in h.core.job_plan().jobs if s.kind == "first_meeting"] == []


def test_evaluation_dates_put_dossiers_on_the_agenda_once_a_day(tmp_path: Path) -> None:
    with harness(T0, url=f"sqlite:///{tmp_path / 'db.sqlite'}") as h:
        _evaluation_dates(h)


def _evaluation_dates(h: Harness) -> None:
    code = h.signal()
    with h.repos() as repos:
        decide("accept", repos, ChangeRecorder(), h.cell, code, actor=CHAIR, at=T0,
                        decision_ref="vote")
    h.say(f"!case scenario {code} psychosocial review=1w")
    h.new()
    jobs = jobs_of(h)
    h.clock.now = T0 + timedelta(days=6)
    asyncio.run(jobs.evaluation(CELL))
    assert h.new() == []
    h.clock.now = T0 + timedelta(days=7, hours=1)
    asyncio.run(jobs.evaluation(CELL))
    [sent] = h.new()
    assert f"{code} is now up for evaluation" in sent.body
    with h.repos() as repos:
        assert repos.dossiers.get(CELL, code).status == "evaluation"
    asyncio.run(jobs.evaluation(CELL))
    assert h.new() == []


# ---- the real scheduler ---------------------------------------------------------------


def _service(tmp_path: Path, clock: Clock) -> Service:
    raw = raw_config("en")
    raw["limits"] = {"commands_per_minute": 10_000}
    raw["matrix"]["data_dir"] = str(tmp_path / "data")
    raw["storage"]["database_url"] = f"sqlite:///{tmp_path / 'livcr.db'}"
    service = Service(parse_config(raw, environ={}), clock=clock)
    ack_all(service.db, service.config)
    service.core.bind_room("!op:example.be", service.config.cells[0].id, Table.OPERATIONAL)
    service.core.bind_room("!strat:example.be", service.config.cells[0].id, Table.STRATEGIC)
    sent: list[int] = []

    async def flush() -> None:
        sent.append(1)

    service.jobs.flush = flush
    return service


def _table_jobs(service: Service) -> dict[str, datetime | None]:
    return {j.id: getattr(j, "next_run_time", None) for j in service.scheduler.get_jobs()
            if j.id.count("|") == 2}


def _outbox_bodies(service: Service) -> list[str]:
    return [str(i.content.get("content", {}).get("body", "")) for i in service.core.pending()]


async def test_jobs_are_derived_at_start_rebuilt_after_restart_and_follow_changes(
    tmp_path: Path,
) -> None:
    clock = Clock(T0)
    first = _service(tmp_path, clock)
    try:
        await asyncio.to_thread(first.core.decide, incoming(
            "!signal phenomenon=HTF indicators=isolation assessed=yes", sender=PARTNER, at=T0))
        await first.jobs.start()
        before = _table_jobs(first)
        assert {k.split("|")[2].split(":")[0] for k in before} == {
            "reminder", "lapse", "first-meeting"}
        assert "evaluation|" + CELL in {j.id for j in first.scheduler.get_jobs()}
    finally:
        first.db.dispose()

    second = _service(tmp_path, clock)  # a restart: same database, fresh scheduler
    try:
        await second.jobs.start()
        assert set(_table_jobs(second)) == set(before)
        second.scheduler.start()
        # A change in the chat re-derives that table's jobs (listener, after commit).
        await asyncio.to_thread(second.core.decide, incoming("!meeting cancel", at=T0))
        for _ in range(100):
            jobs = _table_jobs(second)
            if not any(k.endswith(":86400") and "|reminder:1:" in k for k in jobs):
                break
            await asyncio.sleep(0.02)
        jobs = _table_jobs(second)
        assert not [k for k in jobs if "|reminder:1:" in k]  # the cancelled meeting's
        assert [k for k in jobs if "|reminder:2:0:" in k]  # the next one's (5 January)
    finally:
        second.scheduler.shutdown(wait=False)
        second.db.dispose()


async def test_a_reminder_missed_while_down_fires_once_after_start_and_not_after_restart(
    tmp_path: Path,
) -> None:
    clock = Clock(T0)
    service = _service(tmp_path, clock)
    try:
        await asyncio.to_thread(service.core.decide, incoming(
            "!signal phenomenon=HTF indicators=isolation assessed=yes", sender=PARTNER, at=T0))
        service.core.pending()
    finally:
        service.db.dispose()
    clock.now = MEETING - timedelta(minutes=40)  # down over both reminder times
    for _ in range(2):
        service = _service(tmp_path, clock)
        try:
            await service.jobs.start()
            service.scheduler.start()
            for _ in range(100):
                if any("Reminder" in b for b in _outbox_bodies(service)):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            reminders_sent = [b for b in _outbox_bodies(service) if "Reminder" in b]
            assert len(reminders_sent) == 1
            assert "sent late" in reminders_sent[0]
        finally:
            service.scheduler.shutdown(wait=False)
            service.db.dispose()



@pytest.mark.parametrize("wall_offset", [timedelta(days=-5 * 365), timedelta(0),
                                         timedelta(days=5 * 365)])
async def test_job_times_follow_the_injected_clock_whatever_the_wall_clock_says(
    h: Harness, wall_offset: timedelta,
) -> None:
    """The scheduler's timer runs on the wall clock; each job is handed to it at the moment
    the wall clock will reach when the injected clock reaches the job's time, so what is due
    (and what is not) is the same on any real date (issue 12)."""
    h.signal()
    wall = T0 + wall_offset
    jobs = Jobs(h.core, AsyncIOScheduler(timezone=UTC), set(), timer_clock=lambda: wall)
    await jobs.sync(None)
    await jobs.evaluation(CELL, flush=False)
    by_id = {j.id: j for j in jobs.scheduler.get_jobs()}
    plan = {s.job_id: s for s in h.core.job_plan().jobs}
    assert plan
    for job_id, spec in plan.items():
        assert by_id[job_id].trigger.run_date == wall + (spec.run_at - T0), job_id
    # The daily evaluation check: the next 07:00 in Brussels after the injected clock.
    evaluation = by_id[f"evaluation|{CELL}"].trigger.run_date
    assert evaluation == wall + (datetime(2026, 11, 25, 6, tzinfo=UTC) - T0)


async def test_a_job_that_became_due_by_a_clock_jump_is_planned_to_run_now(h: Harness) -> None:
    """A reminder planned while its time was days away is handed to the timer at that
    wall-clock moment; when the core's clock reaches it first (a test clock moved ahead, a
    machine resumed from suspend), the next derivation plans it again, to run now — it must
    not keep waiting for its old timer."""
    h.signal()
    wall = datetime.now(UTC)
    jobs = Jobs(h.core, AsyncIOScheduler(timezone=UTC), set(), timer_clock=lambda: wall)
    jobs.scheduler.start(paused=True)  # jobs in the job store (replaced there), none run
    await jobs.sync(None)
    reminder = next(s for s in h.core.job_plan().jobs if s.kind == "reminder")
    before = jobs.scheduler.get_job(reminder.job_id).trigger.run_date
    assert before > wall + timedelta(hours=1)
    h.clock.now = reminder.run_at + timedelta(seconds=30)
    await jobs.sync(None)
    after = jobs.scheduler.get_job(reminder.job_id).trigger.run_date
    jobs.scheduler.shutdown(wait=False)
    assert after <= datetime.now(UTC)
