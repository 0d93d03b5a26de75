// Unit tests of the front end's pure functions, run by node's own test runner:
//   node --test tests/js/
// tests/test_pwa_js.py runs them as part of pytest.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MESSAGES,
  cameraProblem,
  engineChoice,
  failureFor,
  formatPercent,
  initialState,
  reduce,
  resultView,
  texts,
  visibility,
  whereToRun,
} from "../../pwa/static/js/logic.js";

const ANSWER = {
  predictions: [
    { code: "nv", name: "Melanocytic nevi", probability: 0.4149 },
    { code: "mel", name: "Melanoma", probability: 0.3251 },
    { code: "bkl", name: "Benign keratosis-like lesions", probability: 0.2555 },
    { code: "bcc", name: "Basal cell carcinoma", probability: 0.004 },
    { code: "akiec", name: "Actinic keratoses and intraepithelial carcinoma", probability: 0.0005 },
    { code: "df", name: "Dermatofibroma", probability: 0 },
    { code: "vasc", name: "Vascular lesions", probability: 0 },
  ],
  model: { variant: "int8", sha256: "dac5c0112233445566778899" },
  disclaimer: "Not a diagnosis.",
  status: "ok",
  reasons: [{ code: "low_confidence", message: "The model is unsure between several classes." }],
};
const MELANOMA_RISK = { code: "melanoma_risk", message: "Features similar to melanoma: show this lesion to a doctor." };
// Unsure and retake answers keep the model's output under their own field (edge/answer.py).
const { predictions: OUTPUT, ...SERVED } = ANSWER;
const UNSURE = {
  ...SERVED,
  unassessed_model_output: OUTPUT,
  status: "unsure",
  reasons: [{ code: "out_of_distribution", message: "It does not look like the lesions." }],
};
const RETAKE = {
  ...SERVED,
  unassessed_model_output: OUTPUT,
  status: "retake",
  reasons: [
    { code: "too_dark", message: "The photo is too dark: add light and retake it." },
    { code: "blurry", message: "The photo is blurred." },
  ],
};

const shown = (state) => Object.entries(visibility(state)).filter(([, v]) => v).map(([id]) => id).sort();

test("formatPercent rounds half up and never says 0% or 100%", () => {
  const cases = [
    [0, "<1%"], [0.004, "<1%"], [0.005, "1%"], [0.0149, "1%"], [0.015, "2%"], [0.125, "13%"],
    [0.5, "50%"], [0.994, "99%"], [0.995, ">99%"], [1, ">99%"],
  ];
  for (const [probability, shown] of cases) assert.equal(formatPercent(probability), shown, String(probability));
});

test("resultView: top three, all seven, the server's low-confidence reason, short hash", () => {
  const view = resultView(ANSWER);
  assert.equal(view.status, "ok");
  assert.equal(view.title, "Most similar to Melanocytic nevi");
  assert.equal(view.outputHidden, false);
  assert.deepEqual(view.reasons, []); // low confidence has its own notice, not a banner line
  assert.deepEqual(view.top.map((p) => [p.code, p.percent, p.barWidth]), [
    ["nv", "41%", "41.5%"], ["mel", "33%", "32.5%"], ["bkl", "26%", "25.6%"],
  ]);
  assert.deepEqual(view.all.map((p) => p.percent), ["41%", "33%", "26%", "<1%", "<1%", "<1%", "<1%"]);
  assert.equal(view.low, true);
  assert.equal(view.model, "int8 (dac5c0112233)");
  assert.equal(view.whereText, "Analysed on the kiosk by model int8 (dac5c0112233).");
  assert.equal(resultView({ ...ANSWER, where: "phone" }).whereText, "Analysed on this phone by model int8 (dac5c0112233).");
  assert.equal(view.announcement, "Most similar to Melanocytic nevi, 41%. Low confidence. Not a diagnosis.");
  const sure = resultView({ ...ANSWER, reasons: [], predictions: [{ code: "mel", name: "Melanoma", probability: 0.5 }] });
  assert.equal(sure.low, false);
  assert.equal(sure.announcement, "Most similar to Melanoma, 50%. Not a diagnosis.");
});

test("melanoma_risk is shown in the banner even when melanoma is not the top class", () => {
  const view = resultView({ ...ANSWER, reasons: [MELANOMA_RISK] });
  assert.equal(view.melanomaRisk, true);
  assert.deepEqual(view.reasons, [MELANOMA_RISK]);
  assert.equal(view.announcement, "Most similar to Melanocytic nevi, 41%. Show it to a doctor. Not a diagnosis.");
});

test("unsure and retake lead with the status and hide the model's output until asked", () => {
  const unsure = resultView(UNSURE);
  assert.equal(unsure.title, "LesionLite cannot assess this photo");
  assert.equal(unsure.outputHidden, true);
  assert.deepEqual(unsure.reasons.map((r) => r.code), ["out_of_distribution"]);
  const retake = resultView(RETAKE);
  assert.equal(retake.title, "Retake the photo");
  assert.equal(retake.announcement,
    "Retake the photo: The photo is too dark: add light and retake it. The photo is blurred. Not a diagnosis.");
  let state = reduce(reduce(initialState, { type: "upload-started" }), { type: "prediction-received", result: UNSURE });
  assert.deepEqual(shown(state), ["result-view", "show-anyway"]);
  state = reduce(state, { type: "show-anyway" });
  assert.deepEqual(shown(state), ["model-output", "result-view", "unassessed-note"]);
  assert.deepEqual(resultView(UNSURE).top.map((p) => p.code), ["nv", "mel", "bkl"]); // read from the marked field
});

const MALIGNANT_CLASS = { code: "malignant_class", message: "The most similar class is a skin cancer." };
const LOW = { code: "low_confidence", message: "The model is unsure between several classes." };
const MELANOMA_TOP = [
  { code: "mel", name: "Melanoma", probability: 0.45 }, ...OUTPUT.filter((p) => p.code !== "mel"),
];

test("a melanoma at the top of an ok answer: the doctor's reasons lead the banner", () => {
  const view = resultView({ ...ANSWER, predictions: MELANOMA_TOP, reasons: [MALIGNANT_CLASS, MELANOMA_RISK, LOW] });
  assert.equal(view.title, "Most similar to Melanoma");
  assert.deepEqual(view.reasons, [MALIGNANT_CLASS, MELANOMA_RISK]);
  assert.deepEqual(view.outputWarnings, []);
  assert.equal(view.announcement, "Most similar to Melanoma, 45%. Show it to a doctor. Low confidence. Not a diagnosis.");
});

test("show anyway: an unassessed output comes with the warnings an ok answer would carry", () => {
  const reasons = [UNSURE.reasons[0], MALIGNANT_CLASS, MELANOMA_RISK, LOW];
  const answer = { ...UNSURE, unassessed_model_output: MELANOMA_TOP, reasons };
  const view = resultView(answer);
  // With the output hidden: the statement and the referral (a person must see it), no class.
  assert.deepEqual(view.reasons, [UNSURE.reasons[0], MELANOMA_RISK]);
  assert.equal(view.announcement, "LesionLite cannot assess this photo. Show it to a doctor. Not a diagnosis.");
  // Beside the output: both doctor's reasons, and the low-confidence notice.
  assert.deepEqual(view.outputWarnings, [MALIGNANT_CLASS, MELANOMA_RISK]);
  let state = reduce(initialState, { type: "prediction-received", result: answer });
  assert.deepEqual(shown(state), ["result-view", "show-anyway"]);
  state = reduce(state, { type: "show-anyway" });
  assert.deepEqual(shown(state), ["low-confidence", "model-output", "result-view", "unassessed-note"]);
  const retake = resultView({ ...RETAKE, unassessed_model_output: MELANOMA_TOP, reasons: [RETAKE.reasons[0], MALIGNANT_CLASS] });
  assert.deepEqual(retake.reasons, [RETAKE.reasons[0]]);
  assert.deepEqual(retake.outputWarnings, [MALIGNANT_CLASS]);
});

test("failureFor: timeout, unreachable, the server's own message, and fallbacks", () => {
  assert.deepEqual(failureFor({ kind: "timeout" }), {
    message: "The server did not answer within 30 s. It may be busy, or the Wi-Fi weak: try again.",
    canRetry: true,
    offline: false,
  });
  assert.equal(failureFor({ kind: "timeout" }, 5000).message.startsWith("The server did not answer within 5 s."), true);
  const network = failureFor({ kind: "network" });
  assert.equal(network.offline, true);
  assert.match(network.message, /^Cannot reach the LesionLite server\./);
  const refused = failureFor({ kind: "http", status: 415, statusText: "UNSUPPORTED MEDIA TYPE", body: { error: "No." } });
  assert.deepEqual(refused, { message: "No.", canRetry: false, offline: false });
  assert.equal(failureFor({ kind: "http", status: 413, body: null }).message,
    "The photo is too large for the server. Choose a smaller one.");
  assert.deepEqual(failureFor({ kind: "http", status: 502, statusText: "Bad Gateway", body: null }), {
    message: "The server answered 502 Bad Gateway. Try again.", canRetry: true, offline: false,
  });
});

test("cameraProblem names each getUserMedia failure", () => {
  assert.equal(cameraProblem("NotAllowedError"), "Camera permission was refused. You can still take or choose a photo below.");
  assert.equal(cameraProblem("OverconstrainedError"), "No camera was found. Choose a photo below.");
  assert.equal(cameraProblem(undefined), "The camera could not start (unknown error). Use the buttons below.");
});

test("the page's states show exactly their elements", () => {
  let state = initialState;
  assert.deepEqual(shown(state), ["capture-view"]);
  state = reduce(state, { type: "camera-started" });
  assert.deepEqual(shown(state), ["camera", "camera-hint", "capture", "capture-view"]);
  assert.equal(texts(state)["camera-file-text"], "Use the phone's camera app");
  state = reduce(state, { type: "upload-started" });
  assert.deepEqual(shown(state), ["busy"]);
  const result = reduce(reduce(state, { type: "camera-stopped" }), { type: "prediction-received", result: ANSWER });
  assert.deepEqual(shown(result), ["low-confidence", "model-output", "result-view"]);
  const failed = reduce(state, { type: "prediction-failed", failure: failureFor({ kind: "network" }) });
  assert.deepEqual(shown(failed), ["camera", "camera-hint", "capture", "capture-view", "error", "error-retry", "offline-notice"]);
  assert.match(texts(failed)["error-text"], /^Cannot reach/);
  const retaken = reduce(result, { type: "retake" });
  assert.deepEqual(shown(retaken), ["capture-view"]);
  assert.equal(reduce(retaken, { type: "camera-started" }).result, null);
});

test("a refused camera leaves the pickers and says why", () => {
  const state = reduce(initialState, { type: "camera-failed", message: cameraProblem("NotAllowedError") });
  assert.deepEqual(shown(state), ["capture-view"]);
  assert.deepEqual(texts(state), {
    "camera-status": "Camera permission was refused. You can still take or choose a photo below.",
    "camera-file-text": "Open camera",
    "error-text": "",
    "engine-status": "Preparing the model on this phone…",
    "offline-text": MESSAGES.offlineKiosk,
  });
});

test("a refusal the user cannot fix by retrying offers no retry; the server check sets offline", () => {
  const failure = failureFor({ kind: "http", status: 415, body: { error: "Not a photo." } });
  const state = reduce(reduce(initialState, { type: "upload-started" }), { type: "prediction-failed", failure });
  assert.equal(visibility(state)["error-retry"], false);
  assert.equal(visibility(reduce(state, { type: "server-checked", ok: false }))["offline-notice"], true);
  assert.throws(() => reduce(state, { type: "nonsense" }), /unknown event nonsense/);
});

test("importing logic.js has no side effects", async () => {
  const before = Object.keys(globalThis).sort();
  await import(`../../pwa/static/js/logic.js?again=${Date.now()}`);
  assert.deepEqual(Object.keys(globalThis).sort(), before);
});

test("on this phone by default; the kiosk when the phone's model is unavailable or the user chooses it", () => {
  let state = initialState;
  assert.equal(whereToRun(state), "phone"); // while loading too: the photo waits for the model
  assert.deepEqual(engineChoice(state), { phoneChecked: true, kioskChecked: false, phoneDisabled: false });
  const ready = reduce(state, { type: "engine-ready", variant: "int8" });
  assert.equal(texts(ready)["engine-status"], "The model (int8) runs on this phone: photos stay here.");
  assert.equal(texts(ready)["offline-text"], MESSAGES.offlinePhone);
  const chosen = reduce(ready, { type: "mode-chosen", mode: "kiosk" });
  assert.equal(whereToRun(chosen), "kiosk");
  assert.equal(whereToRun(reduce(chosen, { type: "mode-chosen", mode: "phone" })), "phone");
  state = reduce(state, { type: "engine-failed", message: "this browser has no WebAssembly" });
  assert.equal(whereToRun(state), "kiosk");
  assert.deepEqual(engineChoice(state), { phoneChecked: false, kioskChecked: true, phoneDisabled: true });
  assert.equal(texts(state)["engine-status"],
    "Analysing on this phone is not available (this browser has no WebAssembly): photos go to the kiosk.");
  assert.equal(texts(state)["offline-text"], MESSAGES.offlineKiosk);
});

test("failures on the phone: an unreadable photo cannot be retried, a failed model can (on the kiosk)", () => {
  assert.deepEqual(failureFor({ kind: "unreadable", message: "The photo is not an image." }),
    { message: "The photo is not an image.", canRetry: false, offline: false });
  assert.deepEqual(failureFor({ kind: "phone", message: "out of memory" }), {
    message: "Analysing on this phone failed (out of memory). Try again: it will go to the kiosk.",
    canRetry: true,
    offline: false,
  });
});
