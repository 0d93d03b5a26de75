// The answer's shape on the page (pwa/static/js/answer.js) against edge/answer.py's own values
// (tests/js_fixtures.py), and the helpers the result views use.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DOCTOR_REASONS,
  UNASSESSED,
  WITH_OUTPUT_ONLY,
  modelOutput,
  outputKey,
  reasonsWithoutOutput,
  sendsToDoctor,
} from "../../pwa/static/js/answer.js";
import { loadFixture } from "./fixture.mjs";

const fixture = loadFixture();
const needsFixture = { skip: !fixture && "no Python fixture" };

test("the field name and the reason groups are edge/answer.py's", needsFixture, () => {
  assert.equal(UNASSESSED, fixture.answer.unassessed);
  assert.deepEqual(DOCTOR_REASONS, fixture.answer.doctor_reasons);
  assert.deepEqual(WITH_OUTPUT_ONLY, fixture.answer.with_output_only);
  for (const status of fixture.answer.statuses) assert.equal(outputKey(status), fixture.answer.output_keys[status], status);
  for (const code of [...DOCTOR_REASONS, ...WITH_OUTPUT_ONLY]) assert.ok(code in fixture.messages, code);
});

test("the model's output is read from either field; the reasons without it keep the referral", () => {
  const output = [{ code: "mel", name: "Melanoma", probability: 0.6 }];
  assert.equal(modelOutput({ status: "ok", predictions: output }), output);
  assert.equal(modelOutput({ status: "unsure", unassessed_model_output: output }), output);
  const reasons = ["out_of_distribution", "malignant_class", "melanoma_risk", "low_confidence"].map((code) => ({ code }));
  assert.deepEqual(reasonsWithoutOutput({ reasons }).map((r) => r.code), ["out_of_distribution", "melanoma_risk"]);
  assert.equal(sendsToDoctor([{ code: "malignant_class" }]), true);
  assert.equal(sendsToDoctor([{ code: "low_confidence" }, { code: "too_dark" }]), false);
});
