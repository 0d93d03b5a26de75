// The phone's check of a photo's header (pwa/static/js/photo-limits.js) against hand-made headers
// and against the server's own answers for the same files (tests/js_fixtures.py): the phone
// refuses exactly what the server refuses, in the server's words, and decodes the rest.

import assert from "node:assert/strict";
import { test } from "node:test";

import { jpegHeader, photoHeader, photoRefusal } from "../../pwa/static/js/photo-limits.js";
import { bytes, loadFixture } from "./fixture.mjs";

const fixture = loadFixture();

function png(width, height) {
  const header = new Uint8Array(33);
  header.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  new DataView(header.buffer).setUint32(16, width);
  new DataView(header.buffer).setUint32(20, height);
  return header;
}

test("a PNG's size comes from its IHDR, beyond 2^31 too", () => {
  assert.deepEqual(photoHeader(png(8000, 6000)), { format: "PNG", width: 8000, height: 6000 });
  assert.equal(photoHeader(png(0x80000000, 1)).width, 2147483648);
});

test("a JPEG's frame and first scan: progressive from SOF2, scan components from SOS", () => {
  // SOI, SOF2 (height 0x0100, width 0x0200, 3 components), SOS with 1 component.
  const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xc2, 0, 17, 8, 1, 0, 2, 0, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1,
    0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0]);
  assert.deepEqual(jpegHeader(jpeg), { width: 512, height: 256, components: 3, progressive: true, scanComponents: 1 });
  assert.equal(photoHeader(jpeg).separateScans, true);
  assert.equal(jpegHeader(jpeg.subarray(0, 21)).scanComponents, null); // no scan in these bytes
});

test("not an image, or no header to measure: the format decides, then the decoder", () => {
  const limits = { formats: ["JPEG", "PNG", "WEBP"], unsupported: "no", heif: "heic" };
  assert.equal(photoRefusal(photoHeader(new TextEncoder().encode("GIF89a......")), 224, limits), "no");
  assert.equal(photoRefusal(null, 224, limits), "no");
  assert.equal(photoRefusal({ format: "JPEG", width: null, height: null }, 224, limits), null);
});

test("every hostile photo is refused on the phone exactly as the server refuses it", { skip: !fixture }, () => {
  const limits = fixture.photo_limits;
  assert.ok(fixture.photo_refusals.some((c) => c.refusal === null), "ordinary photos are in the fixture too");
  for (const { name, size, header, refusal } of fixture.photo_refusals) {
    assert.equal(photoRefusal(photoHeader(bytes(header)), size, limits), refusal, `${name} at ${size} px`);
  }
});
