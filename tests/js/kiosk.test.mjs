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

test("the status is the server's; only ok names a class", () => {
  assert.equal(answerStatus(ANSWER), "ok");
  const unsure = { ...ANSWER, status: "unsure", reasons: [{ code: "out_of_distribution", message: "Cannot assess." }] };
  assert.equal(kioskView(unsure).statusLabel, "LesionLite cannot assess this photo");
  assert.equal(kioskView(unsure).showClass, false);
  assert.deepEqual(kioskView(unsure).reasons, ["Cannot assess."]);
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
  assert.equal(view.announcement, "Most similar class: Melanoma, 72%. Not a diagnosis.");
});

test("a status and reasons from the server win; unsure and retake hide the class", () => {
  const unsure = kioskView({ ...ANSWER, status: "unsure", reasons: [{ code: "out_of_distribution", message: "Not like the lesions." }] });
  assert.equal(unsure.statusLabel, "LesionLite cannot assess this photo");
  assert.deepEqual(unsure.reasons, ["Not like the lesions."]);
  assert.equal(unsure.showClass, false);
  const retake = kioskView({ ...ANSWER, status: "retake", reasons: [{ code: "blurry", message: "The photo is blurred." }] });
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
