"""Hypothesis strategies over whole Matrix event JSON (issue 15): not only command bodies but
the shape of events — wrong types anywhere, unknown and broken relations, absurd timestamps,
huge bodies, missing fields — as a hostile room member or a broken client would send them."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: JSON leaves and small containers of any type: what a wrong-typed field may hold.
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=12,
)

event_ids = st.one_of(
    st.from_regex(r"\$[A-Za-z0-9_\-]{8,43}", fullmatch=True),
    json_values,
    st.just(""), st.just("$"), st.text(min_size=256, max_size=300).map(lambda t: "$" + t),
)
user_ids = st.one_of(
    st.sampled_from(["@an.peeters:example.be", "@eve:example.be", "@x:[::1]:8448",
                     "@weird\"<b>:example.be"]),
    st.from_regex(r"@[a-z0-9._=\-/+]{1,20}:[a-z0-9.\-]{1,20}(:[0-9]{1,6})?", fullmatch=True),
    json_values,
)
timestamps = st.one_of(
    st.integers(min_value=946_684_800_000, max_value=7_258_118_399_999),
    st.integers(), st.floats(allow_nan=True), json_values,
    st.just(10**17), st.just(-1), st.just(True),
)
relations = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={
        "rel_type": st.sampled_from(["m.thread", "m.replace", "m.reference", "m.annotation",
                                     "x.unknown"]) | json_values,
        "event_id": event_ids,
        "m.in_reply_to": json_values | st.fixed_dictionaries({"event_id": event_ids}),
        "is_falling_back": json_values,
    }),
)
bodies = st.one_of(
    st.sampled_from(["!help", "/help", "!vote yes", "!meeting start", "* !help", ""]),
    st.text(max_size=200), json_values,
    st.integers(min_value=4_000, max_value=70_000).map(lambda n: "!help " + "x" * n),
)
message_contents = st.fixed_dictionaries({}, optional={
    "msgtype": st.sampled_from(["m.text", "m.emote", "m.notice", "m.file",
                                "m.key.verification.request"]) | json_values,
    "body": bodies,
    "m.relates_to": relations,
    "m.new_content": json_values | st.fixed_dictionaries({}, optional={"body": bodies}),
    "format": json_values,
    "formatted_body": json_values,
})
poll_contents = st.fixed_dictionaries({}, optional={
    "m.relates_to": relations,
    "org.matrix.msc3381.poll.response": json_values | st.fixed_dictionaries(
        {}, optional={"answers": json_values | st.lists(st.text(max_size=300), max_size=3)}),
})


def _event(kinds: st.SearchStrategy[Any], content: st.SearchStrategy[Any],
           ) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"type": kinds},
        optional={
            "event_id": event_ids, "sender": user_ids, "origin_server_ts": timestamps,
            "content": content | json_values, "room_id": json_values,
            "unsigned": json_values, "state_key": json_values,
        },
    )


#: Any event a room member could make the bot see.
events: st.SearchStrategy[Any] = st.one_of(
    _event(st.just("m.room.message"), message_contents),
    _event(st.just("org.matrix.msc3381.poll.response"), poll_contents),
    _event(st.sampled_from(["m.room.member", "m.reaction", "m.room.encrypted",
                            "org.matrix.msc3381.poll.start"]), json_values),
    json_values,
)
