"""Emoji (SAS) verification of the bot's device, as a sans-I/O state machine.

Follows the Matrix client-server API, section "Device verification" (spec v1.11+):
"Key verification framework" (request / ready / done / cancel, both transports, the
10-minute timeouts, the cancel codes) and "Short Authentication String (SAS) verification"
(method ``m.sas.v1``; key agreement ``curve25519-hkdf-sha256``; hash ``sha256``; MAC
``hkdf-hmac-sha256.v2``, or the older ``hkdf-hmac-sha256`` when the other side offers only
that; short authentication strings ``emoji`` and ``decimal``). The key agreement, the SAS bytes
and the MACs come from vodozemac (``vodozemac.Sas`` / ``EstablishedSas``); nothing here is
hand-rolled crypto. No network, no clock: every call takes ``now_ms`` (milliseconds since the
epoch) from the caller.

How the edge drives it
----------------------
One :class:`SasVerification` per verification flow. The flow is named by
:func:`flow_id` (to-device: the ``transaction_id``; in room: the event id of the request, to
which every later event refers with ``m.relates_to`` ``rel_type: m.reference``).

1. Route to the machine every event :func:`is_verification_event` accepts:

   * to-device ``m.key.verification.{request,ready,start,accept,key,mac,done,cancel}``;
   * in the direct room: ``m.room.message`` with ``msgtype: m.key.verification.request``, and
     ``m.key.verification.{ready,start,accept,key,mac,done,cancel}`` room events (decrypted:
     they are encrypted in an encrypted room like every event).

   Wrap each as :class:`Incoming` (type, content, sender; for in-room events also the event
   id and ``origin_server_ts``). A request (or, to-device, a ``start`` with no request) of an
   unknown flow creates a machine (``SasVerification(own, policy, transport, now_ms=...)``);
   other events of unknown flows are dropped (to-device: optionally answer
   ``m.unknown_transaction``). Drop the bot's own echoes (the machine ignores events whose
   sender is the bot's user anyway).
2. ``step = machine.receive(incoming, now_ms)``, and send every ``step.send`` item:
   to-device to ``(machine.peer_user, machine.peer_device)``; in room as a room event of type
   ``item.type`` in ``machine.room_id`` (encrypted like every message there). Send them in
   order.
3. When ``step.show_sas`` is true, post the seven emoji in the direct room (for a to-device
   flow: in the member's direct room) so the person can compare:
   :func:`emoji_lines` gives "🐶 Hond" lines in the cell language, ``machine.decimals()`` the
   three numbers. The bot confirms by itself once the member's MAC has arrived and checks
   out (the member pressed "They match"): ``auto_confirm=True``, the default, sends the bot's
   MAC and ``done`` in that same step.
4. When ``step.verified`` is true, ``machine.verified_keys`` holds the member's keys whose
   MACs checked out (``ed25519:<device>`` and, when the caller passed it, ``ed25519:<master>``);
   the edge may then sign the member's master key with the bot's user-signing key. When
   ``step.finished``, the flow is done; when ``step.cancelled``, ``machine.cancel_code`` and
   ``machine.cancel_reason`` say why (a cancel we send is already in ``step.send``).
5. Call ``machine.tick(now_ms)`` now and then (every minute is plenty) and send what it
   returns: a flow idle for 10 minutes is cancelled with ``m.timeout``.
6. If the member's client waits after ``ready`` instead of sending ``start`` (Element's
   js-sdk starts itself; other clients may not), ``machine.start(now_ms)`` sends the bot's own
   ``start``; a ``start`` crossing ours is resolved as the spec says (the lexicographically
   smaller user id, then device id, wins).

Policy: the ``policy`` callable gets ``(user_id, device_id)`` of the other side as soon as the
machine learns them (from the request, or a bare to-device start), and returns
:class:`PeerKeys` (the device's Ed25519 key and the user's master key, as the edge knows them
from ``/keys/query``) when that device may verify the bot, or a :class:`Refusal` (the machine
then cancels with ``m.user`` and the refusal's reason). Only trusted roster devices may verify:
the caller decides.

Malformed or unexpected events never raise: they cancel the flow with a reason. Nothing here
logs; the machine holds no long-term secret (the caller passes public keys only).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import vodozemac
from canonicaljson import encode_canonical_json

from bot.edge.signing_keys import decode_b64, unpadded_b64

_T = TypeVar("_T")

# ---- protocol constants ------------------------------------------------------------------
PREFIX = "m.key.verification."
REQUEST = PREFIX + "request"
READY = PREFIX + "ready"
START = PREFIX + "start"
ACCEPT = PREFIX + "accept"
KEY = PREFIX + "key"
MAC = PREFIX + "mac"
DONE = PREFIX + "done"
CANCEL = PREFIX + "cancel"
ROOM_MESSAGE = "m.room.message"
EVENT_TYPES = frozenset({REQUEST, READY, START, ACCEPT, KEY, MAC, DONE, CANCEL})

SAS_V1 = "m.sas.v1"
KEY_AGREEMENT = "curve25519-hkdf-sha256"
HASH = "sha256"
MAC_V2 = "hkdf-hmac-sha256.v2"
MAC_V1 = "hkdf-hmac-sha256"  # libolm's MAC with its broken base64; accepted, never preferred
MAC_METHODS = (MAC_V2, MAC_V1)  # in order of preference
SAS_STRINGS = ("decimal", "emoji")

TIMEOUT_MS = 10 * 60 * 1000  # "Key verification framework": requests and flows, 10 minutes
FUTURE_MS = 5 * 60 * 1000  # a request more than 5 minutes in the future is ignored too


class CancelCode(StrEnum):
    """The spec's cancel codes ("m.key.verification.cancel")."""

    USER = "m.user"
    TIMEOUT = "m.timeout"
    UNKNOWN_TRANSACTION = "m.unknown_transaction"
    UNKNOWN_METHOD = "m.unknown_method"
    UNEXPECTED_MESSAGE = "m.unexpected_message"
    KEY_MISMATCH = "m.key_mismatch"
    USER_MISMATCH = "m.user_mismatch"
    INVALID_MESSAGE = "m.invalid_message"
    ACCEPTED = "m.accepted"
    MISMATCHED_COMMITMENT = "m.mismatched_commitment"
    MISMATCHED_SAS = "m.mismatched_sas"


class Transport(Enum):
    TO_DEVICE = "to_device"
    IN_ROOM = "in_room"


class State(Enum):
    NEW = "new"  # nothing received yet (responder)
    REQUESTED = "requested"  # we sent the request, waiting for ready
    READY = "ready"  # request and ready exchanged, nobody started
    STARTED = "started"  # we sent start, waiting for accept
    ACCEPTED = "accepted"  # start accepted, waiting for the other side's key
    KEYS_EXCHANGED = "keys_exchanged"  # the SAS can be shown; MACs and done follow
    DONE = "done"
    CANCELLED = "cancelled"


# ---- the emoji (spec: "SAS method: emoji", the table of 64) --------------------------------
EMOJI: tuple[tuple[str, str], ...] = (
    ("🐶", "Dog"), ("🐱", "Cat"), ("🦁", "Lion"), ("🐎", "Horse"), ("🦄", "Unicorn"),
    ("🐷", "Pig"), ("🐘", "Elephant"), ("🐰", "Rabbit"), ("🐼", "Panda"), ("🐓", "Rooster"),
    ("🐧", "Penguin"), ("🐢", "Turtle"), ("🐟", "Fish"), ("🐙", "Octopus"),
    ("🦋", "Butterfly"), ("🌷", "Flower"), ("🌳", "Tree"), ("🌵", "Cactus"),
    ("🍄", "Mushroom"), ("🌏", "Globe"), ("🌙", "Moon"), ("\u2601\ufe0f", "Cloud"),
    ("🔥", "Fire"), ("🍌", "Banana"), ("🍎", "Apple"), ("🍓", "Strawberry"), ("🌽", "Corn"),
    ("🍕", "Pizza"), ("🎂", "Cake"), ("\u2764\ufe0f", "Heart"), ("😀", "Smiley"),
    ("🤖", "Robot"), ("🎩", "Hat"), ("👓", "Glasses"), ("🔧", "Spanner"), ("🎅", "Santa"),
    ("👍", "Thumbs Up"), ("\u2602\ufe0f", "Umbrella"), ("⌛", "Hourglass"), ("⏰", "Clock"),
    ("🎁", "Gift"), ("💡", "Light Bulb"), ("📕", "Book"), ("\u270f\ufe0f", "Pencil"),
    ("📎", "Paperclip"), ("\u2702\ufe0f", "Scissors"), ("🔒", "Lock"), ("🔑", "Key"),
    ("🔨", "Hammer"), ("\u260e\ufe0f", "Telephone"), ("🏁", "Flag"), ("🚂", "Train"),
    ("🚲", "Bicycle"), ("\u2708\ufe0f", "Aeroplane"), ("🚀", "Rocket"), ("🏆", "Trophy"),
    ("⚽", "Ball"), ("🎸", "Guitar"), ("🎺", "Trumpet"), ("🔔", "Bell"), ("⚓", "Anchor"),
    ("🎧", "Headphones"), ("📁", "Folder"), ("📌", "Pin"),
)

_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@dataclass(frozen=True)
class Emoji:
    number: int  # 0..63, the spec's index
    symbol: str
    name: str  # the spec's English name

    @property
    def key(self) -> str:
        """The key of its name in ``templates/<lang>/vocabulary/sas.toml``."""
        return self.name.lower().replace(" ", "_")


def emoji(number: int) -> Emoji:
    symbol, name = EMOJI[number]
    return Emoji(number, symbol, name)


@cache
def emoji_names(lang: str) -> Mapping[str, str]:
    """Emoji key (``dog``, ``light_bulb``...) -> its name in ``lang`` (the ``[sas_emoji]``
    table of ``templates/<lang>/vocabulary/sas.toml``)."""
    with (_TEMPLATES / lang / "vocabulary" / "sas.toml").open("rb") as handle:
        table = tomllib.load(handle).get("sas_emoji", {})
    return {str(k): str(v) for k, v in table.items()}


def emoji_lines(emojis: list[Emoji], lang: str) -> list[str]:
    """``"🐶 Hond"`` for each emoji, names in ``lang`` (English when a name is missing)."""
    names = emoji_names(lang)
    return [f"{e.symbol} {names.get(e.key, e.name)}" for e in emojis]


# ---- what goes in and out ----------------------------------------------------------------
@dataclass(frozen=True)
class OwnDevice:
    """The bot's side: its user, device, device Ed25519 key and master cross-signing key
    (public keys, unpadded base64). Both keys are MAC'd, so the member's client can trust the
    bot's identity, not only this device."""

    user_id: str
    device_id: str
    ed25519: str
    master_key: str | None = None


@dataclass(frozen=True)
class PeerKeys:
    """The other device's Ed25519 key and its user's master key, as the edge knows them."""

    ed25519: str
    master_key: str | None = None


@dataclass(frozen=True)
class Refusal:
    """The other device may not verify the bot; ``reason`` goes into the cancel."""

    reason: str


PeerPolicy = Callable[[str, str], PeerKeys | Refusal]


@dataclass(frozen=True)
class Incoming:
    """A verification event as received. In room: ``event_id`` and ``timestamp_ms``
    (``origin_server_ts``) of the event; to-device: the request's ``timestamp`` is in the
    content. ``sender_device``, when the edge knows it, must be the peer's device."""

    type: str
    content: Mapping[str, Any]
    sender: str
    sender_device: str | None = None
    event_id: str | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Outgoing:
    """An event to send: to-device to the peer's device, or in room as a room event."""

    type: str
    content: dict[str, Any]


@dataclass
class Step:
    """What one call produced. ``send`` in order; the flags say what just happened."""

    send: list[Outgoing] = field(default_factory=list)
    show_sas: bool = False  # the emoji/decimals just became available: post them now
    verified: bool = False  # the peer's MAC just checked out: see ``verified_keys``
    finished: bool = False  # the flow just reached DONE
    cancelled: bool = False  # the flow was just cancelled (by either side)


class _Invalid(Exception):
    """Malformed content: the flow is cancelled with ``m.invalid_message``."""


class _Cancel(Exception):
    def __init__(self, code: CancelCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# ---- routing helpers ---------------------------------------------------------------------
def event_kind(type_: str, content: Mapping[str, Any]) -> str | None:
    """The verification event type (``m.key.verification.*``) of an event, or None. An
    in-room request is an ``m.room.message`` with that ``msgtype``."""
    if type_ == ROOM_MESSAGE:
        return REQUEST if _get(content, "msgtype") == REQUEST else None
    return type_ if type_ in EVENT_TYPES else None


def is_verification_event(type_: str, content: Mapping[str, Any]) -> bool:
    return event_kind(type_, content) is not None


def flow_id(event: Incoming, transport: Transport) -> str | None:
    """The flow an event belongs to: to-device its ``transaction_id``; in room the request's
    event id (the request itself, or what ``m.relates_to`` points at with ``m.reference``)."""
    content = event.content if isinstance(event.content, Mapping) else {}
    if transport is Transport.TO_DEVICE:
        value = _get(content, "transaction_id")
        return value if isinstance(value, str) and value else None
    if event_kind(event.type, content) == REQUEST:
        return event.event_id
    relation = _get(content, "m.relates_to")
    if isinstance(relation, Mapping) and relation.get("rel_type") == "m.reference":
        target = relation.get("event_id")
        return target if isinstance(target, str) and target else None
    return None


def _get(content: Any, key: str) -> Any:
    return content.get(key) if isinstance(content, Mapping) else None


def _str(content: Mapping[str, Any], key: str) -> str:
    value = content.get(key)
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{key} is missing or not a string")
    return value


def _str_list(content: Mapping[str, Any], key: str) -> list[str]:
    value = content.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(f"{key} is missing or not a list of strings")
    return list(value)


def _curve_key(text: str) -> vodozemac.Curve25519PublicKey:
    try:
        if len(decode_b64(text)) != 32:
            raise _Invalid("key is not a Curve25519 public key")
        return vodozemac.Curve25519PublicKey.from_base64(text)
    except (ValueError, TypeError) as exc:  # binascii.Error and vodozemac's errors are these
        raise _Invalid("key is not a Curve25519 public key") from exc


def _commitment(public_key: str, start_content: Mapping[str, Any]) -> str:
    """Spec "SAS verification" step 3: unpadded base64 of sha256(public key (unpadded
    base64) || canonical JSON of the start content)."""
    try:
        canonical: bytes = encode_canonical_json(dict(start_content))
    except (ValueError, TypeError) as exc:
        raise _Invalid("the start content cannot be put in canonical JSON") from exc
    return unpadded_b64(hashlib.sha256(public_key.encode("ascii") + canonical).digest())


def _need(value: _T | None) -> _T:
    """A value the flow must have by now; if not, the events came in an impossible order."""
    if value is None:
        raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "events out of order")
    return value


def _new_transaction_id() -> str:
    return secrets.token_urlsafe(18)


# ---- the machine -------------------------------------------------------------------------
class SasVerification:
    """One SAS verification flow between the bot's device and one other device.

    The bot is normally the responder: create it with the transport and feed it the request
    (or a bare to-device start). :meth:`initiate` makes it the requester instead (used by the
    tests, and available should the bot ever ask a member to verify).
    """

    def __init__(
        self,
        own: OwnDevice,
        policy: PeerPolicy,
        transport: Transport,
        *,
        now_ms: int,
        room_id: str | None = None,
        auto_confirm: bool = True,
    ) -> None:
        self.own = own
        self.transport = transport
        self.room_id = room_id
        self.auto_confirm = auto_confirm
        self._policy = policy
        self.state = State.NEW
        self.flow_id: str | None = None
        self.peer_user: str | None = None
        self.peer_device: str | None = None
        self._peer_keys: PeerKeys | None = None
        self.cancel_code: str | None = None
        self.cancel_reason: str | None = None
        self.verified_keys: dict[str, str] = {}
        self._we_requested = False
        self._has_request = False
        self._we_started = False
        self._start_content: dict[str, Any] | None = None  # the start in force, as sent
        self._their_commitment: str | None = None
        self._mac_method = MAC_V2
        self._sas_strings: list[str] = []
        self._sas: vodozemac.Sas | None = vodozemac.Sas()
        self._public_key = self._sas.public_key.to_base64()
        self._established: vodozemac.EstablishedSas | None = None
        self._their_key: str | None = None
        self._emoji: list[Emoji] | None = None
        self._decimals: tuple[int, int, int] | None = None
        self._mac_sent = False
        self._their_mac_ok = False
        self._done_sent = False
        self._their_done = False
        self._last_ms = now_ms

    # ---- creation as the requester -----------------------------------------------------
    @classmethod
    def initiate(
        cls,
        own: OwnDevice,
        policy: PeerPolicy,
        transport: Transport,
        peer_user: str,
        *,
        now_ms: int,
        peer_device: str | None = None,
        room_id: str | None = None,
        auto_confirm: bool = False,
    ) -> tuple[SasVerification, Outgoing]:
        """A flow we request, and the request to send. To-device it goes to ``peer_device``;
        in room it is an ``m.room.message`` whose event id the edge reports with
        :meth:`request_sent` once the homeserver has answered."""
        machine = cls(own, policy, transport, now_ms=now_ms, room_id=room_id,
                      auto_confirm=auto_confirm)
        machine._we_requested = machine._has_request = True
        machine.peer_user = peer_user
        machine.state = State.REQUESTED
        content: dict[str, Any] = {"from_device": own.device_id, "methods": [SAS_V1]}
        if transport is Transport.TO_DEVICE:
            if not peer_device:
                raise ValueError("a to-device request goes to one device: give peer_device")
            machine.peer_device = peer_device
            machine.flow_id = _new_transaction_id()
            content.update(transaction_id=machine.flow_id, timestamp=now_ms)
            return machine, Outgoing(REQUEST, content)
        content.update(
            msgtype=REQUEST,
            to=peer_user,
            body=f"{own.user_id} is requesting to verify your key, but your client does not "
            "support in-chat key verification. You will need to use legacy key verification "
            "to verify keys.",
        )
        return machine, Outgoing(ROOM_MESSAGE, content)

    def request_sent(self, event_id: str) -> None:
        """In room: the event id the homeserver gave our request (it names the flow)."""
        self.flow_id = event_id

    # ---- public state --------------------------------------------------------------------
    @property
    def we_started(self) -> bool:
        """Whether the start in force is ours (then we are the SAS "starter")."""
        return self._we_started

    def emoji(self) -> list[Emoji] | None:
        """The seven emoji, once the keys are exchanged (None before, or if emoji are not
        among the agreed short authentication strings)."""
        return list(self._emoji) if self._emoji is not None else None

    def decimals(self) -> tuple[int, int, int] | None:
        return self._decimals

    @property
    def finished(self) -> bool:
        return self.state in (State.DONE, State.CANCELLED)

    # ---- driving -------------------------------------------------------------------------
    def receive(self, event: Incoming, now_ms: int) -> Step:
        """Handle one received event; never raises on what the other side sends."""
        if self.finished:
            return Step()
        if now_ms - self._last_ms >= TIMEOUT_MS:
            return self._cancel(CancelCode.TIMEOUT, "the verification took too long")
        try:
            content = event.content
            if not isinstance(content, Mapping):
                raise _Invalid("the content is not an object")
            kind = event_kind(event.type, content)
            if kind is None or not self._ours(event, content, kind):
                return Step()
            step = self._dispatch(kind, event, content, now_ms)
        except _Invalid as exc:
            return self._cancel(CancelCode.INVALID_MESSAGE, f"malformed event: {exc}")
        except _Cancel as exc:
            return self._cancel(exc.code, exc.reason)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # A shape nobody foresaw: still a cancel, never an exception for the edge.
            return self._cancel(
                CancelCode.INVALID_MESSAGE, f"malformed event ({type(exc).__name__})"
            )
        if not self.finished:
            self._last_ms = now_ms
        return step

    def tick(self, now_ms: int) -> Step:
        """Cancel with ``m.timeout`` once the flow has been idle for 10 minutes."""
        if self.finished or now_ms - self._last_ms < TIMEOUT_MS:
            return Step()
        return self._cancel(CancelCode.TIMEOUT, "the verification took too long")

    def start(self, now_ms: int) -> Step:
        """Send our own ``start`` (only after request and ready, before anyone started)."""
        if self.state is not State.READY:
            return Step()
        self._last_ms = now_ms
        return Step(send=[self._send_start()])

    def confirm(self, now_ms: int) -> Step:
        """Our side says the SAS matches: send our MAC (and ``done`` when theirs is in)."""
        if self.state is not State.KEYS_EXCHANGED or self._mac_sent:
            return Step()
        self._last_ms = now_ms
        step = Step(send=[self._mac_event()])
        self._finish_if_complete(step)
        return step

    def mismatch(self, now_ms: int) -> Step:
        """Our side says the SAS does not match."""
        if self.finished:
            return Step()
        return self._cancel(CancelCode.MISMATCHED_SAS, "the short authentication strings differ")

    def cancel(
        self, now_ms: int, code: CancelCode = CancelCode.USER, reason: str = "cancelled"
    ) -> Step:
        if self.finished:
            return Step()
        return self._cancel(code, reason)

    # ---- internals -------------------------------------------------------------------------
    def _ours(self, event: Incoming, content: Mapping[str, Any], kind: str) -> bool:
        """Whether the event belongs to this flow and comes from the other side; anything
        else is ignored (it is not ours to cancel)."""
        own_device = event.sender_device in (None, self.own.device_id)
        in_room = self.transport is Transport.IN_ROOM
        if event.sender == self.own.user_id and (in_room or own_device):
            return False  # our own echo
        if self.peer_user is not None and event.sender != self.peer_user:
            return False
        if (
            event.sender_device is not None
            and self.peer_device is not None
            and event.sender_device != self.peer_device
        ):
            return False
        if self.flow_id is None:
            return kind in (REQUEST, START) and self.state is State.NEW
        return flow_id(event, self.transport) == self.flow_id

    def _dispatch(
        self, kind: str, event: Incoming, content: Mapping[str, Any], now_ms: int
    ) -> Step:
        if kind == CANCEL:
            code = content.get("code")
            reason = content.get("reason")
            self.state = State.CANCELLED
            self.cancel_code = code if isinstance(code, str) else CancelCode.USER.value
            self.cancel_reason = reason if isinstance(reason, str) else ""
            return Step(cancelled=True)
        handler = {
            REQUEST: self._on_request,
            READY: self._on_ready,
            START: self._on_start,
            ACCEPT: self._on_accept,
            KEY: self._on_key,
            MAC: self._on_mac,
            DONE: self._on_done,
        }[kind]
        return handler(event, content, now_ms)

    def _unexpected(self, kind: str) -> _Cancel:
        short = kind.removeprefix(PREFIX)
        return _Cancel(
            CancelCode.UNEXPECTED_MESSAGE, f"{short} was not expected now ({self.state.value})"
        )

    def _meet(self, user_id: str, device_id: str) -> None:
        """Learn the other device, and ask the policy whether it may verify the bot."""
        self.peer_user, self.peer_device = user_id, device_id
        verdict = self._policy(user_id, device_id)
        if isinstance(verdict, Refusal):
            raise _Cancel(CancelCode.USER, verdict.reason)
        self._peer_keys = verdict

    # ---- request / ready -----------------------------------------------------------------
    def _on_request(self, event: Incoming, content: Mapping[str, Any], now_ms: int) -> Step:
        if self.state is not State.NEW:
            raise self._unexpected(REQUEST)
        from_device = _str(content, "from_device")
        methods = _str_list(content, "methods")
        if self.transport is Transport.TO_DEVICE:
            self.flow_id = _str(content, "transaction_id")
            stamp = content.get("timestamp")
        else:
            if not event.event_id:
                raise _Invalid("the request has no event id")
            to = content.get("to")
            if to is not None and to != self.own.user_id:
                self.state = State.CANCELLED  # meant for someone else: not ours to answer
                return Step()
            self.flow_id = event.event_id
            stamp = event.timestamp_ms
        if stamp is not None:
            if not isinstance(stamp, int) or isinstance(stamp, bool):
                raise _Invalid("timestamp is not an integer")
            if now_ms - stamp > TIMEOUT_MS or stamp - now_ms > FUTURE_MS:
                # The spec says to ignore such requests: nothing is sent.
                self.state = State.CANCELLED
                self.cancel_code = CancelCode.TIMEOUT.value
                self.cancel_reason = "the request is too old (or from the future)"
                return Step(cancelled=True)
        self._has_request = True
        self._meet(event.sender, from_device)
        if SAS_V1 not in methods:
            raise _Cancel(CancelCode.UNKNOWN_METHOD, "only emoji verification (m.sas.v1) is "
                          "supported")
        self.state = State.READY
        return Step(send=[self._out(READY, {"from_device": self.own.device_id,
                                            "methods": [SAS_V1]})])

    def _on_ready(self, event: Incoming, content: Mapping[str, Any], now_ms: int) -> Step:
        if self.state is not State.REQUESTED:
            raise self._unexpected(READY)
        from_device = _str(content, "from_device")
        methods = _str_list(content, "methods")
        if self.peer_device is not None and from_device != self.peer_device:
            raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "ready came from another device")
        self._meet(event.sender, from_device)
        if SAS_V1 not in methods:
            raise _Cancel(CancelCode.UNKNOWN_METHOD, "the other side offers no m.sas.v1")
        self.state = State.READY
        # As js-sdk does, the requester starts as soon as the other side is ready.
        return Step(send=[self._send_start()])

    # ---- start / accept ------------------------------------------------------------------
    def _send_start(self) -> Outgoing:
        content = self._out(START, {
            "from_device": self.own.device_id,
            "method": SAS_V1,
            "key_agreement_protocols": [KEY_AGREEMENT],
            "hashes": [HASH],
            "message_authentication_codes": list(MAC_METHODS),
            "short_authentication_string": list(SAS_STRINGS),
        })
        self._we_started = True
        self._start_content = content.content
        self.state = State.STARTED
        return content

    def _on_start(self, event: Incoming, content: Mapping[str, Any], now_ms: int) -> Step:
        if self.state is State.NEW:
            if self.transport is not Transport.TO_DEVICE:
                raise self._unexpected(START)
            # A to-device start with no request before it (older clients, nio).
            self.flow_id = _str(content, "transaction_id")
            self._meet(event.sender, _str(content, "from_device"))
        elif self.state is State.STARTED:
            # Both sides started: the smaller (user id, device id) wins (spec).
            theirs = (event.sender, _str(content, "from_device"))
            if (self.own.user_id, self.own.device_id) < theirs:
                return Step()  # ours stands; theirs is ignored
            if _get(content, "method") != SAS_V1:
                raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "both sides started differently")
            self._we_started = False
        elif self.state is not State.READY:
            raise self._unexpected(START)
        if _str(content, "from_device") != self.peer_device:
            raise _Cancel(CancelCode.UNEXPECTED_MESSAGE, "start came from another device")
        if _str(content, "method") != SAS_V1:
            raise _Cancel(CancelCode.UNKNOWN_METHOD, "only m.sas.v1 is supported")
        agreements = _str_list(content, "key_agreement_protocols")
        hashes = _str_list(content, "hashes")
        macs = _str_list(content, "message_authentication_codes")
        strings = _str_list(content, "short_authentication_string")
        mac_method = next((m for m in MAC_METHODS if m in macs), None)
        sas_strings = [s for s in SAS_STRINGS if s in strings]
        if KEY_AGREEMENT not in agreements or HASH not in hashes or mac_method is None:
            raise _Cancel(CancelCode.UNKNOWN_METHOD, "no common key agreement, hash or MAC "
                          f"(the bot supports {KEY_AGREEMENT}, {HASH}, {MAC_V2})")
        if not sas_strings:
            raise _Cancel(CancelCode.UNKNOWN_METHOD, "neither emoji nor decimal offered")
        self._we_started = False
        self._start_content = dict(content)
        self._mac_method = mac_method
        self._sas_strings = sas_strings
        self.state = State.ACCEPTED
        return Step(send=[self._out(ACCEPT, {
            "method": SAS_V1,
            "key_agreement_protocol": KEY_AGREEMENT,
            "hash": HASH,
            "message_authentication_code": mac_method,
            "short_authentication_string": sas_strings,
            "commitment": _commitment(self._public_key, content),
        })])

    def _on_accept(self, event: Incoming, content: Mapping[str, Any], now_ms: int) -> Step:
        if self.state is not State.STARTED:
            raise self._unexpected(ACCEPT)
        agreement = _str(content, "key_agreement_protocol")
        hash_ = _str(content, "hash")
        mac_method = _str(content, "message_authentication_code")
        strings = _str_list(content, "short_authentication_string")
        commitment = _str(content, "commitment")
        if (
            agreement != KEY_AGREEMENT
            or hash_ != HASH
            or mac_method not in MAC_METHODS
            or not strings
            or any(s not in SAS_STRINGS for s in strings)
        ):
            raise _Cancel(CancelCode.UNKNOWN_METHOD, "the accept chose what we did not offer")
        self._their_commitment = commitment
        self._mac_method = mac_method
        self._sas_strings = [s for s in SAS_STRINGS if s in strings]
        self.state = State.ACCEPTED
        return Step(send=[self._out(KEY, {"key": self._public_key})])

    # ---- key exchange --------------------------------------------------------------------
    def _on_key(self, event: Incoming, content: Mapping[str, Any], now_ms: int) -> Step:
        if self.state is not State.ACCEPTED or self._established is not None:
            raise self._unexpected(KEY)
        their_key = _str(content, "key")
        public = _curve_key(their_key)
        send: list[Outgoing] = []
        if self._we_started:
            expected = _commitment(their_key, _need(self._start_content))
            if not hmac.compare_digest(expected, _need(self._their_commitment)):
                raise _Cancel(CancelCode.MISMATCHED_COMMITMENT,
                              "the key does not match the commitment in the accept")
        else:
            send.append(self._out(KEY, {"key": self._public_key}))
        sas, self._sas = self._sas, None
        if sas is None:
            raise self._unexpected(KEY)
        try:
            self._established = sas.diffie_hellman(public)
        except ValueError as exc:  # vodozemac.SasException: e.g. a non-contributory key
            raise _Cancel(CancelCode.KEY_MISMATCH, "the key agreement failed") from exc
        self._their_key = their_key
        sas_bytes = self._established.bytes(self._sas_info())
        if "emoji" in self._sas_strings:
            self._emoji = [emoji(i & 0x3F) for i in sas_bytes.emoji_indices[:7]]
        a, b, c = sas_bytes.decimals
        self._decimals = (a, b, c)
        self.state = State.KEYS_EXCHANGED
        return Step(send=send, show_sas=True)

    def _sas_info(self) -> str:
        """Spec "SAS method: curve25519-hkdf-sha256": the HKDF info naming starter, then
        accepter (user | device | key), then the flow."""
        ours = f"{self.own.user_id}|{self.own.device_id}|{self._public_key}"
        theirs = f"{_need(self.peer_user)}|{_need(self.peer_device)}|{_need(self._their_key)}"
        first, second = (ours, theirs) if self._we_started else (theirs, ours)
        return f"MATRIX_KEY_VERIFICATION_SAS|{first}|{second}|{_need(self.flow_id)}"

    # ---- MACs and done -------------------------------------------------------------------
    def _mac(self, text: str, info: str) -> str:
        established = _need(self._established)
        if self._mac_method == MAC_V2:
            return established.calculate_mac(text, info)
        return established.calculate_mac_invalid_base64(text, info)

    def _mac_base(self, sender: tuple[str, str], receiver: tuple[str, str]) -> str:
        """Spec "MAC calculation": the info before the key id (or ``KEY_IDS``)."""
        flow = _need(self.flow_id)
        return f"MATRIX_KEY_VERIFICATION_MAC{sender[0]}{sender[1]}{receiver[0]}{receiver[1]}{flow}"

    def _mac_event(self) -> Outgoing:
        base = self._mac_base((self.own.user_id, self.own.device_id),
                              (_need(self.peer_user), _need(self.peer_device)))
        keys = {f"ed25519:{self.own.device_id}": self.own.ed25519}
        if self.own.master_key:
            keys[f"ed25519:{self.own.master_key}"] = self.own.master_key
        macs = {key_id: self._mac(value, base + key_id) for key_id, value in keys.items()}
        self._mac_sent = True
        return self._out(MAC, {"mac": macs, "keys": self._mac(",".join(sorted(keys)),
                                                             base + "KEY_IDS")})

    def _on_mac(self, event: Incoming, content: Mapping[str, Any], now_ms: int) -> Step:
        if self.state is not State.KEYS_EXCHANGED or self._their_mac_ok:
            raise self._unexpected(MAC)
        macs = content.get("mac")
        if not isinstance(macs, Mapping) or not macs or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in macs.items()
        ):
            raise _Invalid("mac is missing or not a map of strings")
        keys_mac = _str(content, "keys")
        peer_keys = _need(self._peer_keys)
        base = self._mac_base((_need(self.peer_user), _need(self.peer_device)),
                              (self.own.user_id, self.own.device_id))
        if not hmac.compare_digest(self._mac(",".join(sorted(macs)), base + "KEY_IDS"),
                                   keys_mac):
            raise _Cancel(CancelCode.KEY_MISMATCH, "the list of MAC'd keys does not match")
        known = {f"ed25519:{self.peer_device}": peer_keys.ed25519}
        if peer_keys.master_key:
            known[f"ed25519:{peer_keys.master_key}"] = peer_keys.master_key
        verified: dict[str, str] = {}
        for key_id, tag in macs.items():
            if key_id not in known:
                continue  # a key we do not know (spec: ignore it)
            if not hmac.compare_digest(self._mac(known[key_id], base + key_id), tag):
                raise _Cancel(CancelCode.KEY_MISMATCH, f"the MAC of {key_id} does not match")
            verified[key_id] = known[key_id]
        if not verified:
            raise _Cancel(CancelCode.KEY_MISMATCH, "none of the MAC'd keys is one we know")
        self.verified_keys = verified
        self._their_mac_ok = True
        step = Step(verified=True)
        if not self._mac_sent and self.auto_confirm:
            step.send.append(self._mac_event())
        self._finish_if_complete(step)
        return step

    def _finish_if_complete(self, step: Step) -> None:
        if not (self._mac_sent and self._their_mac_ok):
            return
        if not self._has_request:
            self.state = State.DONE  # the old to-device flow has no done events
            step.finished = True
            return
        if not self._done_sent:
            step.send.append(self._out(DONE, {}))
            self._done_sent = True
        if self._their_done:
            self.state = State.DONE
            step.finished = True

    def _on_done(self, event: Incoming, content: Mapping[str, Any], now_ms: int) -> Step:
        if self.state is not State.KEYS_EXCHANGED or not self._their_mac_ok or self._their_done:
            raise self._unexpected(DONE)
        self._their_done = True
        step = Step()
        self._finish_if_complete(step)
        return step

    # ---- sending -------------------------------------------------------------------------
    def _out(self, type_: str, content: dict[str, Any]) -> Outgoing:
        """The event with this flow's reference: ``transaction_id`` or ``m.relates_to``."""
        if self.transport is Transport.TO_DEVICE:
            content["transaction_id"] = self.flow_id
        else:
            content["m.relates_to"] = {"rel_type": "m.reference", "event_id": self.flow_id}
        return Outgoing(type_, content)

    def _cancel(self, code: CancelCode, reason: str) -> Step:
        self.state = State.CANCELLED
        self.cancel_code, self.cancel_reason = code.value, reason
        self._sas = None
        if self.flow_id is None or self.peer_user is None:
            return Step(cancelled=True)  # nobody to tell
        return Step(send=[self._out(CANCEL, {"code": code.value, "reason": reason})],
                    cancelled=True)
