"""The edge's verification wiring (bot/edge/verification.py), no homeserver: direct-room
invitations, routing of in-room and to-device events to the SAS machines, who may verify
(the trust cache), the cancel reasons, the emoji notice in the cell's language, and the
user-signing signature of a verified member's master key.

The member's side is a real :class:`~bot.edge.sas.SasVerification` (vodozemac) and real
cross-signing keys (tests/test_trust.py's ``Identity``); only the homeserver is a recorder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import vodozemac
from nio import InviteMemberEvent

from bot.core import render
from bot.edge import verification as verification_module
from bot.edge.cross_signing import user_signature_upload
from bot.edge.sas import (
    CANCEL,
    ROOM_MESSAGE,
    Incoming,
    OwnDevice,
    PeerKeys,
    Refusal,
    SasVerification,
    Transport,
)
from bot.edge.sas import emoji as sas_emoji
from bot.edge.signing_keys import KEYS_FILE, CrossSigningKeys, public_b64, verify_signature
from bot.edge.trust import TrustCache
from bot.edge.verification import (
    BLOCKED,
    NOT_ON_ROSTER,
    NOT_THIS_ROOM,
    UNTRUSTED_DEVICE,
    Verifications,
    judge_invite,
    only_the_two,
)
from tests.factories import CHAIR, NOW, OUTSIDER, PARTNER, make_config
from tests.test_trust import Identity

BOT = "@livcr:example.be"
BOT_DEVICE = "BOTDEVICE"
ROOM = "!dm:example.be"
NOW_MS = int(NOW.timestamp() * 1000)


# ---- invitations -------------------------------------------------------------------------
def _member_event(sender: str, state_key: str, membership: str, **content: Any
                  ) -> InviteMemberEvent:
    event = InviteMemberEvent.from_dict({
        "type": "m.room.member", "sender": sender, "state_key": state_key,
        "content": {"membership": membership, **content},
    })
    assert isinstance(event, InviteMemberEvent)
    return event


def _dm_invite(inviter: str, *, is_direct: bool = True, extra: tuple[str, ...] = ()
               ) -> list[Any]:
    state = [_member_event(inviter, inviter, "join"),
             _member_event(inviter, BOT, "invite", is_direct=is_direct)]
    return state + [_member_event(inviter, other, "invite") for other in extra]


ROSTER = frozenset({CHAIR, PARTNER})


def test_a_roster_members_direct_room_is_accepted() -> None:
    verdict = judge_invite(_dm_invite(PARTNER), BOT, ROSTER)
    assert verdict.accept
    assert verdict.inviter == PARTNER


@pytest.mark.parametrize(("state", "why"), [
    (_dm_invite(OUTSIDER), "the inviter is on no roster"),
    (_dm_invite(PARTNER, is_direct=False), "not a direct room"),
    (_dm_invite(PARTNER, extra=(OUTSIDER,)), "the room holds someone else"),
    (_dm_invite(PARTNER, extra=(CHAIR,)), "the room holds someone else"),
    ([_member_event(PARTNER, PARTNER, "join")], "no invitation of the bot in the room's state"),
    ([], "no invitation of the bot in the room's state"),
])
def test_any_other_invitation_is_declined(state: list[Any], why: str) -> None:
    verdict = judge_invite(state, BOT, ROSTER)
    assert not verdict.accept
    assert verdict.why == why


def test_a_direct_room_holds_only_the_two() -> None:
    assert only_the_two({BOT: 1, PARTNER: 1}, BOT, PARTNER)
    assert only_the_two({BOT: 1}, BOT, PARTNER)
    assert not only_the_two({BOT: 1, PARTNER: 1, OUTSIDER: 1}, BOT, PARTNER)


# ---- a recording homeserver and the core's few answers --------------------------------------
@dataclass
class _Account:
    identity_keys: dict[str, str]


@dataclass
class _Olm:
    account: _Account


@dataclass
class Recorder:
    """What the edge sent: to-device messages and room events (encryption is nio's)."""

    user_id: str = BOT
    device_id: str = BOT_DEVICE
    olm: _Olm = field(default_factory=lambda: _Olm(_Account({"ed25519": _ed25519()})))
    rooms: dict[str, Any] = field(default_factory=lambda: {ROOM: object()})
    to_devices: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    room_events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def to_device(self, message: Any, tx_id: str | None = None) -> Any:
        self.to_devices.append((message.recipient, message.recipient_device, message.type,
                                message.content))
        return type("Sent", (), {"to_device_message": message})()

    async def room_send(self, room_id: str, type_: str, content: dict[str, Any],
                        ignore_unverified_devices: bool = False) -> Any:
        from nio import RoomSendResponse
        self.room_events.append((room_id, type_, content))
        return RoomSendResponse(f"$sent{len(self.room_events)}", room_id)


def _ed25519() -> str:
    return str(vodozemac.Account().ed25519_key.to_base64())


@dataclass
class Keys:
    trust: TrustCache
    shared: list[str] = field(default_factory=list)

    async def share_keys(self, room_id: str) -> None:
        self.shared.append(room_id)


@dataclass
class FakeCore:
    config: Any = field(default_factory=lambda: make_config("nl"))
    direct_users: dict[str, str] = field(default_factory=dict)
    words: Any = render
    rooms: dict[str, Any] = field(default_factory=dict)

    def clock(self) -> Any:
        return NOW

    def cells_of(self, user_id: str) -> list[str]:
        return [self.config.cells[0].id] if user_id in (CHAIR, PARTNER) else []

    def direct_room(self, cell: str, user_id: str) -> str | None:
        return ROOM if user_id == PARTNER else None


@dataclass
class Setup:
    edge: Verifications
    client: Recorder
    member: Identity
    keys: Keys
    signed: list[tuple[str, dict[str, Any]]]


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    member = Identity(PARTNER)
    member.login("PHONE")
    member.login("NEWLAPTOP", cross_sign=False)  # a login the member never verified
    cache = TrustCache(BOT)
    cache.track(PARTNER, None)
    cache.track(CHAIR, None)
    cache.apply(member.answer())
    bot_keys = CrossSigningKeys.generate(BOT)
    bot_keys.uploaded = True
    bot_keys.save(tmp_path / KEYS_FILE)
    client = Recorder()
    keys = Keys(cache)
    signed: list[tuple[str, dict[str, Any]]] = []

    async def sign(client_: Any, data_dir: Path, user_id: str, master: dict[str, Any]) -> bool:
        signed.append((user_id, master))
        return True

    monkeypatch.setattr(verification_module, "sign_user_identity", sign)
    edge = Verifications(client, FakeCore(), keys, tmp_path)  # type: ignore[arg-type]
    return Setup(edge, client, member, keys, signed)


# ---- who may verify ----------------------------------------------------------------------
def test_only_a_trusted_device_of_a_roster_member_may_verify(setup: Setup) -> None:
    policy = setup.edge.policy()
    keys = policy(PARTNER, "PHONE")
    assert keys == PeerKeys(setup.member.devices["PHONE"].ed25519, setup.member.master_pub)
    assert policy(PARTNER, "NEWLAPTOP") == Refusal(UNTRUSTED_DEVICE)
    assert policy(PARTNER, "NOSUCHDEVICE") == Refusal(UNTRUSTED_DEVICE)
    assert policy(OUTSIDER, "EVEPHONE") == Refusal(NOT_ON_ROSTER)
    assert policy(BOT, BOT_DEVICE) == Refusal(NOT_ON_ROSTER)
    # In a direct room, only its member.
    assert setup.edge.policy(room_member=CHAIR)(PARTNER, "PHONE") == Refusal(NOT_THIS_ROOM)


def test_a_blocked_member_may_not_verify(setup: Setup) -> None:
    setup.member.reset()  # the published identity changed: the member is blocked
    setup.keys.trust.apply(setup.member.answer())
    assert setup.edge.policy()(PARTNER, "PHONE") == Refusal(BLOCKED)


# ---- whole flows ---------------------------------------------------------------------------
def _member_machine(setup: Setup, transport: Transport, device: str = "PHONE"
                    ) -> tuple[SasVerification, Any]:
    own = setup.edge.own()
    assert own.master_key is not None  # the bot MACs its master key too
    me = OwnDevice(PARTNER, device, setup.member.devices[device].ed25519,
                   setup.member.master_pub)

    def policy(user_id: str, device_id: str) -> PeerKeys | Refusal:
        return PeerKeys(own.ed25519, own.master_key)

    return SasVerification.initiate(
        me, policy, transport, BOT, now_ms=NOW_MS,
        peer_device=BOT_DEVICE if transport is Transport.TO_DEVICE else None,
        room_id=ROOM if transport is Transport.IN_ROOM else None)


async def _to_device(setup: Setup, type_: str, content: dict[str, Any],
                     sender: str = PARTNER) -> None:
    setup.edge.queue_to_device({"type": type_, "content": content, "sender": sender})
    await setup.edge.handle_to_device()


async def _play_to_device(setup: Setup, member: SasVerification, request: Any) -> None:
    """Deliver both ways until nothing is left; the member confirms the SAS."""
    pending = [request]
    while pending:
        out = pending.pop(0)
        seen = len(setup.client.to_devices)
        await _to_device(setup, out.type, out.content)
        for _, _, type_, content in setup.client.to_devices[seen:]:
            step = member.receive(Incoming(type_, content, BOT), NOW_MS)
            pending += step.send
            if step.show_sas:
                pending += member.confirm(NOW_MS).send


async def test_to_device_verification_of_a_trusted_device(setup: Setup) -> None:
    member, request = _member_machine(setup, Transport.TO_DEVICE)
    await _play_to_device(setup, member, request)
    assert member.state.value == "done"
    assert member.verified_keys == {f"ed25519:{BOT_DEVICE}": setup.edge.own().ed25519,
                                    f"ed25519:{setup.edge.own().master_key}":
                                        setup.edge.own().master_key}
    assert setup.edge.outcomes == {"verified": 1}
    # The bot sent its MAC only after the member's (the person confirmed first).
    types = [t.removeprefix("m.key.verification.") for _, _, t, _ in setup.client.to_devices]
    assert types == ["ready", "accept", "key", "mac", "done"]
    # Every message went to the member's requesting device.
    assert {(u, d) for u, d, _, _ in setup.client.to_devices} == {(PARTNER, "PHONE")}
    # The emoji were posted in the member's direct room, in the cell's language (nl).
    notices = [c for r, t, c in setup.client.room_events if t == ROOM_MESSAGE]
    emoji = member.emoji()
    assert emoji is not None
    compare = notices[0]["body"]
    assert "Vergelijk deze emoji" in compare
    for line in verification_module.emoji_lines(emoji, "nl"):
        assert line in compare
    assert "Verificatie voltooid" in notices[1]["body"]
    # The member's pinned master key was signed with the user-signing key.
    assert [user for user, _ in setup.signed] == [PARTNER]
    assert setup.signed[0][1]["keys"] == {f"ed25519:{setup.member.master_pub}":
                                          setup.member.master_pub}


async def test_in_room_verification_in_the_members_direct_room(setup: Setup) -> None:
    member, request = _member_machine(setup, Transport.IN_ROOM)
    member.request_sent("$request")
    counter = 0

    async def deliver(out: Any) -> None:
        nonlocal counter
        counter += 1
        event_id = "$request" if out.type == ROOM_MESSAGE else f"$m{counter}"
        seen = len(setup.client.room_events)
        await setup.edge.on_room_event(ROOM, PARTNER, {
            "type": out.type, "content": out.content, "sender": PARTNER,
            "event_id": event_id, "origin_server_ts": NOW_MS})
        for room, type_, content in setup.client.room_events[seen:]:
            assert room == ROOM
            step = member.receive(Incoming(type_, content, BOT, event_id=f"$b{counter}",
                                           timestamp_ms=NOW_MS), NOW_MS)
            for item in step.send:
                await deliver(item)
            if step.show_sas:
                for item in member.confirm(NOW_MS).send:
                    await deliver(item)

    await deliver(request)
    assert member.state.value == "done"
    assert setup.edge.outcomes == {"verified": 1}
    sent = [(t, c.get("msgtype")) for _, t, c in setup.client.room_events]
    verification = [t.removeprefix("m.key.verification.") for t, m in sent if m is None]
    assert verification == ["ready", "accept", "key", "mac", "done"]
    assert [m for _, m in sent if m] == ["m.notice", "m.notice"]  # the emoji, then "done"
    assert setup.keys.shared
    assert set(setup.keys.shared) == {ROOM}
    assert [user for user, _ in setup.signed] == [PARTNER]


async def test_an_untrusted_device_is_cancelled_with_the_reason(setup: Setup) -> None:
    _, request = _member_machine(setup, Transport.TO_DEVICE, device="NEWLAPTOP")
    await _to_device(setup, request.type, request.content)
    ((user, device, type_, content),) = setup.client.to_devices
    assert (user, device, type_) == (PARTNER, "NEWLAPTOP", CANCEL)
    assert content["code"] == "m.user"
    assert content["reason"] == UNTRUSTED_DEVICE
    assert setup.edge.outcomes == {"cancelled:m.user": 1}
    # The member is told where they can read it; nothing is signed.
    ((_, _, notice),) = setup.client.room_events
    assert "Alleen de vertrouwde apparaten" in notice["body"]
    assert setup.signed == []


async def test_an_outsider_is_cancelled_and_told_nothing(setup: Setup) -> None:
    content = {"from_device": "EVEPHONE", "methods": ["m.sas.v1"], "transaction_id": "t1",
               "timestamp": NOW_MS}
    await _to_device(setup, "m.key.verification.request", content, sender=OUTSIDER)
    ((user, device, type_, cancel),) = setup.client.to_devices
    assert (user, device, type_) == (OUTSIDER, "EVEPHONE", CANCEL)
    assert (cancel["code"], cancel["reason"]) == ("m.user", NOT_ON_ROSTER)
    assert setup.client.room_events == []


async def test_in_a_direct_room_only_its_member_may_verify(setup: Setup) -> None:
    content = {"msgtype": "m.key.verification.request", "body": "", "to": BOT,
               "from_device": "CHAIRPHONE", "methods": ["m.sas.v1"]}
    await setup.edge.on_room_event(ROOM, PARTNER, {
        "type": ROOM_MESSAGE, "content": content, "sender": CHAIR, "event_id": "$r",
        "origin_server_ts": NOW_MS})
    ((room, type_, cancel),) = setup.client.room_events
    assert (room, type_) == (ROOM, CANCEL)
    assert (cancel["code"], cancel["reason"]) == ("m.user", NOT_THIS_ROOM)
    assert cancel["m.relates_to"] == {"rel_type": "m.reference", "event_id": "$r"}


async def test_other_events_in_a_direct_room_are_not_answered(setup: Setup) -> None:
    for content in ({"msgtype": "m.text", "body": "!help"},
                    {"msgtype": "m.text", "body": "hallo"}):
        await setup.edge.on_room_event(ROOM, PARTNER, {
            "type": ROOM_MESSAGE, "content": content, "sender": PARTNER, "event_id": "$x",
            "origin_server_ts": NOW_MS})
    await setup.edge.on_room_event(ROOM, PARTNER, {
        "type": "m.key.verification.start", "content": {"from_device": "PHONE"},
        "sender": PARTNER, "event_id": "$y", "origin_server_ts": NOW_MS})  # no flow: dropped
    assert setup.client.room_events == []
    assert setup.client.to_devices == []


async def test_a_to_device_event_of_an_unknown_flow_gets_unknown_transaction(setup: Setup
                                                                             ) -> None:
    await _to_device(setup, "m.key.verification.key",
                     {"transaction_id": "nope", "key": "x", "from_device": "PHONE"})
    ((_, _, type_, cancel),) = setup.client.to_devices
    assert type_ == CANCEL
    assert cancel["code"] == "m.unknown_transaction"
    await _to_device(setup, "m.key.verification.cancel",
                     {"transaction_id": "nope", "code": "m.user", "reason": ""})
    assert len(setup.client.to_devices) == 1  # a cancel is never answered


async def test_an_idle_flow_times_out(setup: Setup) -> None:
    _, request = _member_machine(setup, Transport.TO_DEVICE)
    await _to_device(setup, request.type, request.content)
    assert len(setup.edge.flows) == 1
    later = NOW.timestamp() + 11 * 60
    setup.edge.core.clock = lambda: type(NOW).fromtimestamp(later, NOW.tzinfo)  # type: ignore[method-assign]
    await setup.edge.tick()
    assert setup.client.to_devices[-1][3]["code"] == "m.timeout"
    assert setup.edge.flows == {}


# ---- the user-signing signature ------------------------------------------------------------
def test_the_member_master_key_is_signed_with_the_bots_user_signing_key() -> None:
    member = Identity(PARTNER)
    bot = CrossSigningKeys.generate(BOT)
    master = member.master_key()
    body = user_signature_upload(bot, PARTNER, master)
    signed = body[PARTNER][member.master_pub]
    usk = public_b64(bot.user_signing)
    assert list(signed["signatures"]) == [BOT]
    assert verify_signature(usk, signed, signed["signatures"][BOT][f"ed25519:{usk}"])
    assert {k: v for k, v in signed.items() if k != "signatures"} == master


# ---- the names are the spec's, as Element shows them ---------------------------------------
@pytest.mark.parametrize(("lang", "key", "name"), [
    # from matrix-spec data-definitions/sas-emoji.json ("translated_descriptions")
    ("nl", "dog", "Hond"), ("nl", "clock", "Wekker"), ("nl", "gift", "Geschenk"),
    ("nl", "paperclip", "Papierklemmetje"), ("nl", "pin", "Duimspijker"),
    ("fr", "dog", "Chien"), ("fr", "smiley", "Sourire"), ("fr", "thumbs_up", "Pouce en l’air"),
    ("fr", "headphones", "Casque audio"), ("en", "light_bulb", "Light Bulb"),
])
def test_emoji_names_are_the_specs_translations(lang: str, key: str, name: str) -> None:
    assert verification_module.emoji_lines([
        next(e for e in map(sas_emoji, range(64)) if e.key == key)], lang)[0].endswith(name)
