// Interop client for `livcr restore`: Element's crypto stack (matrix-js-sdk + its Rust crypto)
// as a roster member who has verified the bot and sends room keys ONLY to verified devices
// (Element's "Never send encrypted messages to unverified sessions",
// globalBlacklistUnverifiedDevices). The bot loses its machine and is restored with its
// recovery key in between; the member's client must see no identity change and keep working.
//
// Driven by tests/test_interop_restore.py. Configuration from the environment:
//   INTEROP_HOMESERVER, INTEROP_USER, INTEROP_PASSWORD, INTEROP_ROOM, INTEROP_BOT,
//   INTEROP_TIMEOUT_MS (per-step timeout), INTEROP_LOG_LEVEL (matrix-js-sdk, to stderr),
//   INTEROP_MODE: "blacklist" (default, above) or "only-signed": Element's "exclude insecure
//   devices" (OnlySignedDevicesIsolationMode, MSC4153) instead, without verifying the bot
//   (no "unverified" and "verified" stages then).
//
// Protocol: one JSON object per line on stdout, each with a "stage":
//   {"stage":"ready", ...}           logged in, cross-signed, blacklist mode on, in the room
//   {"stage":"unverified", ...}      "!ack" sent before verifying the bot: the bot's "could not
//                                    decrypt" notice (negative control: the mode is in force)
//   {"stage":"verified", ...}        the member verified the bot's identity (signed its
//                                    master key with the member's user-signing key)
//   {"stage":"reply", ...}           the bot's reply to "!ack", now that it is verified
//   {"stage":"restore-wanted", ...}  the driver restores the bot, then writes one line on
//                                    stdin: the restored bot's new device id
//   {"stage":"reply", ...}           the restored bot's reply to "!help"
//   {"stage":"error", ...}           then exit status 1 (2 on a timeout)

import { createInterface } from "node:readline";

import { emit, env, need } from "./common.mjs";

const sdk = await import("matrix-js-sdk");
const cryptoApi = await import("matrix-js-sdk/lib/crypto-api/index.js");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
const wasm = await import("@matrix-org/matrix-sdk-crypto-wasm");
const { ClientEvent, MatrixEventEvent, RoomEvent, createClient } = sdk;
const {
    AllDevicesIsolationMode, EventShieldColour, EventShieldReason, OnlySignedDevicesIsolationMode,
} = cryptoApi;

const homeserver = need("INTEROP_HOMESERVER");
const userId = need("INTEROP_USER");
const password = need("INTEROP_PASSWORD");
const roomId = need("INTEROP_ROOM");
const botId = need("INTEROP_BOT");
const stepTimeout = Number(env.INTEROP_TIMEOUT_MS || 90000);
const onlySigned = env.INTEROP_MODE === "only-signed";
logger.setLevel(env.INTEROP_LOG_LEVEL || "info");

class Timeout extends Error {}
function within(promise, what) {
    let timer;
    const expired = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Timeout(`timed out: ${what}`)), stepTimeout);
    });
    return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const colourName = (c) => (c === undefined || c === null ? null : EventShieldColour[c]);
const reasonName = (r) => (r === undefined || r === null ? null : EventShieldReason[r]);

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
let client;

async function main() {
    const bare = createClient({ baseUrl: homeserver });
    const login = await bare.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password,
        initial_device_display_name: "Element interop (restore)",
    });
    bare.stopClient();
    client = createClient({
        baseUrl: homeserver,
        userId: login.user_id,
        deviceId: login.device_id,
        accessToken: login.access_token,
    });
    await client.initRustCrypto({ useIndexedDB: false });
    const crypto = client.getCrypto();
    // "Never send encrypted messages to unverified sessions": room keys only for devices
    // that are verified (here: cross-signed by an identity this user verified).
    if (onlySigned) {
        // Element's "exclude insecure devices" (MSC4153): only devices their owner signed.
        crypto.setDeviceIsolationMode(new OnlySignedDevicesIsolationMode());
    } else {
        crypto.setDeviceIsolationMode(new AllDevicesIsolationMode(false));
        crypto.globalBlacklistUnverifiedDevices = true;
    }

    const prepared = new Promise((resolve) => {
        const onSync = (state) => {
            if (state === "PREPARED" || state === "SYNCING") {
                client.off(ClientEvent.Sync, onSync);
                resolve();
            }
        };
        client.on(ClientEvent.Sync, onSync);
    });
    const watchers = new Set();
    const offer = (ev) => {
        if (ev.getRoomId() !== roomId || ev.isBeingDecrypted()) return;
        if (ev.isEncrypted() && !ev.isDecryptionFailure() && ev.getClearContent() === null) return;
        for (const watcher of watchers) watcher(ev);
    };
    client.on(RoomEvent.Timeline, (ev) => offer(ev));
    client.on(MatrixEventEvent.Decrypted, (ev) => offer(ev));
    await client.startClient({ initialSyncLimit: 0, lazyLoadMembers: false });
    await within(prepared, "first sync");

    await within(
        crypto.bootstrapCrossSigning({
            authUploadDeviceSigningKeys: async (makeRequest) => {
                await makeRequest({
                    type: "m.login.password",
                    identifier: { type: "m.id.user", user: userId },
                    password,
                });
            },
        }),
        "bootstrapCrossSigning",
    );
    const inRoom = async () => {
        for (;;) {
            const room = client.getRoom(roomId);
            const membership = room?.getMyMembership();
            if (membership === "join" && (await crypto.isEncryptionEnabledInRoom(roomId))) return;
            if (membership === "invite" || !room) {
                try {
                    await client.joinRoom(roomId);
                } catch (err) {
                    console.error("join failed, retrying", err?.message);
                }
            }
            await sleep(300);
        }
    };
    await within(inRoom(), "joining the room");
    emit({ stage: "ready", device_id: client.getDeviceId(),
           blacklist_unverified: crypto.globalBlacklistUnverifiedDevices,
           isolation_mode: onlySigned ? "OnlySignedDevicesIsolationMode"
               : "AllDevicesIsolationMode",
           cross_signing_ready: await crypto.isCrossSigningReady() });

    // The bot's event that answers `target` (a reply to it, or any notice when `anyNotice`).
    const answer = async (body, match, what) => {
        let target = null;
        const early = [];
        let settle;
        const got = new Promise((resolve) => {
            settle = resolve;
        });
        const watcher = (ev) => {
            if (ev.getSender() !== botId || ev.isDecryptionFailure()) return;
            if (target === null) {
                early.push(ev);
            } else if (match(ev, target)) {
                watchers.delete(watcher);
                settle(ev);
            }
        };
        watchers.add(watcher);
        const sent = await client.sendMessage(roomId, { msgtype: "m.text", body });
        target = sent.event_id;
        early.splice(0).forEach(watcher);
        return { ev: await within(got, what), target };
    };
    const replyTo = (ev, target) =>
        ev.getContent()?.["m.relates_to"]?.["m.in_reply_to"]?.event_id === target;
    const masterKey = async () => {
        const identity = await crypto.olmMachine.getIdentity(new wasm.UserId(botId));
        const master = identity ? JSON.parse(identity.masterKey) : null;
        identity?.free();
        return master ? Object.values(master.keys)[0] : null;
    };
    const describe = async (command, ev, target) => {
        const info = await crypto.getEncryptionInfoForEvent(ev);
        const senderKey = ev.getSenderKey();
        const devices = await crypto.getUserDeviceInfo([botId], true);
        let senderDevice = null;
        for (const device of devices.get(botId)?.values() ?? []) {
            if (device.getIdentityKey() === senderKey) senderDevice = device.deviceId;
        }
        const status = senderDevice
            ? await crypto.getDeviceVerificationStatus(botId, senderDevice)
            : null;
        const identity = await crypto.getUserVerificationStatus(botId);
        return {
            stage: "reply",
            command,
            in_reply_to: replyTo(ev, target),
            body: ev.getContent().body ?? null,
            shield_colour: colourName(info?.shieldColour),
            shield_reason: reasonName(info?.shieldReason),
            sender_device: senderDevice,
            sender_device_signed_by_owner: status ? status.signedByOwner : null,
            sender_device_verified: status ? status.isVerified() : null,
            sender_device_cross_signing_verified: status ? status.crossSigningVerified : null,
            identity_verified: identity.isCrossSigningVerified(),
            identity_was_verified: identity.wasCrossSigningVerified(),
            identity_needs_approval: identity.needsUserApproval,
            master_key: await masterKey(),
        };
    };

    if (!onlySigned) {
        // ---- negative control: before the member verified the bot, its keys are withheld ----
        await crypto.getUserDeviceInfo([botId], true);
        const unverified = await answer(
            "!ack",
            (ev) => (ev.getContent().body ?? "").includes("could not decrypt"),
            "the bot's 'could not decrypt' notice",
        );
        emit({ stage: "unverified", body: unverified.ev.getContent().body,
               replied: replyTo(unverified.ev, unverified.target) });

        // ---- the member verifies the bot's identity (as after emoji verification) ----------
        const identity = await crypto.olmMachine.getIdentity(new wasm.UserId(botId));
        if (!identity) throw new Error("no cross-signing identity for the bot");
        const request = await identity.verify(); // signs its master key with our user-signing key
        identity.free();
        await crypto.outgoingRequestProcessor.makeOutgoingRequest(request);
        for (;;) {
            if ((await crypto.getUserVerificationStatus(botId)).isCrossSigningVerified()) break;
            await sleep(200);
        }
        emit({ stage: "verified", master_key: await masterKey() });
    }
    const before = await answer("!ack", replyTo, "the bot's reply to !ack");
    emit(await describe("!ack", before.ev, before.target));

    // ---- the bot loses its machine and is restored; we keep running --------------------
    emit({ stage: "restore-wanted" });
    const next = await lines.next();
    const newDevice = (next.value ?? "").trim();
    if (!newDevice) throw new Error("the driver sent no device id");
    const seesNewDevice = async () => {
        for (;;) {
            const devices = await crypto.getUserDeviceInfo([botId], true);
            if (devices.get(botId)?.has(newDevice)) return;
            await sleep(300);
        }
    };
    await within(seesNewDevice(), "the restored bot's new device in the device list");
    const after = await answer("!help", replyTo, "the restored bot's reply to !help");
    emit(await describe("!help", after.ev, after.target));
}

let status = 0;
try {
    await main();
} catch (err) {
    status = err instanceof Timeout ? 2 : 1;
    emit({ stage: "error", error: String(err?.message ?? err), stack: err?.stack ?? null });
} finally {
    try {
        client?.stopClient();
    } catch {
        // shutting down anyway
    }
}
process.exit(status);
