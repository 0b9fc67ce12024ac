"""Inbound: Matrix events turned into plain values for the core (no decisions here).

:func:`inbound_event` is the one translation of a room timeline event: a decrypted command
becomes an :class:`~commands.framework.Incoming`, a poll answer a :class:`PollAnswer`, a
roster outsider's join an :class:`OutsiderJoined`, a command in a room that lost its
encryption an :class:`UnencryptedCommand`. Undecryptable events are held by
:mod:`bot.edge.held` and become :class:`Undecryptable` when their key never comes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nio import (
    InviteMemberEvent,
    RoomMemberEvent,
    RoomMessageNotice,
    RoomMessageText,
    UnknownEvent,
)

from commands.framework import Incoming
from commands.model import Table

POLL_RESPONSE = "org.matrix.msc3381.poll.response"


@dataclass(frozen=True)
class PollAnswer:
    """A member's answer to the native poll of a vote."""

    room_id: str
    event_id: str
    sender: str
    poll_event_id: str
    answer: str


@dataclass(frozen=True)
class Undecryptable:
    """A command whose room key never came: the sender is asked to resend it."""

    room_id: str
    event_id: str
    sender: str


@dataclass(frozen=True)
class OutsiderJoined:
    """Someone joined a table room (the core tells the chair when they are not on the roster)."""

    room_id: str
    event_id: str
    user_id: str


@dataclass(frozen=True)
class UnencryptedCommand:
    """A command typed in a table room that is not encrypted: refused, never run."""

    room_id: str
    event_id: str


@dataclass(frozen=True)
class UntrustedInput:
    """A command, ballot or poll answer the bot did not act on: not from a trusted device of
    its sender (spec §11). ``device_id`` is the sender's device the session came from, when
    the bot knows it (a listed device: the member is told once to verify it); ``blocked``
    when the sender's identity changed (nothing is said: the chair was told at the block)."""

    room_id: str
    event_id: str
    sender: str
    device_id: str | None
    blocked: bool


@dataclass(frozen=True)
class IgnoredInput:
    """An event the bot must not act on and says nothing about (a plaintext event in an
    encrypted room): only marked as processed."""

    room_id: str
    event_id: str


Inbound = (Incoming | PollAnswer | Undecryptable | OutsiderJoined | UnencryptedCommand
           | UntrustedInput | IgnoredInput)


@dataclass(frozen=True)
class RoomRef:
    """The table a room belongs to."""

    cell: str
    table: Table


def inbound_event(ref: RoomRef, room_id: str, event: Any, *, bot_user: str,
                  encrypted: bool) -> Inbound | None:
    """The plain value of one (decrypted) timeline event, or None when it asks nothing."""
    if getattr(event, "sender", None) == bot_user:
        return None
    if isinstance(event, RoomMemberEvent):
        if (event.membership == "join" and event.state_key != bot_user
                and getattr(event, "prev_membership", None) != "join"):  # not a name change
            return OutsiderJoined(room_id, event.event_id, event.state_key)
        return None
    if isinstance(event, RoomMessageNotice | InviteMemberEvent):
        return None
    if isinstance(event, RoomMessageText):
        if not encrypted:
            if event.body.lstrip().startswith(("!", "/")):
                return UnencryptedCommand(room_id, event.event_id)
            return None
        content = event.source.get("content", {})
        relates = content.get("m.relates_to") or {}
        thread_root = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
        return Incoming(
            cell=ref.cell,
            table=ref.table,
            room_id=room_id,
            event_id=event.event_id,
            sender=event.sender,
            body=event.body,
            timestamp=datetime.fromtimestamp(event.server_timestamp / 1000, UTC),
            thread_root=thread_root,
        )
    if isinstance(event, UnknownEvent) and event.type == POLL_RESPONSE:
        return poll_answer(room_id, event.sender, event.event_id, event.source)
    return None


def poll_answer(room_id: str, sender: str, event_id: str,
                source: dict[str, Any]) -> PollAnswer | None:
    """A poll response's first answer and the poll it refers to; None when malformed."""
    content = source.get("content", {})
    relates = content.get("m.relates_to") or {}
    answers = (content.get(POLL_RESPONSE) or {}).get("answers") or []
    if relates.get("rel_type") != "m.reference" or not answers:
        return None
    return PollAnswer(room_id, event_id, sender, str(relates.get("event_id", "")),
                      str(answers[0]))
