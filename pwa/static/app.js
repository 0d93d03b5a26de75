// LesionLite front end: the live camera where the browser allows it, file inputs everywhere,
// and the server's answer from /api/predict. The classifier runs on the server, never here.

const CAPTURE_SIZE = 512; // px: plenty for a 96-224 px model, and a small, fast upload
const GUIDE_FRACTION = 0.8; // the guide square's side, as a fraction of the visible square frame
const JPEG_QUALITY = 0.92;
const LOW_CONFIDENCE = 0.5;
const TOP_N = 3;

const UNREACHABLE =
  "Cannot reach the LesionLite server. The classifier runs on the server or kiosk, not on this " +
  "phone: check you are on the same Wi-Fi as the kiosk, then try again.";

const $ = (id) => document.getElementById(id);
let stream = null;
let previewUrl = null;
let lastUpload = null;

// A model is never certain: the ends of the scale read "<1%" and ">99%", never 0% or 100%.
export function formatPercent(probability) {
  const percent = Math.round(probability * 100);
  if (percent <= 0) return "<1%";
  if (percent >= 100) return ">99%";
  return `${percent}%`;
}

function show(id, visible) {
  $(id).hidden = !visible;
}

// --- Camera -------------------------------------------------------------------------------

async function startCamera() {
  // getUserMedia exists only in a secure context (HTTPS or localhost); elsewhere the file
  // input with capture="environment" opens the phone's own camera app instead.
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    useFallback("The live camera needs a secure (HTTPS) connection. Use the buttons below.");
    return;
  }
  try {
    // A preference, not {exact: ...}: laptops have only a front camera and must still work.
    stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 1280 } },
      audio: false,
    });
  } catch (err) {
    useFallback(cameraProblem(err));
    return;
  }
  $("camera-video").srcObject = stream;
  show("camera", true);
  show("camera-hint", true);
  show("capture", true);
  $("camera-status").textContent = "";
  $("camera-file-text").textContent = "Use the phone's camera app";
}

function cameraProblem(err) {
  switch (err?.name) {
    case "NotAllowedError":
      return "Camera permission was refused. You can still take or choose a photo below.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found. Choose a photo below.";
    case "NotReadableError":
      return "The camera is busy in another app. Close it, or take a photo below.";
    default:
      return `The camera could not start (${err?.name ?? "unknown error"}). Use the buttons below.`;
  }
}

function useFallback(message) {
  show("camera", false);
  show("camera-hint", false);
  show("capture", false);
  $("camera-status").textContent = message;
}

function stopCamera() {
  stream?.getTracks().forEach((track) => track.stop());
  stream = null;
}

// The video fills a square box (object-fit: cover), so the visible frame is the centre square
// of the camera image, and the guide is the centre GUIDE_FRACTION of that: crop exactly it.
function captureBlob() {
  const video = $("camera-video");
  const { videoWidth: width, videoHeight: height } = video;
  if (!width || !height) return Promise.resolve(null);
  const side = Math.round(Math.min(width, height) * GUIDE_FRACTION);
  const out = Math.min(CAPTURE_SIZE, side);
  const canvas = document.createElement("canvas");
  canvas.width = out;
  canvas.height = out;
  const sx = Math.round((width - side) / 2);
  const sy = Math.round((height - side) / 2);
  canvas.getContext("2d").drawImage(video, sx, sy, side, side, 0, 0, out, out);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
}

async function onCapture() {
  const blob = await captureBlob();
  if (!blob) {
    showError("The camera is not ready yet. Wait a moment and try again.", false);
    return;
  }
  await classify(blob, "capture.jpg");
}

function onFileChosen(event) {
  const file = event.target.files?.[0];
  event.target.value = ""; // choosing the same file again must fire "change" again
  // Sent as is: the server applies EXIF orientation and decodes large photos cheaply.
  if (file) classify(file, file.name || "photo.jpg");
}

// --- Talking to the server ------------------------------------------------------------------

async function classify(blob, name) {
  lastUpload = { blob, name };
  show("error", false);
  show("capture-view", false);
  show("result-view", false);
  show("busy", true);
  const form = new FormData();
  form.append("image", blob, name);
  let response;
  try {
    response = await fetch("/api/predict", { method: "POST", body: form });
  } catch {
    show("offline-notice", true);
    showError(UNREACHABLE, true);
    return;
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    showError(body?.error ?? problemFor(response), response.status >= 500);
    return;
  }
  show("offline-notice", false);
  showResult(body, blob);
}

function problemFor(response) {
  if (response.status === 413) return "The photo is too large for the server. Choose a smaller one.";
  return `The server answered ${response.status} ${response.statusText}. Try again.`;
}

async function checkServer() {
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    show("offline-notice", !response.ok);
  } catch {
    show("offline-notice", true);
  }
}

// --- Showing things -------------------------------------------------------------------------

function showError(message, canRetry) {
  show("busy", false);
  show("result-view", false);
  show("capture-view", true);
  $("error-text").textContent = message;
  show("error-retry", canRetry && lastUpload !== null);
  show("error", true);
  if (!stream) startCamera();
}

function showResult(result, blob) {
  stopCamera(); // the camera light goes off while the result is read
  const [top] = result.predictions;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(blob);
  $("preview").src = previewUrl;
  fillTop(result.predictions.slice(0, TOP_N));
  fillAll(result.predictions);
  const low = top.probability < LOW_CONFIDENCE;
  show("low-confidence", low);
  $("model-variant").textContent = `${result.model.variant} (${result.model.sha256.slice(0, 12)})`;
  $("disclaimer").textContent = result.disclaimer;
  show("busy", false);
  show("result-view", true);
  $("result-heading").focus();
  $("announcer").textContent =
    `Most similar: ${top.name}, ${formatPercent(top.probability)}. ` +
    (low ? "Low confidence. " : "") +
    "Not a diagnosis.";
}

function fillTop(predictions) {
  const rows = predictions.map((p) => {
    const row = $("bar-row").content.firstElementChild.cloneNode(true);
    row.dataset.code = p.code;
    row.dataset.probability = String(p.probability);
    row.querySelector(".bar-name").textContent = p.name;
    row.querySelector(".bar-code").textContent = `(${p.code})`;
    // CSSOM, not a style attribute: the CSP forbids inline styles in markup.
    row.querySelector(".bar-fill").style.width = `${(p.probability * 100).toFixed(1)}%`;
    row.querySelector(".bar-value").textContent = formatPercent(p.probability);
    return row;
  });
  $("top3").replaceChildren(...rows);
}

function fillAll(predictions) {
  const rows = predictions.map((p) => {
    const row = document.createElement("tr");
    row.dataset.code = p.code;
    const name = document.createElement("td");
    name.textContent = `${p.name} (${p.code})`;
    const value = document.createElement("td");
    value.className = "num";
    value.textContent = formatPercent(p.probability);
    row.append(name, value);
    return row;
  });
  $("all-classes").replaceChildren(...rows);
}

function retake() {
  show("result-view", false);
  show("error", false);
  show("capture-view", true);
  $("capture-heading").scrollIntoView({ block: "start" });
  startCamera();
}

// --- Start ----------------------------------------------------------------------------------

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return; // insecure context: no offline shell, still works
  navigator.serviceWorker.register("/sw.js").catch((err) => {
    console.warn("LesionLite: service worker not registered, no offline page:", err);
  });
}

function init() {
  $("capture").addEventListener("click", onCapture);
  $("camera-file").addEventListener("change", onFileChosen);
  $("gallery-file").addEventListener("change", onFileChosen);
  $("retake").addEventListener("click", retake);
  $("error-retry").addEventListener("click", () => lastUpload && classify(lastUpload.blob, lastUpload.name));
  window.addEventListener("online", checkServer);
  window.addEventListener("offline", () => show("offline-notice", true));
  registerServiceWorker();
  checkServer();
  startCamera();
}

init();
