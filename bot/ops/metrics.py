"""Prometheus metrics and the health endpoint (spec §14), behind ``[metrics] listen``.

One registry per process (not prometheus-client's global one, so nothing but ours is exported).
The edge and the core report through the thin hooks below; the gauges that the database knows
(outbox depth, blocked members) are read at scrape time. No label or value ever holds a case
code, a user id or a room id: command labels are the names of the bot's own commands (an
unknown word is ``unknown``), outcomes are a fixed set.

``/healthz`` answers 200 when the last sync attempt succeeded and was less than
``healthy_within_seconds`` ago, else 503 (homeserver down, or the bot stuck).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

#: The outcomes a command can have; nothing else is ever a label value.
OUTCOMES = ("ok", "refused", "usage", "unknown_command", "error")

registry = CollectorRegistry(auto_describe=True)

commands = Counter(
    "livcr_commands", "Commands decided, by command name and outcome.",
    ("command", "outcome"), registry=registry,
)
reply_latency = Histogram(
    "livcr_reply_latency_seconds",
    "From a member's command (its server timestamp) to its replies being decided.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300), registry=registry,
)
outbox_depth = Gauge("livcr_outbox_depth", "Replies waiting in the outbox.", registry=registry)
dead_letters = Counter(
    "livcr_outbox_dead_letters",
    "Replies given up after the retry limit since the bot started.", registry=registry,
)
held_undecryptable = Gauge(
    "livcr_held_undecryptable_events", "Undecryptable events held for their room key.",
    registry=registry,
)
blocked_members = Gauge(
    "livcr_blocked_members", "Members blocked by a changed identity (spec §11).",
    registry=registry,
)
last_sync = Gauge(
    "livcr_last_successful_sync_timestamp_seconds",
    "Unix time of the last successful sync (0: none yet).", registry=registry,
)
sync_lag = Gauge(
    "livcr_sync_lag_seconds", "Seconds since the last successful sync, at scrape time.",
    registry=registry,
)
sync_failures = Counter(
    "livcr_sync_failures", "Sync attempts that failed (homeserver unreachable or erroring).",
    registry=registry,
)
up = Gauge("livcr_homeserver_up", "1 when the last sync attempt succeeded.", registry=registry)


@dataclass
class _State:
    last_success: datetime | None = None
    last_failed: bool = False
    held: Callable[[], int] | None = None


_state = _State()


# ---- hooks (one line at each call site) --------------------------------------------------
def command_done(name: str | None, outcome: str) -> None:
    """A command was decided. ``name``: the bot's own command name, None when unknown."""
    commands.labels(command=name or "unknown", outcome=outcome if outcome in OUTCOMES
                    else "error").inc()


def replied_after(seconds: float) -> None:
    reply_latency.observe(max(seconds, 0.0))


def dead_letter() -> None:
    dead_letters.inc()


def sync_succeeded(at: datetime) -> None:
    _state.last_success, _state.last_failed = at, False
    last_sync.set(at.timestamp())
    up.set(1)


def sync_failed() -> None:
    _state.last_failed = True
    sync_failures.inc()
    up.set(0)


def count_held(source: Callable[[], int]) -> None:
    """The edge tells where the number of held events is read."""
    _state.held = source


def outcome_of(templates: Sequence[str], refused: bool) -> str:
    """A command's outcome from the templates of its replies (never their data)."""
    if refused:
        return "refused"
    if "msg:error.internal" in templates:
        return "error"
    if "msg:error.unknown_command" in templates:
        return "unknown_command"
    if "usage_error" in templates:
        return "usage"
    return "ok"


# ---- the endpoint ----------------------------------------------------------------------
def parse_listen(value: str) -> tuple[str, int]:
    """``"9464"`` (loopback), ``"127.0.0.1:9464"``, ``"[::1]:9464"`` → (host, port)."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    ipaddress.ip_address(host)  # a literal address, no name to resolve
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError("port out of range")
    return host, number


@dataclass
class MetricsServer:
    """``/metrics`` and ``/healthz`` on ``listen``; ``refresh`` reads the database gauges."""

    listen: str
    clock: Callable[[], datetime]
    refresh: Callable[[], tuple[int, int]]
    healthy_within_seconds: float = 120.0
    _runner: web.AppRunner | None = field(default=None, init=False)

    def healthy(self) -> bool:
        last = _state.last_success
        if last is None or _state.last_failed:
            return False
        return (self.clock() - last).total_seconds() <= self.healthy_within_seconds

    async def _metrics(self, _request: web.Request) -> web.Response:
        try:
            depth, blocked = await asyncio.to_thread(self.refresh)
            outbox_depth.set(depth)
            blocked_members.set(blocked)
        except Exception as exc:  # the database is down: export the rest
            log.warning("metrics could not read the database (%s)", type(exc).__name__)
        held_undecryptable.set(_state.held() if _state.held is not None else 0)
        last = _state.last_success
        sync_lag.set((self.clock() - last).total_seconds() if last is not None else 0)
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        ok = self.healthy()
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "unhealthy\n")

    async def start(self) -> None:
        host, port = parse_listen(self.listen)
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        log.info("metrics on http://%s:%d/metrics", host, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


__all__ = ["MetricsServer", "command_done", "count_held", "dead_letter", "outcome_of",
                "parse_listen", "replied_after", "sync_failed", "sync_succeeded"]
