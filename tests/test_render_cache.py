"""Replies rendered again from the same data are taken from a cache (bot.core.render): no
Jinja, no Markdown parse the second time, and never the text of other data that merely
compare equal."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.core import render


def test_the_same_data_rendered_again_is_the_cached_reply() -> None:
    first = render.render("en", "msg:error.too_long", {"limit": 500})
    assert render.render("en", "msg:error.too_long", {"limit": 500}) is first
    assert render.render("nl", "msg:error.too_long", {"limit": 500}) is not first


def test_data_that_compare_equal_but_print_differently_are_rendered_each() -> None:
    assert render.render("en", "msg:error.too_long", {"limit": 1}).body != render.render(
        "en", "msg:error.too_long", {"limit": True}).body
    instant = datetime(2026, 3, 29, 9, 0, tzinfo=UTC)
    local = instant.astimezone(ZoneInfo("Europe/Brussels"))
    assert instant == local
    assert render._frozen({"at": instant}) != render._frozen({"at": local})
    assert render._frozen({"x": 0.0}) != render._frozen({"x": -0.0})


def test_data_that_cannot_be_frozen_are_rendered_every_time() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    assert render._frozen({"limit": Opaque()}) is None
    assert "opaque" in render.render("en", "msg:error.too_long", {"limit": Opaque()}).body


def test_mappings_in_another_order_are_other_data() -> None:
    """A template that loops over a mapping prints it in its order: never the other's text."""
    assert render._frozen({"a": "1", "b": "2"}) != render._frozen({"b": "2", "a": "1"})
    assert render._frozen({"a": "True"}) != render._frozen({"a": True})
    assert render._frozen(["1"]) != render._frozen([1])
