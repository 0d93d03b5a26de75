// The page's side of on-device classification: start the engine (ondevice.js) once the service
// worker controls the page, so that the runtime and the model it downloads land in the
// worker's cache and the next visit works offline; then analyse photos with it. app.js calls
// bootOnPhone() at start and analyseOnPhone() for each photo when the phone is chosen.

import { PhotoRefusedError } from "./decode.js";
import { startEngine } from "./ondevice.js";

// Long enough for the worker to precache the small app shell on a slow phone; without it the
// engine still starts, only its files are not kept for offline use this time.
const CONTROL_TIMEOUT_MS = 10_000;

let engine = null;

export function readConfig(doc = document) {
  return JSON.parse(doc.getElementById("lesionlite-config").textContent);
}

async function whenControlled(registration, timeoutMs) {
  const container = navigator.serviceWorker;
  if (!(await registration) || container.controller) return;
  await new Promise((resolve) => {
    container.addEventListener("controllerchange", resolve, { once: true });
    setTimeout(resolve, timeoutMs);
  });
}

// Resolves to the variant once the model is ready; rejects with a short reason. `registration`:
// the service worker's registration promise (null where there is none).
export async function bootOnPhone(config, registration) {
  if (!config.runtime.available) throw new Error("the server has no on-device runtime: make web");
  if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
  engine = whenControlled(registration, CONTROL_TIMEOUT_MS).then(() => startEngine(config));
  const ready = await engine;
  return ready.name;
}

// The same outcome shapes as the server request: {ok: true, body} or a failure for failureFor().
export async function analyseOnPhone(blob, config) {
  let ready;
  try {
    ready = await engine;
  } catch (err) {
    return { ok: false, kind: "phone", message: err.message };
  }
  try {
    return { ok: true, body: await ready.classify(blob) };
  } catch (err) {
    // The server's limits, checked before decoding, in the server's words.
    if (err instanceof PhotoRefusedError) return { ok: false, kind: "unreadable", message: err.message };
    // createImageBitmap's refusal: not an image this browser decodes (the server would refuse it too).
    if (err instanceof DOMException) return { ok: false, kind: "unreadable", message: config.imageUnreadable };
    return { ok: false, kind: "phone", message: err.message };
  }
}

// For the tests and the browser benchmark: the ready engine (a promise), or null before boot.
export function currentEngine() {
  return engine;
}
