// LesionLite kiosk page, the pure part: what the kiosk shows for an answer of
// POST /api/camera/capture, and the idle countdown. No DOM, no network: node --test runs it
// (tests/js/kiosk.test.mjs). The answer is /api/predict's, plus the captured frame.

import { modelOutput, reasonsWithoutOutput, sendsToDoctor } from "./answer.js";
import { formatPercent } from "./logic.js";

export const OTHERS_SHOWN = 2; // the runners-up listed under the top class
export const CAMERA_POLL_MS = 5_000; // how often the camera screen asks GET /api/camera
export const STREAM_RETRY_MS = 2_000; // a preview stream that broke is reopened after this

// Status labels, in words that say what happened (never "OK"). Every answer carries `status`
// (ok | unsure | retake) and `reasons` ([{code, message}]), decided by the server from the
// bundle (edge/honesty.py); for ok the label is followed by the class.
export const STATUS_LABELS = {
  ok: "Most similar to",
  unsure: "LesionLite cannot assess this photo",
  retake: "Retake the photo",
};

export function answerStatus(answer) {
  return answer.status;
}

// Everything the result screen writes, for one answer.
export function kioskView(answer) {
  const status = answerStatus(answer);
  const [top, ...rest] = modelOutput(answer);
  // Only an "ok" answer names a class: an unusable or unfamiliar photo's class would mislead. So
  // the others show only the reasons a person must see without the class (a referral included).
  const showClass = status === "ok";
  const label = STATUS_LABELS[status] ?? status;
  const reasons = (showClass ? answer.reasons : reasonsWithoutOutput(answer)).filter((r) => r.message);
  const doctor = sendsToDoctor(reasons) ? "Show it to a doctor. " : "";
  return {
    status,
    statusLabel: label,
    showClass,
    topName: `${top.name} (${top.code})`,
    topCode: top.code,
    topPercent: formatPercent(top.probability),
    others: showClass ? rest.slice(0, OTHERS_SHOWN).map((p) => ({ code: p.code, name: p.name, percent: formatPercent(p.probability) })) : [],
    reasons: reasons.map(({ code, message }) => ({ code, message })),
    frame: answer.frame ?? null,
    disclaimer: answer.disclaimer,
    announcement: showClass
      ? `${label} ${top.name}, ${formatPercent(top.probability)}. ${doctor}Not a diagnosis.`
      : `${label}. ${doctor}Not a diagnosis.`,
  };
}

// The line under a result: when the kiosk goes back to the camera by itself (and forgets the photo).
export function idleNote(secondsLeft) {
  const seconds = Math.max(0, Math.ceil(secondsLeft));
  return `Back to the camera in ${seconds} s (touch to stay)`;
}

// The idle timeout from the page's data attribute: whole seconds >= 0; 0 (or nonsense) means never.
export function idleSeconds(text) {
  const value = Number.parseInt(text ?? "", 10);
  return Number.isFinite(value) && value > 0 ? value : 0;
}

// The message over the camera for GET /api/camera's answer, or "" when all is well.
// outcome: {ok, body} as kiosk.js fetched it, or {ok: false, body: null} when unreachable.
export function serverCameraProblem(outcome) {
  if (!outcome.ok) return outcome.body?.error ?? "Cannot reach the LesionLite server.";
  return outcome.body?.error ? `Camera problem: ${outcome.body.error}` : "";
}
