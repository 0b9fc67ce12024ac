"""The bot's cross-signing keys: generated once, kept in ``data_dir/cross_signing.json``
(0600), and the Matrix "Signing JSON" rules (Ed25519 over canonical JSON, unpadded base64).
No network here: :mod:`bot.edge.cross_signing` publishes them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canonicaljson import encode_canonical_json
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from bot.edge.files import write_secret

KEYS_FILE = "cross_signing.json"
FORMAT_VERSION = 1


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
