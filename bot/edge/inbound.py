"""Inbound: Matrix events turned into plain values for the core (no decisions here).

:func:`inbound_event` is the one translation of a room timeline event: a decrypted command
becomes an :class:`~commands.framework.Incoming`, a poll answer a :class:`PollAnswer`, a
roster outsider's join an :class:`OutsiderJoined`, a command in a room that lost its
encryption an :class:`UnencryptedCommand`, an edit an :class:`EditedText` (screened, never
run), an event of the wrong shape a :class:`MalformedInput` (content is read only through
:mod:`bot.edge.shapes`). Undecryptable events are held by
:mod:`bot.edge.held` and become :class:`Undecryptable` when their key never comes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nio import (
    AsyncClient,
    BadEvent,
    EphemeralEvent,
    ErrorResponse,
    Event,
    FileResponse,
    InviteEvent,
    InviteMemberEvent,
    MegolmEvent,
    Response,
    RoomMemberEvent,
    ToDeviceEvent,
    UnknownBadEvent,
)

from bot.edge import shapes
from commands.framework import Incoming
from commands.model import Table

POLL_RESPONSE = shapes.POLL_RESPONSE


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


@dataclass(frozen=True)
class MalformedInput:
    """An event of a kind the bot reads whose shape is wrong (spec §11): skipped, counted
    and marked processed (when it has a usable event id). ``reason`` names the defect's
    kind (:class:`bot.edge.shapes.Malformed`), never content."""

    room_id: str
    event_id: str | None
    reason: str


@dataclass(frozen=True)
class EditedText:
    """An ``m.replace`` edit of a message: never run as a command, whatever its text, but
    screened for personal data like a new command (redacted and refused when it carries
    some)."""

    room_id: str
    event_id: str
    sender: str
    body: str
    timestamp: datetime


Inbound = (Incoming | PollAnswer | EditedText | Undecryptable | OutsiderJoined
           | UnencryptedCommand | UntrustedInput | IgnoredInput)


@dataclass(frozen=True)
class RoomRef:
    """The table a room belongs to."""

    cell: str
    table: Table


def inbound_event(ref: RoomRef, room_id: str, event: Any, *, bot_user: str,
                  encrypted: bool) -> Inbound | MalformedInput | None:
    """The plain value of one (decrypted) timeline event, or None when it asks nothing.

    Message and poll-answer content is read only through :func:`bot.edge.shapes.inbound`
    (spec §11): a wrong shape becomes :class:`MalformedInput`, never an exception.
    """
    if getattr(event, "sender", None) == bot_user:
        return None
    if isinstance(event, RoomMemberEvent):
        if (event.membership == "join" and event.state_key != bot_user
                and getattr(event, "prev_membership", None) != "join"  # not a name change
                and shapes.event_id_ok(event.event_id)
                and shapes.parse_user_id(event.state_key) is not None):
            return OutsiderJoined(room_id, event.event_id, event.state_key)
        return None
    if isinstance(event, InviteMemberEvent):
        return None
    if isinstance(event, BadEvent | UnknownBadEvent):
        source = getattr(event, "source", None)
        if isinstance(source, Mapping) and source.get("type") == "m.room.encrypted":
            event_id = source.get("event_id")
            return MalformedInput(room_id, event_id if shapes.event_id_ok(event_id) else None,
                                  "encrypted")
    shape = shapes.inbound(getattr(event, "source", None))
    if shape is None:
        return None
    if isinstance(shape, shapes.Malformed):
        return MalformedInput(room_id, shape.event_id, shape.reason)
    if shape.sender == bot_user:
        return None
    if isinstance(shape, shapes.Text):
        if not encrypted:
            if shape.body.lstrip().startswith(("!", "/")):
                return UnencryptedCommand(room_id, shape.event_id)
            return None
        return Incoming(
            cell=ref.cell,
            table=ref.table,
            room_id=room_id,
            event_id=shape.event_id,
            sender=shape.sender,
            body=shape.body,
            timestamp=shape.at,
            thread_root=shape.thread_root,
        )
    if isinstance(shape, shapes.Edit):
        if not encrypted:
            return None  # nothing is said in a room that is not encrypted but the refusal
        return EditedText(room_id, shape.event_id, shape.sender, shape.body, shape.at)
    return PollAnswer(room_id, shape.event_id, shape.sender, shape.poll_event_id,
                      shape.answer)


# ---- below nio: what matrix-nio itself cannot parse -------------------------------------
def _parses(parse: Callable[[Any], Any], event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    try:
        parse(copy.deepcopy(event))  # nio's parsers may change what they are given
    except Exception:
        return False
    return True


def _screen_list(holder: Any, key: str, parse: Callable[[Any], Any]) -> int:
    events = holder.get(key) if isinstance(holder, dict) else None
    if not isinstance(events, list):
        return 0
    kept = [event for event in events if _parses(parse, event)]
    dropped = len(events) - len(kept)
    if dropped:
        holder[key] = kept
    return dropped


def screen_response(body: Any) -> int:
    """Drop, in place, every event of a /sync or /messages response body that matrix-nio
    cannot parse without raising (a timeline entry that is not an object, an
    ``origin_server_ts`` that is a string...); returns how many were dropped.

    nio turns most malformed events into ``BadEvent`` values, which the edge skips and
    counts; but some shapes make its parser raise, and then the whole response is lost and
    the sync loop would retry the same token forever (spec §11: one bad event never stops a
    table). Such an event has no usable id: it cannot be marked processed, only counted."""
    if not isinstance(body, dict):
        return 0
    dropped = _screen_list(body, "chunk", Event.parse_event)  # /messages (gap back-fill)
    dropped += _screen_list(body, "state", Event.parse_event)
    rooms = body.get("rooms")
    if isinstance(rooms, dict):
        for section in ("join", "leave"):
            joined = rooms.get(section)
            for room in joined.values() if isinstance(joined, dict) else ():
                if not isinstance(room, dict):
                    continue
                dropped += _screen_list(room.get("timeline"), "events", Event.parse_event)
                dropped += _screen_list(room.get("state"), "events", Event.parse_event)
                dropped += _screen_list(room.get("ephemeral"), "events",
                                        EphemeralEvent.parse_event)
        invited = rooms.get("invite")
        for room in invited.values() if isinstance(invited, dict) else ():
            if isinstance(room, dict):
                dropped += _screen_list(room.get("invite_state"), "events",
                                        InviteEvent.parse_event)
    dropped += _screen_list(body.get("to_device"), "events", ToDeviceEvent.parse_event)
    return dropped


def guard_decryption(client: AsyncClient, failed: set[str]) -> None:
    """Make nio's decryption of one timeline event unable to raise out of a sync.

    A member holding a room key can encrypt anything: a payload that is not a JSON object,
    an empty ``sender_key``... nio's decryption then raises (not only ``EncryptionError``)
    inside ``sync``, and the whole response would be lost, again and again. Here such an
    event stays encrypted and its id goes to ``failed``: the edge skips it as malformed.

    The bot's own echoes (each of its replies comes back in the next sync) are not decrypted
    at all: the edge ignores every event the bot sent, so decrypting one, and validating its
    payload, is work for nothing; an own event nio could not decrypt asks for no key."""
    original = client._handle_timeline_event

    def handle(event: Any, room_id: str, room: Any, encrypted_rooms: set[str]) -> Any:
        if isinstance(event, MegolmEvent) and event.sender == client.user_id:
            return None  # stays encrypted; MatrixBot._handle_event skips the bot's own
        try:
            return original(event, room_id, room, encrypted_rooms)
        except Exception:
            event_id = getattr(event, "event_id", None)
            if isinstance(event_id, str):
                failed.add(event_id)
            return None

    client._handle_timeline_event = handle  # type: ignore[method-assign]


def screen_bodies(client: AsyncClient, dropped: Callable[[int], None]) -> None:
    """Recover a response body that nio cannot turn into its response: optimistic, so a
    well-formed body is parsed once, by nio alone.

    Only when building the response raises, or gives an error response for a body the
    homeserver answered with HTTP 200 (nio's schema check of a whole sync fails when one
    timeline entry is not an object), is the body read again (aiohttp keeps its bytes: a
    fresh dict, not the one nio's parsers may have changed), screened by
    :func:`screen_response` and parsed again; ``dropped`` hears how many events were left
    out. Nothing dropped: nio's own outcome stands."""
    original = client.create_matrix_response

    async def create(response_class: Any, transport_response: Any,
                     data: tuple[Any, ...] | None = None, save_to: Any = None) -> Response:
        failure: Exception | None = None
        try:
            response = await original(response_class, transport_response, data, save_to)
        except Exception as exc:
            failure = exc
        else:
            if not isinstance(response, ErrorResponse):
                return response
        if getattr(transport_response, "status", None) != 200 or issubclass(
                response_class, FileResponse):
            if failure is not None:
                raise failure
            return response
        try:
            body = await client.parse_body(transport_response)
        except Exception:
            body = None
        count = screen_response(body)
        if not count:
            if failure is not None:
                raise failure
            return response
        dropped(count)
        screened: Response = response_class.from_dict(body, *(data or ()))
        screened.transport_response = transport_response
        return screened

    client.create_matrix_response = create  # type: ignore[method-assign]
