"""The bot's long poll is not woken by its own replies (issue 21): its timeline filter leaves
out the events it sent, and nothing else changes from the filter every sync uses."""

from __future__ import annotations

from bot.edge.client import FIRST_SYNC_FILTER, SYNC_FILTER, own_sync_filter


def test_the_bots_own_events_are_left_out_of_its_timelines_only() -> None:
    mine = own_sync_filter("@livcr:example.be")
    assert mine["room"]["timeline"] == {"limit": 100, "not_senders": ["@livcr:example.be"]}
    assert {k: v for k, v in mine["room"].items() if k != "timeline"} == {
        k: v for k, v in SYNC_FILTER["room"].items() if k != "timeline"}
    assert {k: v for k, v in mine.items() if k != "room"} == {
        k: v for k, v in SYNC_FILTER.items() if k != "room"}
    assert "not_senders" not in SYNC_FILTER["room"]["timeline"]  # the echo floor's, unchanged
    assert FIRST_SYNC_FILTER["room"]["timeline"] == {"limit": 0}
