// The sha256 of a downloaded bundle file, checked against the manifest before the file is used.
// SubtleCrypto exists only in secure contexts (HTTPS, localhost); a phone on plain
// http://PI-ADDRESS:8000 has none, so the same digest comes from the pure-JS sha256 bundled in
// the vendor module (@noble/hashes). Over plain HTTP this catches a corrupted or stale download,
// not an attacker who could rewrite the manifest too (docs/on-device.md, "What works where").

export function toHex(digest) {
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// `fallback` is a function bytes -> Uint8Array digest, used when SubtleCrypto is missing.
export async function sha256Hex(bytes, { subtle = globalThis.crypto?.subtle, fallback } = {}) {
  if (subtle) return toHex(await subtle.digest("SHA-256", bytes));
  if (!fallback) throw new Error("no SHA-256 available to check the model");
  return toHex(fallback(bytes));
}

export class IntegrityError extends Error {}

export async function verified(bytes, expected, name, options) {
  const actual = await sha256Hex(bytes, options);
  if (actual !== expected) {
    throw new IntegrityError(`${name}: sha256 ${actual.slice(0, 12)}..., the manifest says ${expected.slice(0, 12)}...`);
  }
  return bytes;
}
