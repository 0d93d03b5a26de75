// The model's integrity check (pwa/static/js/integrity.js): SubtleCrypto where the context has it,
// the bundled pure-JS sha256 (@noble/hashes in pwa/static/vendor/litert.js) where it does not.

import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";

import { IntegrityError, sha256Hex, toHex, verified } from "../../pwa/static/js/integrity.js";
import { loadFixture } from "./fixture.mjs";

const ABC = new TextEncoder().encode("abc");
// FIPS 180-2, appendix B.1: SHA-256("abc").
const ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const VENDOR = new URL("../../pwa/static/vendor/litert.js", import.meta.url);

test("toHex writes two lower-case digits per byte", () => {
  assert.equal(toHex(Uint8Array.from([0, 15, 255]).buffer), "000fff");
});

test("SubtleCrypto gives the standard's digest", async () => {
  assert.equal(await sha256Hex(ABC), ABC_SHA256);
});

test("without SubtleCrypto the fallback is used, and without either the check refuses", async () => {
  const calls = [];
  const fallback = (bytes) => {
    calls.push(bytes.length);
    return new Uint8Array(32);
  };
  assert.equal(await sha256Hex(ABC, { subtle: null, fallback }), "0".repeat(64));
  assert.deepEqual(calls, [3]);
  await assert.rejects(sha256Hex(ABC, { subtle: null }), /no SHA-256 available/);
});

test("verified returns the bytes when the hash matches and names both hashes when not", async () => {
  assert.equal(await verified(ABC, ABC_SHA256, "int8.tflite"), ABC);
  await assert.rejects(verified(ABC, "f".repeat(64), "int8.tflite"),
    (err) => err instanceof IntegrityError && err.message === "int8.tflite: sha256 ba7816bf8f01..., the manifest says ffffffffffff...");
});

// The vendor bundle exists after `make web`; under pytest (which passes the fixture) it must.
test("the bundled pure-JS sha256 equals SubtleCrypto on the model-sized input", { skip: !loadFixture() && !fs.existsSync(VENDOR) && "make web not run" }, async () => {
  const { sha256 } = await import(VENDOR.href);
  const model = Uint8Array.from({ length: 300_001 }, (_, i) => (i * 7919) % 251);
  assert.equal(await sha256Hex(model, { subtle: null, fallback: sha256 }), await sha256Hex(model));
  assert.equal(await sha256Hex(ABC, { subtle: null, fallback: sha256 }), ABC_SHA256);
});
