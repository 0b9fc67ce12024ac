// Interop client: Element's crypto stack (matrix-js-sdk + its Rust crypto, matrix-sdk-crypto-wasm)
// talking to the bot in an encrypted room, in Element's "exclude insecure devices" mode
// (OnlySignedDevicesIsolationMode, MSC4153).
//
// Driven by tests/test_interop_element.py. Configuration comes from the environment (the
// password never appears on a command line):
//   INTEROP_HOMESERVER  homeserver base URL           INTEROP_USER      full user id to log in as
//   INTEROP_PASSWORD    its password                  INTEROP_ROOM      encrypted room id
//   INTEROP_BOT         the bot's user id             INTEROP_CONTROL   (optional) user id whose
//   INTEROP_TIMEOUT_MS  per-step timeout (90000)          unsigned device sends a control message
//   INTEROP_LOG_LEVEL   matrix-js-sdk log level (info; logs go to stderr)
// Arguments: the commands to send, in order (e.g. "!ack" "!help").
//
// Protocol: one JSON object per line on stdout, each with a "stage":
//   {"stage":"ready", ...}      logged in, cross-signed, isolation mode set, in the room
//   {"stage":"reply", ...}      one per command: the bot's decrypted reply and its trust info
//   {"stage":"control-wanted"}  (with INTEROP_CONTROL) the driver must now have that user send
//                               a message; the line after it reports how decrypting it went
//   {"stage":"control", ...}
//   {"stage":"error", ...}      then exit status 1 (2 on a timeout)

import { readFileSync } from "node:fs";

import { emit, env, need } from "./common.mjs";

const sdk = await import("matrix-js-sdk");
const cryptoApi = await import("matrix-js-sdk/lib/crypto-api/index.js");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
const { ClientEvent, MatrixEventEvent, RoomEvent, createClient } = sdk;
const { EventShieldColour, EventShieldReason, OnlySignedDevicesIsolationMode } = cryptoApi;

function installed(name) {
    const url = new URL(`./node_modules/${name}/package.json`, import.meta.url);
    return JSON.parse(readFileSync(url, "utf8")).version;
}

const homeserver = need("INTEROP_HOMESERVER");
const userId = need("INTEROP_USER");
const password = need("INTEROP_PASSWORD");
const roomId = need("INTEROP_ROOM");
const botId = need("INTEROP_BOT");
const controlId = env.INTEROP_CONTROL || "";
const stepTimeout = Number(env.INTEROP_TIMEOUT_MS || 90000);
const commands = process.argv.slice(2);
logger.setLevel(env.INTEROP_LOG_LEVEL || "info");

class Timeout extends Error {}

function within(promise, what) {
    let timer;
    const expired = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Timeout(`timed out: ${what}`)), stepTimeout);
    });
    return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

const colourName = (c) => (c === undefined || c === null ? null : EventShieldColour[c]);
const reasonName = (r) => (r === undefined || r === null ? null : EventShieldReason[r]);

let client;

async function main() {
    // ---- log in: a new device of the user ---------------------------------------------
    const bare = createClient({ baseUrl: homeserver });
    const login = await bare.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password,
        initial_device_display_name: "Element interop (matrix-js-sdk)",
    });
    bare.stopClient();
    client = createClient({
        baseUrl: homeserver,
        userId: login.user_id,
        deviceId: login.device_id,
        accessToken: login.access_token,
    });

    // ---- Rust crypto, in memory, in Element's "exclude insecure devices" mode -----------
    await client.initRustCrypto({ useIndexedDB: false });
    const crypto = client.getCrypto();
    crypto.setDeviceIsolationMode(new OnlySignedDevicesIsolationMode());

    const prepared = new Promise((resolve) => {
        const onSync = (state, _prev, data) => {
            if (state === "PREPARED" || state === "SYNCING") {
                client.off(ClientEvent.Sync, onSync);
                resolve();
            } else if (state === "ERROR" && data?.error) {
                // the SDK keeps retrying by itself; the step timeout bounds the wait
                console.error("sync error", data.error);
            }
        };
        client.on(ClientEvent.Sync, onSync);
    });

    // Collect every event of the room from the bot (and the control user) as it decrypts.
    const watchers = new Set();
    const offer = (ev) => {
        if (ev.getRoomId() !== roomId || ev.isBeingDecrypted()) return;
        // An encrypted event is first seen before any decryption attempt (its wire content,
        // where m.relates_to may be in the clear): wait for the Decrypted event.
        if (ev.isEncrypted() && !ev.isDecryptionFailure() && ev.getClearContent() === null) return;
        for (const watcher of watchers) watcher(ev);
    };
    client.on(RoomEvent.Timeline, (ev) => offer(ev));
    client.on(MatrixEventEvent.Decrypted, (ev) => offer(ev));

    await client.startClient({ initialSyncLimit: 0, lazyLoadMembers: false });
    await within(prepared, "first sync");

    // ---- cross-sign our own identity and device -----------------------------------------
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
    const ownDevice = await crypto.getDeviceVerificationStatus(userId, client.getDeviceId());
    const crossSigningReady = await crypto.isCrossSigningReady();

    // ---- be in the room -------------------------------------------------------------------
    const inRoom = async () => {
        for (;;) {
            const room = client.getRoom(roomId);
            const membership = room?.getMyMembership();
            if (membership === "join" && (await crypto.isEncryptionEnabledInRoom(roomId))) {
                return room;
            }
            if (membership === "invite" || !room) {
                try {
                    await client.joinRoom(roomId);
                } catch (err) {
                    console.error("join failed, retrying", err?.message);
                }
            }
            await new Promise((r) => setTimeout(r, 300));
        }
    };
    await within(inRoom(), "joining the room");
    emit({
        stage: "ready",
        user_id: userId,
        device_id: client.getDeviceId(),
        own_device_signed_by_owner: Boolean(ownDevice?.signedByOwner),
        cross_signing_ready: crossSigningReady,
        isolation_mode: "OnlySignedDevicesIsolationMode",
        sdk: {
            "matrix-js-sdk": installed("matrix-js-sdk"),
            "matrix-sdk-crypto-wasm": installed("@matrix-org/matrix-sdk-crypto-wasm"),
            "rust-crypto": crypto.getVersion(),
        },
    });

    // ---- send each command; the bot's reply must decrypt, with no warning on it -----------
    for (const command of commands) {
        const failures = {}; // undecryptable bot events, for the report on a timeout
        let target = null; // our event id, known once the send returns
        const early = []; // bot events seen before that
        let settle;
        const reply = new Promise((resolve) => {
            settle = resolve;
        });
        const watcher = (ev) => {
            if (ev.getSender() !== botId) return;
            if (target === null) {
                early.push(ev);
            } else if (ev.isDecryptionFailure()) {
                failures[ev.getId()] = ev.decryptionFailureReason;
            } else if (ev.getContent()?.["m.relates_to"]?.["m.in_reply_to"]?.event_id === target) {
                watchers.delete(watcher);
                settle(ev);
            }
        };
        watchers.add(watcher);
        const sent = await client.sendMessage(roomId, { msgtype: "m.text", body: command });
        target = sent.event_id;
        early.splice(0).forEach(watcher);
        let ev;
        try {
            ev = await within(reply, `the bot's reply to ${command}`);
        } catch (err) {
            err.failures = failures;
            throw err;
        }
        const info = await crypto.getEncryptionInfoForEvent(ev);
        const senderKey = ev.getSenderKey();
        const devices = await crypto.getUserDeviceInfo([botId], true);
        let senderDevice = null;
        for (const device of devices.get(botId)?.values() ?? []) {
            if (device.getIdentityKey() === senderKey) senderDevice = device.deviceId;
        }
        senderDevice ??= ev.getWireContent().device_id ?? null;
        const deviceStatus = senderDevice
            ? await crypto.getDeviceVerificationStatus(botId, senderDevice)
            : null;
        const identity = await crypto.getUserVerificationStatus(botId);
        emit({
            stage: "reply",
            command,
            event_id: ev.getId(),
            in_reply_to: target,
            encrypted: ev.isEncrypted(),
            decrypted: !ev.isDecryptionFailure() && ev.getType() === "m.room.message",
            type: ev.getType(),
            msgtype: ev.getContent().msgtype ?? null,
            body: ev.getContent().body ?? null,
            shield_colour: colourName(info?.shieldColour),
            shield_reason: reasonName(info?.shieldReason),
            sender_device: senderDevice,
            sender_device_signed_by_owner: deviceStatus ? deviceStatus.signedByOwner : null,
            sender_device_cross_signing_verified: deviceStatus
                ? deviceStatus.crossSigningVerified
                : null,
            sender_identity_verified: identity.isCrossSigningVerified(),
            sender_identity_needs_approval: identity.needsUserApproval,
        });
    }

    // ---- negative control: a device NOT signed by its owner must not be decrypted --------
    if (controlId) {
        let last = null;
        let settle;
        const control = new Promise((resolve) => {
            settle = resolve;
        });
        const watcher = (ev) => {
            if (ev.getSender() !== controlId || !ev.isEncrypted()) return;
            last = ev;
            // Its room key may arrive after the event: only a final verdict ends the wait.
            if (!ev.isDecryptionFailure()
                || ev.decryptionFailureReason === "UNSIGNED_SENDER_DEVICE") {
                watchers.delete(watcher);
                settle(ev);
            }
        };
        watchers.add(watcher);
        emit({ stage: "control-wanted", sender: controlId });
        let ev;
        try {
            ev = await within(control, "the control message");
        } catch (err) {
            ev = last;
            if (!ev) throw err;
        }
        emit({
            stage: "control",
            sender: controlId,
            event_id: ev.getId(),
            decrypted: !ev.isDecryptionFailure(),
            failure_reason: ev.decryptionFailureReason ?? null,
            body: ev.isDecryptionFailure() ? null : ev.getContent().body ?? null,
        });
    }
}

let status = 0;
try {
    await main();
} catch (err) {
    status = err instanceof Timeout ? 2 : 1;
    emit({
        stage: "error",
        error: String(err?.message ?? err),
        failures: err?.failures ?? {},
        stack: err?.stack ?? null,
    });
} finally {
    try {
        client?.stopClient();
    } catch {
        // shutting down anyway
    }
}
process.exit(status);
