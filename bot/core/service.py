"""The running bot: database, core, Matrix client and scheduler, owned by one object."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.config import Config
from bot.core.app import Clock, Core, system_clock
from bot.core.jobs import Jobs
from bot.core.render import cli_lines
from bot.edge.client import MatrixBot
from bot.ops import metrics
from commands.dossiers.workflow import apply_retention
from commands.meetings.status import status_data
from commands.model import Table
from storage.db import Database

log = logging.getLogger(__name__)


class TablesToReschedule:
    """The scheduler port of the running bot: collects the tables whose jobs must be
    re-derived and tells the jobs (``listener``) at once."""

    def __init__(self) -> None:
        self.dirty: set[tuple[str, Table]] = set()
        self.listener: Callable[[], None] | None = None

    def table_changed(self, cell: str, table: Table) -> None:
        self.dirty.add((cell, table))
        if self.listener is not None:
            self.listener()


class Service:
    """Owns every long-lived part; ``run`` until ``stop``."""

    def __init__(self, config: Config, clock: Clock = system_clock) -> None:
        self.config = config
        self.db = Database(config.database_url)
        self.db.migrate()
        self.wiring = TablesToReschedule()
        self.core = Core(config, self.db, clock=clock, scheduler=self.wiring)
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.bot = MatrixBot(self.core, on_first_sync=self._start_scheduler)
        self.jobs = Jobs(self.core, self.scheduler, self.wiring.dirty, flush=self.flush)
        self.wiring.listener = self.jobs.tables_changed

    async def _start_scheduler(self) -> None:
        """Jobs are derived from the database after the first sync (spec §11)."""
        self.scheduler.add_job(
            self._daily,
            "interval",
            hours=24,
            next_run_time=self.jobs.timer_at(self.core.clock()),
            id="daily-maintenance",
            replace_existing=True,
            misfire_grace_time=3600,
        )
        await self.jobs.start(flush=False)
        self.scheduler.start()
        log.info("scheduler started with %d jobs", len(self.scheduler.get_jobs()))
        # Start-up announcements (a first start with open dossiers plans a meeting per
        # table) go out after the jobs run, not before: the sync loop sends them in the
        # background once this returns.

    async def flush(self) -> None:
        """Send what jobs put in the outbox now (in the background), not after the next sync."""
        self.bot.flush_soon()

    async def _daily(self) -> None:
        removed = purge_now(self.config, self.db, clock=self.core.clock)
        forgotten = self.core.forget_old_events()
        log.info("daily maintenance: %d dossiers purged, %d event ids forgotten", removed,
                 forgotten)
        await self.jobs.daily()

    def stop(self) -> None:
        log.info("stopping")
        self.bot.stop()

    def _gauges(self) -> tuple[int, int]:
        """What the metrics read from the database at scrape time: outbox depth, blocked."""
        with self.db.reading() as repos:
            blocked = len(repos.identities.list_blocked())
        return self.core.outbox.depth(), blocked

    def reload(self, new: Config) -> list[str]:
        """SIGHUP: take the new file's cells (rosters, meeting settings) without a restart.

        Refused, with the reasons returned, when what changed needs a restart (the account,
        the database, the limits, the cells or their rooms): the running bot keeps the old
        configuration then. Members added to a table are invited to its room."""
        old = self.config
        problems = reload_problems(old, new)
        if problems:
            return problems
        merged = old.model_copy(update={"cells": new.cells})
        before = {(c.id, t, m.user_id) for c in old.cells for t in c.tables
                  for m in c.members_of(t)}
        self.config = merged
        self.core.config = merged
        self.core.dispatcher.config = merged
        self.db.trust_generation += 1  # a roster change: the edge reads rosters and pins again
        self.bot.rosters_reloaded()
        added = sorted({(c.id, t, m.user_id) for c in merged.cells for t in c.tables
                        for m in c.members_of(t)} - before)
        invites = [(room, user) for cell, table, user in added
                   if (room := self.core.table_room(cell, table)) is not None]
        if self.scheduler.running:
            for cell in merged.cells:
                for table in cell.tables:
                    self.wiring.table_changed(cell.id, table)
        self.bot.invite_soon(invites)
        log.info("configuration reloaded: %d roster entr%s added", len(added),
                 "y" if len(added) == 1 else "ies")
        return []

    async def run(self) -> None:
        server = None
        if self.config.metrics.listen:
            server = metrics.MetricsServer(
                self.config.metrics.listen, self.core.clock, self._gauges,
                self.config.metrics.healthy_within_seconds)
            await server.start()
        try:
            await self.bot.run()
        finally:
            if server is not None:
                await server.stop()
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            self.db.dispose()


def reload_problems(old: Config, new: Config) -> list[str]:
    """What a reload cannot take: only the cells' rosters and table settings may change."""
    problems = []
    for part in ("matrix", "storage", "limits"):
        if getattr(old, part) != getattr(new, part):
            problems.append(f"[{part}] changed: restart the bot (systemctl restart livcr-bot)")
    rooms_old = {(c.id, t, c.tables[t].room) for c in old.cells for t in c.tables}
    rooms_new = {(c.id, t, c.tables[t].room) for c in new.cells for t in c.tables}
    if rooms_old != rooms_new:
        problems.append("cells, tables or rooms changed: run `livcr setup` with the bot "
                        "stopped, then start it")
    return problems


def purge_now(config: Config, db: Database | None = None, clock: Clock = system_clock) -> int:
    """Apply ``retention_days_after_close`` to every cell; return dossiers reduced."""

    own = db is None
    database = db or Database(config.database_url)
    if own:
        database.migrate()
    try:
        total = 0
        with database.unit_of_work() as repos:
            for cell in config.cells:
                total += apply_retention(cell, repos, clock())
        return total
    finally:
        if own:
            database.dispose()


def table_status(config: Config, clock: Clock = system_clock) -> list[str]:
    """Per table: counts only, never codes."""

    database = Database(config.database_url)
    database.migrate()
    try:
        with database.unit_of_work() as repos:
            lines: list[str] = []
            for cell in config.cells:
                lines.extend(cli_lines("status", status_data(cell, repos, clock())))
            return lines
    finally:
        database.dispose()


def trust_now(config: Config, user_id: str, db: Database | None = None,
              clock: Clock = system_clock) -> str | None:
    """The operator's ``livcr trust``: accept the blocked member's new identity (the key the
    chairs were shown), e.g. when the only chair is the one whose identity changed. Works
    while the bot runs: it re-reads the pins at its next sync. Returns the key accepted, None
    when the user is not blocked."""
    database = db or Database(config.database_url)
    if db is None:
        database.migrate()
    with database.unit_of_work() as repos:
        record = repos.identities.get(user_id)
        if record is None or record.blocked_key is None:
            return None
        key = record.blocked_key
        repos.identities.trust(user_id, key, "operator", clock())
        return key
