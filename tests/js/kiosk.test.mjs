// Unit tests of the kiosk page's pure functions (pwa/static/js/kiosk-logic.js): node --test tests/js/

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  STATUS_LABELS,
  answerStatus,
  idleNote,
  idleSeconds,
  kioskView,
  serverCameraProblem,
} from "../../pwa/static/js/kiosk-logic.js";

const PREDICTIONS = [
  { code: "mel", name: "Melanoma", probability: 0.72 },
  { code: "nv", name: "Melanocytic nevi", probability: 0.2 },
  { code: "bkl", name: "Benign keratosis-like lesions", probability: 0.05 },
  { code: "bcc", name: "Basal cell carcinoma", probability: 0.03 },
];
const ANSWER = {
  status: "ok", reasons: [], predictions: PREDICTIONS, disclaimer: "Not a diagnosis.", frame: "data:image/jpeg;base64,AAAA",
};

// Unsure and retake answers keep the model's output under their own field (edge/answer.py).
const { predictions: OUTPUT, ...SERVED } = ANSWER;
const unassessed = (status, reasons) => ({ ...SERVED, status, reasons, unassessed_model_output: OUTPUT });
const OOD = { code: "out_of_distribution", message: "Not like the lesions." };
const MALIGNANT_CLASS = { code: "malignant_class", message: "A skin cancer: see a doctor." };
const MELANOMA_RISK = { code: "melanoma_risk", message: "Like melanoma: see a doctor." };
const LOW = { code: "low_confidence", message: "Unsure between classes." };

test("the status is the server's; only ok names a class", () => {
  assert.equal(answerStatus(ANSWER), "ok");
  const unsure = unassessed("unsure", [OOD]);
  assert.equal(kioskView(unsure).statusLabel, "LesionLite cannot assess this photo");
  assert.equal(kioskView(unsure).showClass, false);
  assert.deepEqual(kioskView(unsure).reasons, [OOD]);
});

test("a melanoma at the top: the doctor's reasons are shown, and the referral even without the class", () => {
  const ok = kioskView({ ...ANSWER, reasons: [MALIGNANT_CLASS, MELANOMA_RISK, LOW] });
  assert.equal(ok.statusLabel, "Most similar to");
  assert.equal(ok.topName, "Melanoma (mel)");
  assert.deepEqual(ok.reasons, [MALIGNANT_CLASS, MELANOMA_RISK, LOW]);
  assert.equal(ok.announcement, "Most similar to Melanoma, 72%. Show it to a doctor. Not a diagnosis.");
  const unsure = kioskView(unassessed("unsure", [OOD, MALIGNANT_CLASS, MELANOMA_RISK, LOW]));
  assert.equal(unsure.showClass, false);
  assert.deepEqual(unsure.reasons, [OOD, MELANOMA_RISK]); // no class shown, so nothing about it but the referral
  assert.equal(unsure.announcement, "LesionLite cannot assess this photo. Show it to a doctor. Not a diagnosis.");
});

test("the view shows the top class, two runners-up, the frame and the disclaimer", () => {
  const view = kioskView(ANSWER);
  assert.equal(view.statusLabel, STATUS_LABELS.ok);
  assert.equal(view.topName, "Melanoma (mel)");
  assert.equal(view.topPercent, "72%");
  assert.deepEqual(view.others, [
    { code: "nv", name: "Melanocytic nevi", percent: "20%" },
    { code: "bkl", name: "Benign keratosis-like lesions", percent: "5%" },
  ]);
  assert.deepEqual(view.reasons, []);
  assert.equal(view.frame, ANSWER.frame);
  assert.equal(view.disclaimer, "Not a diagnosis.");
  assert.equal(view.announcement, "Most similar to Melanoma, 72%. Not a diagnosis.");
});

test("a status and reasons from the server win; unsure and retake hide the class", () => {
  const unsure = kioskView(unassessed("unsure", [OOD]));
  assert.equal(unsure.statusLabel, "LesionLite cannot assess this photo");
  assert.deepEqual(unsure.reasons, [OOD]);
  assert.equal(unsure.showClass, false);
  const retake = kioskView(unassessed("retake", [{ code: "blurry", message: "The photo is blurred." }]));
  assert.equal(retake.statusLabel, "Retake the photo");
  assert.equal(retake.showClass, false);
  assert.deepEqual(retake.others, []);
  assert.equal(retake.announcement, "Retake the photo. Not a diagnosis.");
  assert.equal(kioskView({ ...ANSWER, status: "novel" }).statusLabel, "novel"); // unknown: shown as sent
});

test("the idle countdown and its setting", () => {
  assert.equal(idleNote(59.2), "Back to the camera in 60 s (touch to stay)");
  assert.equal(idleNote(-1), "Back to the camera in 0 s (touch to stay)");
  assert.equal(idleSeconds("60"), 60);
  for (const never of ["0", "", undefined, "soon", "-5"]) assert.equal(idleSeconds(never), 0);
});

test("camera problems from GET /api/camera", () => {
  assert.equal(serverCameraProblem({ ok: true, body: { error: null } }), "");
  assert.equal(serverCameraProblem({ ok: true, body: { error: "no frame for 7 s" } }), "Camera problem: no frame for 7 s");
  assert.equal(serverCameraProblem({ ok: false, body: { error: "This server has no camera." } }), "This server has no camera.");
  assert.equal(serverCameraProblem({ ok: false, body: null }), "Cannot reach the LesionLite server.");
});
