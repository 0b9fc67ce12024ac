"""The shape of an inbound event, checked before anything reads it (SPEC §11, issue 15).

Any room member can send any JSON: ``"m.relates_to": "x"``, a list where a dict belongs, a
body of 100 kB, ``origin_server_ts`` in the year 3 million. The homeserver passes it on. Code
that reads such content directly raises, and one raising event used to stop the sync loop in
every room, for good. This module is the only place that reads raw event content: it turns an
event dict into a plain, validated value or a :class:`Malformed` with the *kind* of defect
(never the content), and it never raises, whatever the input.

Pure: no nio, no I/O, no clock. The edge calls :func:`inbound` for every timeline event of a
table or direct room; the core handles the value or counts the defect and marks the event
processed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "MAX_BODY",
    "POLL_RESPONSE",
    "Edit",
    "Malformed",
    "PollAnswer",
    "Text",
    "event_id_ok",
    "inbound",
    "parse_user_id",
    "timestamp",
]

POLL_RESPONSE = "org.matrix.msc3381.poll.response"
#: Bodies longer than this are never commands (SPEC §11: inputs over 4,000 characters are
#: refused); the body is kept whole up to a hard cap so that the refusal can say so.
MAX_BODY = 65_536
#: The spec's limit on identifiers (user, room and event ids): 255 bytes.
MAX_ID = 255
#: origin_server_ts outside [2000-01-01, 2200-01-01) is absurd.
_TS_MIN = 946_684_800_000
_TS_MAX = 7_258_118_400_000

_EVENT_ID = re.compile(r"\$[\x21-\x7e]+")
# User ids (Matrix spec, appendices "User Identifiers" and "Server names"): the historical
# localpart grammar (any printable ASCII but ':') is accepted from the homeserver; the server
# name is a DNS name, an IPv4 address or a bracketed IPv6 address, with an optional port.
_LOCALPART = r"[\x21-\x39\x3b-\x7e]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_DNS = rf"{_LABEL}(?:\.{_LABEL})*"
_IPV4 = r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
_IPV6 = r"\[[0-9A-Fa-f:.]{2,45}\]"
_SERVER = rf"(?:{_IPV4}|{_IPV6}|{_DNS})(?::(?P<port>[0-9]{{1,5}}))?"
_USER_ID = re.compile(rf"@(?P<local>{_LOCALPART}):(?P<server>{_SERVER})")
#: What a roster entry may use: the current (strict) localpart grammar.
_STRICT_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")


@dataclass(frozen=True)
class Text:
    """An ``m.text`` message: a possible command (an emote is never one)."""

    event_id: str
    sender: str
    body: str
    at: datetime
    thread_root: str | None = None


@dataclass(frozen=True)
class Edit:
    """An ``m.replace`` edit: never run as a command, but its new text is screened."""

    event_id: str
    sender: str
    body: str
    replaces: str
    at: datetime


@dataclass(frozen=True)
class PollAnswer:
    """An MSC3381 poll response: a ballot if the poll is one of the bot's votes."""

    event_id: str
    sender: str
    poll_event_id: str
    answer: str
    at: datetime


@dataclass(frozen=True)
class Malformed:
    """An event that cannot be read; ``reason`` names the defect's kind, never content."""

    event_id: str | None
    reason: str


Inbound = Text | Edit | PollAnswer | Malformed | None


def parse_user_id(value: Any, *, strict: bool = False) -> str | None:
    """``value`` when it is a Matrix user id by the spec's grammar, else None.

    ``strict`` asks for the current localpart grammar (lower case, digits, ``._=-/+``): what a
    roster entry or a command argument may name. Ids from the homeserver are checked with the
    historical grammar, which the spec asks clients to accept.
    """
    if not isinstance(value, str) or len(value.encode("utf-8", "replace")) > MAX_ID:
        return None
    match = _USER_ID.fullmatch(value)
    if match is None:
        return None
    if strict and not _STRICT_LOCALPART.fullmatch(match.group("local")):
        return None
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        return None
    return value


def event_id_ok(value: Any) -> bool:
    return (isinstance(value, str) and len(value) <= MAX_ID
            and _EVENT_ID.fullmatch(value) is not None)


def timestamp(value: Any) -> datetime | None:
    """``origin_server_ts`` (milliseconds) as an aware datetime, None when absent or absurd."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if not _TS_MIN <= value < _TS_MAX:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def inbound(event: Any) -> Inbound:
    """The plain value of one timeline event (its decrypted form for an encrypted one).

    None: an event the bot has nothing to do with (another type, a notice, a state event).
    :class:`Malformed`: an event of a type the bot reads whose shape is wrong.
    """
    try:
        return _inbound(event)
    except Exception:  # belt and braces: this function must never raise
        event_id = event.get("event_id") if isinstance(event, Mapping) else None
        return Malformed(event_id if event_id_ok(event_id) else None, "unreadable")


def _inbound(event: Any) -> Inbound:
    if not isinstance(event, Mapping):
        return Malformed(None, "not_an_object")
    kind = event.get("type")
    if kind not in ("m.room.message", POLL_RESPONSE):
        return None
    raw_id = event.get("event_id")
    if not event_id_ok(raw_id):
        return Malformed(None, "event_id")
    event_id = str(raw_id)
    sender = parse_user_id(event.get("sender"))
    if sender is None:
        return Malformed(event_id, "sender")
    if "state_key" in event:
        return None
    at = timestamp(event.get("origin_server_ts"))
    if at is None:
        return Malformed(event_id, "timestamp")
    content = _mapping(event.get("content"))
    if content is None:
        return Malformed(event_id, "content")
    relates: Mapping[str, Any] | None = None
    if "m.relates_to" in content:
        relates = _mapping(content["m.relates_to"])
        if relates is None:
            return Malformed(event_id, "relation")
        for key in ("rel_type", "event_id"):
            if key in relates and not isinstance(relates[key], str):
                return Malformed(event_id, "relation")
    if kind == POLL_RESPONSE:
        return _poll_answer(event_id, sender, at, content, relates)
    return _message(event_id, sender, at, content, relates)


def _message(event_id: str, sender: str, at: datetime, content: Mapping[str, Any],
             relates: Mapping[str, Any] | None) -> Inbound:
    msgtype = content.get("msgtype")
    if not isinstance(msgtype, str):
        return Malformed(event_id, "msgtype")
    if msgtype != "m.text":
        return None  # emotes, notices, files, images, verification requests: not commands
    rel_type = relates.get("rel_type") if relates else None
    if rel_type == "m.replace":
        target = relates.get("event_id") if relates else None
        new = _mapping(content.get("m.new_content"))
        body = new.get("body") if new is not None else content.get("body")
        if not event_id_ok(target) or not isinstance(body, str):
            return Malformed(event_id, "edit")
        return Edit(event_id, sender, body[:MAX_BODY], str(target), at)
    body = content.get("body")
    if not isinstance(body, str):
        return Malformed(event_id, "body")
    thread_root = None
    if rel_type == "m.thread":
        thread_root = relates.get("event_id") if relates else None
        if not event_id_ok(thread_root):
            return Malformed(event_id, "relation")
    return Text(event_id, sender, body[:MAX_BODY], at, thread_root)


def _poll_answer(event_id: str, sender: str, at: datetime, content: Mapping[str, Any],
                 relates: Mapping[str, Any] | None) -> Inbound:
    if relates is None or relates.get("rel_type") != "m.reference":
        return Malformed(event_id, "relation")
    poll = relates.get("event_id")
    if not event_id_ok(poll):
        return Malformed(event_id, "relation")
    response = _mapping(content.get(POLL_RESPONSE))
    answers = response.get("answers") if response is not None else None
    if not isinstance(answers, list) or not answers or not isinstance(answers[0], str) \
            or len(answers[0]) > MAX_ID:
        return Malformed(event_id, "poll_answer")
    return PollAnswer(event_id, sender, str(poll), answers[0], at)
