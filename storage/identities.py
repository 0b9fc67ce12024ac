"""Pinned cross-signing identities of members (SPEC §11, "Only trusted devices", "An identity
change blocks"). Global per Matrix user, not per cell: a person has one identity.

A row holds the master key pinned for a user (how and when), whether the user is blocked
because another master key was published (and which one, so ``members trust`` re-pins exactly
the key the chair was shown), and whether the chair has been told. The devices already told
"untrusted device" are kept apart (told once per device). Only public keys are stored.
Plain records out; the time is always given (``at``), never read here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, col, select

from storage.models import ts

#: How a key came to be pinned: first sight, the roster entry's ``master_key``, the operator's
#: ``livcr trust`` or a chair's ``members trust`` (``chair:@user:server``).
HOW_TOFU = "tofu"
HOW_ROSTER = "roster"
HOW_OPERATOR = "operator"
_HOW = re.compile(r"^(tofu|roster|operator|chair:@[^\s:]+:\S+)$")


class IdentityPin(SQLModel, table=True):
    __tablename__ = "identity_pin"
    user_id: str = Field(primary_key=True, max_length=255)
    master_key: str | None = Field(default=None, max_length=64)  # None: seen, not pinned yet
    pinned_how: str = Field(default="", max_length=300)
    pinned_at: datetime | None = ts(nullable=True)
    blocked_key: str = Field(default="", max_length=64)  # the new, unaccepted master key
    blocked_at: datetime | None = ts(nullable=True)
    chair_notified: bool = False
    chair_notified_at: datetime | None = ts(nullable=True)


class IdentityDeviceNotice(SQLModel, table=True):
    """A device of a member that was told once that it is not trusted."""

    __tablename__ = "identity_device_notice"
    user_id: str = Field(primary_key=True, max_length=255)
    device_id: str = Field(primary_key=True, max_length=255)
    told_at: datetime = ts()


@dataclass(frozen=True)
class IdentityRecord:
    user_id: str
    master_key: str | None  # the pinned master key (unpadded base64), None: not pinned yet
    pinned_how: str  # tofu | roster | operator | chair:<user>; "" when not pinned
    pinned_at: datetime | None
    blocked_key: str | None  # set while blocked: the published key nobody accepted yet
    blocked_at: datetime | None
    chair_notified: bool
    told_devices: frozenset[str]

    @property
    def blocked(self) -> bool:
        return self.blocked_key is not None


def check_how(how: str) -> str:
    if not _HOW.match(how):
        raise ValueError(f"unknown way of pinning an identity: {how!r}")
    return how


class IdentityRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def _row(self, user_id: str, lock: bool = False) -> IdentityPin | None:
        query = select(IdentityPin).where(IdentityPin.user_id == user_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self._session.exec(query).first()

    def _told(self, user_id: str) -> frozenset[str]:
        rows = self._session.exec(
            select(IdentityDeviceNotice.device_id).where(IdentityDeviceNotice.user_id == user_id)
        ).all()
        return frozenset(rows)

    def _record(self, row: IdentityPin) -> IdentityRecord:
        return IdentityRecord(
            user_id=row.user_id,
            master_key=row.master_key,
            pinned_how=row.pinned_how,
            pinned_at=row.pinned_at,
            blocked_key=row.blocked_key or None,
            blocked_at=row.blocked_at,
            chair_notified=row.chair_notified,
            told_devices=self._told(row.user_id),
        )

    def _get_or_new(self, user_id: str) -> IdentityPin:
        """The user's row, locked; created when missing. Two units of work creating it at
        once (PostgreSQL: the second INSERT waits, then conflicts) both end up with the one
        row the first committed."""
        row = self._row(user_id, lock=True)
        if row is not None:
            return row
        try:
            with self._session.begin_nested():
                self._session.add(IdentityPin(user_id=user_id))
        except sa.exc.IntegrityError:
            pass  # created meanwhile by a concurrent unit of work
        row = self._row(user_id, lock=True)
        if row is None:  # pragma: no cover - the row was just created or found
            raise RuntimeError(f"identity row of {user_id} vanished")
        return row

    def get(self, user_id: str) -> IdentityRecord | None:
        row = self._row(user_id)
        if row is None:
            told = self._told(user_id)
            if not told:
                return None
            return IdentityRecord(user_id, None, "", None, None, None, False, told)
        return self._record(row)

    def pins(self, user_ids: Iterable[str] | None = None) -> dict[str, str]:
        """The pinned master key of each given user (of everybody: None) that has one; one
        query, for filling the trust cache at start and after roster changes."""
        query = select(IdentityPin.user_id, IdentityPin.master_key).where(
            col(IdentityPin.master_key).is_not(None)
        )
        if user_ids is not None:
            wanted = sorted(set(user_ids))
            if not wanted:
                return {}
            query = query.where(col(IdentityPin.user_id).in_(wanted))
        return {user: key for user, key in self._session.exec(query).all() if key is not None}

    def pin(self, user_id: str, master_key: str, how: str, at: datetime) -> IdentityRecord:
        """Pin at first sight (``tofu``) or from the roster entry (``roster``). A user already
        pinned keeps their pin: the returned record says which key is pinned."""
        check_how(how)
        row = self._get_or_new(user_id)
        if row.master_key is None:
            row.master_key = master_key
            row.pinned_how = how
            row.pinned_at = at
            self._session.add(row)
            self._session.flush()
        return self._record(row)

    def block(self, user_id: str, new_key: str, at: datetime) -> bool:
        """Record that ``new_key`` was published instead of the pinned key. True when this is
        news (not blocked before, or blocked for another key): the chair must be told again
        (``chair_notified`` is cleared). Raises KeyError when the user has no pin."""
        row = self._row(user_id, lock=True)
        if row is None or row.master_key is None:
            raise KeyError(user_id)
        if new_key == row.master_key:
            raise ValueError("the new key is the pinned key: nothing to block")
        if row.blocked_key == new_key:
            return False
        row.blocked_key = new_key
        row.blocked_at = at
        row.chair_notified = False
        row.chair_notified_at = None
        self._session.add(row)
        self._session.flush()
        return True

    def trust(self, user_id: str, master_key: str, how: str, at: datetime) -> IdentityRecord:
        """Re-pin ``user_id`` to ``master_key`` (``members trust`` by a chair: ``chair:<user>``,
        ``livcr trust``: ``operator``) and lift the block. Pass the key that was shown and
        checked with the person, not whatever the server publishes now."""
        check_how(how)
        row = self._get_or_new(user_id)
        row.master_key = master_key
        row.pinned_how = how
        row.pinned_at = at
        row.blocked_key = ""
        row.blocked_at = None
        row.chair_notified = False
        row.chair_notified_at = None
        self._session.add(row)
        self._session.flush()
        return self._record(row)

    def mark_device_told(self, user_id: str, device_id: str, at: datetime) -> bool:
        """True the first time for a device (tell the member now), False afterwards."""
        if self._session.get(IdentityDeviceNotice, (user_id, device_id)) is not None:
            return False
        try:
            with self._session.begin_nested():
                self._session.add(
                    IdentityDeviceNotice(user_id=user_id, device_id=device_id, told_at=at)
                )
        except sa.exc.IntegrityError:
            return False  # told by a concurrent unit of work
        return True

    def mark_chair_notified(self, user_id: str, at: datetime) -> bool:
        """True when the chair was not told yet about this member (an untrusted device or
        the current block): tell them now. Cleared again by a new block and by ``trust``."""
        row = self._get_or_new(user_id)
        if row.chair_notified:
            return False
        row.chair_notified = True
        row.chair_notified_at = at
        self._session.add(row)
        self._session.flush()
        return True

    def list_blocked(self) -> list[IdentityRecord]:
        rows = self._session.exec(
            select(IdentityPin)
            .where(IdentityPin.blocked_key != "")
            .order_by(col(IdentityPin.user_id))
        ).all()
        return [self._record(row) for row in rows]
