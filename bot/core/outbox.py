"""The outbox as this process committed it, kept in memory (spec §11 "Exactly once").

Every reply is committed to the outbox table in the transaction that decided it; the edge then
sends it. Reading the table again before each send, and deleting each sent item in a
transaction of its own, cost two transactions (one an fsync) and two thread hops per reply, and
the deletes competed with the next command's decision for SQLite's write lock. The core is the
only writer of the outbox, so it keeps a copy:

- loaded once from the database (the first :meth:`OutboxMirror.pending`), then changed only by
  what a unit of work of this process committed (``EventRepository.outbox_changes``, applied
  after the commit, dropped on rollback);
- a sent item leaves the copy at once; its row is deleted by :meth:`OutboxMirror.forget_sent`
  a moment later, with the other items sent meanwhile, in one transaction that is on no
  member's path. A crash before that delete resends the item after the restart with the same
  transaction id (``OutboxItem.txn_id``), which the homeserver deduplicates: the same guarantee
  as a crash between a send and its delete always had, for a few seconds longer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from storage.db import Database
from storage.repositories import OutboxChange, OutboxItem, Repositories


class OutboxMirror:
    """The pending outbox of one database, and the sent items whose rows are still to go."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._items: dict[int, OutboxItem] | None = None
        self._sent: set[int] = set()

    # ---- units of work --------------------------------------------------------------
    @contextmanager
    def unit_of_work(self) -> Iterator[Repositories]:
        """``Database.unit_of_work`` that, once it committed, brings its outbox changes into
        the copy (a rolled-back unit changes nothing)."""
        with self.db.unit_of_work() as repos:
            yield repos
            changes = repos.events.outbox_changes
        self._apply(changes)

    def forget_sent(self) -> int:
        """Delete the rows of sent items, in one transaction off the command path (the edge
        calls it a moment after a flush, and at stop); returns how many."""
        with self._lock:
            sent, self._sent = self._sent, set()
        if not sent:
            return 0
        try:
            with self.db.unit_of_work() as repos:
                repos.events.sent_many(sorted(sent))
        except BaseException:
            with self._lock:
                self._sent |= sent  # tried again next time; resent after a crash meanwhile
            raise
        return len(sent)

    # ---- what the edge reads and records --------------------------------------------
    def pending(self) -> list[OutboxItem]:
        """Not sent, not dead, in id order; the first call reads the table."""
        with self._lock:
            if self._items is None:
                self._items = self._load()
            return sorted(self._items.values(), key=lambda item: item.id)

    def sent(self, ids: list[int]) -> None:
        """Items the homeserver has: out of the copy now, out of the table soon."""
        with self._lock:
            for outbox_id in ids:
                if self._items is not None:
                    self._items.pop(outbox_id, None)
                self._sent.add(outbox_id)

    def depth(self) -> int:
        return len(self.pending())

    # ---- internals ------------------------------------------------------------------
    def _load(self) -> dict[int, OutboxItem]:
        with self.db.reading() as repos:
            return {item.id: item for item in repos.events.pending()
                    if item.id not in self._sent}

    def _apply(self, changes: list[OutboxChange]) -> None:
        """Called after a commit; idempotent per item (a load may have read it already)."""
        if not changes:
            return
        with self._lock:
            items = self._items
            if items is None:
                return  # not loaded yet: the first pending() reads the committed rows
            for change in changes:
                if change.kind == "new" and change.item is not None:
                    if change.item.id not in self._sent:
                        items[change.item.id] = change.item
                    continue
                current = items.get(change.outbox_id)
                if current is None:
                    continue
                if change.kind == "dead":
                    del items[change.outbox_id]
                elif change.kind == "content":
                    items[change.outbox_id] = replace(current,
                                                      content=json.loads(change.content))
                elif change.kind == "retry":
                    items[change.outbox_id] = replace(current, attempts=change.attempts,
                                                      next_try_at=change.next_try_at)

