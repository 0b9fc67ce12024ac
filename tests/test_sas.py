"""SAS verification (bot/edge/sas.py): the machine against itself, against matrix-nio's own
SAS implementation (an independent one, also on vodozemac), every cancel path, and the
event shapes of both transports. No clock is read: every call gets ``now_ms``."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nio
import pytest
from nio.api import Api
from nio.crypto.device import OlmDevice
from nio.crypto.sas import Sas as NioSas

from bot.core.render import LANGUAGES, vocabulary
from bot.edge import sas
from bot.edge.sas import (
    CancelCode,
    Incoming,
    Outgoing,
    OwnDevice,
    PeerKeys,
    Refusal,
    SasVerification,
    State,
    Transport,
)

T0 = 1_800_000_000_000  # ms; a fixed "now", never the wall clock
MINUTE = 60_000
ROOM = "!direct:example.org"


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")


BOT = OwnDevice("@livcr:example.org", "BOTDEVICE", _key(), _key())
MEMBER = OwnDevice("@alice:example.org", "ALICEPHONE", _key(), _key())


def allow(who: OwnDevice) -> Callable[[str, str], PeerKeys | Refusal]:
    def policy(user_id: str, device_id: str) -> PeerKeys | Refusal:
        if (user_id, device_id) == (who.user_id, who.device_id):
            return PeerKeys(who.ed25519, who.master_key)
        return Refusal(f"{device_id} is not a trusted roster device")
    return policy


@dataclass
class Pair:
    """The member's machine (requester) and the bot's (responder), with a tiny "homeserver"
    that delivers events between them and numbers in-room events."""

    transport: Transport
    member: SasVerification
    bot: SasVerification | None = None
    now: int = T0
    log: list[tuple[str, Outgoing]] = field(default_factory=list)
    steps: list[tuple[str, sas.Step]] = field(default_factory=list)
    tamper: Callable[[str, Outgoing], Outgoing] | None = None
    _counter: int = 0

    def incoming(self, sender: OwnDevice, out: Outgoing) -> Incoming:
        self._counter += 1
        if self.transport is Transport.IN_ROOM:
            return Incoming(out.type, out.content, sender.user_id,
                            event_id=f"$event{self._counter}", timestamp_ms=self.now)
        return Incoming(out.type, out.content, sender.user_id, sender_device=sender.device_id)

    def deliver(self, frm: str, outs: list[Outgoing]) -> None:
        queue = [(frm, o) for o in outs]
        while queue:
            frm, out = queue.pop(0)
            if self.tamper:
                out = self.tamper(frm, out)
            self.log.append((frm, out))
            if frm == "member":
                assert self.bot is not None
                step = self.bot.receive(self.incoming(MEMBER, out), self.now)
                self.steps.append(("bot", step))
                queue += [("bot", o) for o in step.send]
            else:
                step = self.member.receive(self.incoming(BOT, out), self.now)
                self.steps.append(("member", step))
                queue += [("member", o) for o in step.send]


def start_pair(transport: Transport, *, bot_policy: Any = None,
               tamper: Callable[[str, Outgoing], Outgoing] | None = None) -> Pair:
    """Member requests; the bot receives the request; everything flows until the SAS."""
    member, request = SasVerification.initiate(
        MEMBER, allow(BOT), transport, BOT.user_id, now_ms=T0,
        peer_device=BOT.device_id if transport is Transport.TO_DEVICE else None,
        room_id=ROOM if transport is Transport.IN_ROOM else None,
    )
    pair = Pair(transport, member, tamper=tamper)
    bot = SasVerification(BOT, bot_policy or allow(MEMBER), transport, now_ms=T0,
                          room_id=ROOM if transport is Transport.IN_ROOM else None)
    pair.bot = bot
    pair.log.append(("member", request))
    if transport is Transport.IN_ROOM:
        member.request_sent("$request")
        first = Incoming(request.type, request.content, MEMBER.user_id, event_id="$request",
                         timestamp_ms=T0)
    else:
        first = Incoming(request.type, request.content, MEMBER.user_id)
    step = bot.receive(first, T0)
    pair.steps.append(("bot", step))
    pair.deliver("bot", step.send)
    return pair


def _bot(pair: Pair) -> SasVerification:
    assert pair.bot is not None
    return pair.bot


# ---- (a) the machine against itself -------------------------------------------------------
@pytest.mark.parametrize("transport", list(Transport))
def test_two_machines_agree_and_finish(transport: Transport) -> None:
    pair = start_pair(transport)
    bot = _bot(pair)
    assert bot.state is State.KEYS_EXCHANGED
    assert pair.member.state is State.KEYS_EXCHANGED
    assert [who for who, s in pair.steps if s.show_sas] == ["bot", "member"]
    assert bot.emoji() == pair.member.emoji()
    assert bot.emoji() is not None
    assert len(bot.emoji() or []) == 7
    assert bot.decimals() == pair.member.decimals()
    assert all(1000 <= d <= 9191 for d in bot.decimals() or ())
    # The member presses "They match": its MAC goes out; the bot checks it, answers with its
    # own MAC and done; the member checks that and sends done.
    pair.deliver("member", pair.member.confirm(pair.now).send)
    assert bot.state is State.DONE
    assert pair.member.state is State.DONE
    assert bot.verified_keys == {f"ed25519:{MEMBER.device_id}": MEMBER.ed25519,
                                 f"ed25519:{MEMBER.master_key}": MEMBER.master_key}
    assert pair.member.verified_keys == {f"ed25519:{BOT.device_id}": BOT.ed25519,
                                         f"ed25519:{BOT.master_key}": BOT.master_key}
    types = [(who, out.type.removeprefix("m.key.verification.")) for who, out in pair.log]
    request = "m.room.message" if transport is Transport.IN_ROOM else "request"
    assert types == [("member", request), ("bot", "ready"), ("member", "start"),
                     ("bot", "accept"), ("member", "key"), ("bot", "key"), ("member", "mac"),
                     ("bot", "mac"), ("bot", "done"), ("member", "done")]
    assert [who for who, s in pair.steps if s.finished] == ["member", "bot"]


def test_emoji_follow_the_spec_bits() -> None:
    """The spec: the first 42 bits of the SAS bytes give 7 emoji of 6 bits, the first 39
    three 13-bit numbers (+1000). Both come from the same bytes, so they must agree."""
    for _ in range(5):
        pair = start_pair(Transport.TO_DEVICE)
        bot = _bot(pair)
        bits = "".join(f"{e.number:06b}" for e in bot.emoji() or [])
        decimals = bot.decimals() or ()
        assert [int(bits[i * 13 : i * 13 + 13], 2) + 1000 for i in range(3)] == list(decimals)


def test_emoji_lines_in_the_cell_language() -> None:
    pair = start_pair(Transport.IN_ROOM)
    emojis = _bot(pair).emoji() or []
    dog = sas.emoji(0)
    assert sas.emoji_lines([dog], "nl") == ["🐶 Hond"]
    assert sas.emoji_lines([dog], "fr") == ["🐶 Chien"]
    assert sas.emoji_lines([sas.emoji(36)], "en") == ["👍 Thumbs Up"]
    assert len(sas.emoji_lines(emojis, "fr")) == 7


def test_emoji_names_exist_in_every_language_and_stay_out_of_commands() -> None:
    expected = {sas.emoji(i).key for i in range(64)}
    for lang in LANGUAGES:
        names = sas.emoji_names(lang)
        assert set(names) == expected
        assert all(v and v == v.strip() for v in names.values())
        assert len(set(names.values())) == 64  # two emoji never read the same
        _keys, values = vocabulary(lang)
        assert "hond" not in values
        assert "chien" not in values
    assert dict(sas.emoji_names("en")) == {sas.emoji(i).key: sas.EMOJI[i][1] for i in range(64)}


# ---- (b) against matrix-nio's SAS ---------------------------------------------------------
class SpecNioSas(NioSas):
    """matrix-nio 0.26's SAS with two departures from the spec put right, so it can serve as
    the independent other side: since its move to vodozemac it hashes the commitment as hex
    (the spec: unpadded base64), and it labels its MACs ``hkdf-hmac-sha256`` although
    vodozemac's ``calculate_mac`` makes ``hkdf-hmac-sha256.v2`` ones (fixed by the
    ``_mac_v1`` patch in the test). Its ``get_emoji()`` also re-splits vodozemac's emoji
    indices, so the test compares nio's SAS bytes, not that list. Everything else (key
    agreement, the SAS info, the MAC info and key ids) is nio's own."""

    def _check_commitment(self, key: str) -> bool:
        # nio's own computation (its canonical JSON, sha256), with the spec's encoding.
        canonical = Api.to_canonical_json(self.start_verification().content)
        digest = hashlib.sha256(key.encode() + canonical.encode()).digest()
        return self.commitment == base64.b64encode(digest).decode().rstrip("=")


def _nio_event(sender: str, out: Outgoing) -> Any:
    event = nio.ToDeviceEvent.parse_event(
        {"sender": sender, "type": out.type, "content": out.content})
    assert not isinstance(event, nio.UnknownToDeviceEvent), out
    return event


def test_the_bot_verifies_with_nio_and_nio_with_the_bot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NioSas, "_mac_v1", [sas.MAC_V2])
    bot_device = OlmDevice(BOT.user_id, BOT.device_id,
                           {"ed25519": BOT.ed25519, "curve25519": _key()})
    theirs = SpecNioSas(MEMBER.user_id, MEMBER.device_id, MEMBER.ed25519, bot_device)
    bot = SasVerification(BOT, allow(MEMBER), Transport.TO_DEVICE, now_ms=T0)

    def to_bot(message: Any) -> sas.Step:
        return bot.receive(Incoming(message.type, message.content, MEMBER.user_id), T0)

    accept = to_bot(theirs.start_verification())  # nio starts with no request (old flow)
    assert [o.type for o in accept.send] == [sas.ACCEPT]
    theirs.receive_accept_event(_nio_event(BOT.user_id, accept.send[0]))
    assert not theirs.canceled
    key = to_bot(theirs.share_key())
    assert key.show_sas
    theirs.receive_key_event(_nio_event(BOT.user_id, key.send[0]))
    assert not theirs.canceled, theirs.cancel_reason  # our commitment checked out

    assert theirs.get_decimals() == bot.decimals()
    nio_bytes = theirs.established_sas.bytes(theirs._extra_info).emoji_indices
    assert [e.number for e in bot.emoji() or []] == list(nio_bytes)[:7]

    theirs.accept_sas()
    mac = to_bot(theirs.get_mac())
    assert mac.verified
    assert mac.finished
    assert bot.verified_keys == {f"ed25519:{MEMBER.device_id}": MEMBER.ed25519}
    assert [o.type for o in mac.send] == [sas.MAC]  # no done: nio's flow had no request
    theirs.receive_mac_event(_nio_event(BOT.user_id, mac.send[0]))
    assert theirs.verified
    assert theirs.verified_devices == [BOT.device_id]
    assert bot.state is State.DONE


def test_nio_offering_only_the_old_mac_is_answered_with_it() -> None:
    """Unpatched nio offers only ``hkdf-hmac-sha256``: the bot accepts that method (the spec
    allows it) and MACs with libolm's encoding, which is what that name means."""
    bot_device = OlmDevice(BOT.user_id, BOT.device_id,
                           {"ed25519": BOT.ed25519, "curve25519": _key()})
    theirs = NioSas(MEMBER.user_id, MEMBER.device_id, MEMBER.ed25519, bot_device)
    bot = SasVerification(BOT, allow(MEMBER), Transport.TO_DEVICE, now_ms=T0)
    step = bot.receive(Incoming(sas.START, theirs.start_verification().content,
                                MEMBER.user_id), T0)
    assert step.send[0].content["message_authentication_code"] == sas.MAC_V1


# ---- (c) every cancel path ----------------------------------------------------------------
def _cancels(pair: Pair) -> list[tuple[str, str, str]]:
    return [(who, o.content["code"], o.content["reason"]) for who, o in pair.log
            if o.type == sas.CANCEL]


def test_a_wrong_commitment_is_cancelled() -> None:
    def tamper(frm: str, out: Outgoing) -> Outgoing:
        if out.type == sas.ACCEPT:
            out.content["commitment"] = sas._commitment(_key(), {"x": 1})
        return out

    pair = start_pair(Transport.IN_ROOM, tamper=tamper)
    assert pair.member.cancel_code == "m.mismatched_commitment"
    assert _cancels(pair)[0][:2] == ("member", "m.mismatched_commitment")
    assert _bot(pair).state is State.CANCELLED  # the bot got the member's cancel
    assert _bot(pair).cancel_code == "m.mismatched_commitment"


@pytest.mark.parametrize("what", ["device", "keys", "unknown-only"])
def test_a_wrong_mac_is_cancelled(what: str) -> None:
    def tamper(frm: str, out: Outgoing) -> Outgoing:
        if out.type == sas.MAC and frm == "member":
            macs = out.content["mac"]
            if what == "device":
                macs[f"ed25519:{MEMBER.device_id}"] = out.content["keys"]
            elif what == "keys":
                out.content["keys"] = macs[f"ed25519:{MEMBER.device_id}"]
            else:
                out.content["mac"] = {"ed25519:SOMEONEELSE": out.content["keys"]}
        return out

    pair = start_pair(Transport.TO_DEVICE, tamper=tamper)
    pair.deliver("member", pair.member.confirm(pair.now).send)
    bot = _bot(pair)
    assert bot.cancel_code == "m.key_mismatch"
    assert bot.verified_keys == {}
    assert _cancels(pair)[0][:2] == ("bot", "m.key_mismatch")
    assert not any(o.type == sas.MAC for who, o in pair.log if who == "bot")  # no MAC of ours


def test_a_mac_for_a_different_master_key_is_refused() -> None:
    """The member's client MACs its master key; the bot knows another one for that user."""
    other = OwnDevice(MEMBER.user_id, MEMBER.device_id, MEMBER.ed25519, _key())

    def policy(user_id: str, device_id: str) -> PeerKeys:
        return PeerKeys(other.ed25519, other.master_key)

    pair = start_pair(Transport.TO_DEVICE, bot_policy=policy)
    pair.deliver("member", pair.member.confirm(pair.now).send)
    # The master key the member MAC'd is unknown to the bot: ignored (spec), the device key
    # still verifies. The stale master key is not marked verified.
    assert _bot(pair).verified_keys == {f"ed25519:{MEMBER.device_id}": MEMBER.ed25519}


def test_a_disallowed_device_is_cancelled_with_the_reason() -> None:
    def policy(user_id: str, device_id: str) -> Refusal:
        return Refusal("this device is not a trusted device of a roster member")

    pair = start_pair(Transport.IN_ROOM, bot_policy=policy)
    assert _cancels(pair) == [
        ("bot", "m.user", "this device is not a trusted device of a roster member")]
    assert pair.member.state is State.CANCELLED
    assert not any(o.type == sas.READY for _, o in pair.log)


def _request(methods: list[str] | None = None, **extra: Any) -> Incoming:
    content: dict[str, Any] = {"from_device": MEMBER.device_id,
                               "methods": methods or [sas.SAS_V1],
                               "transaction_id": "tx1", "timestamp": T0, **extra}
    return Incoming(sas.REQUEST, content, MEMBER.user_id)


def _fresh_bot(transport: Transport = Transport.TO_DEVICE) -> SasVerification:
    return SasVerification(BOT, allow(MEMBER), transport, now_ms=T0)


def _start_content(**changes: Any) -> dict[str, Any]:
    content = {"from_device": MEMBER.device_id, "method": sas.SAS_V1,
               "key_agreement_protocols": [sas.KEY_AGREEMENT], "hashes": [sas.HASH],
               "message_authentication_codes": [sas.MAC_V2],
               "short_authentication_string": ["decimal", "emoji"], "transaction_id": "tx1"}
    content.update(changes)
    return content


def test_unknown_methods_are_cancelled() -> None:
    bot = _fresh_bot()
    step = bot.receive(_request(["m.qr_code.show.v1"]), T0)
    assert step.cancelled
    assert [o.content["code"] for o in step.send] == ["m.unknown_method"]

    for changes in ({"method": "m.reciprocate.v1"},
                    {"key_agreement_protocols": ["curve25519"]},
                    {"hashes": ["sha512"]},
                    {"message_authentication_codes": ["hmac-sha256"]},
                    {"short_authentication_string": ["colours"]}):
        bot = _fresh_bot()
        bot.receive(_request(), T0)
        step = bot.receive(Incoming(sas.START, _start_content(**changes), MEMBER.user_id), T0)
        assert [o.content["code"] for o in step.send] == ["m.unknown_method"], changes


@pytest.mark.parametrize("kind", [sas.KEY, sas.MAC, sas.DONE, sas.ACCEPT, sas.READY,
                                  sas.REQUEST])
def test_events_out_of_order_are_cancelled(kind: str) -> None:
    bot = _fresh_bot()
    bot.receive(_request(), T0)  # READY: a start is what may come now
    content: dict[str, Any] = {"transaction_id": "tx1", "key": _key(), "mac": {"a": "b"},
                               "keys": "x", "from_device": MEMBER.device_id,
                               "methods": [sas.SAS_V1], "commitment": "c",
                               "key_agreement_protocol": sas.KEY_AGREEMENT, "hash": sas.HASH,
                               "message_authentication_code": sas.MAC_V2,
                               "short_authentication_string": ["emoji"], "timestamp": T0}
    step = bot.receive(Incoming(kind, content, MEMBER.user_id), T0)
    assert step.cancelled
    assert [o.content["code"] for o in step.send] == ["m.unexpected_message"]
    assert bot.receive(Incoming(kind, content, MEMBER.user_id), T0).send == []  # then quiet


def test_a_second_key_or_mac_is_unexpected() -> None:
    pair = start_pair(Transport.TO_DEVICE)
    bot = _bot(pair)
    again = bot.receive(Incoming(sas.KEY, {"transaction_id": pair.member.flow_id,
                                           "key": _key()}, MEMBER.user_id), pair.now)
    assert [o.content["code"] for o in again.send] == ["m.unexpected_message"]


MALFORMED_REQUESTS: list[Any] = [
    None, [], "text", 3, {},
    {"from_device": 5, "methods": [sas.SAS_V1], "transaction_id": "t"},
    {"from_device": "D", "methods": sas.SAS_V1, "transaction_id": "t"},
    {"from_device": "D", "methods": [1, 2], "transaction_id": "t"},
    {"from_device": "D", "methods": [sas.SAS_V1], "transaction_id": "t", "timestamp": "now"},
    {"from_device": "D", "methods": [sas.SAS_V1], "transaction_id": "t", "timestamp": 1.5},
    {"from_device": "", "methods": [sas.SAS_V1], "transaction_id": "t"},
]


@pytest.mark.parametrize("content", MALFORMED_REQUESTS)
def test_malformed_requests_never_raise(content: Any) -> None:
    bot = _fresh_bot()
    step = bot.receive(Incoming(sas.REQUEST, content, MEMBER.user_id), T0)
    # With no transaction id there is nobody to tell; otherwise the cancel says why.
    assert all(o.type == sas.CANCEL for o in step.send)
    assert bot.state in (State.CANCELLED, State.NEW)


MALFORMED_LATER: list[tuple[str, Any]] = [
    (sas.START, _start_content(key_agreement_protocols="curve25519-hkdf-sha256")),
    (sas.START, _start_content(hashes=None)),
    (sas.START, _start_content(method=7)),
    (sas.START, _start_content(from_device=None)),
    (sas.START, _start_content(message_authentication_codes=[None])),
    (sas.START, _start_content(extra=float("nan"))),
    (sas.START, {"transaction_id": "tx1"}),
]


@pytest.mark.parametrize(("kind", "content"), MALFORMED_LATER)
def test_malformed_starts_cancel_with_a_reason(kind: str, content: Any) -> None:
    bot = _fresh_bot()
    bot.receive(_request(), T0)
    step = bot.receive(Incoming(kind, content, MEMBER.user_id), T0)
    assert step.cancelled
    codes = [o.content["code"] for o in step.send]
    assert codes in (["m.invalid_message"], ["m.unknown_method"])
    assert step.send[0].content["reason"]
    assert step.send[0].content["transaction_id"] == "tx1"


BAD_KEYS: list[Any] = [None, 5, "", "!!!notbase64", base64.b64encode(b"short").decode(),
                       base64.b64encode(bytes(32)).decode()]  # all zero: no contribution


@pytest.mark.parametrize("key", BAD_KEYS)
def test_malformed_keys_cancel(key: Any) -> None:
    bot = _fresh_bot()
    bot.receive(_request(), T0)
    bot.receive(Incoming(sas.START, _start_content(), MEMBER.user_id), T0)
    step = bot.receive(Incoming(sas.KEY, {"transaction_id": "tx1", "key": key},
                                MEMBER.user_id), T0)
    assert step.cancelled
    assert step.send[0].content["code"] in ("m.invalid_message", "m.key_mismatch")


BAD_MACS: list[Any] = [{"mac": None, "keys": "k"}, {"mac": {}, "keys": "k"},
                       {"mac": {"ed25519:X": 5}, "keys": "k"}, {"mac": [], "keys": "k"},
                       {"mac": {"ed25519:X": "a"}}, {"mac": {"ed25519:X": "a"}, "keys": 3}]


@pytest.mark.parametrize("content", BAD_MACS)
def test_malformed_macs_cancel(content: dict[str, Any]) -> None:
    pair = start_pair(Transport.TO_DEVICE)
    bot = _bot(pair)
    step = bot.receive(Incoming(sas.MAC, {**content, "transaction_id": pair.member.flow_id},
                                MEMBER.user_id), pair.now)
    assert step.cancelled
    assert step.send[0].content["code"] == "m.invalid_message"


def test_any_shape_at_any_stage_never_raises() -> None:
    shapes: list[Any] = [None, 0, "x", [], {}, {"transaction_id": "tx1"},
                         {"transaction_id": "tx1", "mac": {"a": {"b": 1}}, "keys": []},
                         {"transaction_id": ["tx1"]}, {"m.relates_to": "x"},
                         {"transaction_id": "tx1", "key": {"k": 1}, "code": 5, "reason": []}]
    kinds = [*sorted(sas.EVENT_TYPES), "m.room.message", "m.other"]
    for stage in range(4):
        for kind in kinds:
            for shape in shapes:
                bot = _fresh_bot()
                for event in [_request(),
                              Incoming(sas.START, _start_content(), MEMBER.user_id),
                              Incoming(sas.KEY, {"transaction_id": "tx1",
                                                 "key": SasVerification(
                                                     MEMBER, allow(BOT), Transport.TO_DEVICE,
                                                     now_ms=T0)._public_key},
                                       MEMBER.user_id)][:stage]:
                    bot.receive(event, T0)
                step = bot.receive(Incoming(kind, shape, MEMBER.user_id), T0)
                assert isinstance(step, sas.Step)
                for out in step.send:
                    assert out.type == sas.CANCEL
                    assert out.content["code"]
                    assert out.content["reason"]


def test_timeouts_use_the_injected_clock() -> None:
    pair = start_pair(Transport.IN_ROOM)
    bot = _bot(pair)
    assert bot.tick(pair.now + 9 * MINUTE).send == []
    step = bot.tick(pair.now + 10 * MINUTE)
    assert step.cancelled
    assert [o.content["code"] for o in step.send] == ["m.timeout"]
    assert step.send[0].content["m.relates_to"] == {"rel_type": "m.reference",
                                                    "event_id": "$request"}
    assert bot.tick(pair.now + 11 * MINUTE).send == []  # cancelled once

    # An event arriving after 10 idle minutes is answered with the timeout, not handled.
    pair = start_pair(Transport.TO_DEVICE)
    late = pair.member.confirm(pair.now).send
    step = _bot(pair).receive(pair.incoming(MEMBER, late[0]), pair.now + 10 * MINUTE)
    assert [o.content["code"] for o in step.send] == ["m.timeout"]
    assert _bot(pair).verified_keys == {}


@pytest.mark.parametrize("offset", [-11 * MINUTE, 6 * MINUTE])
def test_stale_or_future_requests_are_ignored(offset: int) -> None:
    bot = _fresh_bot()
    step = bot.receive(_request(timestamp=T0 + offset), T0)
    assert step.send == []  # the spec: ignore, do not answer
    assert bot.state is State.CANCELLED
    assert bot.cancel_code == "m.timeout"


def test_the_sas_mismatch_and_user_cancel_are_sent() -> None:
    pair = start_pair(Transport.IN_ROOM)
    step = pair.member.mismatch(pair.now)
    assert [o.content["code"] for o in step.send] == ["m.mismatched_sas"]
    pair.deliver("member", step.send)
    assert _bot(pair).cancel_code == "m.mismatched_sas"
    assert _bot(pair).receive(pair.incoming(MEMBER, step.send[0]), pair.now).send == []

    pair = start_pair(Transport.TO_DEVICE)
    step = _bot(pair).cancel(pair.now)
    assert [o.content["code"] for o in step.send] == ["m.user"]


def test_a_cancel_received_is_not_echoed() -> None:
    bot = _fresh_bot()
    bot.receive(_request(), T0)
    step = bot.receive(Incoming(sas.CANCEL, {"transaction_id": "tx1", "code": "m.accepted",
                                             "reason": "another device answered"},
                                MEMBER.user_id), T0)
    assert step.cancelled
    assert step.send == []
    assert bot.cancel_code == CancelCode.ACCEPTED
    assert bot.start(T0).send == []


def test_events_of_others_or_other_flows_are_ignored() -> None:
    bot = _fresh_bot()
    bot.receive(_request(), T0)
    stranger = Incoming(sas.CANCEL, {"transaction_id": "tx1", "code": "m.user"},
                        "@mallory:example.org")
    other_flow = Incoming(sas.CANCEL, {"transaction_id": "tx2", "code": "m.user"},
                          MEMBER.user_id)
    other_device = Incoming(sas.CANCEL, {"transaction_id": "tx1", "code": "m.user"},
                            MEMBER.user_id, sender_device="LAPTOP")
    echo = Incoming(sas.CANCEL, {"transaction_id": "tx1", "code": "m.user"}, BOT.user_id)
    for event in (stranger, other_flow, other_device, echo):
        assert bot.receive(event, T0) == sas.Step()
    assert bot.state is State.READY


def test_both_sides_starting_resolves_as_the_spec_says() -> None:
    # The bot's user id sorts before the member's? "@livcr" < "@alice" is false, so the
    # member's start wins: the bot drops its own and accepts the member's.
    assert MEMBER.user_id < BOT.user_id
    bot = _fresh_bot()
    bot.receive(_request(), T0)
    ours = bot.start(T0).send
    assert [o.type for o in ours] == [sas.START]
    step = bot.receive(Incoming(sas.START, _start_content(), MEMBER.user_id), T0)
    assert [o.type for o in step.send] == [sas.ACCEPT]
    assert not bot.we_started

    # With the order reversed, the bot's start stands and the member's is ignored.
    early = OwnDevice("@aaa-bot:example.org", "BOTDEVICE", _key(), _key())
    bot = SasVerification(early, allow(MEMBER), Transport.TO_DEVICE, now_ms=T0)
    bot.receive(_request(), T0)
    bot.start(T0)
    assert bot.receive(Incoming(sas.START, _start_content(), MEMBER.user_id), T0).send == []
    assert bot.we_started
    assert bot.state is State.STARTED


def test_the_bot_can_start_itself_when_the_member_waits() -> None:
    """If the member's client waits after ready, the bot's own start completes the flow."""
    member = SasVerification(MEMBER, allow(BOT), Transport.TO_DEVICE, now_ms=T0,
                             auto_confirm=False)
    bot = _fresh_bot()
    ready = bot.receive(_request(), T0).send
    # The member's machine plays a client that requested and now waits.
    member._we_requested = member._has_request = True
    member.flow_id, member.peer_user, member.peer_device = "tx1", BOT.user_id, BOT.device_id
    member.state = State.REQUESTED
    member._meet(BOT.user_id, BOT.device_id)
    member.state = State.READY  # it got the ready and does not start
    assert ready[0].type == sas.READY
    pair = Pair(Transport.TO_DEVICE, member, bot)
    pair.deliver("bot", bot.start(T0).send)
    assert bot.we_started
    assert member.state is State.KEYS_EXCHANGED
    assert bot.emoji() == member.emoji()
    pair.deliver("member", member.confirm(T0).send)
    assert bot.state is State.DONE
    assert member.state is State.DONE


# ---- (d) event shapes of both transports --------------------------------------------------
def test_in_room_events_refer_to_the_request() -> None:
    pair = start_pair(Transport.IN_ROOM)
    pair.deliver("member", pair.member.confirm(pair.now).send)
    first, *rest = pair.log
    request = first[1]
    assert request.type == "m.room.message"
    assert request.content["msgtype"] == "m.key.verification.request"
    assert request.content["methods"] == ["m.sas.v1"]
    assert request.content["from_device"] == MEMBER.device_id
    assert request.content["to"] == BOT.user_id
    assert request.content["body"]
    assert rest
    for _, out in rest:
        assert out.content["m.relates_to"] == {"rel_type": "m.reference",
                                               "event_id": "$request"}
        assert "transaction_id" not in out.content
    ready = rest[0][1]
    assert ready.type == "m.key.verification.ready"
    assert ready.content["from_device"] == BOT.device_id
    assert ready.content["methods"] == ["m.sas.v1"]
    accept = next(o for _, o in rest if o.type == sas.ACCEPT)
    assert accept.content["key_agreement_protocol"] == "curve25519-hkdf-sha256"
    assert accept.content["hash"] == "sha256"
    assert accept.content["message_authentication_code"] == "hkdf-hmac-sha256.v2"
    assert accept.content["short_authentication_string"] == ["decimal", "emoji"]
    mac = next(o for who, o in rest if o.type == sas.MAC and who == "bot")
    assert set(mac.content["mac"]) == {f"ed25519:{BOT.device_id}", f"ed25519:{BOT.master_key}"}
    assert sas.flow_id(Incoming(mac.type, mac.content, BOT.user_id), Transport.IN_ROOM) \
        == "$request"


def test_to_device_events_carry_the_transaction_id() -> None:
    pair = start_pair(Transport.TO_DEVICE)
    pair.deliver("member", pair.member.confirm(pair.now).send)
    tx = pair.member.flow_id
    assert tx
    request = pair.log[0][1]
    assert request.type == sas.REQUEST
    assert request.content["timestamp"] == T0
    for _, out in pair.log:
        assert out.content["transaction_id"] == tx
        assert "m.relates_to" not in out.content
    assert sas.flow_id(Incoming(sas.MAC, {"transaction_id": tx}, "@x:y"),
                       Transport.TO_DEVICE) == tx


def test_routing_helpers() -> None:
    assert sas.is_verification_event("m.room.message",
                                     {"msgtype": "m.key.verification.request"})
    assert not sas.is_verification_event("m.room.message", {"msgtype": "m.text"})
    assert sas.is_verification_event("m.key.verification.done", {})
    assert not sas.is_verification_event("m.key.verification.other", {})
    request = Incoming("m.room.message", {"msgtype": sas.REQUEST}, "@a:b", event_id="$r")
    assert sas.flow_id(request, Transport.IN_ROOM) == "$r"
    annotation = Incoming(sas.DONE, {"m.relates_to": {"rel_type": "m.annotation",
                                                      "event_id": "$r"}}, "@a:b")
    assert sas.flow_id(annotation, Transport.IN_ROOM) is None


def test_an_in_room_request_for_someone_else_is_not_answered() -> None:
    bot = _fresh_bot(Transport.IN_ROOM)
    request = Incoming("m.room.message", {"msgtype": sas.REQUEST, "methods": [sas.SAS_V1],
                                          "from_device": MEMBER.device_id,
                                          "to": "@someone:example.org"},
                       MEMBER.user_id, event_id="$r", timestamp_ms=T0)
    assert bot.receive(request, T0).send == []
    assert bot.state is State.CANCELLED


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_compare_message_renders_in_every_language(lang: str) -> None:
    from bot.core.render import text

    pair = start_pair(Transport.IN_ROOM)
    bot = _bot(pair)
    lines = sas.emoji_lines(bot.emoji() or [], lang)
    body = text(lang, "verification.compare", emoji="\n".join(lines),
                decimals=" ".join(str(d) for d in bot.decimals() or ()))
    assert all(line in body for line in lines)
    for key in ("done", "cancelled", "refused"):
        assert text(lang, f"verification.{key}", device="PHONE", code="m.user")
