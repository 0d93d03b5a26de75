// LesionLite front end, the pure part: constants, message texts, the state and its transitions,
// and what the result view shows. Nothing here touches the DOM, the network or the camera, and
// importing it does nothing: node --test runs it (tests/js/logic.test.mjs).

import { DOCTOR_REASONS, modelOutput, reasonsWithoutOutput, sendsToDoctor } from "./answer.js";

export const CAPTURE_SIZE = 512; // px: plenty for a 96-224 px model, and a small, fast upload
export const GUIDE_FRACTION = 0.8; // the guide square's side, as a fraction of the visible square frame
export const JPEG_QUALITY = 0.92;
export const TOP_N = 3;
export const REQUEST_TIMEOUT_MS = 30_000; // a predict request with no answer by then is given up

export const MESSAGES = {
  unreachable:
    "Cannot reach the LesionLite server. Check you are on the same Wi-Fi as the kiosk, then try " +
    "again, or choose to analyse photos on this phone.",
  timeout: (ms) =>
    `The server did not answer within ${Math.round(ms / 1000)} s. It may be busy, or the Wi-Fi ` +
    "weak: try again.",
  insecure: "The live camera needs a secure (HTTPS) connection. Use the buttons below.",
  cameraNotReady: "The camera is not ready yet. Wait a moment and try again.",
  tooLarge: "The photo is too large for the server. Choose a smaller one.",
  cameraApp: "Use the phone's camera app",
  openCamera: "Open camera",
  offlineKiosk:
    "No connection to the LesionLite server. This phone cannot analyse photos itself yet: join the " +
    "same Wi-Fi as the kiosk (or start the server) and try again.",
  offlinePhone: "No connection to the LesionLite server: photos are analysed on this phone, which needs none.",
  engineLoading: "Preparing the model on this phone…",
  engineReady: (variant) => `The model (${variant}) runs on this phone: photos stay here.`,
  phoneFailed: (why) => `Analysing on this phone failed (${why}). Try again: it will go to the kiosk.`,
  engineUnavailable: (why) => `Analysing on this phone is not available (${why}): photos go to the kiosk.`,
};

// Where a photo is analysed: the phone's own copy of the model, or the server (kiosk).
export const WHERE = { phone: "on this phone", kiosk: "on the kiosk" };

// A model is never certain: the ends of the scale read "<1%" and ">99%", never 0% or 100%.
export function formatPercent(probability) {
  const percent = Math.round(probability * 100);
  if (percent <= 0) return "<1%";
  if (percent >= 100) return ">99%";
  return `${percent}%`;
}

// The message for a getUserMedia failure, by the DOMException's name.
export function cameraProblem(name) {
  switch (name) {
    case "NotAllowedError":
      return "Camera permission was refused. You can still take or choose a photo below.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found. Choose a photo below.";
    case "NotReadableError":
      return "The camera is busy in another app. Close it, or take a photo below.";
    default:
      return `The camera could not start (${name ?? "unknown error"}). Use the buttons below.`;
  }
}

// What a failed analysis means for the user. outcome: {kind: "timeout"} | {kind: "network"} |
// {kind: "http", status, statusText, body} | {kind: "unreadable" | "phone", message}.
// Returns {message, canRetry, offline}.
export function failureFor(outcome, timeoutMs = REQUEST_TIMEOUT_MS) {
  if (outcome.kind === "timeout") return { message: MESSAGES.timeout(timeoutMs), canRetry: true, offline: false };
  // On the phone: {kind: "unreadable", message} for a photo the browser cannot decode (the
  // server's own words for it), {kind: "phone", message} when the on-device model failed.
  if (outcome.kind === "unreadable") return { message: outcome.message, canRetry: false, offline: false };
  if (outcome.kind === "phone") return { message: MESSAGES.phoneFailed(outcome.message), canRetry: true, offline: false };
  if (outcome.kind === "network") return { message: MESSAGES.unreachable, canRetry: true, offline: true };
  const { status, statusText, body } = outcome;
  let message = body?.error;
  if (!message) {
    message = status === 413 ? MESSAGES.tooLarge : `The server answered ${status} ${statusText}. Try again.`;
  }
  return { message, canRetry: status >= 500, offline: false };
}

// The status leads the result screen, in words that say what happened (never "OK"). Titles by
// status; the reasons' messages come from the server.
export const STATUS_TITLES = {
  ok: (top) => `Most similar to ${top.name}`,
  unsure: () => "LesionLite cannot assess this photo",
  retake: () => "Retake the photo",
};

function row(p) {
  return {
    code: p.code,
    name: p.name,
    probability: p.probability,
    percent: formatPercent(p.probability),
    barWidth: `${(p.probability * 100).toFixed(1)}%`,
  };
}

function announcement(status, top, banner, low) {
  const doctor = sendsToDoctor(banner) ? "Show it to a doctor. " : "";
  if (status === "ok") {
    return `Most similar to ${top.name}, ${formatPercent(top.probability)}. ${doctor}${low ? "Low confidence. " : ""}`;
  }
  if (status === "retake") return `Retake the photo: ${banner.map((r) => r.message).join(" ")} `;
  return `LesionLite cannot assess this photo. ${doctor}`;
}

// What the result view shows for one answer ({status, reasons, predictions or
// unassessed_model_output, ...}). The banner: for ok every reason but low confidence (it has its
// own notice beside the bars); for unsure and retake the reasons a person must see with the
// model's output hidden. That output stays hidden until asked for, and then comes under the
// statement that it is not an assessment, with the same warnings an ok answer carries.
export function resultView(result) {
  const predictions = modelOutput(result);
  const [top] = predictions;
  const model = `${result.model.variant} (${result.model.sha256.slice(0, 12)})`;
  const codes = new Set(result.reasons.map((r) => r.code));
  const status = result.status;
  const assessed = status === "ok";
  const low = codes.has("low_confidence");
  const banner = assessed ? result.reasons.filter((r) => r.code !== "low_confidence") : reasonsWithoutOutput(result);
  return {
    status,
    title: STATUS_TITLES[status](top),
    reasons: banner,
    outputWarnings: assessed ? [] : result.reasons.filter((r) => DOCTOR_REASONS.includes(r.code)),
    assessed,
    outputHidden: !assessed,
    top: predictions.slice(0, TOP_N).map(row),
    all: predictions.map(row),
    low,
    melanomaRisk: codes.has("melanoma_risk"),
    model,
    where: result.where,
    whereText: `Analysed ${WHERE[result.where] ?? WHERE.kiosk} by model ${model}.`,
    disclaimer: result.disclaimer,
    announcement: announcement(status, top, banner, low) + "Not a diagnosis.",
  };
}

// --- State ----------------------------------------------------------------------------------
// view: "capture" | "busy" | "result"; camera: "starting" | "live" | "stopped" | "unavailable".

export const initialState = Object.freeze({
  view: "capture",
  camera: "starting",
  cameraMessage: "",
  error: null, // {message, canRetry}
  result: null, // a resultView
  offline: false,
  hasUpload: false,
  engine: "loading", // the on-device model: "loading" | "ready" | "unavailable"
  engineMessage: "",
  mode: "phone", // where the user wants photos analysed: on-device is the default
});

// "phone" or "kiosk": the user's choice while the on-device model can be had, else the server.
export function whereToRun(state) {
  return state.mode === "phone" && state.engine !== "unavailable" ? "phone" : "kiosk";
}

export function reduce(state, event) {
  switch (event.type) {
    case "camera-started":
      return { ...state, camera: "live", cameraMessage: "" };
    case "camera-failed":
      return { ...state, camera: "unavailable", cameraMessage: event.message };
    case "camera-stopped":
      return { ...state, camera: state.camera === "live" ? "stopped" : state.camera };
    case "upload-started":
      return { ...state, view: "busy", error: null, hasUpload: true };
    case "prediction-received":
      return { ...state, view: "result", result: resultView(event.result), error: null, offline: false };
    case "prediction-failed": {
      const { message, canRetry, offline } = event.failure;
      return { ...state, view: "capture", result: null, error: { message, canRetry }, offline: state.offline || offline };
    }
    case "retake":
      return { ...state, view: "capture", error: null, result: null };
    case "show-anyway":
      return state.result ? { ...state, result: { ...state.result, outputHidden: false } } : state;
    case "server-checked":
      return { ...state, offline: !event.ok };
    case "engine-ready":
      return { ...state, engine: "ready", engineMessage: MESSAGES.engineReady(event.variant) };
    case "engine-failed":
      return { ...state, engine: "unavailable", engineMessage: MESSAGES.engineUnavailable(event.message) };
    case "mode-chosen":
      return { ...state, mode: event.mode };
    default:
      throw new Error(`unknown event ${event.type}`);
  }
}

// Which elements are shown, by id: the one decision render() applies.
export function visibility(state) {
  const capturing = state.view === "capture";
  const live = capturing && state.camera === "live";
  return {
    "capture-view": capturing,
    camera: live,
    "camera-hint": live,
    capture: live,
    busy: state.view === "busy",
    error: state.error !== null,
    "error-retry": Boolean(state.error?.canRetry && state.hasUpload),
    "result-view": state.view === "result",
    "model-output": state.view === "result" && state.result?.outputHidden === false,
    "show-anyway": state.view === "result" && state.result?.outputHidden === true,
    "low-confidence": state.view === "result" && Boolean(state.result?.low) && state.result?.outputHidden === false,
    "unassessed-note": state.view === "result" && state.result?.assessed === false && state.result?.outputHidden === false,
    "offline-notice": state.offline,
  };
}

// The texts render() writes, by id.
export function texts(state) {
  const cameraWorked = state.camera === "live" || state.camera === "stopped";
  return {
    "camera-status": state.cameraMessage,
    "camera-file-text": cameraWorked ? MESSAGES.cameraApp : MESSAGES.openCamera,
    "error-text": state.error?.message ?? "",
    "engine-status": state.engine === "loading" ? MESSAGES.engineLoading : state.engineMessage,
    "offline-text": state.engine === "ready" ? MESSAGES.offlinePhone : MESSAGES.offlineKiosk,
  };
}

// The where-to-analyse choice as render() applies it.
export function engineChoice(state) {
  const where = whereToRun(state);
  return { phoneChecked: where === "phone", kioskChecked: where === "kiosk", phoneDisabled: state.engine === "unavailable" };
}
