"""The edge reads an event only through its validated shape (issue 15): whatever a room member
sends, :func:`bot.edge.shapes.inbound` returns a plain value or the kind of defect, and never
raises. The poison events that stopped the sync loop on main are here by name."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings

from bot.edge.shapes import (
    MAX_BODY,
    Edit,
    Malformed,
    PollAnswer,
    Text,
    event_id_ok,
    inbound,
    parse_user_id,
    timestamp,
)
from tests.event_strategies import events

EXAMPLES = int(os.environ.get("LIVCR_FUZZ_EXAMPLES", "300"))
TS = 1_795_000_000_000  # 2026-11-18


def message(content: Any, **event: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": "$abc", "sender": "@an.peeters:example.be",
            "origin_server_ts": TS, "content": content, **event}


def test_a_command_becomes_a_text_value() -> None:
    value = inbound(message({"msgtype": "m.text", "body": "!help"}))
    assert value == Text("$abc", "@an.peeters:example.be", "!help",
                         datetime.fromtimestamp(TS / 1000, UTC))


def test_a_command_in_a_thread_keeps_its_root() -> None:
    value = inbound(message({"msgtype": "m.text", "body": "!help",
                             "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}))
    assert isinstance(value, Text)
    assert value.thread_root == "$root"


@pytest.mark.parametrize("relation", ["x", 5, ["m.thread"], None, True, 1.5])
def test_a_relation_that_is_not_an_object_is_malformed_not_fatal(relation: Any) -> None:
    # On main: AttributeError in _on_text, the sync loop retried the same token forever.
    value = inbound(message({"msgtype": "m.text", "body": "!help", "m.relates_to": relation}))
    assert value == Malformed("$abc", "relation")


@pytest.mark.parametrize("ts", [10**17, -1, 0, "1795000000000", 1.7e12, True, None])
def test_an_absurd_timestamp_is_malformed_not_fatal(ts: Any) -> None:
    # On main: datetime.fromtimestamp -> "year 3170843 is out of range", the loop stuck.
    assert inbound(message({"msgtype": "m.text", "body": "!help"}, origin_server_ts=ts)) \
        == Malformed("$abc", "timestamp")


def test_timestamps_in_range_are_aware_utc() -> None:
    at = timestamp(TS)
    assert at is not None
    assert at.tzinfo is UTC
    assert timestamp(946_684_799_999) is None
    assert timestamp(7_258_118_400_000) is None


@pytest.mark.parametrize("content", [None, "x", [], 5])
def test_content_that_is_not_an_object_is_malformed(content: Any) -> None:
    assert inbound(message(content)) == Malformed("$abc", "content")


@pytest.mark.parametrize(("content", "reason"), [
    ({"body": "!help"}, "msgtype"),
    ({"msgtype": 5, "body": "!help"}, "msgtype"),
    ({"msgtype": "m.text"}, "body"),
    ({"msgtype": "m.text", "body": ["!help"]}, "body"),
    ({"msgtype": "m.text", "body": "!help",
      "m.relates_to": {"rel_type": "m.thread", "event_id": 7}}, "relation"),
    ({"msgtype": "m.text", "body": "!help",
      "m.relates_to": {"rel_type": "m.thread"}}, "relation"),
])
def test_wrong_types_in_a_message_are_named_by_kind(content: dict[str, Any],
                                                    reason: str) -> None:
    assert inbound(message(content)) == Malformed("$abc", reason)


def test_notices_files_and_other_types_are_not_commands() -> None:
    assert inbound(message({"msgtype": "m.notice", "body": "!help"})) is None
    assert inbound(message({"msgtype": "m.file", "body": "!help"})) is None
    assert inbound({**message({}), "type": "m.reaction"}) is None
    assert inbound(message({"msgtype": "m.text", "body": "!help"}, state_key="")) is None


def test_an_edit_is_an_edit_whatever_its_fallback_says() -> None:
    # On main an edit whose fallback did not start with "* " ran as a new command.
    value = inbound(message({
        "msgtype": "m.text", "body": "!members add @spy:example.be partner X",
        "m.new_content": {"msgtype": "m.text", "body": "!members add @spy:example.be partner X"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$original"},
    }))
    assert isinstance(value, Edit)
    assert value.replaces == "$original"
    assert value.body.startswith("!members")


def test_a_huge_body_is_capped_not_copied_whole() -> None:
    value = inbound(message({"msgtype": "m.text", "body": "!help " + "x" * 200_000}))
    assert isinstance(value, Text)
    assert len(value.body) == MAX_BODY


def test_a_poll_answer_becomes_a_plain_value() -> None:
    value = inbound({
        "type": "org.matrix.msc3381.poll.response", "event_id": "$p", "origin_server_ts": TS,
        "sender": "@sara.jacobs:example.be",
        "content": {"m.relates_to": {"rel_type": "m.reference", "event_id": "$poll"},
                    "org.matrix.msc3381.poll.response": {"answers": ["yes"]}},
    })
    assert value == PollAnswer("$p", "@sara.jacobs:example.be", "$poll", "yes",
                               datetime.fromtimestamp(TS / 1000, UTC))


@pytest.mark.parametrize("content", [
    {"org.matrix.msc3381.poll.response": {"answers": ["yes"]}},
    {"m.relates_to": {"rel_type": "m.reference", "event_id": "$poll"}},
    {"m.relates_to": {"rel_type": "m.reference", "event_id": "$poll"},
     "org.matrix.msc3381.poll.response": {"answers": "yes"}},
    {"m.relates_to": {"rel_type": "m.reference", "event_id": "$poll"},
     "org.matrix.msc3381.poll.response": {"answers": [{"id": "yes"}]}},
    {"m.relates_to": "poll", "org.matrix.msc3381.poll.response": {"answers": ["yes"]}},
])
def test_a_broken_poll_answer_is_malformed(content: dict[str, Any]) -> None:
    value = inbound({"type": "org.matrix.msc3381.poll.response", "event_id": "$p",
                     "origin_server_ts": TS, "sender": "@sara.jacobs:example.be",
                     "content": content})
    assert isinstance(value, Malformed)


@pytest.mark.parametrize("user_id", [
    "@an.peeters:example.be", "@an:localhost:8448", "@x:[::1]", "@x:127.0.0.1:8008",
    "@Old_Style!:example.be",
])
def test_user_ids_of_the_matrix_grammar_are_accepted(user_id: str) -> None:
    assert parse_user_id(user_id) == user_id


@pytest.mark.parametrize("user_id", [
    "an:example.be", "@an", "@an:", "@:example.be", "@an:exa mple.be", "@an:example.be:99999",
    "@an:-bad-.be", "@a<b>:example.be\n", 5, None, "@" + "a" * 250 + ":example.be",
    "@an:example.be/evil", "@an:example.be?x",
])
def test_strings_that_are_not_user_ids_are_refused(user_id: Any) -> None:
    assert parse_user_id(user_id) is None


def test_strict_user_ids_use_the_current_localpart_grammar() -> None:
    assert parse_user_id("@an.peeters:example.be", strict=True) == "@an.peeters:example.be"
    assert parse_user_id("@An<b>:example.be", strict=True) is None
    assert parse_user_id('@x"y:example.be', strict=True) is None


def test_event_ids() -> None:
    assert event_id_ok("$abc:example.be")
    assert event_id_ok("$YUwRidLecu-N1DmuW8wXu1wB3tCrILp2HwmKDpNGVdo")
    assert not event_id_ok("abc")
    assert not event_id_ok("$")
    assert not event_id_ok("$a b")
    assert not event_id_ok(5)


@settings(max_examples=EXAMPLES, deadline=None)
@given(events)
def test_any_event_structure_gives_a_value_or_a_named_defect_never_an_exception(
    event: Any,
) -> None:
    value = inbound(event)
    assert value is None or isinstance(value, Text | Edit | PollAnswer | Malformed)
    if isinstance(value, Text | Edit | PollAnswer):
        assert event_id_ok(value.event_id)
        assert parse_user_id(value.sender) == value.sender
        assert value.at.tzinfo is UTC
    if isinstance(value, Text | Edit):
        assert isinstance(value.body, str)
        assert len(value.body) <= MAX_BODY
    if isinstance(value, Malformed):
        assert value.event_id is None or event_id_ok(value.event_id)
        assert value.reason.isidentifier()
