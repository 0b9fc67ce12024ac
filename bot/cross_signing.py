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

import base64
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nio
from canonicaljson import encode_canonical_json
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

log = logging.getLogger(__name__)

KEYS_FILE = "cross_signing.json"
FORMAT_VERSION = 1
_API = "/_matrix/client/v3"
_REQUEST_TIMEOUT = 60.0


class CrossSigningError(RuntimeError):
    """The bot's cross-signing identity cannot be set up safely; the message says why."""


class _Unavailable(Exception):
    """The homeserver could not be reached or answered 5xx/429: retried at the next start."""


# ---- signing helpers ---------------------------------------------------------------------
def unpadded_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def decode_b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def canonical(obj: dict[str, Any]) -> bytes:
    """The bytes that are signed: canonical JSON without ``signatures`` and ``unsigned``."""
    stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    data: bytes = encode_canonical_json(stripped)
    return data


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )
    return unpadded_b64(raw)


def key_id(key: Ed25519PrivateKey) -> str:
    return f"ed25519:{public_b64(key)}"


def sign_json(key: Ed25519PrivateKey, obj: dict[str, Any]) -> str:
    return unpadded_b64(key.sign(canonical(obj)))


def verify_signature(public: str, obj: dict[str, Any], signature: str) -> bool:
    """Whether ``signature`` (unpadded base64) is the Ed25519 signature by the public key
    ``public`` (unpadded base64) of ``obj`` under the Matrix "Signing JSON" rules. Never
    raises: a malformed key or signature does not verify."""
    try:
        raw_key = decode_b64(public)
        raw_signature = decode_b64(signature)
        if len(raw_key) != 32 or len(raw_signature) != 64:
            return False
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_signature, canonical(obj))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def single_ed25519_key(key: Any) -> str | None:
    """The public key of a cross-signing key object (``{"keys": {"ed25519:X": "X"}}``), or
    None when it does not hold exactly one well-formed Ed25519 key."""
    keys = key.get("keys") if isinstance(key, dict) else None
    if not isinstance(keys, dict) or len(keys) != 1:
        return None
    ((kid, pub),) = keys.items()
    if not isinstance(kid, str) or not isinstance(pub, str) or kid != f"ed25519:{pub}":
        return None
    try:
        if len(decode_b64(pub)) != 32:
            return None
    except ValueError:
        return None
    return pub


def _seed(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(
        encoding=serialization.Encoding.Raw,
        format=serialization.PrivateFormat.Raw,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return unpadded_b64(raw)


# ---- the local identity ------------------------------------------------------------------
@dataclass
class CrossSigningKeys:
    """The three private keys and what we know was published with them."""

    user_id: str
    master: Ed25519PrivateKey
    self_signing: Ed25519PrivateKey
    user_signing: Ed25519PrivateKey
    uploaded: bool = False
    signed_devices: list[str] = field(default_factory=list)
    master_signed_by: list[str] = field(default_factory=list)

    @classmethod
    def generate(cls, user_id: str) -> CrossSigningKeys:
        return cls(
            user_id,
            Ed25519PrivateKey.generate(),
            Ed25519PrivateKey.generate(),
            Ed25519PrivateKey.generate(),
        )

    @classmethod
    def load(cls, path: Path, user_id: str) -> CrossSigningKeys | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            keys = cls(
                user_id=data["user_id"],
                master=Ed25519PrivateKey.from_private_bytes(decode_b64(data["master"])),
                self_signing=Ed25519PrivateKey.from_private_bytes(
                    decode_b64(data["self_signing"])
                ),
                user_signing=Ed25519PrivateKey.from_private_bytes(
                    decode_b64(data["user_signing"])
                ),
                uploaded=bool(data.get("uploaded", False)),
                signed_devices=list(data.get("signed_devices", [])),
                master_signed_by=list(data.get("master_signed_by", [])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            # Never regenerate over a damaged file: the identity may already be published.
            raise CrossSigningError(
                f"{path} is damaged ({type(exc).__name__}); restore it from a backup "
                "(it holds the bot's cross-signing identity)"
            ) from exc
        if keys.user_id != user_id:
            raise CrossSigningError(f"{path} belongs to {keys.user_id}, not to {user_id}")
        return keys

    def save(self, path: Path) -> None:
        # Imported here: bot.matrix imports this module at load time.
        from bot.matrix import write_secret

        data = {
            "version": FORMAT_VERSION,
            "user_id": self.user_id,
            "master": _seed(self.master),
            "self_signing": _seed(self.self_signing),
            "user_signing": _seed(self.user_signing),
            "master_public": public_b64(self.master),
            "uploaded": self.uploaded,
            "signed_devices": sorted(set(self.signed_devices)),
            "master_signed_by": sorted(set(self.master_signed_by)),
        }
        # Write then rename, so a crash never leaves a half-written identity behind.
        tmp = path.with_name(path.name + ".tmp")
        write_secret(tmp, json.dumps(data, indent=2) + "\n")
        tmp.replace(path)

    def _key_object(self, key: Ed25519PrivateKey, usage: str) -> dict[str, Any]:
        pub = public_b64(key)
        return {"user_id": self.user_id, "usage": [usage], "keys": {f"ed25519:{pub}": pub}}

    def master_key(self) -> dict[str, Any]:
        """The master key object as published (its signatures are optional, none here)."""
        return self._key_object(self.master, "master")

    def _signed_by_master(self, key: Ed25519PrivateKey, usage: str) -> dict[str, Any]:
        obj = self._key_object(key, usage)
        obj["signatures"] = {self.user_id: {key_id(self.master): sign_json(self.master, obj)}}
        return obj

    def upload_body(self) -> dict[str, Any]:
        """The body of ``/keys/device_signing/upload`` (without ``auth``)."""
        return {
            "master_key": self.master_key(),
            "self_signing_key": self._signed_by_master(self.self_signing, "self_signing"),
            "user_signing_key": self._signed_by_master(self.user_signing, "user_signing"),
        }


def signed_copy(
    user_id: str, obj: dict[str, Any], signing_key_id: str, signature: str
) -> dict[str, Any]:
    """``obj`` (a device or key object as the server returned it) carrying ONLY one new
    signature: existing signatures are never echoed back, and ``unsigned`` is dropped."""
    signed = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signed["signatures"] = {user_id: {signing_key_id: signature}}
    return signed


def _master_pub(key: dict[str, Any]) -> str:
    ids = list(key.get("keys", {}))
    if len(ids) != 1 or not ids[0].startswith("ed25519:"):
        raise CrossSigningError("the homeserver returned a malformed cross-signing key")
    return str(ids[0].split(":", 1)[1])


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
                f"but {path} is missing: refusing to replace it. Restore {KEYS_FILE} from a "
                "backup of the data directory; the bot never replaces a published identity "
                "on its own."
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
