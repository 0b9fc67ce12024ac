"""The crypto store's pickle key (spec §11 "One device"): never nio's ``"DEFAULT_KEY"``.

The key is ``LIVCR_STORE_KEY`` when set, else ``data_dir/store.key`` (mode 0600), created
with a random value at the first start. A crypto store pickled with the library default by
an older version is re-pickled under the new key once, before nio opens it
(:func:`migrate_store`). The key is never printed or logged.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from nio.store import DefaultStore

from bot.edge.files import write_secret

log = logging.getLogger(__name__)

STORE_KEY_FILE = "store.key"
STORE_KEY_ENV = "LIVCR_STORE_KEY"
#: What matrix-nio pickles with unless told otherwise (stores of livcr-bot before 0.x).
NIO_DEFAULT_KEY = "DEFAULT_KEY"


class StoreKeyError(RuntimeError):
    """The crypto store cannot be opened with the store key (nor with nio's default)."""


def load_or_create_store_key(data_dir: Path) -> str:
    """``LIVCR_STORE_KEY`` if set, else the key in ``data_dir/store.key``, created (random,
    256 bits, file 0600) when there is none yet."""
    env = os.environ.get(STORE_KEY_ENV, "").strip()
    if env:
        return env
    path = data_dir / STORE_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if key:
            os.chmod(path, 0o600)
            return key
    key = secrets.token_urlsafe(32)
    write_secret(path, key + "\n")
    log.info("created a new crypto store key in the data directory")
    return key


def _store(store_dir: Path, user_id: str, device_id: str, key: str) -> DefaultStore:
    return DefaultStore(user_id, device_id, str(store_dir), key)


def _opens(store_dir: Path, user_id: str, device_id: str, key: str) -> bool:
    try:
        _store(store_dir, user_id, device_id, key).load_account()
    except Exception:
        return False
    return True


def store_database(store_dir: Path, user_id: str, device_id: str) -> Path:
    """The file nio keeps the device's crypto store in (its default name)."""
    return store_dir / f"{user_id}_{device_id}.db"


def migrate_store(store_dir: Path, user_id: str, device_id: str, key: str) -> bool:
    """Re-pickle a crypto store written under nio's default key with ``key``: the account,
    the Olm sessions and the inbound Megolm sessions (the only pickled values). True when a
    store was migrated; nothing happens for a new store or one already under ``key``.
    Raises :class:`StoreKeyError` when neither key opens it (a changed ``LIVCR_STORE_KEY``)."""
    if not store_database(store_dir, user_id, device_id).exists():
        return False
    if _opens(store_dir, user_id, device_id, key):
        return False
    if not _opens(store_dir, user_id, device_id, NIO_DEFAULT_KEY):
        raise StoreKeyError(
            "the crypto store cannot be opened with the store key (LIVCR_STORE_KEY or "
            "data_dir/store.key); restore the key that belongs to this store")
    old = _store(store_dir, user_id, device_id, NIO_DEFAULT_KEY)
    account = old.load_account()
    assert account is not None
    sessions = old.load_sessions()
    group_sessions = old.load_inbound_group_sessions()
    new = _store(store_dir, user_id, device_id, key)
    with new.database.bind_ctx(new.models), new.database.atomic():
        new.save_account(account)
        for sender_key, session_list in sessions.items():
            for session in session_list:
                new.save_session(sender_key, session)
        for group_session in group_sessions:
            new.save_inbound_group_session(group_session)
    if not _opens(store_dir, user_id, device_id, key):
        raise StoreKeyError("re-pickling the crypto store under the store key failed")
    log.warning("the crypto store was pickled with the library's default key; "
                "it is now encrypted with the store key")
    return True
