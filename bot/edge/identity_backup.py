"""The bot's identity in the account's secret storage (spec §11): ``livcr setup`` stores the
cross-signing private keys under a recovery key, ``livcr restore`` brings them back on a new
machine and signs its device."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.edge import secret_storage
from bot.edge.cross_signing import _REQUEST_TIMEOUT, _Api, _sign_own_keys
from bot.edge.secret_storage import (
    CROSS_SIGNING_SECRETS,
    MASTER,
    SELF_SIGNING,
    STORE_KEY,
    USER_SIGNING,
    SecretStorageError,
)
from bot.edge.signing_keys import (
    KEYS_FILE,
    CrossSigningError,
    CrossSigningKeys,
    _master_pub,
    _Unavailable,
    decode_b64,
    public_b64,
    unpadded_b64,
)

log = logging.getLogger(__name__)


# ---- secret storage: `livcr setup` stores the identity, `livcr restore` brings it back ----
STORE_KEY_FILE = "store.key"  # the crypto store's key (bot.edge.store_key), when there is one


def private_b64(key: Ed25519PrivateKey) -> str:
    """The private key's 32-byte seed as unpadded base64: the form in which Element keeps
    cross-signing keys in secret storage (``m.cross_signing.master`` etc.)."""
    raw = key.private_bytes(
        encoding=serialization.Encoding.Raw,
        format=serialization.PrivateFormat.Raw,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return unpadded_b64(raw)


def private_from_b64(text: str, name: str) -> Ed25519PrivateKey:
    """The inverse of :func:`private_b64`; :class:`SecretStorageError` for anything else."""
    try:
        raw = decode_b64(text)
    except ValueError as exc:
        raise SecretStorageError(f"{name} in secret storage is not base64") from exc
    if len(raw) != 32:
        raise SecretStorageError(f"{name} in secret storage is not an Ed25519 private key")
    return Ed25519PrivateKey.from_private_bytes(raw)


def identity_secrets(keys: CrossSigningKeys, store_key: str | None) -> dict[str, str]:
    """The secrets ``livcr setup`` stores: the three cross-signing private keys under the
    spec's names (Element reads them), and the crypto store key when there is one."""
    out = {
        MASTER: private_b64(keys.master),
        SELF_SIGNING: private_b64(keys.self_signing),
        USER_SIGNING: private_b64(keys.user_signing),
    }
    if store_key:
        out[STORE_KEY] = store_key
    return out


def keys_from_secrets(user_id: str, secrets: dict[str, str]) -> CrossSigningKeys:
    """The identity from the secrets read back (:func:`identity_secrets`' inverse)."""
    return CrossSigningKeys(
        user_id,
        private_from_b64(secrets[MASTER], MASTER),
        private_from_b64(secrets[SELF_SIGNING], SELF_SIGNING),
        private_from_b64(secrets[USER_SIGNING], USER_SIGNING),
        uploaded=True,
    )


@dataclass(frozen=True)
class Stored:
    """What :func:`store_identity` did: ``recovery_key`` is set only when it created the
    secret storage now (print it once, never log it); else ``already`` says why not."""

    recovery_key: str | None
    already: str = ""


async def _stored_under_default(api: _Api) -> str | None:
    """The default key id when the account's secret storage already holds the bot's three
    cross-signing secrets under it; raises when it has a default key of someone else."""
    default = await api.account_data(secret_storage.DEFAULT_KEY_TYPE)
    if default is None:
        return None
    key = default.get("key")
    if not isinstance(key, str) or not key:
        return None
    for name in CROSS_SIGNING_SECRETS:
        content = await api.account_data(name)
        encrypted = (content or {}).get("encrypted")
        if not isinstance(encrypted, dict) or key not in encrypted:
            raise CrossSigningError(
                "the account already has a default secret storage key that does not hold the "
                f"bot's {name}: not replacing it (it may protect other secrets). Remove "
                "m.secret_storage.default_key from the account data deliberately, then run "
                "setup again"
            )
    return key


async def store_identity(client: nio.AsyncClient, data_dir: Path,
                         replace: bool = False) -> Stored:
    """Put the bot's cross-signing private keys (and the crypto store key, when
    ``data_dir/store.key`` exists) in the account's secret storage under a new default key;
    the recovery key is returned, never logged. When they are already stored, nothing is
    rotated — unless ``replace`` (``setup --start-over`` made a new identity: the stored one
    is the old one's). Call after :func:`ensure_cross_signing`: only a published identity is
    stored."""
    if not client.user_id or not client.access_token:
        raise CrossSigningError("secret storage needs a logged-in client")
    user_id: str = client.user_id
    keys = CrossSigningKeys.load(data_dir / KEYS_FILE, user_id)
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            api = _Api(client, session)
            if await _stored_under_default(api) is not None and not replace:
                return Stored(None, "already stored (the recovery key is not shown again)")
            if keys is None or not keys.uploaded:
                raise CrossSigningError(
                    "the cross-signing identity is not published yet (see the warning above)")
            answer = await api.query_own()
            server_master = (answer.get("master_keys") or {}).get(user_id)
            if not server_master or _master_pub(server_master) != public_b64(keys.master):
                raise CrossSigningError(
                    "the homeserver does not show the bot's master key: not storing it")
            store_key_path = data_dir / STORE_KEY_FILE
            store_key = (store_key_path.read_text(encoding="utf-8").strip()
                         if store_key_path.exists() else None)
            recovery_key, account_data = secret_storage.new_store(
                identity_secrets(keys, store_key))
            # The default key last: until it is written, a new run starts over cleanly.
            default = account_data.pop(secret_storage.DEFAULT_KEY_TYPE)
            for event_type, content in account_data.items():
                await api.put_account_data(event_type, content)
            await api.put_account_data(secret_storage.DEFAULT_KEY_TYPE, default)
    except _Unavailable as exc:
        raise CrossSigningError(f"the homeserver is unavailable ({exc}); run setup again") from exc
    log.info("stored the cross-signing identity in the account's secret storage")
    return Stored(recovery_key)


async def read_identity(
    client: nio.AsyncClient, recovery_key: str
) -> tuple[CrossSigningKeys, str | None]:
    """The bot's identity from secret storage, checked against the published one: the keys,
    and the stored crypto store key (or None). Nothing is written. Raises
    :class:`SecretStorageError` (wrong key, missing secrets) or :class:`CrossSigningError`
    (the stored master key is not the published one, or none is published)."""
    if not client.user_id or not client.access_token:
        raise CrossSigningError("secret storage needs a logged-in client")
    user_id: str = client.user_id
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            api = _Api(client, session)
            wanted = [secret_storage.DEFAULT_KEY_TYPE, *CROSS_SIGNING_SECRETS, STORE_KEY]
            data: dict[str, Any] = {}
            for event_type in wanted:
                content = await api.account_data(event_type)
                if content is not None:
                    data[event_type] = content
            default = data.get(secret_storage.DEFAULT_KEY_TYPE) or {}
            key = default.get("key")
            if isinstance(key, str) and key:
                description = await api.account_data(secret_storage.key_type(key))
                if description is not None:
                    data[secret_storage.key_type(key)] = description
            answer = await api.query_own()
    except _Unavailable as exc:
        raise CrossSigningError(f"the homeserver is unavailable ({exc}); try again") from exc
    secrets = secret_storage.open_store(data, recovery_key, CROSS_SIGNING_SECRETS)
    store_key = None
    if STORE_KEY in data:
        store_key = secret_storage.open_store(data, recovery_key, (STORE_KEY,))[STORE_KEY]
    keys = keys_from_secrets(user_id, secrets)
    server_master = (answer.get("master_keys") or {}).get(user_id)
    if not server_master:
        raise CrossSigningError(f"{user_id} has no published cross-signing identity to restore")
    ours, published = public_b64(keys.master), _master_pub(server_master)
    if ours != published:
        raise CrossSigningError(
            f"the master key in secret storage ({ours}) is not the published one ({published}): "
            "the identity was replaced after setup stored it; not restoring it"
        )
    server_ssk = (answer.get("self_signing_keys") or {}).get(user_id)
    if not server_ssk or _master_pub(server_ssk) != public_b64(keys.self_signing):
        raise CrossSigningError(
            "the self-signing key in secret storage is not the published one; not restoring it")
    return keys, store_key


async def restore_identity(
    client: nio.AsyncClient, data_dir: Path, keys: CrossSigningKeys
) -> None:
    """Write ``cross_signing.json`` from the restored keys and sign the current device with
    the self-signing key (and the master key with the device key), uploading the signatures.
    Call after :func:`read_identity`, ``keys_upload`` done."""
    path = data_dir / KEYS_FILE
    if path.exists():
        raise CrossSigningError(f"{path} exists: restore only into an empty data directory")
    keys.save(path)
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            api = _Api(client, session)
            answer = await api.query_own()
            if (client.device_id or "") not in (answer.get("device_keys") or {}).get(
                client.user_id, {}
            ):
                raise CrossSigningError("the new device's keys are not on the homeserver")
            await _sign_own_keys(api, keys, answer, path)
    except _Unavailable as exc:
        raise CrossSigningError(f"the homeserver is unavailable ({exc}); try again") from exc
