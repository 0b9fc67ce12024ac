"""The bot's crypto store is nio's, without the empty write nio makes after every sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nio import AsyncClient, AsyncClientConfig

from bot.edge.store import BotStore


def client(path: Path) -> AsyncClient:
    c = AsyncClient("http://127.0.0.1:1", "@livcr:example.be", store_path=str(path),
                    config=AsyncClientConfig(encryption_enabled=True, store=BotStore,
                                             store_sync_tokens=False))
    c.restore_login("@livcr:example.be", "BOTDEVICE", "not-a-token")
    return c


async def test_an_empty_set_of_new_encrypted_rooms_costs_no_database_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bot = client(tmp_path)
    assert isinstance(bot.store, BotStore)
    calls: list[Any] = []
    monkeypatch.setattr(type(bot.store).__mro__[1], "_get_account",
                        lambda self: calls.append(1))
    bot.store.save_encrypted_rooms(set())
    assert calls == []
    await bot.close()


async def test_encrypted_rooms_are_still_saved_and_read_back(tmp_path: Path) -> None:
    bot = client(tmp_path)
    bot.store.save_encrypted_rooms({"!op:example.be"})
    await bot.close()
    again = client(tmp_path)
    assert "!op:example.be" in again.store.load_encrypted_rooms()
    await again.close()
