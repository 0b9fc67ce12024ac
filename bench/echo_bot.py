"""The latency floor: a bare matrix-nio E2EE bot that answers every ``m.text`` with a reply.

It does what any E2EE bot must do and nothing more, with the sync loop the real bot uses (long
poll 30 s, the same filter, keys upload/query/claim and to-device messages after every sync):
each text from someone else gets an encrypted ``m.notice`` reply relating to it
(``ignore_unverified_devices=True``). No database, no templates, no key policy. Run as a
subprocess (like ``livcr run``) by ``bench/latency.py`` and ``bench/scale.py``::

    ECHO_ACCESS_TOKEN=... python bench/echo_bot.py --homeserver URL --user @echo:hs \
        --device DEVICEID --store DIR

Writes ``DIR/echo.log``; the line "first sync done" tells that it is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, RoomMessageText, SyncResponse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.edge.client import SYNC_FILTER  # noqa: E402
from bot.edge.devices import exchange_keys  # noqa: E402

log = logging.getLogger("echo")


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> None:
    client = AsyncClient(
        args.homeserver, args.user, device_id=args.device, store_path=str(args.store),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False,
                                 max_timeouts=0, request_timeout=60),
    )
    client.restore_login(args.user, args.device, os.environ["ECHO_ACCESS_TOKEN"])
    if client.should_upload_keys:
        await client.keys_upload()
    token: str | None = None
    first = True
    while not stop.is_set():
        sync = asyncio.ensure_future(client.sync(
            timeout=0 if first else 30_000, since=token, full_state=first,
            set_presence="offline", sync_filter=SYNC_FILTER))
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({sync, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if sync not in done:
            sync.cancel()
            break
        stopper.cancel()
        response = sync.result()
        if not isinstance(response, SyncResponse):
            log.warning("sync failed: %s", type(response).__name__)
            await asyncio.sleep(1)
            continue
        await exchange_keys(client)  # the same key work the real bot does after each sync
        if not first:
            for room_id, info in response.rooms.join.items():
                for event in info.timeline.events:
                    if isinstance(event, RoomMessageText) and event.sender != client.user_id:
                        await client.room_send(room_id, "m.room.message", {
                            "msgtype": "m.notice",
                            "body": event.body,
                            "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
                            "m.mentions": {},
                        }, ignore_unverified_devices=True)
        token = response.next_batch
        if first:
            first = False
            log.info("first sync done; %d rooms", len(client.rooms))
    await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--homeserver", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    args.store.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=args.store / "echo.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("nio", "peewee", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(args, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
