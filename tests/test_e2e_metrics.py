"""Metrics and health end to end (spec §14): the bot as ``livcr run`` with ``[metrics]``
against a real Synapse of its own (this test stops it). ``/metrics`` is scraped while members'
commands run and parsed with ``prometheus_client.parser``; the command counters move; no case
code, user id or room id appears anywhere in it; ``/healthz`` turns 503 when the homeserver
stops and 200 again when it is back."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from demo.homeserver import Homeserver, free_port
from tests.world import ROSTER, make_world

pytestmark = pytest.mark.e2e

VALID = "!signal phenomenon=early indicators=isolation,propaganda-online assessed=yes"


def counters(text: str) -> dict[tuple[str, str], float]:
    """``livcr_commands_total`` samples by (command, outcome)."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "livcr_commands":
            for sample in family.samples:
                if sample.name == "livcr_commands_total":
                    out[(sample.labels["command"], sample.labels["outcome"])] = sample.value
    return out


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def wait_status(session: aiohttp.ClientSession, url: str, status: int,
                      timeout: float = 240) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = None
    while loop.time() < deadline:
        try:
            seen = (await get(session, url))[0]
        except aiohttp.ClientError:
            seen = None
        if seen == status:
            return
        await asyncio.sleep(1)
    raise AssertionError(f"{url} stayed {seen}, never {status}")


async def test_metrics_move_with_commands_hold_no_identifiers_and_health_follows_the_server(
    tmp_path: Path,
) -> None:
    hs = Homeserver(tmp_path / "own-synapse")
    await hs.start()
    port = free_port()
    world = await make_world(hs, tmp_path, with_bot=False)
    base = f"http://127.0.0.1:{port}"
    try:
        with world.config_path.open("a") as config:
            config.write(f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
        assert world.bot is not None
        await world.bot.start_ready()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            await wait_status(session, f"{base}/healthz", 200)
            status, before = await get(session, f"{base}/metrics")
            assert status == 200
            assert {"livcr_commands", "livcr_reply_latency_seconds", "livcr_outbox_depth",
                    "livcr_outbox_dead_letters", "livcr_held_undecryptable_events",
                    "livcr_sync_lag_seconds", "livcr_blocked_members",
                    "livcr_last_successful_sync_timestamp_seconds"} <= families(before)

            scrapes: list[str] = []
            running = True

            async def scrape() -> None:
                while running:
                    scrapes.append((await get(session, f"{base}/metrics"))[1])
                    await asyncio.sleep(0.2)

            scraper = asyncio.create_task(scrape())
            try:
                await world.ask("chair", "operational", "!ack")
                await world.ask("ocmw", "operational", "!ack")
                created = await world.ask("ocmw", "operational", VALID)
                code = re.search(r"C-[0-9A-Z]{5}", created.body)
                assert code, created.body
                await world.ask("chair", "operational", f"!case show {code.group(0)}")
                await world.ask("chair", "operational", "!case list")
                await world.ask("chair", "operational", "!frobnicate")
                await world.ask("chair", "operational", "!signal phenomenon=martian")
            finally:
                running = False
                await scraper
            status, after = await get(session, f"{base}/metrics")
            scrapes.append(after)
            moved = counters(after)
            old = counters(before)

            def grew(key: tuple[str, str], by: float = 1) -> bool:
                return moved.get(key, 0) - old.get(key, 0) >= by

            assert grew(("ack", "ok"), 2), moved
            assert grew(("signal", "ok")), moved
            assert grew(("case show", "ok")), moved
            assert grew(("case list", "ok")), moved
            assert grew(("unknown", "unknown_command")), moved
            assert grew(("signal", "usage")) or grew(("signal", "refused")), moved
            assert len(scrapes) > 2
            assert any(counters(s) != counters(after) for s in scrapes)  # moving while run
            latency = next(f for f in text_string_to_metric_families(after)
                           if f.name == "livcr_reply_latency_seconds")
            count = next(s.value for s in latency.samples
                         if s.name == "livcr_reply_latency_seconds_count")
            assert count >= 7
            secrets = {code.group(0), world.bot_user, *world.rooms.values(),
                       *(world.uid(name) for name, *_ in ROSTER), world.prefix}
            for text in scrapes:
                for secret in secrets:
                    assert secret not in text, secret
                assert "C-" not in text

            await hs.stop()
            await wait_status(session, f"{base}/healthz", 503)
            await hs.start()
            await wait_status(session, f"{base}/healthz", 200)
    finally:
        await world.close()
        await hs.stop()
