"""Rows every command reads and few commands change, kept between units of work.

Who is on a table's roster (the configured members with the chair's stored changes) and who
acknowledged its confidentiality statement are read by nearly every command, several times
(the roster check, the chairs to mention, the acknowledgement of each member listed). They
change only through a unit of work of this process (``members add|remove``, ``!ack``), so they
are kept here between units and read again only when one of them changed:

- each kind of row is a *space* with a generation; a unit of work that flushes a row of a
  space is a writer of it from that flush until it ended (commit or rollback), and the space's
  generation moves when it ends;
- a value is served from the cache only when it was loaded at the current generation and no
  writer of its space is in flight; the writer itself always reads the database (it sees its
  own changes); a value loaded while a writer was in flight is not kept;
- values also expire after ``ttl`` seconds, so a change made by another process (an operator's
  command while the bot runs) is seen within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlmodel import Session

#: ``session.info`` keys: the cache a unit of work reads through, the spaces it writes.
CACHE = "livcr_read_cache"
WRITING = "livcr_cache_writing"

_MISSING = object()


class ReadCache:
    """Values by (space, key), valid for one generation of their space."""

    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._generation: dict[str, int] = {}
        self._writers: dict[str, int] = {}
        self._values: dict[tuple[str, Any], tuple[int, float, Any]] = {}
        #: Loads from the database (tests and benchmarks read it).
        self.loads = 0

    def begin_write(self, session: Session, space: str) -> None:
        """``session`` flushed a row of ``space``: nobody is served that space until it
        ends (see :meth:`end_writes`)."""
        spaces: set[str] = session.info.setdefault(WRITING, set())
        if space in spaces:
            return
        spaces.add(space)
        with self._lock:
            self._writers[space] = self._writers.get(space, 0) + 1

    def end_writes(self, session: Session) -> None:
        """The unit of work of ``session`` committed or rolled back."""
        spaces: set[str] = session.info.pop(WRITING, set())
        if not spaces:
            return
        with self._lock:
            for space in spaces:
                self._writers[space] -= 1
                self._generation[space] = self._generation.get(space, 0) + 1
                for key in [k for k in self._values if k[0] == space]:
                    del self._values[key]

    def read(self, session: Session, space: str, key: Any, load: Callable[[], Any]) -> Any:
        """The value of (space, key): from the cache when valid, else ``load()`` (kept when
        no writer was in flight during the load)."""
        if space in session.info.get(WRITING, ()):
            return load()  # this unit changed the space: its own view
        now = self.clock()
        with self._lock:
            writers = self._writers.get(space, 0)
            generation = self._generation.get(space, 0)
            cached = self._values.get((space, key), _MISSING)
            if (not writers and isinstance(cached, tuple) and cached[0] == generation
                    and now - cached[1] < self.ttl):
                return cached[2]
        value = load()
        self.loads += 1
        with self._lock:
            if (not writers and not self._writers.get(space, 0)
                    and self._generation.get(space, 0) == generation
                    and space not in session.info.get(WRITING, ())):
                self._values[(space, key)] = (generation, now, value)
        return value


def cache_of(session: Session) -> ReadCache | None:
    cache = session.info.get(CACHE)
    return cache if isinstance(cache, ReadCache) else None
