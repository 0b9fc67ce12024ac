// Interop client: a roster member on Element's crypto stack (matrix-js-sdk + Rust crypto) who
// resets their cryptographic identity, as Element's "Reset cryptographic identity" does
// (CryptoApi.resetEncryption: key backup and secret storage deleted, a NEW cross-signing
// identity published, this device signed by it, a new backup; matrix-js-sdk PR #4614,
// element-web #28977). The bot must then block the member until a chair trusts the new key.
//
// Driven by tests/test_interop_identity_reset.py. Configuration from the environment, as in
// element_client.mjs: INTEROP_HOMESERVER, INTEROP_USER, INTEROP_PASSWORD, INTEROP_ROOM,
// INTEROP_BOT, INTEROP_TIMEOUT_MS, INTEROP_LOG_LEVEL.
//
// Protocol: after {"stage":"ready"} on stdout, the driver writes one JSON operation per line
// on stdin and reads one JSON line per operation back:
//   {"op":"send","body":"!ack"}              -> {"stage":"reply", ...} the bot's reply to it
//   {"op":"send","body":"…","silence_ms":N} -> {"stage":"silence", "replies":[…]} what answered
//                                              it within N ms (nothing, if the bot refuses)
//   {"op":"check","event_id":"$…","wait_ms":N} -> {"stage":"check", "seen", "decrypted", …}
//   {"op":"reset"}                           -> {"stage":"reset", "master_key", …}
//   {"op":"quit"}                            -> exit 0
//   {"stage":"error", ...}                   then exit status 1 (2 on a timeout)

import { createInterface } from "node:readline";

import { emit, env, need } from "./common.mjs";

const sdk = await import("matrix-js-sdk");
const cryptoApi = await import("matrix-js-sdk/lib/crypto-api/index.js");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
const { ClientEvent, MatrixEventEvent, RoomEvent, createClient } = sdk;
const { CrossSigningKey } = cryptoApi;

const homeserver = need("INTEROP_HOMESERVER");
const userId = need("INTEROP_USER");
const password = need("INTEROP_PASSWORD");
const roomId = need("INTEROP_ROOM");
const botId = need("INTEROP_BOT");
const stepTimeout = Number(env.INTEROP_TIMEOUT_MS || 90000);
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

// The password answers the homeserver's user-interactive auth, as Element asks the person.
const auth = async (makeRequest) => {
    await makeRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password,
    });
};

let client;
let crypto;
const events = new Map(); // event id -> latest MatrixEvent of the room (settled ones)
const watchers = new Set();

async function identity() {
    const own = await crypto.getDeviceVerificationStatus(userId, client.getDeviceId());
    return {
        master_key: await crypto.getCrossSigningKeyId(CrossSigningKey.Master),
        cross_signing_ready: await crypto.isCrossSigningReady(),
        own_device_signed_by_owner: Boolean(own?.signedByOwner),
    };
}

function describe(ev) {
    const failed = ev.isDecryptionFailure();
    return {
        event_id: ev.getId(),
        sender: ev.getSender(),
        encrypted: ev.isEncrypted(),
        decrypted: !failed && ev.getType() === "m.room.message",
        failure_reason: failed ? ev.decryptionFailureReason ?? null : null,
        body: failed ? null : ev.getContent()?.body ?? null,
        in_reply_to: failed ? null : ev.getContent()?.["m.relates_to"]?.["m.in_reply_to"]?.event_id ?? null,
    };
}

async function setUp() {
    const bare = createClient({ baseUrl: homeserver });
    const login = await bare.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password,
        initial_device_display_name: "Element interop (identity reset)",
    });
    bare.stopClient();
    client = createClient({
        baseUrl: homeserver,
        userId: login.user_id,
        deviceId: login.device_id,
        accessToken: login.access_token,
    });
    await client.initRustCrypto({ useIndexedDB: false });
    crypto = client.getCrypto();

    const prepared = new Promise((resolve) => {
        const onSync = (state) => {
            if (state === "PREPARED" || state === "SYNCING") {
                client.off(ClientEvent.Sync, onSync);
                resolve();
            }
        };
        client.on(ClientEvent.Sync, onSync);
    });
    const offer = (ev) => {
        if (ev.getRoomId() !== roomId || ev.isBeingDecrypted()) return;
        if (ev.isEncrypted() && !ev.isDecryptionFailure() && ev.getClearContent() === null) return;
        events.set(ev.getId(), ev);
        for (const watcher of watchers) watcher(ev);
    };
    client.on(RoomEvent.Timeline, (ev) => offer(ev));
    client.on(MatrixEventEvent.Decrypted, (ev) => offer(ev));
    await client.startClient({ initialSyncLimit: 0, lazyLoadMembers: false });
    await within(prepared, "first sync");

    // The member's first identity, as Element creates it at first login.
    await within(crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: auth }),
        "bootstrapCrossSigning");
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
    emit({ stage: "ready", user_id: userId, device_id: client.getDeviceId(), ...(await identity()) });
}

// Send ``body``; collect the bot's answers to it (decrypted or not) for ``ms``, or until the
// first decrypted reply when ``untilReply``.
async function send(body, ms, untilReply) {
    let target = null;
    const early = [];
    const answers = new Map();
    let settle;
    const done = new Promise((resolve) => {
        settle = resolve;
    });
    const watcher = (ev) => {
        if (ev.getSender() !== botId) return;
        if (target === null) {
            early.push(ev);
            return;
        }
        const d = describe(ev);
        if (d.in_reply_to === target) {
            answers.set(d.event_id, d);
            if (untilReply && d.decrypted) settle(d);
        }
    };
    watchers.add(watcher);
    try {
        const sent = await client.sendMessage(roomId, { msgtype: "m.text", body });
        target = sent.event_id;
        early.splice(0).forEach(watcher);
        if (untilReply) {
            const reply = await within(done, `the bot's reply to ${body}`);
            return { stage: "reply", command: body, in_reply_to: target, ...reply };
        }
        await sleep(ms);
        return { stage: "silence", command: body, event_id: target, replies: [...answers.values()] };
    } finally {
        watchers.delete(watcher);
    }
}

// Whether the event arrived and decrypted here, waiting up to ``ms`` for a verdict.
async function check(eventId, ms) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        const ev = events.get(eventId);
        if (ev && !ev.isDecryptionFailure()) break;
        await sleep(200);
    }
    const ev = events.get(eventId);
    return ev ? { stage: "check", seen: true, ...describe(ev) } : { stage: "check", seen: false, event_id: eventId };
}

async function main() {
    await setUp();
    const lines = createInterface({ input: process.stdin });
    for await (const line of lines) {
        if (!line.trim()) continue;
        const op = JSON.parse(line);
        if (op.op === "quit") return;
        if (op.op === "send") {
            emit(await send(op.body, op.silence_ms ?? 0, op.silence_ms === undefined));
        } else if (op.op === "check") {
            emit(await check(op.event_id, op.wait_ms ?? 10000));
        } else if (op.op === "reset") {
            const before = await crypto.getCrossSigningKeyId(CrossSigningKey.Master);
            await within(crypto.resetEncryption(auth), "resetEncryption");
            emit({ stage: "reset", previous_master_key: before, ...(await identity()) });
        } else {
            throw new Error(`unknown operation ${op.op}`);
        }
    }
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
