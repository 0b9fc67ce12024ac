"""Shared pieces of the Matrix benchmarks (``bench/latency.py``, ``bench/scale.py``).

A throw-away Synapse (:class:`demo.homeserver.Homeserver`), the bot as a real ``livcr run``
subprocess, the echo floor as a ``bench/echo_bot.py`` subprocess, and members with real E2EE
clients that time "command sent → decrypted reply received". Nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nio import RoomMessage  # noqa: E402

from demo.homeserver import Homeserver  # noqa: E402
from demo.member import MemberClient  # noqa: E402
from tests.processes import LoggedProcess, livcr_run, toml_value  # noqa: E402

PASSWORD = "bench-horse-battery-staple"

# The members' nio clients warn about olm sessions being set up; not benchmark output.
logging.getLogger("nio").setLevel(logging.ERROR)

#: Read-only commands, then the state-changing one (after ``!ack``).
READ_ONLY = ("!help", "!case list", "!members")
STATE_CHANGING = ("!signal phenomenon=HTF indicators=isolation assessed=yes",)
COMMANDS = READ_ONLY + STATE_CHANGING


# ---- small helpers ---------------------------------------------------------------------
def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def stats(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, p95, max) in milliseconds of values in seconds."""
    if not values:
        return (math.nan, math.nan, math.nan)
    ms = [v * 1000 for v in values]
    return statistics.median(ms), percentile(ms, 0.95), max(ms)


def print_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    line = "  ".join(f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in
                     enumerate(zip(header, widths, strict=True)))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in
                        enumerate(zip(row, widths, strict=True))))


def machine() -> str:
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return (f"{os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GB RAM, "
            f"{platform.machine()}, Python {platform.python_version()}, "
            f"Synapse on SQLite, bot database SQLite")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` value in kB (VmHWM: peak RSS, VmRSS: current RSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


# ---- the homeserver, over plain HTTP -------------------------------------------------
@dataclass
class Api:
    """Raw client/admin API calls with one shared aiohttp session."""

    hs: Homeserver
    session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=300),
            connector=aiohttp.TCPConnector(limit=64),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def call(self, method: str, path: str, token: str,
                   payload: dict[str, Any] | None = None, retries: int = 5) -> dict[str, Any]:
        assert self.session is not None
        for attempt in range(retries):
            try:
                async with self.session.request(
                    method, self.hs.url + path, json=payload,
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status in (200, 201):
                        return body if isinstance(body, dict) else {}
                    if resp.status < 500 and resp.status != 429:
                        raise RuntimeError(f"{method} {path} answered {resp.status}: {body}")
            except (aiohttp.ClientError, TimeoutError):
                if attempt == retries - 1:
                    raise
            await asyncio.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"{method} {path} kept failing")

    async def create_user(self, admin: str, user_id: str, password: str | None) -> None:
        """``PUT /_synapse/admin/v2/users``: one request, no device."""
        payload: dict[str, Any] = {"displayname": user_id[1:].split(":")[0]}
        if password is not None:
            payload["password"] = password
        await self.call("PUT", f"/_synapse/admin/v2/users/{user_id}", admin, payload)

    async def create_room(self, token: str, name: str, invite: Sequence[str] = (),
                          public_join: bool = False, alias: str | None = None,
                          power_users: dict[str, int] | None = None) -> str:
        """An encrypted room like ``livcr setup`` makes (history: joined; no guests).

        ``public_join`` lets the admin API join members without invites (provisioning);
        :meth:`lock` makes the room invite-only afterwards.
        """
        state = [
            {"type": "m.room.encryption", "state_key": "",
             "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
            {"type": "m.room.history_visibility", "state_key": "",
             "content": {"history_visibility": "joined"}},
            {"type": "m.room.guest_access", "state_key": "",
             "content": {"guest_access": "forbidden"}},
            {"type": "m.room.join_rules", "state_key": "",
             "content": {"join_rule": "public" if public_join else "invite"}},
        ]
        payload: dict[str, Any] = {"name": name, "preset": "private_chat",
                                   "initial_state": state, "invite": list(invite)}
        if alias:
            payload["room_alias_name"] = alias
        if power_users:
            payload["power_level_content_override"] = {"users": power_users}
        body = await self.call("POST", "/_matrix/client/v3/createRoom", token, payload)
        return str(body["room_id"])

    async def lock(self, token: str, room_id: str) -> None:
        await self.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/state/m.room.join_rules/",
                        token, {"join_rule": "invite"})

    async def admin_join(self, admin: str, room_id: str, user_id: str) -> None:
        await self.call("POST", f"/_synapse/admin/v1/join/{room_id}", admin,
                        {"user_id": user_id})

    async def logout(self, token: str) -> None:
        await self.call("POST", "/_matrix/client/v3/logout", token, {})


async def gather_limited(limit: int, coros: Iterable[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


# ---- processes ---------------------------------------------------------------------------
def bot_process(config_path: Path, data_dir: Path, tag: str) -> LoggedProcess:
    """``livcr run``; its outputs are ``bot-<tag>-<n>.out`` next to ``data_dir``."""
    env = {**os.environ, "LIVCR_MATRIX_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
    env.pop("LIVCR_MATRIX_ACCESS_TOKEN", None)
    bot = livcr_run(config_path, data_dir, env)
    bot.name = f"bot-{tag}"
    return bot


def echo_process(hs: Homeserver, user_id: str, token: str, device_id: str,
                 store: Path) -> LoggedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ECHO_ACCESS_TOKEN": token}
    return LoggedProcess([sys.executable, str(ROOT / "bench" / "echo_bot.py"), "--homeserver",
                          hs.url, "--user", user_id, "--device", device_id, "--store",
                          str(store)],
                         store / "echo.log", store.parent, env, name="echo")


async def run_setup(config_path: Path) -> str:
    env = {**os.environ, "LIVCR_MATRIX_PASSWORD": PASSWORD}
    env.pop("LIVCR_MATRIX_ACCESS_TOKEN", None)
    setup = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "setup", "-c", str(config_path), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await setup.communicate()
    if setup.returncode != 0:
        raise RuntimeError(f"livcr setup failed: {output.decode(errors='replace')}")
    return output.decode()


# ---- members that time replies -----------------------------------------------------------
@dataclass
class TimedMember:
    """A member's E2EE client that notes when each decrypted reply arrives."""

    member: MemberClient
    arrived: dict[str, tuple[float, str]] = field(default_factory=dict)
    _waiters: dict[str, asyncio.Future[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.member.client.add_event_callback(self._on_message, (RoomMessage,))

    @classmethod
    async def create(cls, hs: Homeserver, user_id: str, store: Path) -> TimedMember:
        member = MemberClient(hs.url, user_id, PASSWORD, store)
        timed = cls(member)
        await member.login()
        await member.start()
        return timed

    async def _on_message(self, room: Any, event: Any) -> None:
        now = time.perf_counter()
        content = event.source.get("content", {})
        relates = content.get("m.relates_to") or {}
        target = (relates.get("m.in_reply_to") or {}).get("event_id")
        if not target or target in self.arrived:
            return
        self.arrived[target] = (now, event.sender)
        waiter = self._waiters.pop(target, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)

    @property
    def user_id(self) -> str:
        return self.member.user_id

    async def ask(self, room_id: str, body: str, timeout: float = 60) -> float:
        """Seconds from just before sending ``body`` until the decrypted reply to it arrived."""
        loop = asyncio.get_running_loop()
        began = time.perf_counter()
        event_id = await self.member.send(room_id, body)
        if event_id in self.arrived:
            return self.arrived[event_id][0] - began
        waiter: asyncio.Future[float] = loop.create_future()
        self._waiters[event_id] = waiter
        try:
            done = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.user_id}: no reply to {body.split()[0]!r} in "
                               f"{timeout:g} s") from None
        return done - began

    async def stop(self) -> None:
        await self.member.stop()


async def measure_pairs(targets: dict[str, tuple[str, ...]], rounds: int,
                        members: Sequence[TimedMember], concurrent: bool,
                        commands: Sequence[str] = COMMANDS, first_round: int = 0
                        ) -> dict[str, dict[str, list[float]]]:
    """Send the same command sequence to each target, alternating which goes first.

    ``targets`` maps a label to a ``(room_id,)``. Returns ``{label: {command: [seconds]}}``.
    Sequential: one command at a time, members taking turns. Concurrent: every member sends
    its command at the same moment, and all replies are awaited. ``first_round`` continues
    the members' and commands' rotation of an earlier call.
    """
    results: dict[str, dict[str, list[float]]] = {
        label: {c: [] for c in commands} for label in targets
    }
    labels = list(targets)
    step = first_round
    for round_ in range(first_round, first_round + rounds):
        if concurrent:
            batches = [[(m, commands[(round_ + i) % len(commands)])
                        for i, m in enumerate(members)]]
        else:
            batches = [[(members[(round_ * len(commands) + i) % len(members)], c)]
                       for i, c in enumerate(commands)]
        for batch in batches:
            order = labels if step % 2 == 0 else labels[::-1]
            step += 1
            for label in order:
                (room_id,) = targets[label]
                times = await asyncio.gather(*(m.ask(room_id, c) for m, c in batch))
                for (_, command), seconds in zip(batch, times, strict=True):
                    results[label][command].append(seconds)
                await asyncio.sleep(0.05)
    return results


def flatten(by_command: dict[str, list[float]], only: Sequence[str] | None = None
            ) -> list[float]:
    return [v for c, vs in by_command.items() if only is None or c in only for v in vs]


__all__ = [
    "COMMANDS", "PASSWORD", "READ_ONLY", "ROOT", "STATE_CHANGING", "Api", "Homeserver",
    "LoggedProcess", "TimedMember", "bot_process", "cpu_seconds", "echo_process", "flatten",
    "gather_limited",
    "machine", "measure_pairs", "percentile", "print_table", "proc_status", "run_setup",
    "stats", "toml_value",
]
