// The on-device decisions (pwa/static/js/honesty.js) against values worked out by hand and against
// edge/quality.py and edge/honesty.py themselves (tests/js_fixtures.py).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  decide,
  dequantize,
  energy,
  mahalanobis,
  measureQuality,
  oodScore,
  honestyFor,
  quantizeInput,
  rank,
  toProbabilities,
  unpackHonesty,
} from "../../pwa/static/js/honesty.js";
import { bytes, loadFixture } from "./fixture.mjs";

const fixture = loadFixture();
const needsFixture = { skip: !fixture && "no Python fixture" };
const close = (actual, expected, relative, what) =>
  assert.ok(Math.abs(actual - expected) <= relative * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);

test("dequantize and toProbabilities: (q - zero point) * scale, clipped at 0, renormalized", () => {
  assert.deepEqual(Array.from(dequantize([0, 128, 255], { scale: 0.5, zero_point: 128 })), [-64, 0, 63.5]);
  // 1/256 steps that sum to 250/256 are renormalized to sum 1.
  const probabilities = toProbabilities(Uint8Array.from([200, 50, 0]), { scale: 1 / 256, zero_point: 0 });
  assert.deepEqual(probabilities, [0.8, 0.2, 0]);
  assert.deepEqual(toProbabilities(Float32Array.from([-1, 0]), null), [0.5, 0.5]); // nothing positive: uniform
});

test("quantizeInput: raw uint8 passes through, float32 converts, other quantizations round and clip", () => {
  const pixels = Uint8Array.from([0, 128, 255]);
  assert.equal(quantizeInput(pixels, "uint8", { scale: 1, zero_point: 0 }), pixels);
  assert.deepEqual(Array.from(quantizeInput(pixels, "float32", null)), [0, 128, 255]);
  assert.deepEqual(Array.from(quantizeInput(pixels, "uint8", { scale: 0.9, zero_point: 0 })), [0, 142, 255]);
  assert.throws(() => quantizeInput(pixels, "int8", null), /int8 is not supported/);
});

test("measureQuality by hand: a flat grey image has luma 100, nothing clipped, no sharpness", () => {
  const grey = new Uint8Array(4 * 4 * 3).fill(100);
  const measured = measureQuality(grey, 4);
  close(measured.brightness, 100, 1e-6, "brightness");
  close(measured.highlights, 100, 1e-6, "highlights");
  assert.equal(measured.clipped, 0);
  assert.equal(measured.sharpness, 0);
  const white = new Uint8Array(4 * 4 * 3).fill(255);
  assert.equal(measureQuality(white, 4).clipped, 1);
});

test("OOD scores by hand: msp, energy of equal logits, mahalanobis to the nearest mean", () => {
  const arrays = {
    whitening: { shape: [2, 2], values: Float64Array.from([1, 0, 0, 2]) },
    whitened_means: { shape: [2, 2], values: Float64Array.from([0, 0, 3, 4]) },
    dense_kernel: { shape: [2, 3], values: new Float64Array(6) },
    dense_bias: { shape: [3], values: Float64Array.from([1, 1, 1]) },
  };
  assert.equal(oodScore("msp", [], [0.7, 0.3], arrays), 1 - 0.7);
  close(energy([1, 1], arrays), -(1 + Math.log(3)), 1e-12, "energy");
  // features (3, 2) whiten to (3, 4): distance 0 to the second mean.
  assert.equal(mahalanobis([3, 2], arrays), 0);
  assert.throws(() => oodScore("vibes", [], [], arrays), /not one this page computes/);
});

test("honestyFor: a variant's own fields replace the bundle's, the others stay shared", () => {
  const manifest = { honesty: { file: "honesty.bin", ood: { score: "mahalanobis", threshold: 30 }, quality: { highlights_min: 60 },
    melanoma: { threshold: 0.99 }, low_confidence_below: 0.5 } };
  const own = { file: "honesty-int8.bin", ood: { score: "mahalanobis", threshold: 12 }, melanoma: { threshold: 0.6 } };
  assert.deepEqual(honestyFor(manifest, { honesty: own }), {
    file: "honesty-int8.bin", ood: { score: "mahalanobis", threshold: 12 }, quality: { highlights_min: 60 },
    melanoma: { threshold: 0.6 }, low_confidence_below: 0.5 });
  assert.deepEqual(honestyFor(manifest, {}), manifest.honesty); // float32: the bundle's own
});

test("rank: most probable first, ties in label order", () => {
  const labels = [{ code: "a", name: "A" }, { code: "b", name: "B" }, { code: "c", name: "C" }];
  assert.deepEqual(rank([0.25, 0.5, 0.25], labels).map((p) => p.code), ["b", "a", "c"]);
});

test("quality measures equal edge/quality.py on the same pixels", needsFixture, () => {
  for (const expected of fixture.quality) {
    const measured = measureQuality(bytes(expected.pixels), expected.size);
    close(measured.brightness, expected.brightness, 1e-5, `${expected.name} brightness`);
    close(measured.highlights, expected.highlights, 1e-4, `${expected.name} highlights`);
    assert.equal(measured.clipped, expected.clipped, `${expected.name} clipped`);
    close(measured.sharpness, expected.sharpness, 1e-4, `${expected.name} sharpness`);
  }
});

test("honesty.bin unpacks to the arrays Python wrote, and OOD scores equal edge/honesty.py's", needsFixture, () => {
  const content = bytes(fixture.honesty_bin);
  const arrays = unpackHonesty(content.buffer, fixture.layout);
  for (const [name, values] of Object.entries(fixture.arrays)) assert.deepEqual(Array.from(arrays[name].values), values);
  for (const expected of fixture.ood) {
    close(mahalanobis(expected.features, arrays), expected.mahalanobis, 1e-9, "mahalanobis");
    close(energy(expected.features, arrays), expected.energy, 1e-9, "energy");
  }
  assert.throws(() => unpackHonesty(content.buffer.slice(0, 100), fixture.layout), /honesty.bin: 100 bytes, but array/);
});

test("decide gives edge/honesty.py's status, reasons, messages and JSON keys for every case", needsFixture, () => {
  const arrays = unpackHonesty(bytes(fixture.honesty_bin).buffer, fixture.layout);
  const seen = new Set();
  for (const c of fixture.decisions) {
    const answer = decide({
      pixels: bytes(fixture.images[c.image]), size: 96, probabilities: c.probabilities, featureValues: c.features,
      labels: fixture.labels, honesty: c.honesty, arrays, messages: fixture.messages, malignant: fixture.malignant,
    });
    const what = `${c.score} ${c.image}`;
    assert.equal(answer.status, c.status, what);
    assert.deepEqual(answer.reasons.map((r) => r.code), c.reasons, what);
    assert.deepEqual(answer.reasons.map((r) => r.message), c.reasons.map((code) => fixture.messages[code]), what);
    assert.deepEqual(Object.keys(answer), c.keys, what);
    close(answer.checks.ood_score, c.checks.ood_score, 1e-9, `${what} ood_score`);
    for (const reason of answer.reasons) seen.add(`${answer.status} ${reason.code}`);
  }
  // The cases reach every status, and every reason about the model's output under each of them.
  for (const status of ["ok", "unsure", "retake"]) {
    for (const code of ["malignant_class", "melanoma_risk", "low_confidence"]) assert.ok(seen.has(`${status} ${code}`), `${status} ${code}`);
  }
});

// A photo every check passes (msp threshold 1) or none (threshold 0), with wide quality limits.
const PASSING = { highlights_min: 0, brightness_max: 255, clipped_max: 1, sharpness_min: 0 };
const LABELS = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"].map((code) => ({ code, name: code.toUpperCase() }));
const MESSAGES = Object.fromEntries(
  ["out_of_distribution", "malignant_class", "melanoma_risk", "low_confidence"].map((code) => [code, `says ${code}`]));

function decideFor(top, { p = 0.7, mel = 0.05, oodThreshold = 1 } = {}) {
  const probabilities = LABELS.map((label) => (label.code === top ? p : label.code === "mel" ? mel : 0));
  const rest = (1 - probabilities.reduce((sum, v) => sum + v, 0)) / probabilities.filter((v) => v === 0).length;
  return decide({
    pixels: new Uint8Array(4 * 4 * 3).fill(120), size: 4, probabilities: probabilities.map((v) => v || rest),
    featureValues: [], labels: LABELS, arrays: {}, messages: MESSAGES, malignant: ["akiec", "bcc", "mel"],
    honesty: { ood: { score: "msp", threshold: oodThreshold }, quality: PASSING, melanoma: { threshold: 0.3 },
      low_confidence_below: 0.5 },
  });
}

test("by hand: mel, bcc and akiec at the top carry malignant_class, whatever the status", () => {
  for (const top of ["mel", "bcc", "akiec"]) {
    const ok = decideFor(top);
    assert.equal(ok.status, "ok");
    assert.ok(ok.reasons.some((r) => r.code === "malignant_class" && r.message === "says malignant_class"), top);
    assert.equal(ok.predictions[0].code, top);
    const unsure = decideFor(top, { oodThreshold: 0 }); // msp 0.3 > 0
    assert.equal(unsure.status, "unsure");
    assert.deepEqual(unsure.reasons.map((r) => r.code).slice(0, 2), ["out_of_distribution", "malignant_class"]);
    assert.equal(unsure.predictions, undefined);
    assert.equal(unsure.unassessed_model_output[0].code, top);
  }
  for (const top of ["nv", "bkl", "df", "vasc"]) assert.deepEqual(decideFor(top).reasons, [], top);
});

test("by hand: melanoma_risk on the melanoma probability and low_confidence on the top one, whatever the status", () => {
  // nv 0.45 at the top, mel 0.35 >= 0.3: a referral and low confidence, but no malignant top.
  const codes = (answer) => answer.reasons.map((r) => r.code);
  assert.deepEqual(codes(decideFor("nv", { p: 0.45, mel: 0.35 })), ["melanoma_risk", "low_confidence"]);
  assert.deepEqual(codes(decideFor("nv", { p: 0.45, mel: 0.35, oodThreshold: 0 })),
    ["out_of_distribution", "melanoma_risk", "low_confidence"]);
  assert.deepEqual(codes(decideFor("nv", { p: 0.45, mel: 0.29 })), ["low_confidence"]);
});
