"""Members verify the bot with emoji (SAS), spec §11 "The bot can be verified".

The edge side of :mod:`bot.edge.sas` (the sans-I/O state machine on vodozemac's primitives):

* **Direct rooms.** A roster member (any table of any cell) may invite the bot to a direct
  room (``is_direct``) that holds only the two of them; Element's "Verify user" does so when it
  has no direct room with the bot. The bot joins it, records it as the member's direct room of
  their cells (fiche delivery uses it too) and in it acts only on verification events: it
  answers nothing else there. Any other invitation is declined without a word
  (:func:`judge_invite`).
* **Both transports.** In-room events (the request as an ``m.room.message`` with that
  ``msgtype``, then ``m.key.verification.*`` room events related by ``m.reference``) come from
  the direct room's timeline; to-device events (Element's "Verify session") from the sync's
  to-device list. nio's own SAS (non-conformant) never sees them: :func:`silence_nio_sas`.
* **Who may verify.** Only a trusted device (:mod:`bot.edge.trust`) of a roster member who is
  not blocked: the policy answers the machine with the device's keys as the bot verified
  them, or a refusal (the machine cancels with ``m.user`` and the reason). In a direct room,
  only its one member.
* **What the person sees.** When the keys are exchanged the bot posts the seven emoji with
  their names in the cell's language (and the three numbers) in the direct room; it sends
  its MAC only after the member's MAC arrived and checked out (the member pressed "They
  match"). After a verification whose MAC covered the member's pinned master key, the bot
  signs that key with its user-signing key (the pin is unchanged).

Nothing here logs message bodies or keys; flows are logged by outcome and cancel code only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

from nio import AsyncClient, InviteMemberEvent, RoomSendResponse, ToDeviceMessage

from bot.edge.cross_signing import sign_user_identity
from bot.edge.devices import KeySharing
from bot.edge.port import CorePort
from bot.edge.sas import (
    CANCEL,
    REQUEST,
    START,
    CancelCode,
    Incoming,
    OwnDevice,
    PeerKeys,
    Refusal,
    SasVerification,
    Step,
    Transport,
    emoji_lines,
    event_kind,
    flow_id,
)
from bot.edge.signing_keys import KEYS_FILE, CrossSigningError, CrossSigningKeys, public_b64

log = logging.getLogger(__name__)

#: Flows open at once; a flood of requests is cancelled beyond this (each holds a key pair).
MAX_FLOWS = 64

#: Why a device may not verify the bot (the cancel's ``reason``, read by the member's app).
NOT_ON_ROSTER = "only members of the cell's tables can verify this bot"
BLOCKED = "your identity changed; a chair must confirm it before you can verify the bot"
UNTRUSTED_DEVICE = ("this device is not trusted: verify it from one of your verified sessions "
                    "first (it must be signed by your own cross-signing identity)")
NOT_THIS_ROOM = "verify the bot in your direct room with it"
#: Refusals said to nobody in a room (an outsider, a blocked member, another room's member).
REFUSALS = (NOT_ON_ROSTER, BLOCKED, NOT_THIS_ROOM, UNTRUSTED_DEVICE)


# ---- invitations -------------------------------------------------------------------------
@dataclass(frozen=True)
class InviteVerdict:
    """Whether to join an invited room that is not a table's, and who its member is."""

    accept: bool
    inviter: str | None
    why: str  # for the log: a kind, never a name


def judge_invite(invite_state: Sequence[Any], bot_user: str,
                 roster: frozenset[str] | set[str]) -> InviteVerdict:
    """A direct room (``is_direct`` on the bot's invite) from a roster member, holding only
    the member (joined) and the bot (invited): accept. Anything else: decline."""
    inviter: str | None = None
    direct = False
    others: set[str] = set()
    for event in invite_state:
        if not isinstance(event, InviteMemberEvent):
            continue
        content = event.content if isinstance(event.content, dict) else {}
        if event.state_key == bot_user:
            if event.membership == "invite":
                inviter = event.sender
                direct = content.get("is_direct") is True
        elif event.membership in ("join", "invite", "knock"):
            others.add(event.state_key)
    if inviter is None:
        return InviteVerdict(False, None, "no invitation of the bot in the room's state")
    if inviter not in roster or inviter == bot_user:
        return InviteVerdict(False, inviter, "the inviter is on no roster")
    if not direct:
        return InviteVerdict(False, inviter, "not a direct room")
    if others - {inviter}:
        return InviteVerdict(False, inviter, "the room holds someone else")
    return InviteVerdict(True, inviter, "a roster member's direct room")


def only_the_two(users: Mapping[str, Any] | set[str], bot_user: str, member: str) -> bool:
    """Whether a room's members (joined or invited) are only the bot and its member."""
    return set(users) <= {bot_user, member}


def silence_nio_sas(client: AsyncClient) -> None:
    """Keep nio's own SAS out of every flow: it would answer our flows with cancels (and its
    MACs are not conformant). The verification events still reach the to-device callbacks."""
    olm = client.olm
    if olm is not None:
        # An instance attribute shadows the method; nio calls it for every start/key/mac.
        setattr(olm, "handle_key_verification", lambda event: None)  # noqa: B010
        olm.key_verifications.clear()


# ---- the flows ---------------------------------------------------------------------------
Sender = Callable[[str, str, dict[str, Any]], Awaitable[str | None]]


@dataclass
class Verifications:
    """Every open SAS flow of the bot, by transport and flow id."""

    client: AsyncClient
    core: CorePort
    keys: KeySharing
    data_dir: Path
    flows: dict[tuple[Transport, str], SasVerification] = field(default_factory=dict)
    #: Outcomes by kind (``verified``, ``cancelled:m.user``...), for tests and the log.
    outcomes: dict[str, int] = field(default_factory=dict)
    _to_device: list[dict[str, Any]] = field(default_factory=list)
    _own: OwnDevice | None = None

    def now_ms(self) -> int:
        return int(self.core.clock().timestamp() * 1000)

    def _count(self, what: str) -> None:
        self.outcomes[what] = self.outcomes.get(what, 0) + 1

    # -- who we are ------------------------------------------------------------------------
    def own(self) -> OwnDevice:
        if self._own is None:
            olm = self.client.olm
            if olm is None:
                raise RuntimeError("verification needs the client's encryption")
            master: str | None = None
            try:
                keys = CrossSigningKeys.load(self.data_dir / KEYS_FILE, self.client.user_id)
            except CrossSigningError:
                keys = None
            if keys is not None and keys.uploaded:
                master = public_b64(keys.master)
            self._own = OwnDevice(self.client.user_id, self.client.device_id,
                                  olm.account.identity_keys["ed25519"], master)
        return self._own

    # -- who may verify --------------------------------------------------------------------
    def policy(self, room_member: str | None = None) -> Callable[[str, str], PeerKeys | Refusal]:
        """The machine's policy; in a direct room only its one member may verify."""
        trust = self.keys.trust

        def decide(user_id: str, device_id: str) -> PeerKeys | Refusal:
            if room_member is not None and user_id != room_member:
                return Refusal(NOT_THIS_ROOM)
            if user_id == self.client.user_id or user_id not in trust.tracked():
                return Refusal(NOT_ON_ROSTER)
            if trust.blocked(user_id):
                return Refusal(BLOCKED)
            verdict = trust.status(user_id)
            device = verdict.trusted.get(device_id) if verdict is not None else None
            if verdict is None or device is None:
                return Refusal(UNTRUSTED_DEVICE)
            return PeerKeys(device.ed25519, verdict.master_key)

        return decide

    # -- to-device -------------------------------------------------------------------------
    def queue_to_device(self, source: Mapping[str, Any]) -> None:
        """A to-device event from the sync (called from nio's callback); handled after the
        sync's key query, in :meth:`handle_to_device`."""
        type_ = source.get("type")
        content = source.get("content")
        if isinstance(type_, str) and isinstance(content, Mapping) and event_kind(
                type_, content) is not None:
            self._to_device.append(dict(source))

    async def handle_to_device(self) -> None:
        queued, self._to_device = self._to_device, []
        for source in queued:
            sender = source.get("sender")
            if not isinstance(sender, str) or sender == self.client.user_id:
                continue
            event = Incoming(str(source["type"]), source["content"], sender)
            await self._receive(Transport.TO_DEVICE, event, None, None)

    # -- in room ---------------------------------------------------------------------------
    async def on_room_event(self, room_id: str, member: str, source: Mapping[str, Any]
                            ) -> None:
        """One (decrypted) timeline event of ``member``'s direct room: verification events
        go to their flow; everything else is left unanswered."""
        sender = source.get("sender")
        type_ = source.get("type")
        content = source.get("content")
        if not isinstance(sender, str) or sender == self.client.user_id:
            return
        if not isinstance(type_, str) or not isinstance(content, Mapping):
            return
        if event_kind(type_, content) is None:
            return
        stamp = source.get("origin_server_ts")
        event_id = source.get("event_id")
        event = Incoming(type_, content, sender, None,
                         event_id if isinstance(event_id, str) else None,
                         stamp if isinstance(stamp, int) else None)
        await self._receive(Transport.IN_ROOM, event, room_id, member)

    # -- driving ---------------------------------------------------------------------------
    async def _receive(self, transport: Transport, event: Incoming, room_id: str | None,
                       member: str | None) -> None:
        now = self.now_ms()
        flow = flow_id(event, transport)
        if flow is None:
            return
        machine = self.flows.get((transport, flow))
        if machine is None:
            kind = event_kind(event.type, event.content)
            opens = kind == REQUEST or (transport is Transport.TO_DEVICE and kind == START)
            if not opens:
                if transport is Transport.TO_DEVICE and kind != CANCEL:
                    await self._answer_unknown(event, flow)
                return
            if len(self.flows) >= MAX_FLOWS:
                self._prune()
            machine = SasVerification(self.own(), self.policy(member), transport,
                                      now_ms=now, room_id=room_id)
            if len(self.flows) >= MAX_FLOWS:
                await self._play(machine, machine.cancel(now, CancelCode.USER,
                                                         "too many verifications at once"))
                return
            self.flows[(transport, flow)] = machine
        await self._play(machine, machine.receive(event, now))

    async def _answer_unknown(self, event: Incoming, flow: str) -> None:
        """A to-device event of a flow we do not know: ``m.unknown_transaction`` (spec)."""
        device = event.content.get("from_device")
        if not isinstance(device, str) or event.sender not in self.keys.trust.tracked():
            return
        await self._send_to_device(event.sender, device, CANCEL, {
            "transaction_id": flow, "code": CancelCode.UNKNOWN_TRANSACTION.value,
            "reason": "this verification is not known to the bot"})

    async def tick(self) -> None:
        """Time out idle flows (call after each sync) and forget finished ones."""
        now = self.now_ms()
        for machine in list(self.flows.values()):
            await self._play(machine, machine.tick(now))
        self._prune()

    def _prune(self) -> None:
        for key, machine in list(self.flows.items()):
            if machine.finished:
                del self.flows[key]

    async def _play(self, machine: SasVerification, step: Step) -> None:
        for item in step.send:
            await self._send(machine, item.type, item.content)
        if step.show_sas:
            await self._post(machine, "verification.compare", self._sas_data(machine))
        if step.verified:
            await self._vouch(machine)
        if step.finished:
            self._count("verified")
            log.info("a member verified the bot (%s)", machine.transport.value)
            await self._post(machine, "verification.done", {"device": machine.peer_device})
        if step.cancelled:
            code = machine.cancel_code or "?"
            self._count(f"cancelled:{code}")
            log.info("a verification was cancelled (%s, %s)", machine.transport.value, code)
            reason = machine.cancel_reason
            if reason == UNTRUSTED_DEVICE:
                await self._post(machine, "verification.refused", {})
            elif reason not in REFUSALS and machine.peer_device is not None and (
                    step.send or code != CancelCode.TIMEOUT.value):
                await self._post(machine, "verification.cancelled", {"code": code})

    def _sas_data(self, machine: SasVerification) -> dict[str, Any]:
        lang = self._language(machine.peer_user)
        emojis = machine.emoji() or []
        decimals = machine.decimals()
        return {
            "emoji": "\n".join(emoji_lines(emojis, lang)),
            "decimals": " ".join(str(d) for d in decimals) if decimals else "",
        }

    async def _vouch(self, machine: SasVerification) -> None:
        user = machine.peer_user
        if user is None:
            return
        master = self.keys.trust.master_key_object(user)
        pinned = self.keys.trust.pinned(user)
        if master is None or pinned is None or f"ed25519:{pinned}" not in machine.verified_keys:
            return  # the member's client did not MAC their pinned master key
        if await sign_user_identity(self.client, self.data_dir, user, master):
            log.info("signed a verified member's identity with the bot's user-signing key")

    # -- sending ---------------------------------------------------------------------------
    async def _send(self, machine: SasVerification, type_: str, content: dict[str, Any]
                    ) -> None:
        if machine.transport is Transport.TO_DEVICE:
            if machine.peer_user and machine.peer_device:
                await self._send_to_device(machine.peer_user, machine.peer_device, type_,
                                           content)
            return
        if machine.room_id is not None:
            await self._room_send(machine.room_id, type_, content)

    async def _send_to_device(self, user: str, device: str, type_: str,
                              content: dict[str, Any]) -> None:
        response = await self.client.to_device(ToDeviceMessage(type_, user, device, content),
                                               tx_id=str(uuid4()))
        if not hasattr(response, "to_device_message"):
            log.warning("a verification message was not sent (%s)", type(response).__name__)

    async def _room_send(self, room_id: str, type_: str, content: dict[str, Any]
                         ) -> str | None:
        if room_id not in self.client.rooms:
            return None
        await self.keys.share_keys(room_id)  # only the member's trusted devices
        response = await self.client.room_send(room_id, type_, content,
                                               ignore_unverified_devices=False)
        if not isinstance(response, RoomSendResponse):
            log.warning("a verification event was not sent (%s)", type(response).__name__)
            return None
        return str(response.event_id)

    def _language(self, user: str | None) -> str:
        cells = self.core.cells_of(user) if user else []
        cell = self.core.config.cell(cells[0]) if cells else self.core.config.cells[0]
        return cell.language

    async def _post(self, machine: SasVerification, key: str, data: dict[str, Any]) -> None:
        """A notice for the person in the flow's direct room (to-device: the member's
        direct room, when there is one)."""
        room_id = machine.room_id or await self._direct_room_of(machine.peer_user)
        if room_id is None:
            return
        rendered = self.core.words.render(self._language(machine.peer_user), "msg:" + key,
                                          data)
        content: dict[str, Any] = {"msgtype": "m.notice", "body": rendered.body,
                                   "m.mentions": {}}
        if rendered.html:
            content.update(format="org.matrix.custom.html", formatted_body=rendered.html)
        await self._room_send(room_id, "m.room.message", content)

    async def _direct_room_of(self, user: str | None) -> str | None:
        if user is None:
            return None
        for cell in await asyncio.to_thread(self.core.cells_of, user):
            room_id = await asyncio.to_thread(self.core.direct_room, cell, user)
            if room_id is not None and room_id in self.client.rooms:
                self.core.direct_users[room_id] = user
                return room_id
        return None


__all__ = ["InviteVerdict", "Verifications", "judge_invite", "only_the_two",
           "silence_nio_sas"]
