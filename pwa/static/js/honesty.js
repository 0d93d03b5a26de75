// The model's raw outputs to an honest answer, as edge/classifier.py and edge/honesty.py decide
// it on the server: dequantize, renormalize, measure the photo's quality, score how unlike the
// training lesions it is, then ok / unsure / retake with the reasons. Every threshold comes
// from the bundle (manifest "honesty" + honesty.bin); every message text and the malignant
// classes from the server (edge/answer.py MESSAGES, edge/labels.py MALIGNANT, passed in).
// Pure: node --test runs it (tests/js/honesty.test.mjs).

import { outputKey } from "./answer.js";

export const MELANOMA = "mel";
// edge/quality.py: ITU-R BT.601 luma weights, the clipped-highlight level, the contrast floor.
const LUMA = [0.299, 0.587, 0.114].map(Math.fround);
const CLIPPED_LUMA = 250;
const CONTRAST_FLOOR = 1;
const HIGHLIGHTS_PERCENTILE = 99;

// (q - zero_point) * scale in float32, as numpy computes it (edge/classifier.py dequantize).
export function dequantize(values, quantization) {
  const scale = Math.fround(quantization.scale);
  return Float32Array.from(values, (q) => Math.fround((q - quantization.zero_point) * scale));
}

// Raw output to probabilities that sum to 1 (quantized softmax outputs drift off 1).
export function toProbabilities(raw, quantization) {
  const values = Array.from(quantization ? dequantize(raw, quantization) : raw, (v) => Math.max(v, 0));
  const total = values.reduce((sum, v) => sum + v, 0);
  return total > 0 ? values.map((v) => v / total) : values.map(() => 1 / values.length);
}

export function features(raw, quantization) {
  return quantization ? dequantize(raw, quantization) : Float32Array.from(raw);
}

// Raw pixels in the input tensor's dtype (edge/classifier.py quantize_input). LiteRT.js has
// float32 and uint8 tensors only; an int8-input model is refused before it gets here.
export function quantizeInput(pixels, dtype, quantization) {
  if (dtype === "float32") return Float32Array.from(pixels);
  if (dtype !== "uint8") throw new Error(`input dtype ${dtype} is not supported on this phone`);
  const { scale = 0, zero_point: zeroPoint = 0 } = quantization ?? {};
  if (scale === 0 || (scale === 1 && zeroPoint === 0)) return pixels;
  return Uint8Array.from(pixels, (p) => Math.min(Math.max(Math.round(p / scale + zeroPoint), 0), 255));
}

// Luma in float32 as numpy's float32 product does it, so a pixel on the clipped level is
// counted the same here and on the server.
function lumaOf(pixels, i) {
  const r = Math.fround(pixels[i] * LUMA[0]);
  const g = Math.fround(pixels[i + 1] * LUMA[1]);
  const b = Math.fround(pixels[i + 2] * LUMA[2]);
  return Math.fround(Math.fround(r + g) + b);
}

function variance(values) {
  const mean = values.reduce((sum, v) => sum + v, 0) / values.length;
  return values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / values.length;
}

// numpy.percentile's default ("linear"): q percent of the way through the sorted values.
function percentile(values, q) {
  const sorted = Float64Array.from(values).sort();
  const at = ((sorted.length - 1) * q) / 100;
  const below = Math.floor(at);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (at - below);
}

// edge/quality.py measure(): brightness, highlights (99th percentile of luma), clipped share and
// sharpness of one size x size image.
export function measureQuality(pixels, size) {
  const luma = new Float64Array(size * size);
  for (let p = 0; p < luma.length; p++) luma[p] = lumaOf(pixels, p * 3);
  const laplacian = [];
  for (let y = 1; y < size - 1; y++) {
    for (let x = 1; x < size - 1; x++) {
      const at = y * size + x;
      laplacian.push(luma[at - size] + luma[at + size] + luma[at - 1] + luma[at + 1] - 4 * luma[at]);
    }
  }
  const all = Array.from(luma);
  return {
    brightness: all.reduce((sum, v) => sum + v, 0) / all.length,
    highlights: percentile(luma, HIGHLIGHTS_PERCENTILE),
    clipped: all.filter((v) => v >= CLIPPED_LUMA).length / all.length,
    sharpness: variance(laplacian) / (variance(all) + CONTRAST_FLOOR),
  };
}

// A variant's honest-answer settings: the bundle's "honesty" section with the variant's own
// override (fitted on its own outputs, manifest schema 4) in place of the fields it names, as
// edge/manifest.py honesty_for() applies it.
export function honestyFor(manifest, variant) {
  return { ...manifest.honesty, ...(variant.honesty ?? {}) };
}

// honesty.bin's little-endian float32 arrays, as {name: {shape, values: Float64Array}}.
export function unpackHonesty(buffer, layout) {
  const view = new DataView(buffer);
  const arrays = {};
  for (const [name, { offset, shape }] of Object.entries(layout)) {
    const count = shape.reduce((n, d) => n * d, 1);
    if (offset + 4 * count > buffer.byteLength) {
      throw new Error(`honesty.bin: ${buffer.byteLength} bytes, but array ${name} ends at byte ${offset + 4 * count}`);
    }
    const values = new Float64Array(count);
    for (let i = 0; i < count; i++) values[i] = view.getFloat32(offset + 4 * i, true);
    arrays[name] = { shape, values };
  }
  return arrays;
}

// vector (n) times matrix (n x m), row-major, in float64.
function times(vector, { shape: [n, m], values }) {
  const out = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    const v = vector[i];
    if (v === 0) continue;
    for (let j = 0; j < m; j++) out[j] += v * values[i * m + j];
  }
  return out;
}

export function mahalanobis(featureValues, arrays) {
  const whitened = times(featureValues, arrays.whitening);
  const [classes, width] = arrays.whitened_means.shape;
  let best = Infinity;
  for (let c = 0; c < classes; c++) {
    let distance = 0;
    for (let j = 0; j < width; j++) distance += (whitened[j] - arrays.whitened_means.values[c * width + j]) ** 2;
    best = Math.min(best, distance);
  }
  return best;
}

export function energy(featureValues, arrays) {
  const logits = times(featureValues, arrays.dense_kernel).map((v, j) => v + arrays.dense_bias.values[j]);
  const top = Math.max(...logits);
  return -(top + Math.log(logits.reduce((sum, v) => sum + Math.exp(v - top), 0)));
}

// The score the bundle chose (manifest honesty.ood.score); higher means less like the training lesions.
export function oodScore(name, featureValues, probabilities, arrays) {
  if (name === "mahalanobis") return mahalanobis(featureValues, arrays);
  if (name === "msp") return 1 - Math.max(...probabilities);
  if (name === "energy") return energy(featureValues, arrays);
  throw new Error(`OOD score ${name} is not one this page computes (mahalanobis, msp, energy)`);
}

// Every class, most probable first; ties keep label order (edge/classifier.py top_k).
export function rank(probabilities, labels) {
  return labels
    .map((label, i) => ({ code: label.code, name: label.name, probability: probabilities[i], i }))
    .sort((a, b) => b.probability - a.probability || a.i - b.i)
    .map(({ code, name, probability }) => ({ code, name, probability }));
}

function qualityReasons(measured, limits) {
  const codes = [];
  if (measured.highlights < limits.highlights_min) codes.push("too_dark");
  if (measured.brightness > limits.brightness_max || measured.clipped > limits.clipped_max) codes.push("too_bright");
  if (measured.sharpness < limits.sharpness_min) codes.push("blurry");
  return codes;
}

// edge/honesty.py output_reasons(): what the model's output obliges a person to be told, whatever
// the status. The top is the first of equal maxima, as rank() and numpy's argmax take it.
function outputReasons(probabilities, labels, honesty, malignant) {
  const codes = [];
  const top = Math.max(...probabilities);
  if (malignant.includes(labels[probabilities.indexOf(top)].code)) codes.push("malignant_class");
  const melanoma = labels.findIndex((label) => label.code === MELANOMA);
  if (probabilities[melanoma] >= honesty.melanoma.threshold) codes.push("melanoma_risk");
  if (top < honesty.low_confidence_below) codes.push("low_confidence");
  return codes;
}

// edge/honesty.py Honesty.decide(), in edge/answer.py's shape: {status, reasons, predictions (ok)
// or unassessed_model_output (unsure, retake), checks}. `honesty` is the manifest's honesty
// section, `messages` the server's texts by reason code, `malignant` its malignant class codes.
export function decide({ pixels, size, probabilities, featureValues, labels, honesty, arrays, messages, malignant }) {
  const measured = measureQuality(pixels, size);
  const score = oodScore(honesty.ood.score, featureValues, probabilities, arrays);
  const checks = { ...measured, ood_score: score, ood_threshold: honesty.ood.threshold };
  let status = "ok";
  let photo = qualityReasons(measured, honesty.quality);
  if (photo.length) status = "retake";
  else if (score > honesty.ood.threshold) [status, photo] = ["unsure", ["out_of_distribution"]];
  const codes = [...photo, ...outputReasons(probabilities, labels, honesty, malignant)];
  return {
    status,
    reasons: codes.map((code) => ({ code, message: messages[code] })),
    [outputKey(status)]: rank(probabilities, labels),
    checks,
  };
}
