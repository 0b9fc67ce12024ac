"""The tamper-evident audit record (spec §14): a SHA-256 hash chain per cell.

Every audit row carries its position in its cell's chain (``seq``, from 1), the previous row's
hash (``prev_hash``; the first row's is :data:`GENESIS`) and its own ``hash``: SHA-256 over the
canonical JSON of its fields and ``prev_hash``. ``audit_head`` holds each cell's last position
and hash, so a removed tail is seen too, and is the lock that keeps two writers from forking
a chain (a row lock on PostgreSQL, taken at commit; SQLite's writers are serialised by
``BEGIN IMMEDIATE``).

Retention replaces a purged row by its hash: the content fields are blanked, ``purged`` is set,
``seq``, ``prev_hash`` and ``hash`` stay, so the links before and after it still check.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.models import Audit, AuditHead

#: ``prev_hash`` of the first row of every chain.
GENESIS = "0" * 64


def canonical_time(at: datetime) -> str:
    """The one spelling of a timestamp that goes into a hash (aware, UTC, microseconds)."""
    if at.tzinfo is None:
        raise ValueError("naive datetime in the audit record")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(
    *,
    prev_hash: str,
    cell: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    code: str,
    from_status: str,
    to_status: str,
    decision_ref: str,
    meeting_id: int | None,
) -> str:
    """SHA-256 (hex) over the canonical fields of one audit row and the previous row's hash."""
    payload = json.dumps(
        {
            "prev": prev_hash,
            "cell": cell,
            "seq": seq,
            "at": canonical_time(at),
            "actor": actor,
            "action": action,
            "code": code,
            "from": from_status,
            "to": to_status,
            "ref": decision_ref,
            "meeting": meeting_id,
        },
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _hash_of(row: Audit) -> str:
    return row_hash(
        prev_hash=row.prev_hash, cell=row.cell, seq=row.seq, at=row.at, actor=row.actor,
        action=row.action, code=row.code, from_status=row.from_status,
        to_status=row.to_status, decision_ref=row.decision_ref, meeting_id=row.meeting_id,
    )


def _locked_head(session: Session, cell: str) -> AuditHead:
    """The cell's chain head, created when missing, locked for this transaction."""
    dialect = session.get_bind().dialect.name
    values: dict[str, Any] = {"cell": cell, "seq": 0, "hash": GENESIS}
    if dialect == "postgresql":
        session.execute(
            postgresql.insert(AuditHead).values(**values).on_conflict_do_nothing()
        )
    elif dialect == "sqlite":
        session.execute(sqlite.insert(AuditHead).values(**values).on_conflict_do_nothing())
    elif session.get(AuditHead, cell) is None:  # pragma: no cover - other backends
        session.add(AuditHead(cell=cell, seq=0, hash=GENESIS))
        session.flush()
    return session.exec(
        select(AuditHead).where(AuditHead.cell == cell).with_for_update()
        .execution_options(populate_existing=True)
    ).one()


#: Temporary positions of rows not yet sealed: negative, unique within the process (the
#: bot's one process is the only writer), from a random start so two processes rarely meet.
_unsealed = itertools.count(secrets.randbelow(2**30) + 1)
_PENDING = "livcr_audit_unsealed"
_HOOKED = "livcr_audit_sealing"


def append(
    session: Session,
    *,
    cell: str,
    actor: str,
    action: str,
    at: datetime,
    code: str = "",
    from_status: str = "",
    to_status: str = "",
    decision_ref: str = "",
    meeting_id: int | None = None,
) -> None:
    """Add one row to its cell's chain, in the caller's transaction.

    The row is linked when the transaction commits (:func:`_seal`), not here: the chain head
    is then the last lock the transaction takes, after any dossier row lock, so two commands
    can never wait for each other in opposite order (a deadlock on PostgreSQL), and the head
    is held only for the commit. Until then the row has a temporary negative ``seq`` (never
    visible to another transaction)."""
    row = Audit(
        at=at, cell=cell, actor=actor, action=action, code=code, from_status=from_status,
        to_status=to_status, decision_ref=decision_ref, meeting_id=meeting_id,
        seq=-next(_unsealed), prev_hash="", hash="", purged=False,
    )
    session.add(row)
    session.info.setdefault(_PENDING, []).append(row)
    if not session.info.get(_HOOKED):
        event.listen(session, "before_commit", _seal)
        session.info[_HOOKED] = True


def _seal(session: Session) -> None:
    """Link this transaction's new rows at the end of their cells' chains (before commit)."""
    rows: list[Audit] = session.info.pop(_PENDING, [])
    if not rows:
        return
    session.flush()
    live = [r for r in rows if sa.inspect(r).persistent]  # not undone by a savepoint
    by_cell: dict[str, list[Audit]] = {}
    for row in sorted(live, key=lambda r: r.id or 0):
        by_cell.setdefault(row.cell, []).append(row)
    for cell in sorted(by_cell):  # one lock order for every transaction
        head = _locked_head(session, cell)
        for row in by_cell[cell]:
            row.seq, row.prev_hash = head.seq + 1, head.hash
            row.hash = _hash_of(row)
            head.seq, head.hash = row.seq, row.hash
            session.add(row)
        session.add(head)
    session.flush()


def purge_code(session: Session, cell: str, code: str) -> int:
    """Retention: replace the rows of one code by their hash; return how many."""
    rows = session.exec(
        select(Audit).where(Audit.cell == cell, Audit.code == code, col(Audit.purged).is_(False))
    ).all()
    for row in rows:
        row.actor = row.action = row.code = ""
        row.from_status = row.to_status = row.decision_ref = ""
        row.meeting_id = None
        row.purged = True
        session.add(row)
    return len(rows)


@dataclass(frozen=True)
class BrokenLink:
    """The first row of a cell's chain that does not check, and why."""

    cell: str
    position: int
    row_id: int | None
    reason: str


@dataclass(frozen=True)
class ChainReport:
    cell: str
    rows: int
    purged: int
    broken: BrokenLink | None


def cells(session: Session) -> list[str]:
    """Every cell that has an audit chain (rows or a head)."""
    found = set(session.exec(select(Audit.cell).where(col(Audit.seq) > 0).distinct()).all())
    found |= set(session.exec(select(AuditHead.cell)).all())
    return sorted(found)


def verify_cell(session: Session, cell: str) -> ChainReport:
    """Walk one cell's chain from the start; stop at the first broken link."""
    rows = session.exec(
        select(Audit).where(Audit.cell == cell, col(Audit.seq) > 0)
        .order_by(col(Audit.seq), col(Audit.id))
    ).all()
    prev = GENESIS
    purged = 0
    for expected, row in enumerate(rows, start=1):
        reason = ""
        if row.seq != expected:
            reason = (f"position {row.seq} where {expected} was expected "
                      "(a row was removed or inserted)")
            position = expected
        elif row.prev_hash != prev:
            reason = "does not link to the row before it (prev_hash differs)"
            position = row.seq
        elif not row.purged and _hash_of(row) != row.hash:
            reason = "its content does not match its hash (the row was changed)"
            position = row.seq
        if reason:
            return ChainReport(cell, len(rows), purged,
                               BrokenLink(cell, position, row.id, reason))
        purged += int(row.purged)
        prev = row.hash
    head = session.get(AuditHead, cell)
    if head is not None and (head.seq, head.hash) != (len(rows), prev):
        return ChainReport(cell, len(rows), purged, BrokenLink(
            cell, len(rows) + 1, None,
            f"the chain head records {head.seq} rows; rows after position {len(rows)} are "
            "missing"))
    return ChainReport(cell, len(rows), purged, None)


@dataclass(frozen=True)
class ExportRow:
    """One row of the decision record: codes, transitions, votes, dates; no person."""

    position: int
    at: datetime
    action: str
    code: str
    from_status: str
    to_status: str
    decision_ref: str
    meeting_id: int | None
    purged: bool
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position, "at": canonical_time(self.at), "action": self.action,
            "code": self.code, "from_status": self.from_status, "to_status": self.to_status,
            "decision_ref": self.decision_ref, "meeting_id": self.meeting_id,
            "purged": self.purged, "hash": self.hash,
        }


EXPORT_FIELDS = ("position", "at", "action", "code", "from_status", "to_status",
                 "decision_ref", "meeting_id", "purged", "hash")


def export_rows(session: Session, cell: str, start: date | None = None,
                end: date | None = None) -> list[ExportRow]:
    """The cell's record in chain order, optionally limited to days ``start``..``end`` (UTC,
    both included). The actor (a member's user id) is left out: codes only."""
    query = select(Audit).where(Audit.cell == cell, col(Audit.seq) > 0)
    if start is not None:
        query = query.where(col(Audit.at) >= datetime(start.year, start.month, start.day,
                                                       tzinfo=UTC))
    if end is not None:
        nxt = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
        query = query.where(col(Audit.at) < nxt)
    rows = session.exec(query.order_by(col(Audit.seq), col(Audit.id))).all()
    return [ExportRow(r.seq, r.at, r.action, r.code, r.from_status, r.to_status,
                      r.decision_ref, r.meeting_id, r.purged, r.hash) for r in rows]


def chain_existing(conn: sa.Connection, rows: Iterable[sa.Row[Any]]) -> None:
    """Migration helper: give rows written before the chain existed their links, in id order
    per cell, and record each cell's head. ``rows``: (id, cell, at, actor, action, code,
    from_status, to_status, decision_ref, meeting_id) in id order."""
    heads: dict[str, tuple[int, str]] = {}
    for row in rows:
        rid, cell, at, actor, action, code, from_s, to_s, ref, meeting = tuple(row)
        seq, prev = heads.get(cell, (0, GENESIS))
        seq += 1
        digest = row_hash(prev_hash=prev, cell=cell, seq=seq, at=at, actor=actor,
                          action=action, code=code, from_status=from_s, to_status=to_s,
                          decision_ref=ref, meeting_id=meeting)
        conn.execute(
            sa.text("UPDATE audit SET seq = :s, prev_hash = :p, hash = :h WHERE id = :i"),
            {"s": seq, "p": prev, "h": digest, "i": rid},
        )
        heads[cell] = (seq, digest)
    for cell, (seq, digest) in heads.items():
        conn.execute(sa.text("INSERT INTO audit_head (cell, seq, hash) VALUES (:c, :s, :h)"),
                     {"c": cell, "s": seq, "h": digest})

