"""The crypto store: nio's own (``DefaultStore``), minus one write per sync.

nio calls ``save_encrypted_rooms`` after EVERY sync that has joined rooms, with the rooms that
became encrypted in it — almost always none. Each call still opens a transaction and reads the
account row on the event loop; on a quiet table that was the largest single cost of a sync in
py-spy samples of ``bench/latency.py``. An empty set has nothing to save.
"""

from __future__ import annotations

from collections.abc import Iterable

from nio.store import DefaultStore


class BotStore(DefaultStore):  # type: ignore[misc]  # nio.store is untyped
    def save_encrypted_rooms(self, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        if rooms:
            super().save_encrypted_rooms(rooms)


__all__ = ["BotStore"]
