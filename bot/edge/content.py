"""Outbound, first half: the core's output values turned into Matrix event contents (plain
dicts: notices, reply relation, HTML, mentions, attachments, polls, redactions).

No nio and no templates here: the words come from a :class:`Renderer` (``bot.core.render``).
The core stores the result in the outbox in the same transaction as the command's effect;
:mod:`bot.edge.outbound` sends it.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from bot.edge.shapes import parse_user_id
from commands.framework import Incoming, Output, PollEnd, PollStart, Redact, Reply


class Rendered(Protocol):
    @property
    def body(self) -> str: ...
    @property
    def html(self) -> str: ...


class Renderer(Protocol):
    """Where the words come from (``bot.core.render`` is one)."""

    def render(self, lang: str, template: str, data: Mapping[str, Any] | None = None
               ) -> Rendered: ...
    def text(self, lang: str, key: str, /, **data: Any) -> str: ...
    def attachment_bytes(self, lang: str, template: str, data: Mapping[str, Any]) -> bytes: ...

HTML = "org.matrix.custom.html"
POLL_START = "org.matrix.msc3381.poll.start"
POLL_RESPONSE = "org.matrix.msc3381.poll.response"
POLL_END = "org.matrix.msc3381.poll.end"
POLL_ANSWERS = ("yes", "no", "abstain")


def mention_pill(user_id: str) -> str:
    """An HTML mention pill for ``user_id``: its text HTML-escaped, its matrix.to link
    percent-encoded; a value that is not a Matrix user id (by the spec's grammar) is
    refused with ``ValueError``."""
    if parse_user_id(user_id) is None:
        raise ValueError("not a Matrix user id")
    href = "https://matrix.to/#/" + urllib.parse.quote(user_id, safe="@:")
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(user_id)}</a>'


#: The homeserver refuses an event whose whole PDU is over 64 KiB (spec: "the event limit").
EVENT_LIMIT = 65_536
#: What the homeserver and Megolm add around the encrypted plaintext: sender, room, sender
#: key, session and device ids, hashes, signatures, auth and prev events, the relation.
ENVELOPE_BYTES = 2_048
_MX_REPLY = re.compile(r"<mx-reply>.*?</mx-reply>", re.DOTALL)


def event_size(event_type: str, content: dict[str, Any], room_id: str = "") -> int:
    """The size of the event the homeserver will store, measured on the serialised
    plaintext as Megolm carries it (base64 of the AES-CBC ciphertext, MAC and signature)
    plus the envelope: an upper bound for an unencrypted room too."""
    plaintext = json.dumps({"type": event_type, "content": content, "room_id": room_id},
                           ensure_ascii=False, separators=(",", ":")).encode()
    ciphertext = (len(plaintext) // 16 + 1) * 16 + 1 + 10 + 8 + 64
    return math.ceil(ciphertext * 4 / 3) + ENVELOPE_BYTES


def fit_event(event_type: str, content: dict[str, Any], marker: str,
              room_id: str = "", limit: int = EVENT_LIMIT) -> dict[str, Any]:
    """``content`` made to fit the event limit: as it is when it fits; else without any
    quoted reply fallback (a reply to a huge message never quotes it); else its body
    shortened with ``marker`` at the end and its HTML replaced by the escaped shortened
    text (cutting markup would break it)."""
    if event_size(event_type, content, room_id) <= limit:
        return content
    fitted = dict(content)
    if isinstance(fitted.get("formatted_body"), str):
        fitted["formatted_body"] = _MX_REPLY.sub("", fitted["formatted_body"])
    if isinstance(fitted.get("body"), str) and fitted["body"].startswith("> "):
        lines = fitted["body"].split("\n")
        while lines and lines[0].startswith("> "):
            lines.pop(0)
        fitted["body"] = "\n".join(lines).lstrip("\n")
    if event_size(event_type, fitted, room_id) <= limit:
        return fitted
    body = str(fitted.get("body", ""))
    low, high = 0, len(body)
    best = ""
    while low <= high:  # the longest prefix that fits, with the marker
        middle = (low + high) // 2
        text = body[:middle].rstrip() + "\n\n" + marker
        trial = {**fitted, "body": text}
        if "formatted_body" in trial:
            trial["formatted_body"] = html.escape(text).replace("\n", "<br>")
        if event_size(event_type, trial, room_id) <= limit:
            best, low = text, middle + 1
        else:
            high = middle - 1
    fitted["body"] = best or marker
    if "formatted_body" in fitted:
        fitted["formatted_body"] = html.escape(fitted["body"]).replace("\n", "<br>")
    return fitted


def message_content(
    words: Renderer, lang: str, reply: Reply, incoming: Incoming | None
) -> dict[str, Any]:
    rendered = words.render(lang, reply.template, reply.data)
    body, html = rendered.body, rendered.html
    content: dict[str, Any] = {
        "msgtype": "m.text" if reply.notify else "m.notice",
        "body": body,
        "format": HTML,
        "formatted_body": html,
        "m.mentions": {"user_ids": list(reply.mentions)} if reply.notify else {},
    }
    if reply.notify and reply.mentions:
        # Mentions are roster user ids (checked against the Matrix grammar at config load);
        # a value that is not one never becomes markup.
        pills = " ".join(mention_pill(u) for u in reply.mentions if parse_user_id(u))
        content["body"] = " ".join(reply.mentions) + ": " + body
        content["formatted_body"] = f"{pills}: {html}"
    if incoming is not None and reply.in_reply and reply.room_id is None and not reply.direct_to:
        relates: dict[str, Any] = {"m.in_reply_to": {"event_id": incoming.event_id}}
        if incoming.thread_root:
            relates.update(
                {"rel_type": "m.thread", "event_id": incoming.thread_root,
                 "is_falling_back": False}
            )
        content["m.relates_to"] = relates
    return fit_event("m.room.message", content, words.text(lang, "outbox.shortened"))


#: Replies that may go to a configured room that is not encrypted (spec §11).
REFUSALS = frozenset({"msg:error.unencrypted"})


def outbox_items(
    words: Renderer, lang: str, outputs: Sequence[Output], incoming: Incoming | None,
    default_room: str,
) -> list[dict[str, Any]]:
    """Each output as ``{"kind", "room", "content", ...}`` for the outbox."""
    items: list[dict[str, Any]] = []
    for output in outputs:
        if isinstance(output, Reply):
            room = output.room_id or default_room
            item: dict[str, Any] = {
                "kind": "message",
                "room": room,
                "direct_to": output.direct_to,
                "content": message_content(words, lang, output, incoming),
            }
            if output.delivery and output.direct_to:
                item["delivery"] = output.delivery  # grouped by the core's enqueue step
            if output.template in REFUSALS:
                item["refusal"] = True  # the one thing an unencrypted room may receive
            if output.attachment is not None:
                item["attachment"] = {
                    "filename": output.attachment.filename,
                    "mimetype": output.attachment.mimetype,
                    "data": base64.b64encode(words.attachment_bytes(
                        lang, output.attachment.template, output.attachment.data)).decode(),
                }
            items.append(item)
        elif isinstance(output, Redact):
            if incoming is not None:
                redact: dict[str, Any] = {
                    "kind": "redact",
                    "room": default_room,
                    "event_id": incoming.event_id,
                    "reason": words.text(lang, output.reason_template.removeprefix("msg:")),
                }
                previous = items[-1] if items else None
                if output.notice_if_failed is not None and previous is not None and (
                        previous["kind"] == "message" and previous["room"] == default_room
                        and not previous["direct_to"] and "attachment" not in previous):
                    # The refusal goes out with the redaction, after it: its words when the
                    # redaction succeeded (``content``), else ``notice_if_failed``.
                    items.pop()
                    redact["content"] = previous["content"]
                    redact["notice_if_failed"] = message_content(
                        words, lang, output.notice_if_failed, incoming)
                items.append(redact)
        elif isinstance(output, PollStart):
            question = words.render(lang, output.question_template, output.data)
            answers = [
                {"id": answer, "org.matrix.msc1767.text": words.text(lang, f"poll.{answer}")}
                for answer in POLL_ANSWERS
            ]
            fallback = question.body + "\n" + "\n".join(
                f"{i}. {a['org.matrix.msc1767.text']}" for i, a in enumerate(answers, 1)
            )
            items.append(
                {
                    "kind": "poll_start",
                    "room": default_room,
                    "vote_id": output.vote_id,
                    "content": {
                        POLL_START: {
                            "kind": "org.matrix.msc3381.poll.disclosed",
                            "max_selections": 1,
                            "question": {"org.matrix.msc1767.text": question.body},
                            "answers": answers,
                        },
                        "org.matrix.msc1767.text": fallback,
                        "m.mentions": {},
                    },
                }
            )
        elif isinstance(output, PollEnd):
            outcome = words.render(lang, output.outcome_template, output.data)
            items.append(
                {
                    "kind": "poll_end",
                    "room": default_room,
                    "vote_id": output.vote_id,
                    "content": {
                        "org.matrix.msc1767.text": outcome.body,
                        "body": outcome.body,
                        "m.mentions": {},
                    },
                }
            )
    return items
