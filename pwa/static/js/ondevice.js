// Classification on the phone itself: the bundle's own .tflite run by LiteRT.js (WebAssembly),
// the preprocessing of preprocess.js and the decisions of honesty.js. The photo never leaves
// the page: nothing here sends it anywhere.
//
// startEngine(config) loads the self-hosted runtime, downloads the manifest, the model and
// honesty.bin (from the service worker's cache after the first visit), checks both files'
// sha256 against the manifest, and compiles the model for the "wasm" accelerator. Any failure
// rejects with a message, and the page falls back to the server.

import { decide, features, honestyFor, quantizeInput, toProbabilities, unpackHonesty } from "./honesty.js";
import { verified } from "./integrity.js";
import { pixelsFromBlob } from "./decode.js";

const ACCELERATOR = "wasm"; // the CPU path; the only one whose output equals ai-edge-litert's
let runtime = null; // one LiteRT.js per page: loadLiteRt() refuses a second load

function loadRuntime(config) {
  runtime ??= (async () => {
    if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
    const lib = await import(config.runtime.module);
    await lib.loadLiteRt(config.runtime.wasm);
    return lib;
  })();
  runtime.catch(() => (runtime = null));
  return runtime;
}

async function download(url, as) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: the server answered ${response.status}`);
  return as === "json" ? response.json() : new Uint8Array(await response.arrayBuffer());
}

function widthOf(details) {
  return details.shape[details.shape.length - 1];
}

// The compiled model's tensors against the manifest, as edge/classifier.py checks them.
function checkTensors(model, manifest, variant) {
  const size = manifest.input.size;
  const [input] = model.getInputDetails();
  const shape = Array.from(input.shape);
  if (shape.join() !== [1, size, size, 3].join()) {
    throw new Error(`${variant.file}: input shape [${shape}], the manifest says [1,${size},${size},3]`);
  }
  const widths = model.getOutputDetails().map(widthOf);
  const expected = [manifest.labels.length, manifest.outputs.features];
  if (widths.length !== 2 || !expected.every((w) => widths.includes(w))) {
    throw new Error(`${variant.file}: output widths [${widths}], expected [${expected}]`);
  }
  return input.dtype;
}

function check(manifest, config) {
  const variant = manifest.variants[config.variant];
  if (!variant) throw new Error(`the bundle has no variant ${config.variant}`);
  // A cached manifest from before the server's bundle changed: the next visit refreshes it.
  if (variant.sha256 !== config.sha256) throw new Error("the cached model is not the one the server runs");
  if ((manifest.input.batch ?? 1) !== 1) throw new Error(`input batch ${manifest.input.batch}: only batch 1 runs here`);
  return variant;
}

export async function startEngine(config) {
  const started = performance.now();
  const [lib, manifest] = await Promise.all([loadRuntime(config), download(config.manifest, "json")]);
  const variant = check(manifest, config);
  const honesty = honestyFor(manifest, variant); // this variant's thresholds and statistics file
  const base = config.manifest.slice(0, config.manifest.lastIndexOf("/") + 1);
  const hashing = { fallback: lib.sha256 };
  const [model, honestyBin] = await Promise.all([
    download(base + variant.file).then((b) => verified(b, variant.sha256, variant.file, hashing)),
    download(base + honesty.file).then((b) => verified(b, honesty.sha256, honesty.file, hashing)),
  ]);
  const compiled = await lib.loadAndCompile(model, { accelerator: ACCELERATOR });
  const dtype = checkTensors(compiled, manifest, variant);
  const arrays = unpackHonesty(honestyBin.buffer.slice(honestyBin.byteOffset, honestyBin.byteOffset + honestyBin.byteLength),
    honesty.arrays);
  return new Engine({ lib, compiled, manifest, variant, honesty, name: config.variant, dtype, arrays, messages: config.messages,
    malignant: config.malignant, photoLimits: config.photoLimits, disclaimer: config.disclaimer, readyMs: performance.now() - started,
    readyAt: performance.now() });
}

class Engine {
  constructor(parts) {
    Object.assign(this, parts);
    this.size = parts.manifest.input.size;
  }

  // The raw output tensors' values, by role: {probabilities, features} (typed arrays).
  async run(pixels) {
    const data = quantizeInput(pixels, this.dtype, this.variant.input_quantization);
    const input = new this.lib.Tensor(data, [1, this.size, this.size, 3]);
    let outputs;
    try {
      outputs = await this.compiled.run(input);
    } finally {
      input.delete();
    }
    try {
      const byWidth = new Map(outputs.map((t) => [t.type.layout.dimensions.at(-1), t.toTypedArray().slice()]));
      return { probabilities: byWidth.get(this.manifest.labels.length), features: byWidth.get(this.manifest.outputs.features) };
    } finally {
      for (const tensor of outputs) tensor.delete();
    }
  }

  // The answer for a preprocessed uint8 size x size x 3 array, in /api/predict's shape (the
  // OpenAPI schema's PredictResult, generated from edge/answer.py: the browser tests check it).
  async classifyPixels(pixels, decodeMs = 0) {
    const started = performance.now();
    const raw = await this.run(pixels);
    const probabilities = toProbabilities(raw.probabilities, this.variant.output_quantization);
    const answer = decide({
      pixels, size: this.size, probabilities, featureValues: features(raw.features, this.variant.features_quantization),
      labels: this.manifest.labels, honesty: this.honesty, arrays: this.arrays, messages: this.messages,
      malignant: this.malignant,
    });
    const inference = performance.now() - started;
    const round = (ms) => Math.round(ms * 100) / 100;
    return {
      ...answer,
      model: { variant: this.name, sha256: this.variant.sha256 },
      timing_ms: { decode: round(decodeMs), inference: round(inference), total: round(decodeMs + inference) },
      disclaimer: this.disclaimer,
    };
  }

  async classify(blob) {
    const started = performance.now();
    const pixels = await pixelsFromBlob(blob, this.size, this.photoLimits);
    return this.classifyPixels(pixels, performance.now() - started);
  }

  // Bytes of WebAssembly memory LiteRT.js holds now (it only grows).
  heapBytes() {
    return this.lib.getGlobalLiteRt().liteRtWasm.HEAPU8.buffer.byteLength;
  }
}
