// The answer's shape on the page, as edge/answer.py defines it: where the model's output is kept
// and which reasons go where. Pure: tests/js/answer.test.mjs holds these to the Python's own
// values (tests/js_fixtures.py), and the browser tests validate whole answers against the
// OpenAPI schema generated from edge/answer.py.

// Where an answer keeps the model's output when it is not an assessment (unsure, retake).
export const UNASSESSED = "unassessed_model_output";
// Reasons that send the person to a doctor.
export const DOCTOR_REASONS = ["malignant_class", "melanoma_risk"];
// Reasons about the model's class names and probabilities, shown only beside them; every other
// reason is shown whatever the status, so a referral is seen even when the output stays hidden.
export const WITH_OUTPUT_ONLY = ["malignant_class", "low_confidence"];

// The JSON key of the model's output for a status (edge/answer.py json_name).
export function outputKey(status) {
  return status === "ok" ? "predictions" : UNASSESSED;
}

// The model's output, every class most probable first, wherever the answer keeps it.
export function modelOutput(answer) {
  return answer.predictions ?? answer[UNASSESSED] ?? [];
}

// The reasons a person sees while the model's output is not shown.
export function reasonsWithoutOutput(answer) {
  return answer.reasons.filter((reason) => !WITH_OUTPUT_ONLY.includes(reason.code));
}

export function sendsToDoctor(reasons) {
  return reasons.some((reason) => DOCTOR_REASONS.includes(reason.code));
}
