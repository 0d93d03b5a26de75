// The Python implementation's expected values (tests/js_fixtures.py), when tests/test_pwa_js.py
// runs these tests: LESIONLITE_JS_FIXTURE names the JSON file. Run by hand without it, the
// tests that need it skip, and the hand-computed ones still run.

import fs from "node:fs";

export function loadFixture() {
  const path = process.env.LESIONLITE_JS_FIXTURE;
  return path ? JSON.parse(fs.readFileSync(path, "utf8")) : null;
}

export function bytes(b64) {
  return new Uint8Array(Buffer.from(b64, "base64"));
}
