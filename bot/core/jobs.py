"""Scheduler jobs derived from the database (spec §8, §11; matrix-reminder-bot's idea).

The database is the source of truth: meetings, the cadence state and the processed-event ids
say which reminders, lapse checks and first-meeting reminders should exist
(:func:`commands.meetings.reminders.job_plan`). At start (after the first sync) every job
is derived; after each change only the changed tables' jobs are. A job runs its decision through
:meth:`bot.core.app.Core.run_job` (one transaction, the outbox, a synthetic event id so it runs
exactly once) and then asks the Matrix side to send the outbox.

The APScheduler instance belongs to :class:`bot.core.service.Service`; this class only fills it.

Time: every decision (what is due, what was missed, which day it is) reads the core's injected
clock. APScheduler's own timer runs on the wall clock, so a job due at clock time ``t`` is
handed to it as "now + (t - clock now)" (:meth:`Jobs.timer_at`): in production the two clocks
are the same; in a test whose clock is fixed on another date, a job that is due by that clock
runs at once and one that is not stays in the future, whatever today's real date is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, time, timedelta

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.date import DateTrigger

from bot.core.app import Clock, Core, system_clock
from commands.framework import Output, SchedulerPort
from commands.meetings.record import auto_end, overrun_reminder
from commands.meetings.reminders import (
    JobSpec,
    evaluation_check,
    first_meeting_reminder,
    reminder,
)
from commands.model import Table
from commands.votes.closing import TableVotes, expire, remind_non_voters
from storage.repositories import Repositories

log = logging.getLogger(__name__)

#: Local hour at which follow-up dossiers whose evaluation date arrived move to the agenda.
EVALUATION_HOUR = 7

Flush = Callable[[], Awaitable[None]]


async def _no_flush() -> None:
    return None


class Jobs:
    """Derives, runs and re-derives the table jobs of one :class:`Core`."""

    def __init__(self, core: Core, scheduler: BaseScheduler, dirty: set[tuple[str, Table]],
                 flush: Flush = _no_flush, timer_clock: Clock = system_clock) -> None:
        self.core = core
        self.scheduler = scheduler
        #: The clock APScheduler's timer runs on (the wall clock); only :meth:`timer_at`
        #: reads it, to translate the core's clock into the scheduler's.
        self.timer_clock = timer_clock
        self.dirty = dirty
        self.flush = flush
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- derivation -----------------------------------------------------------------
    async def start(self, flush: bool = True) -> None:
        """At start: recompute every table, derive every job, catch up on evaluations; then
        send what that put in the outbox (unless ``flush`` is False: the caller does)."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.core.recompute_all)
        await self.sync(None)
        for cell in self.core.config.cells:
            if Table.OPERATIONAL in cell.tables:
                await self.evaluation(cell.id, flush=False)
        if flush:
            await self.flush()

    def timer_at(self, at: datetime) -> datetime:
        """The scheduler's (wall-clock) time at which the core's clock reads ``at``."""
        return self.timer_clock() + (at - self.core.clock())

    def next_evaluation(self, cell_id: str) -> datetime:
        """The next :data:`EVALUATION_HOUR` in the cell's zone after the core's clock."""
        tz = self.core.config.cell(cell_id).tz
        now = self.core.clock().astimezone(tz)
        day = now.date()
        while True:
            at = datetime.combine(day, time(EVALUATION_HOUR), tz)
            if at > now:
                return at
            day += timedelta(days=1)

    def _plan_evaluation(self, cell_id: str) -> None:
        self.scheduler.add_job(
            self.evaluation, DateTrigger(self.timer_at(self.next_evaluation(cell_id))),
            args=[cell_id], id=f"evaluation|{cell_id}", replace_existing=True,
            misfire_grace_time=None, coalesce=True,
        )

    async def daily(self) -> None:
        """Daily: every table recomputed and every job derived again (belt and braces)."""
        await asyncio.to_thread(self.core.recompute_all)
        await self.sync(None)
        await self.flush()

    def tables_changed(self) -> None:
        """The scheduler port's listener; called after a commit, from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not started yet: start() derives everything
        loop.call_soon_threadsafe(self._spawn_sync)

    def _spawn_sync(self) -> None:
        tables = set(self.dirty)
        self.dirty.difference_update(tables)
        if not tables:
            return
        task = asyncio.get_running_loop().create_task(self.sync(tables))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def sync(self, tables: set[tuple[str, Table]] | None) -> None:
        """Make the scheduler hold exactly the jobs the database calls for (these tables)."""
        async with self._lock:
            plan = await asyncio.to_thread(self.core.job_plan, tables)
            wanted = {spec.job_id: spec for spec in plan.jobs}
            # A table's jobs are "<cell>|<table>|...": a prefix test skips the jobs of the
            # other 1,199 tables cheaply (this runs on the event loop after every change).
            prefixes = None if tables is None else tuple(
                f"{cell}|{table.value}|" for cell, table in tables)
            for job in self.scheduler.get_jobs():
                if prefixes is not None and not job.id.startswith(prefixes):
                    continue
                if len(job.id.split("|", 2)) != 3:
                    continue
                if job.id not in wanted:
                    self.scheduler.remove_job(job.id)
            now = self.core.clock()
            for spec in plan.jobs:
                existing = self.scheduler.get_job(spec.job_id)
                if existing is not None and (spec.run_at <= now or existing.args == (spec,)):
                    continue  # already there (a due job is about to run)
                self.scheduler.add_job(
                    self.run, DateTrigger(self.timer_at(spec.run_at) if spec.run_at > now
                                          else None),
                    args=[spec], id=spec.job_id, replace_existing=True, misfire_grace_time=None,
                    coalesce=True,
                )

    # ---- running --------------------------------------------------------------------
    def decision(self, spec: JobSpec) -> Callable[
            [Repositories, SchedulerPort, datetime], Sequence[Output]]:
        """The plain function a job runs (tests call it without a scheduler)."""
        cell = self.core.config.cell(spec.cell)
        grace = self.core.grace

        def meeting_reminder(repos: Repositories, port: SchedulerPort,
                             now: datetime) -> list[Output]:
            return reminder(repos, cell, spec.table, spec.meeting_id, spec.sequence,
                            spec.offset, now, grace)

        def first_meeting(repos: Repositories, port: SchedulerPort,
                          now: datetime) -> list[Output]:
            return first_meeting_reminder(repos, cell, now)

        def lapse(repos: Repositories, port: SchedulerPort, now: datetime) -> list[Output]:
            port.table_changed(cell.id, spec.table)  # the recomputation lapses and re-plans
            return []

        def vote_deadline(repos: Repositories, port: SchedulerPort,
                          now: datetime) -> list[Output]:
            return expire(TableVotes(cell, spec.table, repos, port, now))

        def vote_reminder(repos: Repositories, port: SchedulerPort,
                          now: datetime) -> list[Output]:
            return remind_non_voters(TableVotes(cell, spec.table, repos, port, now),
                                     spec.vote_id)

        def overrun(repos: Repositories, port: SchedulerPort, now: datetime) -> list[Output]:
            return overrun_reminder(repos, cell, spec.table, spec.meeting_id, now)

        def end(repos: Repositories, port: SchedulerPort, now: datetime) -> list[Output]:
            return auto_end(repos, cell, spec.table, port, spec.meeting_id, now)

        return {"reminder": meeting_reminder, "first_meeting": first_meeting,
                "lapse": lapse, "vote_deadline": vote_deadline,
                "vote_reminder": vote_reminder, "overrun": overrun,
                "auto_end": end}[spec.kind]

    async def run(self, spec: JobSpec) -> None:
        try:
            await asyncio.to_thread(self.core.run_job, spec.key, spec.cell, spec.table,
                                    self.decision(spec), spec.once)
        except Exception as exc:
            log.error("a %s job failed with %s", spec.kind, type(exc).__name__)
        await self.sync({(spec.cell, spec.table)})
        await self.flush()

    async def evaluation(self, cell_id: str, flush: bool = True) -> None:
        """Once a day per cell: evaluation dates reached put dossiers on the agenda; then the
        next day's check is planned."""
        cell = self.core.config.cell(cell_id)
        self._plan_evaluation(cell_id)
        day = self.core.clock().astimezone(cell.tz).date()

        def check(repos: Repositories, port: SchedulerPort, now: datetime) -> list[Output]:
            return evaluation_check(repos, port, cell, now)

        try:
            await asyncio.to_thread(self.core.run_job, f"evaluation:{cell_id}:{day}", cell_id,
                                    Table.OPERATIONAL, check)
        except Exception as exc:
            log.error("the evaluation check failed with %s", type(exc).__name__)
        if flush:
            await self.flush()
