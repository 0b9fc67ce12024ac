"""Server-side secret storage (``m.secret_storage``), pure functions: no network, no nio.

Follows the Matrix client-server API, section "Secret storage" (spec v1.11+):

* keys and their recovery-key form: appendix "Cryptographic key representation" (prefix
  ``0x8B 0x01``, 32 key bytes, a parity byte that makes the XOR of all bytes 0, base58 with
  the Bitcoin alphabet; Element shows it in groups of 4 characters separated by spaces);
* the key description stored in account data ``m.secret_storage.key.<key_id>`` and its check
  (section "Key storage": ``iv`` and ``mac`` of the encryption of 32 zero bytes with the empty
  name);
* secrets encrypted with ``m.secret_storage.v1.aes-hmac-sha2`` (section "Secret encryption"):
  HKDF-SHA256 with 32 zero bytes as salt and the secret's name as info gives a 32-byte AES key
  and a 32-byte MAC key; AES-256-CTR with a random 16-byte IV whose bit 63 is cleared;
  HMAC-SHA256 over the ciphertext; the account data ``<secret name>`` holds
  ``{"encrypted": {<key_id>: {"iv", "ciphertext", "mac"}}}`` in unpadded base64.

The cryptography comes from the ``cryptography`` package. Nothing here logs, and error messages
never contain key material or secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ALGORITHM = "m.secret_storage.v1.aes-hmac-sha2"
KEY_LENGTH = 32
DEFAULT_KEY_TYPE = "m.secret_storage.default_key"
KEY_TYPE_PREFIX = "m.secret_storage.key."

# The secrets the bot keeps there (the first three are the spec's names, Element reads them).
MASTER = "m.cross_signing.master"
SELF_SIGNING = "m.cross_signing.self_signing"
USER_SIGNING = "m.cross_signing.user_signing"
# Project-specific (namespaced as the spec asks of non-``m.`` names): the crypto store key.
STORE_KEY = "be.livcr.store_key"
CROSS_SIGNING_SECRETS = (MASTER, SELF_SIGNING, USER_SIGNING)

RECOVERY_KEY_PREFIX = b"\x8b\x01"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {c: i for i, c in enumerate(_BASE58)}
_ZERO_SALT = bytes(32)
_KEY_ID_CHARS = string.ascii_letters + string.digits


class SecretStorageError(ValueError):
    """Secret storage content is unusable: malformed, another algorithm, or a bad MAC."""


class RecoveryKeyError(SecretStorageError):
    """A recovery key that was typed wrong: bad characters, prefix, parity or length."""


class BadMacError(SecretStorageError):
    """The MAC does not match: a wrong key, or content that was tampered with."""


# ---- base64 and base58 -------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: object, what: str) -> bytes:
    """Standard base64, padded or not (js-sdk writes it padded, the spec says unpadded)."""
    if not isinstance(text, str):
        raise SecretStorageError(f"{what} is not a base64 string")
    stripped = text.rstrip("=")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SecretStorageError(f"{what} is not valid base64") from exc


def _base58_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out: list[str] = []
    while number:
        number, rest = divmod(number, 58)
        out.append(_BASE58[rest])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def _base58_decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _BASE58_INDEX:
            raise RecoveryKeyError(
                "the recovery key contains a character that cannot be in one "
                "(base58 has no 0, O, I or l; upper and lower case differ)"
            )
        number = number * 58 + _BASE58_INDEX[char]
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


# ---- keys and recovery keys --------------------------------------------------------------
def generate_key() -> bytes:
    """A new random 32-byte secret storage key."""
    return secrets.token_bytes(KEY_LENGTH)


def generate_key_id() -> str:
    """A new key id (32 random letters and digits, as matrix-js-sdk makes them)."""
    return "".join(secrets.choice(_KEY_ID_CHARS) for _ in range(32))


def encode_recovery_key(key: bytes) -> str:
    """The recovery key of a 32-byte key, as Element shows it: 12 groups of 4 characters."""
    if len(key) != KEY_LENGTH:
        raise SecretStorageError(f"a secret storage key has {KEY_LENGTH} bytes")
    data = RECOVERY_KEY_PREFIX + key
    parity = 0
    for byte in data:
        parity ^= byte
    encoded = _base58_encode(data + bytes([parity]))
    return " ".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def decode_recovery_key(text: str) -> bytes:
    """The 32-byte key of a recovery key. Whitespace anywhere is ignored (Element ignores
    spaces); case is not, because base58 tells upper from lower case.

    Raises :class:`RecoveryKeyError` on bad characters, prefix, parity or length."""
    compact = "".join(text.split())
    if not compact:
        raise RecoveryKeyError("the recovery key is empty")
    data = _base58_decode(compact)
    parity = 0
    for byte in data:
        parity ^= byte
    if parity != 0:
        raise RecoveryKeyError("the recovery key is mistyped (its parity check fails)")
    if data[: len(RECOVERY_KEY_PREFIX)] != RECOVERY_KEY_PREFIX:
        raise RecoveryKeyError("this is not a Matrix recovery key (wrong prefix)")
    if len(data) != len(RECOVERY_KEY_PREFIX) + KEY_LENGTH + 1:
        raise RecoveryKeyError("the recovery key has the wrong length")
    return data[len(RECOVERY_KEY_PREFIX) : -1]


# ---- encryption --------------------------------------------------------------------------
def _derive(key: bytes, name: str) -> tuple[bytes, bytes]:
    if len(key) != KEY_LENGTH:
        raise SecretStorageError(f"a secret storage key has {KEY_LENGTH} bytes")
    okm = HKDF(
        algorithm=hashes.SHA256(), length=64, salt=_ZERO_SALT, info=name.encode("utf-8")
    ).derive(key)
    return okm[:32], okm[32:]


def _random_iv() -> bytes:
    iv = bytearray(secrets.token_bytes(16))
    iv[8] &= 0x7F  # clear bit 63: the 64-bit counter of other clients never wraps
    return bytes(iv)


def _ctr(aes_key: bytes, iv: bytes, data: bytes) -> bytes:
    # A 128-bit counter here, a 64-bit one in WebCrypto (js-sdk): they agree while the low
    # 64 bits do not wrap, which bit 63 cleared guarantees for any secret.
    encryptor = Cipher(algorithms.AES(aes_key), modes.CTR(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def encrypt_secret(
    secret: str, key: bytes, name: str, *, iv: bytes | None = None
) -> dict[str, str]:
    """``{"iv", "ciphertext", "mac"}`` of ``secret`` under ``key`` for the secret ``name``
    (spec: "m.secret_storage.v1.aes-hmac-sha2", encryption steps 1-4)."""
    aes_key, mac_key = _derive(key, name)
    if iv is None:
        iv = _random_iv()
    elif len(iv) != 16:
        raise SecretStorageError("the IV has 16 bytes")
    ciphertext = _ctr(aes_key, iv, secret.encode("utf-8"))
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()
    return {"iv": _b64(iv), "ciphertext": _b64(ciphertext), "mac": _b64(mac)}


def decrypt_secret(item: Mapping[str, Any], key: bytes, name: str) -> str:
    """The secret in ``item`` (``{"iv", "ciphertext", "mac"}``). The MAC is checked first,
    in constant time: :class:`BadMacError` for a wrong key or tampered content."""
    if not isinstance(item, Mapping):
        raise SecretStorageError("the encrypted secret is not an object")
    iv = _unb64(item.get("iv"), "iv")
    ciphertext = _unb64(item.get("ciphertext"), "ciphertext")
    mac = _unb64(item.get("mac"), "mac")
    if len(iv) != 16:
        raise SecretStorageError("the IV has 16 bytes")
    aes_key, mac_key = _derive(key, name)
    expected = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise BadMacError(f"the MAC of {name} does not match: wrong key, or altered content")
    try:
        return _ctr(aes_key, iv, ciphertext).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SecretStorageError(f"{name} does not decrypt to text") from exc


# ---- key descriptions (account data m.secret_storage.key.<key_id>) -----------------------
def key_type(key_id: str) -> str:
    """The account data type that describes the key ``key_id``."""
    return KEY_TYPE_PREFIX + key_id


def default_key_content(key_id: str) -> dict[str, str]:
    """The content of account data ``m.secret_storage.default_key``."""
    return {"key": key_id}


def key_description(
    key: bytes, *, name: str | None = None, iv: bytes | None = None
) -> dict[str, Any]:
    """The content of ``m.secret_storage.key.<key_id>`` for ``key``: the algorithm and the
    ``iv``/``mac`` of 32 zero bytes encrypted with the empty name (spec: "Key storage")."""
    check = encrypt_secret("\0" * 32, key, "", iv=iv)
    description: dict[str, Any] = {"algorithm": ALGORITHM, "iv": check["iv"], "mac": check["mac"]}
    if name is not None:
        description["name"] = name
    return description


def check_key(key: bytes, description: Mapping[str, Any]) -> bool:
    """Whether ``key`` is the key that ``description`` describes (constant-time MAC check).

    Raises :class:`SecretStorageError` when the description is malformed, of another
    algorithm, or has no ``iv``/``mac`` (then the key cannot be checked at all)."""
    if not isinstance(description, Mapping):
        raise SecretStorageError("the key description is not an object")
    if description.get("algorithm") != ALGORITHM:
        raise SecretStorageError("the secret storage key uses an algorithm the bot does not know")
    iv = _unb64(description.get("iv"), "iv")
    mac = _unb64(description.get("mac"), "mac")
    if len(iv) != 16:
        raise SecretStorageError("the IV has 16 bytes")
    expected = encrypt_secret("\0" * 32, key, "", iv=iv)["mac"]
    return hmac.compare_digest(_unb64(expected, "mac"), mac)


# ---- secrets in account data -------------------------------------------------------------
def secret_content(secret: str, name: str, keys: Mapping[str, bytes]) -> dict[str, Any]:
    """The account data content of the secret ``name``, encrypted under every key of
    ``keys`` (key id -> key)."""
    if not keys:
        raise SecretStorageError("a secret needs at least one key to be stored under")
    return {
        "encrypted": {key_id: encrypt_secret(secret, key, name) for key_id, key in keys.items()}
    }


def read_secret(content: Mapping[str, Any], name: str, key_id: str, key: bytes) -> str:
    """The secret ``name`` from its account data ``content``, with the key ``key_id``."""
    encrypted = content.get("encrypted") if isinstance(content, Mapping) else None
    if not isinstance(encrypted, Mapping):
        raise SecretStorageError(f"{name} holds no encrypted secret")
    item = encrypted.get(key_id)
    if item is None:
        raise SecretStorageError(f"{name} is not encrypted under the key {key_id}")
    return decrypt_secret(item, key, name)


# ---- the whole store, for `livcr setup` and `livcr restore` -------------------------------
def new_store(
    secrets_by_name: Mapping[str, str], *, key_name: str = "livcr-bot"
) -> tuple[str, dict[str, dict[str, Any]]]:
    """A new key, and the account data that stores ``secrets_by_name`` under it: returns the
    recovery key (print it once, never log it) and ``{account data type: content}`` to PUT
    (the key description, ``m.secret_storage.default_key``, and one entry per secret)."""
    key, key_id = generate_key(), generate_key_id()
    account_data: dict[str, dict[str, Any]] = {
        key_type(key_id): key_description(key, name=key_name),
        DEFAULT_KEY_TYPE: default_key_content(key_id),
    }
    for name, secret in secrets_by_name.items():
        account_data[name] = secret_content(secret, name, {key_id: key})
    return encode_recovery_key(key), account_data


def open_store(
    account_data: Mapping[str, Any], recovery_key: str, names: tuple[str, ...]
) -> dict[str, str]:
    """The secrets ``names`` from the account data (type -> content, as fetched), with the
    default key given as a recovery key. Raises :class:`RecoveryKeyError` for a mistyped
    key, :class:`BadMacError` when it is not this account's key, and
    :class:`SecretStorageError` when something is missing."""
    key = decode_recovery_key(recovery_key)
    default = account_data.get(DEFAULT_KEY_TYPE)
    key_id = default.get("key") if isinstance(default, Mapping) else None
    if not isinstance(key_id, str) or not key_id:
        raise SecretStorageError("the account has no default secret storage key")
    description = account_data.get(key_type(key_id))
    if description is None:
        raise SecretStorageError("the default secret storage key has no description")
    if not check_key(key, description):
        raise BadMacError("this recovery key is not the one of this account's secret storage")
    out: dict[str, str] = {}
    for name in names:
        content = account_data.get(name)
        if content is None:
            raise SecretStorageError(f"the secret storage holds no {name}")
        out[name] = read_secret(content, name, key_id, key)
    return out
