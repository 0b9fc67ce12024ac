// Shared by the interop clients (element_client, reset_identity, restore_client, verify_bot):
// what must exist before matrix-js-sdk's modules are evaluated (each client imports the SDK
// dynamically after importing this), and the stdout protocol of one JSON object per line.

// matrix-js-sdk 43 targets Node 22; Node 20 lacks Promise.withResolvers (ES2024).
if (typeof Promise.withResolvers !== "function") {
    Promise.withResolvers = function withResolvers() {
        let resolve;
        let reject;
        const promise = new this((res, rej) => {
            resolve = res;
            reject = rej;
        });
        return { promise, resolve, reject };
    };
}

// Node 18 (Debian bookworm's nodejs, the CI fallback) has Web Crypto only as node:crypto.
if (!globalThis.crypto?.getRandomValues) {
    const { webcrypto } = await import("node:crypto");
    Object.defineProperty(globalThis, "crypto", { value: webcrypto, configurable: true });
}

// Everything the SDK prints goes to stderr; stdout carries only the protocol lines.
for (const name of ["log", "info", "debug", "trace", "warn"]) {
    console[name] = console.error.bind(console);
}

export const env = process.env;

export function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}

/** A required setting from the environment; a missing one is a protocol error, exit 1. */
export function need(name) {
    const value = env[name];
    if (!value) {
        emit({ stage: "error", error: `${name} is not set` });
        process.exit(1);
    }
    return value;
}
