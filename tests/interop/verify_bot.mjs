// Interop client: a member verifies the bot with emoji (SAS) the way Element does, with
// Element's crypto stack (matrix-js-sdk 43 + Rust crypto), then talks to the bot with
// "Never send encrypted messages to unverified sessions" on (globalBlacklistUnverifiedDevices).
//
// Driven by tests/test_interop_verification.py. Configuration from the environment:
//   INTEROP_HOMESERVER, INTEROP_USER, INTEROP_PASSWORD, INTEROP_ROOM (the table room),
//   INTEROP_BOT, INTEROP_TIMEOUT_MS (per step, 90000), INTEROP_LOG_LEVEL (info)
//   INTEROP_VERIFY   "dm"        "Verify user": a direct room with the bot (created and the bot
//                                invited), then requestVerificationDM
//                    "to-device" "Verify session": requestDeviceVerification(bot, its device)
//                    "none"      no verification (the negative control)
//   INTEROP_CROSS_SIGN "0" to leave this device without cross-signing (an untrusted device)
//   INTEROP_BLACKLIST  "1" to turn globalBlacklistUnverifiedDevices on before the commands
//   INTEROP_REPLY_WAIT_MS how long to wait for each reply (default: the step timeout)
// Arguments: the commands to send in the table room after the verification.
//
// Protocol: one JSON object per line on stdout, each with a "stage":
//   ready, dm (the direct room is joined by the bot), sas (the emoji js-sdk shows),
//   verification (how the request ended), reply / no-reply (one per command), error.

import { emit, env, need } from "./common.mjs";

const sdk = await import("matrix-js-sdk");
const cryptoApi = await import("matrix-js-sdk/lib/crypto-api/index.js");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
const { ClientEvent, MatrixEventEvent, RoomEvent, createClient } = sdk;
const { VerificationPhase, VerificationRequestEvent, VerifierEvent } = cryptoApi;

const homeserver = need("INTEROP_HOMESERVER");
const userId = need("INTEROP_USER");
const password = need("INTEROP_PASSWORD");
const roomId = need("INTEROP_ROOM");
const botId = need("INTEROP_BOT");
const mode = env.INTEROP_VERIFY || "dm";
const crossSign = env.INTEROP_CROSS_SIGN !== "0";
const blacklist = env.INTEROP_BLACKLIST === "1";
const stepTimeout = Number(env.INTEROP_TIMEOUT_MS || 90000);
const replyWait = Number(env.INTEROP_REPLY_WAIT_MS || stepTimeout);
const commands = process.argv.slice(2);
logger.setLevel(env.INTEROP_LOG_LEVEL || "info");

class Timeout extends Error {}
function within(promise, what, ms = stepTimeout) {
    let timer;
    const expired = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Timeout(`timed out: ${what}`)), ms);
    });
    return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let client;

async function main() {
    const bare = createClient({ baseUrl: homeserver });
    const login = await bare.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: userId },
        password,
        initial_device_display_name: "Element interop (verification)",
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

    const watchers = new Set();
    const offer = (ev) => {
        if (ev.isBeingDecrypted()) return;
        if (ev.isEncrypted() && !ev.isDecryptionFailure() && ev.getClearContent() === null) return;
        for (const watcher of watchers) watcher(ev);
    };
    client.on(RoomEvent.Timeline, (ev) => offer(ev));
    client.on(MatrixEventEvent.Decrypted, (ev) => offer(ev));

    const prepared = new Promise((resolve) => {
        const onSync = (state) => {
            if (state === "PREPARED" || state === "SYNCING") {
                client.off(ClientEvent.Sync, onSync);
                resolve();
            }
        };
        client.on(ClientEvent.Sync, onSync);
    });
    await client.startClient({ initialSyncLimit: 0, lazyLoadMembers: false });
    await within(prepared, "first sync");

    if (crossSign) {
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
    }
    const joinRoom = async (id) => {
        for (;;) {
            const room = client.getRoom(id);
            if (room?.getMyMembership() === "join" && (await crypto.isEncryptionEnabledInRoom(id))) {
                return room;
            }
            if (!room || room.getMyMembership() === "invite") {
                try {
                    await client.joinRoom(id);
                } catch (err) {
                    console.error("join failed, retrying", err?.message);
                }
            }
            await sleep(300);
        }
    };
    await within(joinRoom(roomId), "joining the table room");
    const before = await crypto.getUserVerificationStatus(botId);
    emit({
        stage: "ready",
        device_id: client.getDeviceId(),
        cross_signing_ready: await crypto.isCrossSigningReady(),
        bot_verified_before: before.isVerified(),
    });

    // ---- the verification -------------------------------------------------------------
    let dmRoom = null;
    if (mode !== "none") {
        let request;
        if (mode === "dm") {
            // As Element's "Verify user" does when it has no direct room with the bot.
            const created = await client.createRoom({
                is_direct: true,
                invite: [botId],
                preset: "trusted_private_chat",
                initial_state: [{
                    type: "m.room.encryption",
                    state_key: "",
                    content: { algorithm: "m.megolm.v1.aes-sha2" },
                }],
            });
            dmRoom = created.room_id;
            await within((async () => {
                for (;;) {
                    const member = client.getRoom(dmRoom)?.getMember(botId);
                    if (member?.membership === "join") return;
                    await sleep(300);
                }
            })(), "the bot joining the direct room");
            emit({ stage: "dm", room_id: dmRoom });
            request = await crypto.requestVerificationDM(botId, dmRoom);
        } else {
            const devices = await crypto.getUserDeviceInfo([botId], true);
            const ids = [...(devices.get(botId)?.keys() ?? [])];
            if (ids.length !== 1) throw new Error(`the bot has ${ids.length} devices`);
            request = await crypto.requestDeviceVerification(botId, ids[0]);
        }
        const notices = [];
        if (dmRoom) {
            watchers.add((ev) => {
                if (ev.getRoomId() === dmRoom && ev.getSender() === botId
                    && ev.getType() === "m.room.message" && !ev.isDecryptionFailure()
                    && ev.getContent()?.msgtype === "m.notice") {
                    notices.push(ev.getContent().body);
                }
            });
        }
        const phase = (wanted) => new Promise((resolve) => {
            const check = () => {
                if (wanted.includes(request.phase)) {
                    request.off(VerificationRequestEvent.Change, check);
                    resolve(request.phase);
                }
            };
            request.on(VerificationRequestEvent.Change, check);
            check();
        });
        const reached = await within(phase([VerificationPhase.Ready, VerificationPhase.Cancelled]),
            "the bot answering the request");
        let shown = null;
        if (reached === VerificationPhase.Ready) {
            const verifier = await request.startVerification("m.sas.v1");
            verifier.on(VerifierEvent.ShowSas, (sas) => {
                shown = sas.sas;
                emit({ stage: "sas", emoji: sas.sas.emoji ?? null, decimal: sas.sas.decimal ?? null });
                // The person compared them with the ones the bot posted: "They match".
                sas.confirm().catch((err) => console.error("confirm failed", err?.message));
            });
            try {
                await within(verifier.verify(), "the SAS verification");
            } catch (err) {
                if (err instanceof Timeout) throw err;
                console.error("verify() ended with", err?.message);
            }
            await within(phase([VerificationPhase.Done, VerificationPhase.Cancelled]),
                "the end of the verification");
        }
        if (dmRoom && shown && request.phase === VerificationPhase.Done) {
            // The bot's emoji notice, to compare with what js-sdk shows.
            await within((async () => {
                while (!notices.some((body) => body.includes(shown.emoji?.[0]?.[0] ?? "\u0000"))) {
                    await sleep(300);
                }
            })(), "the bot's emoji notice");
        }
        // After "done" js-sdk signs the bot's master key with this user's user-signing key
        // and learns it is signed at its next key query: wait for that (bounded).
        let status = await crypto.getUserVerificationStatus(botId);
        if (request.phase === VerificationPhase.Done) {
            try {
                await within((async () => {
                    while (!status.isVerified()) {
                        await sleep(500);
                        status = await crypto.getUserVerificationStatus(botId);
                    }
                })(), "js-sdk trusting the bot's identity");
            } catch (err) {
                if (!(err instanceof Timeout)) throw err;
            }
        }
        emit({
            stage: "verification",
            phase: VerificationPhase[request.phase],
            cancellation_code: request.cancellationCode,
            cancelling_user: request.cancellingUserId ?? null,
            bot_verified: status.isVerified(),
            bot_cross_signing_verified: status.isCrossSigningVerified(),
            notices,
        });
    }

    // ---- commands, keys only for verified sessions if asked ------------------------------
    if (blacklist) crypto.globalBlacklistUnverifiedDevices = true;
    for (const command of commands) {
        let target = null;
        const early = [];
        let settle;
        const reply = new Promise((resolve) => {
            settle = resolve;
        });
        const watcher = (ev) => {
            if (ev.getRoomId() !== roomId || ev.getSender() !== botId) return;
            if (target === null) {
                early.push(ev);
            } else if (!ev.isDecryptionFailure()
                && ev.getContent()?.["m.relates_to"]?.["m.in_reply_to"]?.event_id === target) {
                watchers.delete(watcher);
                settle(ev);
            }
        };
        watchers.add(watcher);
        const sent = await client.sendMessage(roomId, { msgtype: "m.text", body: command });
        target = sent.event_id;
        emit({ stage: "sent", command, event_id: target });
        early.splice(0).forEach(watcher);
        try {
            const ev = await within(reply, `the bot's reply to ${command}`, replyWait);
            emit({ stage: "reply", command, body: ev.getContent().body ?? null });
        } catch (err) {
            if (!(err instanceof Timeout)) throw err;
            watchers.delete(watcher);
            emit({ stage: "no-reply", command });
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
