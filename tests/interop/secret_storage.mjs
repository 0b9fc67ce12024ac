// Secret storage as matrix-js-sdk does it (Element Web's code), for tests/test_secret_storage.py.
//
// Reads one JSON array of operations on stdin and writes one JSON array of results on stdout,
// in the same order. Nothing touches the network. Keys travel as standard base64.
//   {"op": "encrypt", "secret", "key", "name"}          -> {"iv", "ciphertext", "mac"}
//   {"op": "decrypt", "item", "key", "name"}            -> {"secret"} or {"error"}
//   {"op": "key_check", "key", "iv"?}                   -> {"iv", "mac"}  (calculateKeyCheck)
//   {"op": "encode_recovery_key", "key"}                -> {"recovery_key"}
//   {"op": "decode_recovery_key", "recovery_key"}       -> {"key"} or {"error"}

// Node 18 has Web Crypto only as node:crypto; js-sdk uses globalThis.crypto.
if (!globalThis.crypto?.subtle) {
    const { webcrypto } = await import("node:crypto");
    Object.defineProperty(globalThis, "crypto", { value: webcrypto, configurable: true });
}

const { default: encryptAESSecretStorageItem } = await import(
    "matrix-js-sdk/lib/utils/encryptAESSecretStorageItem.js"
);
const { default: decryptAESSecretStorageItem } = await import(
    "matrix-js-sdk/lib/utils/decryptAESSecretStorageItem.js"
);
const { calculateKeyCheck } = await import("matrix-js-sdk/lib/secret-storage.js");
const { encodeRecoveryKey, decodeRecoveryKey } = await import(
    "matrix-js-sdk/lib/crypto-api/recovery-key.js"
);

const fromB64 = (text) => new Uint8Array(Buffer.from(text, "base64"));
const toB64 = (bytes) => Buffer.from(bytes).toString("base64");

async function run(op) {
    try {
        switch (op.op) {
            case "encrypt":
                return await encryptAESSecretStorageItem(op.secret, fromB64(op.key), op.name);
            case "decrypt":
                return { secret: await decryptAESSecretStorageItem(op.item, fromB64(op.key), op.name) };
            case "key_check":
                return await calculateKeyCheck(fromB64(op.key), op.iv);
            case "encode_recovery_key":
                return { recovery_key: encodeRecoveryKey(fromB64(op.key)) };
            case "decode_recovery_key":
                return { key: toB64(decodeRecoveryKey(op.recovery_key)) };
            default:
                return { error: `unknown op ${op.op}` };
        }
    } catch (exc) {
        return { error: String(exc?.message ?? exc) };
    }
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const ops = JSON.parse(Buffer.concat(chunks).toString("utf-8"));
const results = [];
for (const op of ops) results.push(await run(op));
process.stdout.write(JSON.stringify(results) + "\n");
