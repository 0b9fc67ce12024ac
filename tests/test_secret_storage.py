"""Secret storage (bot/edge/secret_storage.py): the spec's format, and interop with
matrix-js-sdk, whose functions (Element Web's own code) decrypt what we encrypt and the other
way round."""

from __future__ import annotations

import base64
import re

import pytest

from bot.edge import secret_storage as ss
from tests.jsinterop import run_script

SCRIPT = "secret_storage.mjs"
# A seed as the bot stores it: an Ed25519 private key in unpadded base64.
SEED = base64.b64encode(bytes(range(32))).decode().rstrip("=")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---- recovery keys -----------------------------------------------------------------------
def test_recovery_key_looks_like_elements() -> None:
    key = ss.generate_key()
    text = ss.encode_recovery_key(key)
    groups = text.split(" ")
    assert len(groups) == 12
    assert all(len(g) == 4 for g in groups)
    assert text.startswith("Es")  # what 0x8B 0x01 turns into: every Element key starts so
    assert re.fullmatch(r"[1-9A-HJ-NP-Za-km-z ]+", text)
    assert ss.decode_recovery_key(text) == key


def test_recovery_key_tolerates_whitespace_not_case() -> None:
    key = ss.generate_key()
    text = ss.encode_recovery_key(key)
    assert ss.decode_recovery_key(text.replace(" ", "")) == key
    assert ss.decode_recovery_key(f"  {text[:9]}\n{text[9:]}\t") == key
    swapped = text.swapcase()
    with pytest.raises(ss.RecoveryKeyError):
        assert ss.decode_recovery_key(swapped) == key


def test_a_typo_in_the_recovery_key_is_caught() -> None:
    # A fixed key keeps this deterministic: the parity byte misses about 1 typo in 256
    # (for bytes(range(32)), changing the 6th character goes unnoticed).
    text = ss.encode_recovery_key(bytes([7] * 32)).replace(" ", "")
    refused = 0
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    for i in range(len(text)):
        other = alphabet[(alphabet.index(text[i]) + 1) % 58]
        with pytest.raises(ss.RecoveryKeyError):
            ss.decode_recovery_key(text[:i] + other + text[i + 1 :])
        refused += 1
    assert refused == len(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x8b\x02" + bytes(32), "prefix"),
        (b"\x8b\x01" + bytes(31), "length"),
        (b"\x8b\x01" + bytes(33), "length"),
    ],
)
def test_bad_prefix_or_length_is_refused(data: bytes, message: str) -> None:
    parity = 0
    for byte in data:
        parity ^= byte
    text = ss._base58_encode(data + bytes([parity]))
    with pytest.raises(ss.RecoveryKeyError, match=message):
        ss.decode_recovery_key(text)


def test_bad_parity_and_characters_are_refused() -> None:
    data = b"\x8b\x01" + bytes(32) + b"\x00"  # parity should be 0x8a
    with pytest.raises(ss.RecoveryKeyError, match="parity"):
        ss.decode_recovery_key(ss._base58_encode(data))
    with pytest.raises(ss.RecoveryKeyError, match="character"):
        ss.decode_recovery_key("EsT0 OIl")
    with pytest.raises(ss.RecoveryKeyError, match="empty"):
        ss.decode_recovery_key("   ")


# ---- encryption --------------------------------------------------------------------------
def test_round_trip_and_format() -> None:
    key = ss.generate_key()
    item = ss.encrypt_secret(SEED, key, ss.MASTER)
    assert set(item) == {"iv", "ciphertext", "mac"}
    assert not any(v.endswith("=") for v in item.values())  # unpadded, as the spec says
    iv = base64.b64decode(item["iv"] + "==")
    assert len(iv) == 16
    assert iv[8] & 0x80 == 0  # bit 63 cleared
    assert ss.decrypt_secret(item, key, ss.MASTER) == SEED


def test_wrong_key_name_or_tampering_is_refused() -> None:
    key = ss.generate_key()
    item = ss.encrypt_secret(SEED, key, ss.MASTER)
    with pytest.raises(ss.BadMacError):
        ss.decrypt_secret(item, ss.generate_key(), ss.MASTER)
    with pytest.raises(ss.BadMacError):
        ss.decrypt_secret(item, key, ss.SELF_SIGNING)  # the name is bound into the keys
    raw = bytearray(base64.b64decode(item["ciphertext"] + "=="))
    raw[0] ^= 1
    tampered = {**item, "ciphertext": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(ss.BadMacError):
        ss.decrypt_secret(tampered, key, ss.MASTER)
    with pytest.raises(ss.BadMacError):
        ss.decrypt_secret({**item, "mac": item["iv"]}, key, ss.MASTER)


@pytest.mark.parametrize(
    "item",
    [None, [], {}, {"iv": 1, "ciphertext": "", "mac": ""}, {"iv": "!!", "ciphertext": "",
                                                             "mac": ""},
     {"iv": "AAAA", "ciphertext": "", "mac": ""}],
)
def test_malformed_items_raise_the_module_error(item: object) -> None:
    with pytest.raises(ss.SecretStorageError):
        ss.decrypt_secret(item, ss.generate_key(), ss.MASTER)  # type: ignore[arg-type]


def test_key_description_checks_the_key() -> None:
    key = ss.generate_key()
    description = ss.key_description(key, name="livcr-bot")
    assert description["algorithm"] == "m.secret_storage.v1.aes-hmac-sha2"
    assert set(description) == {"algorithm", "iv", "mac", "name"}
    assert ss.check_key(key, description)
    assert not ss.check_key(ss.generate_key(), description)
    with pytest.raises(ss.SecretStorageError):
        ss.check_key(key, {**description, "algorithm": "m.secret_storage.v2"})
    with pytest.raises(ss.SecretStorageError):
        ss.check_key(key, {"algorithm": ss.ALGORITHM})


def test_account_data_content() -> None:
    key, other = ss.generate_key(), ss.generate_key()
    content = ss.secret_content(SEED, ss.USER_SIGNING, {"k1": key, "k2": other})
    assert set(content["encrypted"]) == {"k1", "k2"}
    assert ss.read_secret(content, ss.USER_SIGNING, "k2", other) == SEED
    with pytest.raises(ss.SecretStorageError, match="not encrypted under"):
        ss.read_secret(content, ss.USER_SIGNING, "k3", key)
    with pytest.raises(ss.SecretStorageError):
        ss.read_secret({}, ss.USER_SIGNING, "k1", key)
    assert ss.key_type("k1") == "m.secret_storage.key.k1"
    assert ss.default_key_content("k1") == {"key": "k1"}
    assert len(ss.generate_key_id()) == 32


# ---- interop with matrix-js-sdk ----------------------------------------------------------
def test_js_sdk_reads_what_we_write_and_we_read_what_it_writes() -> None:
    key = ss.generate_key()
    secrets = {ss.MASTER: SEED, ss.SELF_SIGNING: SEED[::-1], ss.STORE_KEY: "é" * 40}
    ours = {name: ss.encrypt_secret(value, key, name) for name, value in secrets.items()}
    ops = [
        {"op": "decrypt", "item": item, "key": _b64(key), "name": name}
        for name, item in ours.items()
    ]
    ops += [
        {"op": "encrypt", "secret": value, "key": _b64(key), "name": name}
        for name, value in secrets.items()
    ]
    # A wrong key must fail in js-sdk too (the MAC is what both sides check).
    ops.append({"op": "decrypt", "item": ours[ss.MASTER], "key": _b64(ss.generate_key()),
                "name": ss.MASTER})
    answers = run_script(SCRIPT, ops)
    n = len(secrets)
    assert [a.get("secret") for a in answers[:n]] == list(secrets.values())
    for (name, value), theirs in zip(secrets.items(), answers[n : 2 * n], strict=True):
        assert ss.decrypt_secret(theirs, key, name) == value
        assert base64.b64decode(theirs["iv"])[8] & 0x80 == 0
    assert "bad MAC" in answers[-1]["error"]


def test_js_sdk_key_check_and_recovery_keys_agree_with_ours() -> None:
    key = ss.generate_key()
    description = ss.key_description(key)
    recovery = ss.encode_recovery_key(key)
    fixed = ss.encode_recovery_key(bytes([7] * 32))
    typo = fixed[:-1] + ("x" if fixed[-1] != "x" else "y")  # refused by us, see above
    answers = run_script(SCRIPT, [
        {"op": "key_check", "key": _b64(key), "iv": description["iv"]},
        {"op": "key_check", "key": _b64(key)},
        {"op": "encode_recovery_key", "key": _b64(key)},
        {"op": "decode_recovery_key", "recovery_key": recovery},
        {"op": "decode_recovery_key", "recovery_key": typo},
    ])
    same_iv, theirs, encoded, decoded, typo_answer = answers
    assert ss._unb64(same_iv["mac"], "mac") == ss._unb64(description["mac"], "mac")
    assert ss.check_key(key, {"algorithm": ss.ALGORITHM, **theirs})
    assert encoded["recovery_key"] == recovery  # byte for byte as Element shows it
    assert base64.b64decode(decoded["key"]) == key
    assert "error" in typo_answer
    with pytest.raises(ss.RecoveryKeyError):
        ss.decode_recovery_key(typo)


# ---- the whole store ---------------------------------------------------------------------
def test_a_new_store_opens_with_its_recovery_key_only() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bot.edge.signing_keys import CrossSigningKeys, _seed, decode_b64, public_b64

    keys = CrossSigningKeys.generate("@livcr:example.org")
    seeds = {ss.MASTER: _seed(keys.master), ss.SELF_SIGNING: _seed(keys.self_signing),
             ss.USER_SIGNING: _seed(keys.user_signing), ss.STORE_KEY: "store-key-text"}
    recovery, account_data = ss.new_store(seeds)
    assert set(account_data) >= {ss.DEFAULT_KEY_TYPE, *seeds}
    names = (*ss.CROSS_SIGNING_SECRETS, ss.STORE_KEY)
    opened = ss.open_store(account_data, recovery, names)
    assert opened == seeds
    master = Ed25519PrivateKey.from_private_bytes(decode_b64(opened[ss.MASTER]))
    assert public_b64(master) == public_b64(keys.master)  # the same identity comes back
    with pytest.raises(ss.BadMacError):
        ss.open_store(account_data, ss.encode_recovery_key(ss.generate_key()), names)
    with pytest.raises(ss.RecoveryKeyError):
        ss.open_store(account_data, recovery[:-2], names)
    with pytest.raises(ss.SecretStorageError, match="default"):
        ss.open_store({}, recovery, names)
    with pytest.raises(ss.SecretStorageError, match="holds no"):
        ss.open_store(account_data, recovery, ("m.megolm_backup.v1",))
    # js-sdk reads the seeds of this store as Element would.
    key_id = account_data[ss.DEFAULT_KEY_TYPE]["key"]
    key = ss.decode_recovery_key(recovery)
    answers = run_script(SCRIPT, [
        {"op": "decrypt", "item": account_data[name]["encrypted"][key_id], "key": _b64(key),
         "name": name} for name in ss.CROSS_SIGNING_SECRETS])
    assert [a["secret"] for a in answers] == [seeds[n] for n in ss.CROSS_SIGNING_SECRETS]
