"""The crypto store key (spec §11 "One device"): random, 0600, never nio's default; an old
store pickled with the default is re-pickled; atomic secret files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import vodozemac
from nio.crypto import InboundGroupSession, OlmAccount, OutboundGroupSession, OutboundSession
from nio.store import DefaultStore

from bot.edge.files import write_secret
from bot.edge.store_key import (
    NIO_DEFAULT_KEY,
    STORE_KEY_ENV,
    StoreKeyError,
    load_or_create_store_key,
    migrate_store,
)

USER, DEVICE = "@bot:example.be", "BOTDEVICE"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_random_key_is_created_once_with_mode_0600(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORE_KEY_ENV, raising=False)
    key = load_or_create_store_key(tmp_path)
    assert key != NIO_DEFAULT_KEY
    assert len(key) >= 40
    assert mode(tmp_path / "store.key") == 0o600
    assert load_or_create_store_key(tmp_path) == key
    other = tmp_path / "other"
    other.mkdir()
    assert load_or_create_store_key(other) != key


def test_the_environment_wins_and_writes_no_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORE_KEY_ENV, "from-the-vault")
    assert load_or_create_store_key(tmp_path) == "from-the-vault"
    assert not (tmp_path / "store.key").exists()


def _old_store(path: Path) -> OlmAccount:
    store = DefaultStore(USER, DEVICE, str(path), NIO_DEFAULT_KEY)
    account = OlmAccount()
    store.save_account(account)
    return account


def test_a_store_pickled_with_the_default_key_is_migrated(tmp_path: Path) -> None:
    account = _old_store(tmp_path)
    old = DefaultStore(USER, DEVICE, str(tmp_path), NIO_DEFAULT_KEY)
    other = OlmAccount()
    other.generate_one_time_keys(1)
    one_time = next(iter(other.one_time_keys["curve25519"].values()))
    olm_session = OutboundSession(account, other.identity_keys["curve25519"], one_time)
    old.save_session(other.identity_keys["curve25519"], olm_session)
    outbound = OutboundGroupSession()
    group = InboundGroupSession(outbound.session_key, account.identity_keys["ed25519"],
                                account.identity_keys["curve25519"], "!room:example.be")
    old.save_inbound_group_session(group)
    assert migrate_store(tmp_path, USER, DEVICE, "new-key") is True
    new = DefaultStore(USER, DEVICE, str(tmp_path), "new-key")
    [moved] = list(new.load_sessions())
    assert moved.id == olm_session.id
    assert [g.id for g in new.load_inbound_group_sessions()] == [group.id]
    loaded = new.load_account()
    assert loaded is not None
    assert loaded.identity_keys == account.identity_keys
    with pytest.raises(vodozemac.LibolmPickleException):  # the default no longer opens it
        DefaultStore(USER, DEVICE, str(tmp_path), NIO_DEFAULT_KEY).load_account()
    assert migrate_store(tmp_path, USER, DEVICE, "new-key") is False  # once


def test_a_new_store_needs_nothing_and_a_wrong_key_is_refused(tmp_path: Path) -> None:
    assert migrate_store(tmp_path, USER, DEVICE, "new-key") is False
    store = DefaultStore(USER, DEVICE, str(tmp_path), "right-key")
    store.save_account(OlmAccount())
    with pytest.raises(StoreKeyError):
        migrate_store(tmp_path, USER, DEVICE, "wrong-key")


def test_secret_files_are_replaced_atomically_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    inode = path.stat().st_ino
    write_secret(path, '{"new": true}')
    assert path.read_text() == '{"new": true}'
    assert mode(path) == 0o600
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.json"]  # no tmp left


def test_the_bots_client_pickles_with_the_store_key(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.edge.session import new_client
    from tests.factories import make_config
    monkeypatch.delenv(STORE_KEY_ENV, raising=False)
    client = new_client(make_config("en").matrix, tmp_path)
    assert client.config.pickle_key == (tmp_path / "store.key").read_text().strip()
    assert client.config.pickle_key != NIO_DEFAULT_KEY
