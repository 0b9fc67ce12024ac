"""Members' cross-signing trust (bot.edge.trust), with real keys and real signatures.

Devices are vodozemac accounts (the same Olm account a member's client has); cross-signing
keys are the cryptography package's Ed25519. Everything is signed as a client does it:
Ed25519 over the canonical JSON without ``signatures`` and ``unsigned``; the test checks its
own signatures independently before the module under test sees them.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
import vodozemac
from canonicaljson import encode_canonical_json
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from bot.edge.trust import (
    AllowList,
    IdentityBlocked,
    IdentityPinned,
    Status,
    TrustCache,
    evaluate,
    fingerprint,
)

BOT = "@livcr:example.be"
CHAIR = "@chair:example.be"
OFFICER = "@officer:example.be"
SPY = "@spy:example.be"


# ---- building identities as a client does ------------------------------------------------
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def signable(obj: dict[str, Any]) -> bytes:
    data: bytes = encode_canonical_json(
        {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    )
    return data


def pub(key: Ed25519PrivateKey) -> str:
    return b64(
        key.public_key().public_bytes(
            encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
        )
    )


def add_signature(obj: dict[str, Any], user_id: str, key_id: str, signature: str) -> None:
    obj.setdefault("signatures", {}).setdefault(user_id, {})[key_id] = signature


def independently_verifies(public: str, obj: dict[str, Any], signature: str) -> bool:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public + "=" * (-len(public) % 4)))
    try:
        key.verify(base64.b64decode(signature + "=" * (-len(signature) % 4)), signable(obj))
    except InvalidSignature:
        return False
    return True


def ed_sign(key: Ed25519PrivateKey, obj: dict[str, Any], user_id: str) -> None:
    signature = b64(key.sign(signable(obj)))
    assert independently_verifies(pub(key), obj, signature)
    add_signature(obj, user_id, f"ed25519:{pub(key)}", signature)


@dataclass
class Device:
    """A member's device: a real vodozemac Olm account and its signed device keys."""

    user_id: str
    device_id: str
    account: vodozemac.Account = field(default_factory=vodozemac.Account)

    @property
    def ed25519(self) -> str:
        return str(self.account.ed25519_key.to_base64())

    @property
    def curve25519(self) -> str:
        return str(self.account.curve25519_key.to_base64())

    def keys(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                f"ed25519:{self.device_id}": self.ed25519,
                f"curve25519:{self.device_id}": self.curve25519,
            },
            "unsigned": {"device_display_name": "Element"},
        }
        signature = self.account.sign(signable(obj)).to_base64()
        assert independently_verifies(self.ed25519, obj, signature)
        add_signature(obj, self.user_id, f"ed25519:{self.device_id}", signature)
        return obj


@dataclass
class Identity:
    """A member's cross-signing identity (master, self-signing) and devices."""

    user_id: str
    master: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    self_signing: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    devices: dict[str, Device] = field(default_factory=dict)
    signed: set[str] = field(default_factory=set)  # device ids cross-signed

    @property
    def master_pub(self) -> str:
        return pub(self.master)

    def login(self, device_id: str, *, cross_sign: bool = True) -> Device:
        device = Device(self.user_id, device_id)
        self.devices[device_id] = device
        if cross_sign:
            self.signed.add(device_id)
        return device

    def reset(self) -> None:
        """A new identity (Element: "reset cryptographic identity"); devices re-signed."""
        self.master = Ed25519PrivateKey.generate()
        self.self_signing = Ed25519PrivateKey.generate()

    def key_object(self, key: Ed25519PrivateKey, usage: str) -> dict[str, Any]:
        public = pub(key)
        return {"user_id": self.user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}

    def master_key(self) -> dict[str, Any]:
        return self.key_object(self.master, "master")

    def self_signing_key(self, signer: Ed25519PrivateKey | None = None) -> dict[str, Any]:
        obj = self.key_object(self.self_signing, "self_signing")
        ed_sign(signer or self.master, obj, self.user_id)
        return obj

    def device_entries(self) -> dict[str, Any]:
        entries = {}
        for device_id, device in self.devices.items():
            obj = device.keys()
            if device_id in self.signed:
                ed_sign(self.self_signing, obj, self.user_id)
            entries[device_id] = obj
        return entries

    def answer(self) -> dict[str, Any]:
        return {
            "device_keys": {self.user_id: self.device_entries()},
            "master_keys": {self.user_id: self.master_key()},
            "self_signing_keys": {self.user_id: self.self_signing_key()},
        }


def merged(*answers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "device_keys": {}, "master_keys": {}, "self_signing_keys": {}, "failures": {}
    }
    for answer in answers:
        for section, value in answer.items():
            out[section].update(value)
    return out


@pytest.fixture
def chair() -> Identity:
    identity = Identity(CHAIR)
    identity.login("CHAIRPHONE")
    return identity


@pytest.fixture
def officer() -> Identity:
    identity = Identity(OFFICER)
    identity.login("OFFICERLAPTOP")
    return identity


def cache_for(*identities: Identity, pins: dict[str, str | None] | None = None) -> TrustCache:
    cache = TrustCache(BOT)
    for identity in identities:
        cache.track(identity.user_id, (pins or {}).get(identity.user_id))
    return cache


# ---- evaluating one answer ---------------------------------------------------------------
def test_a_cross_signed_device_is_trusted_and_first_sight_pins(chair: Identity) -> None:
    verdict = evaluate(chair.answer(), CHAIR, None)
    assert verdict.status is Status.TRUSTED
    assert verdict.master_key == chair.master_pub
    assert verdict.first_sight
    assert verdict.pinned == chair.master_pub
    assert set(verdict.trusted) == {"CHAIRPHONE"}
    keys = verdict.trusted["CHAIRPHONE"]
    assert (keys.ed25519, keys.curve25519) == (
        chair.devices["CHAIRPHONE"].ed25519, chair.devices["CHAIRPHONE"].curve25519
    )

    again = evaluate(chair.answer(), CHAIR, chair.master_pub)
    assert again.status is Status.TRUSTED
    assert not again.first_sight
    assert set(again.trusted) == {"CHAIRPHONE"}


def test_a_second_login_the_member_never_cross_signed_is_untrusted(chair: Identity) -> None:
    chair.login("NEWLOGIN", cross_sign=False)
    verdict = evaluate(chair.answer(), CHAIR, chair.master_pub)
    assert verdict.status is Status.TRUSTED
    assert set(verdict.trusted) == {"CHAIRPHONE"}
    assert set(verdict.listed) == {"CHAIRPHONE", "NEWLOGIN"}
    cache = cache_for(chair, pins={CHAIR: chair.master_pub})
    cache.apply(chair.answer())
    assert cache.is_trusted_device(CHAIR, "CHAIRPHONE")
    assert not cache.is_trusted_device(CHAIR, "NEWLOGIN")
    assert cache.is_known_untrusted_device(CHAIR, "NEWLOGIN")
    assert not cache.is_known_untrusted_device(CHAIR, "NOSUCHDEVICE")
    assert cache.allowed_devices([CHAIR]) == {CHAIR: {"CHAIRPHONE"}}


def test_a_device_signed_by_another_self_signing_key_is_untrusted(chair: Identity) -> None:
    answer = chair.answer()
    rogue = Ed25519PrivateKey.generate()  # e.g. the homeserver's own, or a stale one
    entry = chair.login("ROGUE", cross_sign=False).keys()
    ed_sign(rogue, entry, CHAIR)
    answer["device_keys"][CHAIR]["ROGUE"] = entry
    verdict = evaluate(answer, CHAIR, chair.master_pub)
    assert set(verdict.trusted) == {"CHAIRPHONE"}
    assert "ROGUE" in verdict.listed


def test_a_self_signing_key_not_signed_by_the_pinned_master_trusts_nothing(
    chair: Identity,
) -> None:
    answer = chair.answer()
    stranger = Ed25519PrivateKey.generate()
    answer["self_signing_keys"][CHAIR] = chair.self_signing_key(signer=stranger)
    verdict = evaluate(answer, CHAIR, chair.master_pub)
    assert verdict.status is Status.TRUSTED  # the identity is the pinned one ...
    assert dict(verdict.trusted) == {}  # ... but its chain does not hold: nothing trusted

    unsigned = chair.answer()
    del unsigned["self_signing_keys"][CHAIR]["signatures"]
    assert dict(evaluate(unsigned, CHAIR, chair.master_pub).trusted) == {}
    missing = chair.answer()
    del missing["self_signing_keys"]
    assert dict(evaluate(missing, CHAIR, chair.master_pub).trusted) == {}


def test_tampered_device_keys_or_a_missing_self_signature_are_untrusted(chair: Identity) -> None:
    answer = chair.answer()
    entry = answer["device_keys"][CHAIR]["CHAIRPHONE"]
    entry["keys"]["curve25519:CHAIRPHONE"] = Device(CHAIR, "X").curve25519  # swapped after signing
    assert dict(evaluate(answer, CHAIR, chair.master_pub).trusted) == {}

    # Cross-signed by the SSK but without the device's own signature: ignored.
    device = chair.login("NOSELF", cross_sign=False)
    obj = device.keys()
    del obj["signatures"]
    ed_sign(chair.self_signing, obj, CHAIR)
    answer = chair.answer()
    answer["device_keys"][CHAIR]["NOSELF"] = obj
    verdict = evaluate(answer, CHAIR, chair.master_pub)
    assert "NOSELF" not in verdict.trusted
    assert "NOSELF" not in verdict.listed


def test_unsigned_fields_are_not_signed_and_do_not_matter(chair: Identity) -> None:
    answer = chair.answer()
    answer["device_keys"][CHAIR]["CHAIRPHONE"]["unsigned"] = {"device_display_name": "other"}
    assert set(evaluate(answer, CHAIR, chair.master_pub).trusted) == {"CHAIRPHONE"}


def test_no_cross_signing_identity_yet(chair: Identity) -> None:
    answer = chair.answer()
    del answer["master_keys"]
    del answer["self_signing_keys"]
    verdict = evaluate(answer, CHAIR, None)
    assert verdict.status is Status.NO_IDENTITY
    assert verdict.master_key is None
    assert not verdict.first_sight
    assert dict(verdict.trusted) == {}
    assert set(verdict.listed) == {"CHAIRPHONE"}
    # A pinned member whose identity vanished from the server: nothing trusted, no block.
    pinned = evaluate(answer, CHAIR, chair.master_pub)
    assert pinned.status is Status.NO_IDENTITY
    assert not pinned.blocked
    assert dict(pinned.trusted) == {}


def test_a_forged_device_entry_listed_under_another_user_is_ignored(
    chair: Identity, officer: Identity
) -> None:
    # The officer's real, cross-signed device copied under the chair's name (the server can
    # list anything anywhere); and a chair-named device listed under the officer.
    answer = merged(chair.answer(), officer.answer())
    stolen = copy.deepcopy(answer["device_keys"][OFFICER]["OFFICERLAPTOP"])
    answer["device_keys"][CHAIR]["OFFICERLAPTOP"] = stolen
    answer["device_keys"][CHAIR]["OTHERID"] = copy.deepcopy(
        answer["device_keys"][CHAIR]["CHAIRPHONE"]
    )
    verdict = evaluate(answer, CHAIR, chair.master_pub)
    assert set(verdict.trusted) == {"CHAIRPHONE"}
    assert set(verdict.listed) == {"CHAIRPHONE"}

    # Even with every signature valid under the chair's name (the chair's self-signing key
    # signed it), an entry that says it is the officer's device is not the chair's device.
    officer_device = officer.login("SHARED", cross_sign=False)
    entry = officer_device.keys()
    add_signature(entry, CHAIR, "ed25519:SHARED", entry["signatures"][OFFICER]["ed25519:SHARED"])
    ed_sign(chair.self_signing, entry, CHAIR)
    answer = chair.answer()
    answer["device_keys"][CHAIR]["SHARED"] = entry
    verdict = evaluate(answer, CHAIR, chair.master_pub)
    assert set(verdict.trusted) == {"CHAIRPHONE"}
    renamed = copy.deepcopy(entry)
    renamed["user_id"] = CHAIR  # a re-labelled entry: its signatures no longer verify
    answer["device_keys"][CHAIR]["SHARED"] = renamed
    assert set(evaluate(answer, CHAIR, chair.master_pub).trusted) == {"CHAIRPHONE"}

    # The chair's master key listed as the officer's: not the officer's identity.
    swapped = merged(chair.answer(), officer.answer())
    swapped["master_keys"][OFFICER] = swapped["master_keys"][CHAIR]
    swapped["self_signing_keys"][OFFICER] = swapped["self_signing_keys"][CHAIR]
    assert evaluate(swapped, OFFICER, None).status is Status.NO_IDENTITY


def test_malformed_answers_never_raise_and_trust_nothing(chair: Identity) -> None:
    shapes: list[Any] = [
        {},
        {"device_keys": None},
        {"device_keys": {CHAIR: []}},
        {"device_keys": {CHAIR: {"CHAIRPHONE": "x"}}, "master_keys": {CHAIR: "x"}},
        {"device_keys": {CHAIR: {}}, "master_keys": {CHAIR: {"user_id": CHAIR, "usage": "master",
                                                              "keys": {}}}},
    ]
    master = chair.master_key()
    master["keys"] = {"ed25519:AAAA": "AAAA"}
    shapes.append({"device_keys": {CHAIR: {}}, "master_keys": {CHAIR: master}})
    answer = chair.answer()
    answer["device_keys"][CHAIR]["CHAIRPHONE"]["signatures"][CHAIR] = {
        f"ed25519:{pub(chair.self_signing)}": "not base64 !!",
        "ed25519:CHAIRPHONE": 12,
    }
    shapes.append(answer)
    for shape in shapes:
        verdict = evaluate(shape, CHAIR, chair.master_pub)
        assert dict(verdict.trusted) == {}, shape


# ---- identity change ---------------------------------------------------------------------
def test_a_replaced_master_key_blocks_until_trusted_again(
    chair: Identity, officer: Identity
) -> None:
    cache = cache_for(chair, officer)
    events = cache.apply(merged(chair.answer(), officer.answer()))
    assert set(events) == {
        IdentityPinned(CHAIR, chair.master_pub), IdentityPinned(OFFICER, officer.master_pub)
    }
    old = officer.master_pub

    officer.reset()  # a password reset by an administrator, and a new identity
    cache.invalidate([OFFICER])
    assert cache.query_body() == {"device_keys": {OFFICER: []}}
    events = cache.apply(officer.answer())
    assert events == [IdentityBlocked(OFFICER, old, officer.master_pub)]
    assert events[0].fingerprint == fingerprint(officer.master_pub)
    assert cache.blocked(OFFICER)
    status = cache.status(OFFICER)
    assert status is not None
    assert status.status is Status.CHANGED
    assert status.master_key == officer.master_pub
    assert status.pinned == old
    # Blocked: no device, none in the allow-list, no session trusted; the chair unaffected.
    device = officer.devices["OFFICERLAPTOP"]
    assert not cache.is_trusted_device(OFFICER, "OFFICERLAPTOP")
    assert not cache.is_known_untrusted_device(OFFICER, "OFFICERLAPTOP")
    assert not cache.is_trusted_session(OFFICER, device.curve25519, "OFFICERLAPTOP")
    assert cache.allowed_devices([CHAIR, OFFICER]) == {CHAIR: {"CHAIRPHONE"}}

    # The same change seen again (another device list change) is not announced twice.
    cache.invalidate([OFFICER])
    assert cache.apply(officer.answer()) == []
    assert cache.blocked(OFFICER)

    # Trusting the key the chair was shown restores the member.
    assert cache.trust(OFFICER, officer.master_pub) == []
    assert not cache.blocked(OFFICER)
    assert cache.is_trusted_device(OFFICER, "OFFICERLAPTOP")
    assert cache.allowed_devices([OFFICER]) == {OFFICER: {"OFFICERLAPTOP"}}


def test_trusting_a_key_that_is_no_longer_published_keeps_the_block(officer: Identity) -> None:
    cache = cache_for(officer)
    cache.apply(officer.answer())
    officer.reset()
    cache.invalidate([OFFICER])
    (blocked,) = cache.apply(officer.answer())
    assert isinstance(blocked, IdentityBlocked)
    shown = blocked.new_key
    officer.reset()  # changed again before the chair ran `members trust`
    cache.invalidate([OFFICER])
    (again,) = cache.apply(officer.answer())
    assert isinstance(again, IdentityBlocked)
    assert again.new_key == officer.master_pub
    assert cache.trust(OFFICER, shown) == [IdentityBlocked(OFFICER, shown, officer.master_pub)]
    assert cache.blocked(OFFICER)


def test_a_stored_pin_from_an_earlier_run_blocks_a_new_identity(officer: Identity) -> None:
    old = officer.master_pub
    officer.reset()
    cache = cache_for(officer, pins={OFFICER: old})
    assert cache.apply(officer.answer()) == [IdentityBlocked(OFFICER, old, officer.master_pub)]
    assert cache.allowed_devices([OFFICER]) == {}


def test_a_pin_from_the_roster_is_not_overridden_by_first_sight(officer: Identity) -> None:
    provisioned = pub(Ed25519PrivateKey.generate())  # `master_key = "…"` in the roster entry
    cache = cache_for(officer, pins={OFFICER: provisioned})
    events = cache.apply(officer.answer())
    assert events == [IdentityBlocked(OFFICER, provisioned, officer.master_pub)]
    # A re-pin from storage (the operator's `livcr trust`) judges the last answer again.
    assert cache.track(OFFICER, officer.master_pub) == []
    assert cache.is_trusted_device(OFFICER, "OFFICERLAPTOP")


# ---- the allow-list ----------------------------------------------------------------------
def test_no_device_of_the_bots_own_account_is_ever_allowed(chair: Identity) -> None:
    bot = Identity(BOT)
    bot.login("BOTDEVICE")
    bot.login("SECONDBOT")  # a second login on the bot's account, even cross-signed
    cache = cache_for(chair, bot)
    cache.apply(merged(chair.answer(), bot.answer()))
    assert cache.tracked() == {CHAIR}
    assert cache.allowed_devices([CHAIR, BOT]) == {CHAIR: {"CHAIRPHONE"}}
    assert not cache.is_trusted_device(BOT, "SECONDBOT")
    assert not cache.is_trusted_session(BOT, bot.devices["SECONDBOT"].curve25519)


def test_the_allow_list_is_a_snapshot_a_device_learned_meanwhile_is_not_in_it(
    chair: Identity,
) -> None:
    cache = cache_for(chair)
    cache.apply(chair.answer())
    share = cache.allow_list([CHAIR])  # taken once, when the key share starts
    phone = chair.devices["CHAIRPHONE"]

    tablet = chair.login("TABLET")  # the sync loop learns a (trusted) device mid-share
    cache.invalidate([CHAIR])
    cache.apply(chair.answer())
    assert cache.is_trusted_device(CHAIR, "TABLET")
    assert share.device_ids() == {CHAIR: {"CHAIRPHONE"}}
    assert share.pairs() == {(CHAIR, "CHAIRPHONE")}
    assert not share.permits(CHAIR, "TABLET", tablet.curve25519)
    assert share.permits(CHAIR, "CHAIRPHONE", phone.curve25519, phone.ed25519)
    assert cache.generation != share.generation
    # A device id whose keys in the Olm machine differ from the verified ones: refused.
    assert not share.permits(CHAIR, "CHAIRPHONE", tablet.curve25519)
    assert not share.permits(CHAIR, "CHAIRPHONE", phone.curve25519, tablet.ed25519)


def test_rotation_is_needed_when_a_recipient_left_or_was_blocked(
    chair: Identity, officer: Identity
) -> None:
    cache = cache_for(chair, officer)
    cache.apply(merged(chair.answer(), officer.answer()))
    shared_with = cache.allow_list([CHAIR, OFFICER]).pairs()
    assert not cache.allow_list([CHAIR, OFFICER]).needs_rotation(shared_with)
    # A new trusted device joining does not need a rotation (it gets the next share) ...
    chair.login("TABLET")
    cache.invalidate([CHAIR])
    cache.apply(merged(chair.answer()))
    assert not cache.allow_list([CHAIR, OFFICER]).needs_rotation(shared_with)
    # ... a member leaving the roster does,
    assert cache.allow_list([CHAIR]).needs_rotation(shared_with)
    # and so does a block.
    officer.reset()
    cache.invalidate([OFFICER])
    cache.apply(officer.answer())
    assert cache.allow_list([CHAIR, OFFICER]).needs_rotation(shared_with)
    cache.untrack([OFFICER])
    assert cache.allowed_devices([CHAIR, OFFICER]) == {CHAIR: {"CHAIRPHONE", "TABLET"}}
    assert isinstance(cache.allow_list([]), AllowList)
    assert cache.allowed_devices([]) == {}


# ---- inbound sessions --------------------------------------------------------------------
def test_a_session_of_another_users_device_is_not_trusted_for_the_sender(
    chair: Identity, officer: Identity
) -> None:
    cache = cache_for(chair, officer)
    cache.apply(merged(chair.answer(), officer.answer()))
    phone = chair.devices["CHAIRPHONE"]
    laptop = officer.devices["OFFICERLAPTOP"]
    assert cache.is_trusted_session(CHAIR, phone.curve25519, "CHAIRPHONE")
    assert cache.is_trusted_session(CHAIR, phone.curve25519)  # no device id claimed
    found = cache.trusted_session_device(CHAIR, phone.curve25519)
    assert found is not None
    assert found.device_id == "CHAIRPHONE"
    assert cache.is_trusted_session(CHAIR, phone.curve25519, ed25519=phone.ed25519)
    # The session claims another signing key than the device's: refused.
    assert not cache.is_trusted_session(CHAIR, phone.curve25519, ed25519=laptop.ed25519)
    assert not cache.is_trusted_session(CHAIR, phone.curve25519, "CHAIRPHONE", laptop.ed25519)
    # Outer sender the chair, session from the officer's (trusted) device: refused,
    assert not cache.is_trusted_session(CHAIR, laptop.curve25519, "OFFICERLAPTOP")
    assert not cache.is_trusted_session(CHAIR, laptop.curve25519, "CHAIRPHONE")
    assert not cache.is_trusted_session(CHAIR, laptop.curve25519)
    # also when the claimed device is the chair's but the key is not that device's.
    assert not cache.is_trusted_session(OFFICER, phone.curve25519, "OFFICERLAPTOP")
    # An untrusted second login of the chair: its session is not trusted.
    new = chair.login("NEWLOGIN", cross_sign=False)
    cache.invalidate([CHAIR])
    cache.apply(chair.answer())
    assert not cache.is_trusted_session(CHAIR, new.curve25519, "NEWLOGIN")
    # A user the cache does not follow: nothing is trusted.
    assert not cache.is_trusted_session(SPY, phone.curve25519, "CHAIRPHONE")


# ---- refreshing --------------------------------------------------------------------------
def test_stale_invalidate_apply_is_one_batched_query(
    chair: Identity, officer: Identity
) -> None:
    spy = Identity(SPY)
    spy.login("SPYDEVICE")
    cache = cache_for(chair, officer)
    assert cache.stale() == {CHAIR, OFFICER}
    assert cache.query_body() == {"device_keys": {CHAIR: [], OFFICER: []}}
    assert not cache.is_trusted_device(CHAIR, "CHAIRPHONE")  # nothing known before the query
    cache.apply(merged(chair.answer(), officer.answer()))
    assert cache.stale() == frozenset()
    assert cache.query_body() is None

    # device_lists.changed of a sync: only tracked users become stale, one query for all.
    assert cache.invalidate([CHAIR, OFFICER, SPY]) == {CHAIR, OFFICER}
    assert cache.stale() == {CHAIR, OFFICER}
    # Until the answer, what was known stays in force (no query per command).
    assert cache.is_trusted_device(CHAIR, "CHAIRPHONE")
    # The officer's server failed: listed in failures, not in device_keys -> still stale.
    partial = chair.answer()
    partial["failures"] = {"example.be": {"errcode": "M_UNKNOWN"}}
    assert cache.apply(partial) == []
    assert cache.stale() == {OFFICER}
    assert cache.is_trusted_device(OFFICER, "OFFICERLAPTOP")
    cache.apply(merged(officer.answer(), spy.answer()))  # an untracked user in an answer
    assert cache.stale() == frozenset()
    assert cache.tracked() == {CHAIR, OFFICER}
    assert not cache.is_trusted_device(SPY, "SPYDEVICE")

    # A new roster member is stale until the next (single) query.
    cache.track(SPY, None)
    assert cache.query_body() == {"device_keys": {SPY: []}}
    assert cache.apply(spy.answer()) == [IdentityPinned(SPY, spy.master_pub)]
    assert cache.pinned(SPY) == spy.master_pub

    # A stale user who leaves every roster is asked for no more.
    cache.invalidate([SPY, CHAIR])
    cache.untrack([SPY])
    assert cache.query_body() == {"device_keys": {CHAIR: []}}


def test_fingerprint_groups_of_four_as_element_shows_them(chair: Identity) -> None:
    key = chair.master_pub
    shown = fingerprint(key)
    assert shown.replace(" ", "") == key
    assert all(len(group) == 4 for group in shown.split(" ")[:-1])
    assert len(shown.split(" ")) == 11  # 43 characters of base64
    assert TrustCache.fingerprint(key) == shown
    assert fingerprint("abcdefgh") == "abcd efgh"
