"""Which devices of the roster the bot trusts: members' cross-signing, checked by the bot.

matrix-nio has no cross-signing, so the bot checks it itself (SPEC §11, "Only trusted
devices", "An identity change blocks", "Room keys only where they belong"). A member's device
is *trusted* when, in the answer to ``/keys/query``:

- the member's published master key is the one pinned for them (or, at first sight, becomes
  the pin: trust on first use);
- the self-signing key is signed by that master key;
- the device is signed by that self-signing key and by its own Ed25519 key;
- every object is listed where it claims to belong (``user_id``, ``device_id``, ``usage``).

A master key that differs from the pin *blocks* the member: none of their devices is trusted
until the pin is replaced (``members trust`` / ``livcr trust``), never automatically.

This module is pure: no network, no database, no nio. :class:`TrustCache` keeps the answer per
roster user in memory; the edge feeds it the sync's ``device_lists.changed``
(:meth:`TrustCache.invalidate`), makes ONE ``/keys/query`` for everything :meth:`stale`
returns, and gives the answer to :meth:`apply`. The decisions to persist and announce (a pin
at first sight, a block) come back as events.

Atomicity of key shares: the edge takes one :class:`AllowList` (a frozen snapshot, see
:meth:`TrustCache.allow_list`) per room-key share and encrypts the key only for the devices in
it; a device the cache learns while that share is in flight is not in the snapshot, so it
cannot receive the key. The cache itself changes only in :meth:`apply`, :meth:`track`,
:meth:`untrack`, :meth:`trust` and :meth:`invalidate`, which the edge calls between shares
(all of them synchronous: no await can interleave).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from bot.edge.signing_keys import single_ed25519_key, verify_signature

__all__ = [
    "AllowList",
    "DeviceKeys",
    "IdentityBlocked",
    "IdentityPinned",
    "Status",
    "TrustCache",
    "TrustEvent",
    "UserTrust",
    "evaluate",
    "fingerprint",
]


class Status(StrEnum):
    TRUSTED = "trusted"  # published master key == pinned (or first sight: to be pinned)
    CHANGED = "changed"  # published master key != pinned: the member is BLOCKED
    NO_IDENTITY = "no_identity"  # no (well-formed) cross-signing identity published


@dataclass(frozen=True)
class DeviceKeys:
    """A device's identity keys as listed (and signed) in ``/keys/query``."""

    user_id: str
    device_id: str
    ed25519: str
    curve25519: str


@dataclass(frozen=True)
class UserTrust:
    """What one ``/keys/query`` answer says about one user, judged against their pin.

    ``pinned`` is the pin the answer was judged against: the stored one, or at first sight the
    published master key (``first_sight`` is then True and the caller must persist it).
    ``trusted`` holds the trusted devices only; it is empty unless ``status`` is trusted.
    ``listed`` holds every device whose entry is well-formed and self-signed, trusted or
    not: the edge uses it to tell an untrusted device from an unknown one.
    """

    user_id: str
    status: Status
    master_key: str | None
    pinned: str | None
    first_sight: bool
    trusted: Mapping[str, DeviceKeys]
    listed: Mapping[str, DeviceKeys]

    @property
    def blocked(self) -> bool:
        return self.status is Status.CHANGED


@dataclass(frozen=True)
class IdentityPinned:
    """First sight of a roster member's master key: persist it as their pin (``tofu``)."""

    user_id: str
    master_key: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.master_key)


@dataclass(frozen=True)
class IdentityBlocked:
    """A roster member's published master key differs from the pin: persist the block and
    tell the chair at once, with the new key's fingerprint."""

    user_id: str
    pinned: str
    new_key: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.new_key)


TrustEvent = IdentityPinned | IdentityBlocked


def fingerprint(master_key: str) -> str:
    """The key in groups of four characters, as Element shows it (``abcd efgh …``)."""
    return " ".join(master_key[i : i + 4] for i in range(0, len(master_key), 4))


# ---- judging one /keys/query answer ------------------------------------------------------
def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _signature(obj: dict[str, Any], user_id: str, key_id: str) -> str | None:
    signature = _dict(_dict(obj.get("signatures")).get(user_id)).get(key_id)
    return signature if isinstance(signature, str) else None


def _signed_by(obj: dict[str, Any], user_id: str, public: str) -> bool:
    signature = _signature(obj, user_id, f"ed25519:{public}")
    return signature is not None and verify_signature(public, obj, signature)


def _cross_signing_key(obj: Any, user_id: str, usage: str) -> str | None:
    """The public key of a cross-signing key object of ``user_id`` for ``usage``, or None
    when the object is malformed or belongs elsewhere."""
    if not isinstance(obj, dict) or obj.get("user_id") != user_id:
        return None
    usages = obj.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        return None
    return single_ed25519_key(obj)


def _device(obj: Any, user_id: str, device_id: str) -> DeviceKeys | None:
    """The keys of a device entry listed under ``user_id``/``device_id``, if the entry says
    it is that device and carries a valid signature by its own Ed25519 key."""
    if not isinstance(obj, dict):
        return None
    if obj.get("user_id") != user_id or obj.get("device_id") != device_id:
        return None  # listed under another user or device: a forged or broken entry
    keys = _dict(obj.get("keys"))
    ed25519 = keys.get(f"ed25519:{device_id}")
    curve25519 = keys.get(f"curve25519:{device_id}")
    if not isinstance(ed25519, str) or not isinstance(curve25519, str):
        return None
    if not ed25519 or not curve25519 or not _signed_by_device(obj, user_id, device_id, ed25519):
        return None
    return DeviceKeys(user_id, device_id, ed25519, curve25519)


def _signed_by_device(obj: dict[str, Any], user_id: str, device_id: str, ed25519: str) -> bool:
    signature = _signature(obj, user_id, f"ed25519:{device_id}")
    return signature is not None and verify_signature(ed25519, obj, signature)


def evaluate(response: Mapping[str, Any], user_id: str, pinned: str | None) -> UserTrust:
    """Judge ``user_id``'s part of a ``/keys/query`` answer against their pin (None: none
    yet). Never raises on a malformed answer: what is malformed is simply not trusted."""
    master_obj = _dict(response.get("master_keys")).get(user_id)
    ssk_obj = _dict(response.get("self_signing_keys")).get(user_id)
    devices = _dict(_dict(response.get("device_keys")).get(user_id))

    listed: dict[str, DeviceKeys] = {}
    for device_id, entry in devices.items():
        if isinstance(device_id, str) and device_id:
            keys = _device(entry, user_id, device_id)
            if keys is not None:
                listed[device_id] = keys

    master = _cross_signing_key(master_obj, user_id, "master")
    if master is None:
        # No identity (yet), or a malformed one: nothing is trusted, and nothing to pin. A
        # pinned member whose identity disappeared is not trusted either (fail closed).
        return _result(user_id, Status.NO_IDENTITY, None, pinned, False, {}, listed)
    if pinned is not None and master != pinned:
        return _result(user_id, Status.CHANGED, master, pinned, False, {}, listed)

    first_sight = pinned is None
    trusted: dict[str, DeviceKeys] = {}
    ssk = _cross_signing_key(ssk_obj, user_id, "self_signing")
    if ssk is not None and isinstance(ssk_obj, dict) and _signed_by(ssk_obj, user_id, master):
        for device_id, keys in listed.items():
            if _signed_by(devices[device_id], user_id, ssk):
                trusted[device_id] = keys
    return _result(user_id, Status.TRUSTED, master, master, first_sight, trusted, listed)


def _result(
    user_id: str,
    status: Status,
    master: str | None,
    pinned: str | None,
    first_sight: bool,
    trusted: dict[str, DeviceKeys],
    listed: dict[str, DeviceKeys],
) -> UserTrust:
    return UserTrust(
        user_id=user_id,
        status=status,
        master_key=master,
        pinned=pinned,
        first_sight=first_sight,
        trusted=MappingProxyType(trusted),
        listed=MappingProxyType(listed),
    )


def _slice(response: Mapping[str, Any], user_id: str) -> dict[str, Any]:
    """The part of an answer that concerns one user (kept to judge again after a re-pin)."""
    part: dict[str, Any] = {}
    for section in ("device_keys", "master_keys", "self_signing_keys"):
        value = _dict(response.get(section)).get(user_id)
        if value is not None:
            part[section] = {user_id: value}
    return part


# ---- the allow-list of one key share -----------------------------------------------------
@dataclass(frozen=True)
class AllowList:
    """The devices that may receive ONE room-key share: trusted devices of the given roster
    members, never a device of the bot's own account. Frozen: take it once per share."""

    devices: Mapping[str, Mapping[str, DeviceKeys]]
    generation: int

    def device_ids(self) -> dict[str, set[str]]:
        return {user: set(per_user) for user, per_user in self.devices.items()}

    def pairs(self) -> frozenset[tuple[str, str]]:
        """``(user_id, device_id)`` pairs, the form of nio's ``users_shared_with``."""
        return frozenset(
            (user, device) for user, per_user in self.devices.items() for device in per_user
        )

    def permits(
        self, user_id: str, device_id: str, curve25519: str, ed25519: str | None = None
    ) -> bool:
        """Whether this device, WITH THESE KEYS (as the Olm machine knows it), may receive
        the key. A device id with other keys than the ones we verified is refused."""
        keys = self.devices.get(user_id, {}).get(device_id)
        if keys is None or keys.curve25519 != curve25519:
            return False
        return ed25519 is None or keys.ed25519 == ed25519

    def needs_rotation(self, shared_with: AbstractSet[tuple[str, str]]) -> bool:
        """Whether an outbound session already shared with ``shared_with`` (nio's
        ``users_shared_with``) reached a device this allow-list no longer permits: a member
        left the roster, was blocked, or a device lost its trust. Then rotate before the
        next message."""
        return not set(shared_with) <= self.pairs()


# ---- the cache ---------------------------------------------------------------------------
@dataclass
class _Entry:
    pinned: str | None
    answer: dict[str, Any] | None = None  # this user's part of the last answer
    trust: UserTrust | None = None
    announced_block: str | None = None  # the new key we last emitted IdentityBlocked for


@dataclass
class TrustCache:
    """Trust per roster user, in memory, refreshed from ``device_lists.changed``.

    The bot's own account is never a trusted member: none of its devices is ever trusted or
    allowed (another device of the bot's account would read every message).
    """

    bot_user_id: str
    _entries: dict[str, _Entry] = field(default_factory=dict, init=False, repr=False)
    #: The tracked users to query (new, or a device list changed), kept with the entries:
    #: asked for before every sync's events are judged, so it must not cost a pass over
    #: every roster user (7,800 at 1,200 table rooms).
    _stale: set[str] = field(default_factory=set, init=False, repr=False)
    _generation: int = field(default=0, init=False, repr=False)

    # -- the roster ------------------------------------------------------------------------
    def track(self, user_id: str, pinned: str | None) -> list[TrustEvent]:
        """Follow a roster user with their stored pin (None: none yet). A new user is stale
        (needs a key query). Tracking a known user with another pin (a re-pin from storage)
        judges the last answer again; the events are returned."""
        if user_id == self.bot_user_id:
            return []
        entry = self._entries.get(user_id)
        if entry is None:
            self._entries[user_id] = _Entry(pinned)
            self._stale.add(user_id)
            self._generation += 1
            return []
        if entry.pinned == pinned:
            return []
        entry.pinned = pinned
        return self._judge(user_id, entry)

    def untrack(self, user_ids: Iterable[str]) -> None:
        """Forget users who left every roster: their devices are trusted no more."""
        for user_id in user_ids:
            if self._entries.pop(user_id, None) is not None:
                self._stale.discard(user_id)
                self._generation += 1

    def tracked(self) -> frozenset[str]:
        return frozenset(self._entries)

    # -- refreshing ------------------------------------------------------------------------
    def invalidate(self, user_ids: Iterable[str]) -> frozenset[str]:
        """Mark tracked users stale (a sync's ``device_lists.changed``/``left``); returns
        those marked. What was known stays in force until :meth:`apply` brings the new
        answer: the edge queries before handling the events of the same sync."""
        marked = set()
        for user_id in user_ids:
            entry = self._entries.get(user_id)
            if entry is not None:
                self._stale.add(user_id)
                marked.add(user_id)
        return frozenset(marked)

    def stale(self) -> frozenset[str]:
        """The users to query: ALL in one ``/keys/query`` (see :meth:`query_body`)."""
        return frozenset(self._stale)

    def query_body(self) -> dict[str, Any] | None:
        """The body of the one ``/keys/query`` for every stale user, or None when none is."""
        users = sorted(self.stale())
        return {"device_keys": {user: [] for user in users}} if users else None

    def apply(self, response: Mapping[str, Any]) -> list[TrustEvent]:
        """Take a ``/keys/query`` answer. Every tracked user it lists (in ``device_keys``)
        is judged again and no longer stale; a user it does not list (their server failed:
        ``failures``) stays stale and keeps what was known. Returns the pins to persist and
        the blocks to persist and announce."""
        listed = _dict(response.get("device_keys"))
        events: list[TrustEvent] = []
        for user_id in [u for u in listed if u in self._entries]:  # not every tracked user
            entry = self._entries[user_id]
            entry.answer = _slice(response, user_id)
            self._stale.discard(user_id)
            events.extend(self._judge(user_id, entry))
        return events

    def trust(self, user_id: str, master_key: str) -> list[TrustEvent]:
        """Re-pin ``user_id`` to ``master_key`` (``members trust`` / ``livcr trust``, after the
        caller persisted it). Pass the key the chair was shown, never "whatever is published
        now": if the member's identity changed again meanwhile they stay blocked."""
        entry = self._entries.get(user_id)
        if entry is None:
            return []
        entry.pinned = master_key
        entry.announced_block = None
        return self._judge(user_id, entry)

    def _judge(self, user_id: str, entry: _Entry) -> list[TrustEvent]:
        self._generation += 1
        if entry.answer is None:
            entry.trust = None
            return []
        verdict = evaluate(entry.answer, user_id, entry.pinned)
        entry.trust = verdict
        if verdict.first_sight and verdict.master_key is not None:
            entry.pinned = verdict.master_key
            return [IdentityPinned(user_id, verdict.master_key)]
        if verdict.blocked and verdict.master_key is not None and entry.pinned is not None:
            if entry.announced_block == verdict.master_key:
                return []
            entry.announced_block = verdict.master_key
            return [IdentityBlocked(user_id, entry.pinned, verdict.master_key)]
        if verdict.status is Status.TRUSTED:
            entry.announced_block = None
        return []

    # -- the questions of the edge ---------------------------------------------------------
    @property
    def generation(self) -> int:
        """Raised by every change of what is trusted (compare with an AllowList's)."""
        return self._generation

    def status(self, user_id: str) -> UserTrust | None:
        """The last judgement of a tracked user, None when not (yet) known."""
        entry = self._entries.get(user_id)
        return entry.trust if entry is not None else None

    def pinned(self, user_id: str) -> str | None:
        entry = self._entries.get(user_id)
        return entry.pinned if entry is not None else None

    def master_key_object(self, user_id: str) -> dict[str, Any] | None:
        """The member's published master key object as last queried, when it is the
        pinned one (what the bot's user-signing key may sign after a verification)."""
        entry = self._entries.get(user_id)
        if entry is None or entry.answer is None or entry.pinned is None:
            return None
        obj = _dict(entry.answer.get("master_keys")).get(user_id)
        if _cross_signing_key(obj, user_id, "master") != entry.pinned:
            return None
        return dict(obj) if isinstance(obj, dict) else None

    def blocked(self, user_id: str) -> bool:
        verdict = self.status(user_id)
        return verdict is not None and verdict.blocked

    def _trusted(self, user_id: str) -> Mapping[str, DeviceKeys]:
        if user_id == self.bot_user_id:
            return {}
        verdict = self.status(user_id)
        if verdict is None or verdict.status is not Status.TRUSTED:
            return {}
        return verdict.trusted

    def is_trusted_device(self, user_id: str, device_id: str) -> bool:
        return device_id in self._trusted(user_id)

    def is_known_untrusted_device(self, user_id: str, device_id: str) -> bool:
        """A device the member's keys list (self-signed) but that is not trusted: the member
        is to be told (once) to verify it. Not for blocked members (they are blocked)."""
        verdict = self.status(user_id)
        return (
            verdict is not None
            and not verdict.blocked
            and device_id in verdict.listed
            and not self.is_trusted_device(user_id, device_id)
        )

    def trusted_session_device(
        self,
        sender: str,
        sender_key: str,
        device_id: str | None = None,
        ed25519: str | None = None,
    ) -> DeviceKeys | None:
        """The trusted device OF ``sender`` whose Curve25519 key is ``sender_key`` (the key
        of the Olm channel that delivered the Megolm session), or None.

        ``device_id`` is the device the event claims (nio's decrypted events do not carry
        it; it is unauthenticated anyway); when given it must be that device. ``ed25519`` is
        the signing key the session claims (nio: ``InboundGroupSession.ed25519``); when
        given it must be that device's. This defeats an event whose outer sender is the
        chair but whose session belongs to another user's device: that key is not listed
        under the chair. The caller also refuses forwarded sessions (``forwarding_chain``).
        """
        trusted = self._trusted(sender)
        if device_id is not None:
            keys = trusted.get(device_id)
            candidates = [keys] if keys is not None else []
        else:
            candidates = list(trusted.values())
        matching = [
            keys
            for keys in candidates
            if keys.curve25519 == sender_key and (ed25519 is None or keys.ed25519 == ed25519)
        ]
        return matching[0] if len(matching) == 1 else None

    def is_trusted_session(
        self,
        sender: str,
        sender_key: str,
        device_id: str | None = None,
        ed25519: str | None = None,
    ) -> bool:
        return self.trusted_session_device(sender, sender_key, device_id, ed25519) is not None

    def allow_list(self, user_ids: Iterable[str]) -> AllowList:
        """The frozen allow-list for ONE room-key share to the given roster members (only
        their trusted devices; never the bot's account; a blocked member gets nothing)."""
        devices: dict[str, Mapping[str, DeviceKeys]] = {}
        for user_id in user_ids:
            trusted = self._trusted(user_id)
            if trusted:
                devices[user_id] = MappingProxyType(dict(trusted))
        return AllowList(MappingProxyType(devices), self._generation)

    def allowed_devices(self, user_ids: Iterable[str]) -> dict[str, set[str]]:
        return self.allow_list(user_ids).device_ids()

    @staticmethod
    def fingerprint(master_key: str) -> str:
        return fingerprint(master_key)
