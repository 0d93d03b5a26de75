// The browser's preprocessing arithmetic (pwa/static/js/preprocess.js) against values worked out
// by hand and against Pillow itself (tests/js_fixtures.py).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  bilinearCoefficients,
  boxReduce,
  centreSquare,
  crop,
  draftScale,
  isJpeg,
  jpegSize,
  resizeBilinear,
  rgbaToRgb,
  toModelInput,
} from "../../pwa/static/js/preprocess.js";
import { bytes, loadFixture } from "./fixture.mjs";

const fixture = loadFixture();

test("draftScale picks Pillow's draft reduction: the largest of 1/8, 1/4, 1/2 keeping twice the input size", () => {
  assert.equal(draftScale(600, 450, 96), 2); // 450 / 192 = 2.3: half size, 300 x 225
  assert.equal(draftScale(4000, 3000, 96), 8); // 3000 / 192 = 15.6: an eighth
  assert.equal(draftScale(800, 780, 96), 4); // 780 / 192 = 4.06
  assert.equal(draftScale(383, 500, 96), 1); // 383 / 192 < 2: full size
  assert.equal(draftScale(512, 512, 224), 1);
});

test("centreSquare floors the offsets as Python's // does", () => {
  assert.deepEqual(centreSquare(601, 450), { left: 75, top: 0, side: 450 });
  assert.deepEqual(centreSquare(300, 225), { left: 37, top: 0, side: 225 });
  assert.deepEqual(centreSquare(5, 8), { left: 0, top: 1, side: 5 });
});

test("boxReduce averages blocks, rounds, and repeats the edge of a partial block", () => {
  // 3 x 1 RGB image, scale 2: [(10, 20), (30 repeated)] -> 15, 30 per channel.
  const rgb = Uint8Array.from([10, 0, 255, 20, 1, 255, 30, 2, 0]);
  const { data, width, height } = boxReduce(rgb, 3, 1, 2);
  assert.equal(width, 2);
  assert.equal(height, 1);
  assert.deepEqual(Array.from(data), [15, 1, 255, 30, 2, 0]); // (0 + 1) / 2 = 0.5 rounds up to 1
});

test("crop and rgbaToRgb move the right bytes", () => {
  const rgba = Uint8Array.from([1, 2, 3, 255, 4, 5, 6, 0]);
  assert.deepEqual(Array.from(rgbaToRgb(rgba)), [1, 2, 3, 4, 5, 6]);
  const rgb = Uint8Array.from({ length: 3 * 3 * 3 }, (_, i) => i); // 3 x 3
  assert.deepEqual(Array.from(crop(rgb, 3, { left: 1, top: 1, side: 2 })), [12, 13, 14, 15, 16, 17, 21, 22, 23, 24, 25, 26]);
});

test("bilinearCoefficients: halving widens the triangle to support 2; the first output weighs taps 0..2 as 3:3:1", () => {
  const { bounds, weights } = bilinearCoefficients(4, 2);
  assert.deepEqual(bounds, [[0, 3], [1, 3]]); // centre 1.0: taps 0..2; centre 3.0: taps 1..3
  // centre 1, support 2: distances 0.5, 0.5, 1.5 -> 0.75, 0.75, 0.25 of 1.75
  const one = 2 ** 22;
  assert.deepEqual(weights[0], [0.75 / 1.75, 0.75 / 1.75, 0.25 / 1.75].map((w) => Math.trunc(0.5 + w * one)));
});

test("resizeBilinear keeps a flat image flat and returns a copy at the same size", () => {
  const flat = new Uint8Array(10 * 10 * 3).fill(77);
  assert.ok(resizeBilinear(flat, 10, 4).every((v) => v === 77));
  const same = resizeBilinear(flat, 10, 10);
  assert.notEqual(same, flat);
  assert.deepEqual(same, flat);
});

test("toModelInput: a 600 x 450 JPEG is halved, centre-cropped and resized to 96 x 96 x 3", () => {
  const rgb = new Uint8Array(600 * 450 * 3).fill(200);
  assert.equal(toModelInput(rgb, 600, 450, 96, true).length, 96 * 96 * 3);
  assert.ok(toModelInput(rgb, 600, 450, 96, false).every((v) => v === 200));
  assert.equal(isJpeg(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0])), true);
  assert.equal(isJpeg(Uint8Array.from([0x89, 0x50, 0x4e, 0x47])), false);
});

test("jpegSize reads the frame header past other segments and fill bytes", () => {
  // SOI, an APP0 segment of length 4, a fill byte, then SOF2 (progressive) for 601 x 451.
  const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x4a, 0x46, 0xff, 0xff, 0xc2, 0x00, 0x11, 0x08,
    0x01, 0xc3, 0x02, 0x59, 0x03, 0x00, 0x00]);
  assert.deepEqual(jpegSize(jpeg), { width: 601, height: 451 });
  assert.equal(jpegSize(Uint8Array.from([0xff, 0xd8, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0])), null); // not a marker
  // A DHT segment (0xC4) is not a frame header.
  const dht = Uint8Array.from([0xff, 0xd8, 0xff, 0xc4, 0x00, 0x02, 0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0x10, 0x00, 0x20, 0x03]);
  assert.deepEqual(jpegSize(dht), { width: 32, height: 16 });
});

test("resizeBilinear equals Pillow's Image.resize(BILINEAR) byte for byte", { skip: !fixture && "no Python fixture" }, () => {
  for (const { side, size, input, output } of fixture.resize) {
    const ours = resizeBilinear(bytes(input), side, size);
    const pillow = bytes(output);
    const differing = ours.reduce((n, v, i) => n + (v !== pillow[i]), 0);
    assert.equal(differing, 0, `${side} -> ${size}: ${differing} bytes differ`);
  }
});
