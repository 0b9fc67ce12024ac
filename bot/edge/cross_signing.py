"""Cross-signing of the bot's own identity (matrix-nio has none).

At every start :func:`ensure_cross_signing` makes sure that the bot's account has a published
cross-signing identity (master, self-signing and user-signing Ed25519 keys) and that the bot's
current device is signed by its self-signing key, so members' clients can trust the bot's
device through its identity instead of verifying each device by hand.

The private keys live only in ``data_dir/cross_signing.json`` (0600). Once published, the
identity is never regenerated: if the homeserver shows a master key that is not ours, we stop
with :class:`CrossSigningError` instead of resetting anything. Private keys are never logged.

Signatures follow the Matrix "Signing JSON" rules: Ed25519 over the canonical JSON of the
object without ``signatures`` and ``unsigned``, as unpadded standard base64.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import nio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.edge import secret_storage
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
    canonical,
    decode_b64,
    key_id,
    public_b64,
    sign_json,
    signed_copy,
    unpadded_b64,
)

log = logging.getLogger(__name__)

_API = "/_matrix/client/v3"
_REQUEST_TIMEOUT = 60.0


# ---- HTTP --------------------------------------------------------------------------------
@dataclass
class _Api:
    client: nio.AsyncClient
    session: aiohttp.ClientSession

    async def request(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = self.client.homeserver.rstrip("/") + _API + path
        headers = {"Authorization": f"Bearer {self.client.access_token}"}
        try:
            async with self.session.post(url, json=body, headers=headers) as resp:
                status = resp.status
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Unavailable(type(exc).__name__) from exc
        if status >= 500 or status == 429:
            raise _Unavailable(f"HTTP {status}")
        try:
            answer = json.loads(text) if text else {}
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise CrossSigningError(f"{path} answered {status} with a body that is not JSON")
        return status, answer

    async def account_data(self, event_type: str) -> dict[str, Any] | None:
        """The content of the account data ``event_type``, or None when there is none."""
        url = (f"{self.client.homeserver.rstrip('/')}{_API}/user/{quote(self.client.user_id)}"
               f"/account_data/{quote(event_type)}")
        headers = {"Authorization": f"Bearer {self.client.access_token}"}
        try:
            async with self.session.get(url, headers=headers) as resp:
                status = resp.status
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Unavailable(type(exc).__name__) from exc
        if status == 404:
            return None
        if status >= 500 or status == 429:
            raise _Unavailable(f"HTTP {status}")
        try:
            answer = json.loads(text) if text else None
        except ValueError:
            answer = None
        if status != 200 or not isinstance(answer, dict):
            raise CrossSigningError(f"reading account data answered {status}")
        return answer if answer else None  # an emptied entry counts as none

    async def put_account_data(self, event_type: str, content: dict[str, Any]) -> None:
        url = (f"{self.client.homeserver.rstrip('/')}{_API}/user/{quote(self.client.user_id)}"
               f"/account_data/{quote(event_type)}")
        headers = {"Authorization": f"Bearer {self.client.access_token}"}
        try:
            async with self.session.put(url, json=content, headers=headers) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Unavailable(type(exc).__name__) from exc
        if status >= 500 or status == 429:
            raise _Unavailable(f"HTTP {status}")
        if status != 200:
            raise CrossSigningError(f"writing account data {event_type} answered {status}")

    async def query_own(self) -> dict[str, Any]:
        user_id = self.client.user_id
        status, answer = await self.request("/keys/query", {"device_keys": {user_id: []}})
        if status != 200:
            raise CrossSigningError(f"/keys/query answered {status}: {_error(answer)}")
        return answer


def _error(answer: dict[str, Any]) -> str:
    # Errors say "error"; entries of the signatures upload's "failures" say "message".
    text = answer.get("error") or answer.get("message") or ""
    return f"{answer.get('errcode', '?')} {text}".strip()


async def upload_signatures(api: _Api, body: dict[str, Any]) -> None:
    """POST ``/keys/signatures/upload``; the server answers 200 even when it rejects a
    signature and lists the rejections in ``failures``, which we turn into an error."""
    status, answer = await api.request("/keys/signatures/upload", body)
    if status != 200:
        raise CrossSigningError(f"/keys/signatures/upload answered {status}: {_error(answer)}")
    failures = answer.get("failures") or {}
    if failures:
        reasons = [
            f"{target}: {_error(reason) if isinstance(reason, dict) else reason}"
            for per_user in failures.values()
            if isinstance(per_user, dict)
            for target, reason in per_user.items()
        ]
        raise CrossSigningError(
            "the homeserver rejected cross-signing signatures: "
            + ("; ".join(reasons) or str(failures))
        )


class _NeedsInteractiveAuth(Exception):
    """The homeserver wants user-interactive auth that we cannot complete without help."""


async def _upload_device_signing(api: _Api, keys: CrossSigningKeys, password: str | None) -> None:
    """POST ``/keys/device_signing/upload``, completing password UIA when it is asked for."""
    path = "/keys/device_signing/upload"
    body = keys.upload_body()
    status, answer = await api.request(path, body)
    if status == 401 and "flows" in answer:
        flows = answer.get("flows") or []
        if not any(flow.get("stages") == ["m.login.password"] for flow in flows):
            raise _NeedsInteractiveAuth("the homeserver offers no password-only flow")
        if not password:
            raise _NeedsInteractiveAuth("no password is configured")
        body["auth"] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": keys.user_id},
            "password": password,
            "session": answer.get("session"),
        }
        status, answer = await api.request(path, body)
        if status == 401:
            raise CrossSigningError(
                "the homeserver refused the password while publishing the cross-signing "
                f"keys ({_error(answer)}); check matrix.password"
            )
    if status != 200:
        raise CrossSigningError(f"{path} answered {status}: {_error(answer)}")


# ---- the start-up check ------------------------------------------------------------------
async def ensure_cross_signing(
    client: nio.AsyncClient, data_dir: Path, password: str | None
) -> None:
    """Publish (once) the bot's cross-signing identity and sign its current device.

    Call after login and ``keys_upload``. Raises :class:`CrossSigningError` when the identity
    cannot be kept safely (the server shows a master key that is not ours, a damaged key file,
    signatures rejected by the server...). Never resets a published identity. When the
    homeserver is unreachable, or wants interactive auth that cannot be completed (no
    password), it logs a warning and returns: the next start tries again.
    """
    if client.olm is None or not client.user_id or not client.device_id:
        raise CrossSigningError("cross-signing needs a logged-in client with encryption")
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await _ensure(_Api(client, session), data_dir, password)
    except _Unavailable as exc:
        log.warning(
            "cross-signing check skipped: the homeserver is unavailable (%s); "
            "it is retried at the next start",
            exc,
        )
    except _NeedsInteractiveAuth as exc:
        log.warning(
            "cross-signing keys not published: the homeserver requires the account password "
            "once for this (%s). Set matrix.password (or LIVCR_MATRIX_PASSWORD) for one start; "
            "the bot keeps working meanwhile, but members see its device as unverified.",
            exc,
        )


async def reset_cross_signing(
    client: nio.AsyncClient, data_dir: Path, password: str | None
) -> str:
    """Replace the account's cross-signing identity by a new one (as Element's "reset
    cryptographic identity" does) and sign the current device with it; returns the new master
    key. Never called by the bot: member clients of the tests and the demo use it to show
    that an identity change blocks the member."""
    if client.olm is None or not client.user_id or not client.device_id:
        raise CrossSigningError("cross-signing needs a logged-in client with encryption")
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        api = _Api(client, session)
        keys = CrossSigningKeys.generate(client.user_id)
        path = data_dir / KEYS_FILE
        keys.save(path)
        await _upload_device_signing(api, keys, password)
        keys.uploaded = True
        keys.save(path)
        answer = await api.query_own()
        await _sign_own_keys(api, keys, answer, path)
        return public_b64(keys.master)


async def _ensure(api: _Api, data_dir: Path, password: str | None) -> None:
    client = api.client
    user_id: str = client.user_id
    path = data_dir / KEYS_FILE
    keys = CrossSigningKeys.load(path, user_id)

    answer = await api.query_own()
    server_master = (answer.get("master_keys") or {}).get(user_id)
    server_pub = _master_pub(server_master) if server_master else None

    if keys is None:
        if server_pub is not None:
            raise CrossSigningError(
                f"{user_id} already has a cross-signing identity (master key {server_pub}) "
                f"but {path} is missing: refusing to replace it. On a new machine run "
                "`livcr restore -c FILE` with the recovery key that `livcr setup` printed, or "
                f"restore {KEYS_FILE} from a backup of the data directory; the bot never "
                "replaces a published identity on its own (every member's client would "
                "report that the bot's identity changed)."
            )
        keys = CrossSigningKeys.generate(user_id)
        keys.save(path)  # before publishing: published keys must never be lost
        log.info("generated a cross-signing identity (master key %s)", public_b64(keys.master))

    ours = public_b64(keys.master)
    if server_pub is not None and server_pub != ours:
        raise CrossSigningError(
            f"the homeserver shows master key {server_pub} for {user_id}, but the bot's "
            f"identity in {path} is {ours}: the identity was replaced elsewhere. Refusing to "
            "reset it; resolve this by hand (restore the matching file or reset deliberately)."
        )
    if server_pub is None:
        if keys.uploaded:
            log.warning("the homeserver lost the bot's cross-signing keys; publishing them again")
        await _upload_device_signing(api, keys, password)
        keys.uploaded = True
        keys.save(path)
        log.info("published the cross-signing identity (master key %s)", ours)
        answer = await api.query_own()
        server_master = (answer.get("master_keys") or {}).get(user_id)
        if not server_master or _master_pub(server_master) != ours:
            raise CrossSigningError("the homeserver did not keep the published master key")
    elif not keys.uploaded:
        keys.uploaded = True  # published by an earlier start that stopped before saving
        keys.save(path)

    server_ssk = (answer.get("self_signing_keys") or {}).get(user_id)
    if not server_ssk or _master_pub(server_ssk) != public_b64(keys.self_signing):
        raise CrossSigningError(
            f"the homeserver's self-signing key for {user_id} is not the bot's; refusing to "
            "sign devices with it"
        )

    await _sign_own_keys(api, keys, answer, path)


async def _sign_own_keys(
    api: _Api, keys: CrossSigningKeys, answer: dict[str, Any], path: Path
) -> None:
    """Sign our device with the self-signing key, and the master key with our device key,
    each only when the server does not already have that signature."""
    client = api.client
    user_id: str = client.user_id
    device_id: str = client.device_id
    device = (answer.get("device_keys") or {}).get(user_id, {}).get(device_id)
    if device is None:
        log.warning(
            "device %s has no keys on the homeserver yet; it is signed at the next start",
            device_id,
        )
        return
    identity = client.olm.account.identity_keys
    expected = {
        f"ed25519:{device_id}": identity["ed25519"],
        f"curve25519:{device_id}": identity["curve25519"],
    }
    if (
        device.get("user_id") != user_id
        or device.get("device_id") != device_id
        or device.get("keys") != expected
    ):
        # Never vouch for keys that are not this device's own.
        raise CrossSigningError(
            f"the homeserver's keys for device {device_id} do not match the local crypto store"
        )

    ssk_id = key_id(keys.self_signing)
    existing = (device.get("signatures") or {}).get(user_id, {})
    body: dict[str, Any] = {}
    if ssk_id not in existing:
        signature = sign_json(keys.self_signing, device)
        body.setdefault(user_id, {})[device_id] = signed_copy(user_id, device, ssk_id, signature)

    master = answer["master_keys"][user_id]
    device_key_id = f"ed25519:{device_id}"
    if device_key_id not in (master.get("signatures") or {}).get(user_id, {}):
        # The device's own Ed25519 key (vodozemac via nio) vouches for the master key.
        signature = client.olm.account.sign(canonical(master).decode("utf-8"))
        body.setdefault(user_id, {})[_master_pub(master)] = signed_copy(
            user_id, master, device_key_id, signature
        )

    if body:
        await upload_signatures(api, body)
        log.info("signed device %s with the bot's cross-signing identity", device_id)
    changed = False
    if device_id not in keys.signed_devices:
        keys.signed_devices.append(device_id)
        changed = True
    if device_id not in keys.master_signed_by:
        keys.master_signed_by.append(device_id)
        changed = True
    if changed:
        keys.save(path)


# ---- vouching for a member ---------------------------------------------------------------
def user_signature_upload(keys: CrossSigningKeys, user_id: str, master: dict[str, Any]
                          ) -> dict[str, Any]:
    """The ``/keys/signatures/upload`` body that signs ``user_id``'s master key object (as
    the server returned it) with the bot's user-signing key."""
    pub = _master_pub(master)
    usk_id = key_id(keys.user_signing)
    signature = sign_json(keys.user_signing, master)
    return {user_id: {pub: signed_copy(keys.user_id, master, usk_id, signature)}}


async def sign_user_identity(
    client: nio.AsyncClient, data_dir: Path, user_id: str, master: dict[str, Any]
) -> bool:
    """After a member verified the bot by SAS: sign their master key with the bot's
    user-signing key and upload it (Element then shows the member as verified by the bot).
    The pin is not touched. False (logged) when the keys are missing or the upload fails."""
    keys = CrossSigningKeys.load(data_dir / KEYS_FILE, client.user_id)
    if keys is None or keys.user_id == user_id:
        log.warning("no cross-signing keys to sign a verified member's identity with")
        return False
    if key_id(keys.user_signing) in (master.get("signatures") or {}).get(keys.user_id, {}):
        return True  # signed before
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await upload_signatures(_Api(client, session),
                                    user_signature_upload(keys, user_id, master))
    except (_Unavailable, CrossSigningError) as exc:
        log.warning("signing a verified member's identity failed (%s)", type(exc).__name__)
        return False
    return True


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
