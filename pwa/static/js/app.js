// LesionLite front end, the entry module: wires the page to logic.js. The live camera where the
// browser allows it, file inputs everywhere, and the answer from the model on this phone
// (onphone.js, the default where it works) or from the server's /api/predict. One
// render(state) decides what is visible.

import {
  CAPTURE_SIZE,
  GUIDE_FRACTION,
  JPEG_QUALITY,
  MESSAGES,
  cameraProblem,
  engineChoice,
  failureFor,
  initialState,
  reduce,
  texts,
  visibility,
  whereToRun,
} from "./logic.js";
import { analyseOnPhone, bootOnPhone, readConfig } from "./onphone.js";
import { requestJson } from "./request.js";

const $ = (id) => document.getElementById(id);
const page = { state: initialState, shownResult: null, stream: null, previewUrl: null, lastUpload: null };
const config = readConfig();

function dispatch(event) {
  page.state = reduce(page.state, event);
  render(page.state);
}

function render(state) {
  for (const [id, visible] of Object.entries(visibility(state))) $(id).hidden = !visible;
  for (const [id, text] of Object.entries(texts(state))) $(id).textContent = text;
  const choice = engineChoice(state);
  $("engine-phone").checked = choice.phoneChecked;
  $("engine-kiosk").checked = choice.kioskChecked;
  $("engine-phone").disabled = choice.phoneDisabled;
  if (state.result && state.result !== page.shownResult) showResult(state.result);
  page.shownResult = state.result;
}

// --- Camera -------------------------------------------------------------------------------

async function startCamera() {
  // getUserMedia exists only in a secure context (HTTPS or localhost); elsewhere the file
  // input with capture="environment" opens the phone's own camera app instead.
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    dispatch({ type: "camera-failed", message: MESSAGES.insecure });
    return;
  }
  try {
    // A preference, not {exact: ...}: laptops have only a front camera and must still work.
    page.stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 1280 } },
      audio: false,
    });
  } catch (err) {
    dispatch({ type: "camera-failed", message: cameraProblem(err?.name) });
    return;
  }
  $("camera-video").srcObject = page.stream;
  dispatch({ type: "camera-started" });
}

function stopCamera() {
  page.stream?.getTracks().forEach((track) => track.stop());
  page.stream = null;
  dispatch({ type: "camera-stopped" });
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
    dispatch({ type: "prediction-failed", failure: { message: MESSAGES.cameraNotReady, canRetry: false, offline: false } });
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

function postPhoto(blob, name) {
  const form = new FormData();
  form.append("image", blob, name);
  return requestJson("/api/predict", { method: "POST", body: form });
}

async function classify(blob, name) {
  page.lastUpload = { blob, name };
  dispatch({ type: "upload-started" });
  const where = whereToRun(page.state);
  // On the phone the photo goes nowhere: no request carries it.
  const outcome = where === "phone" ? await analyseOnPhone(blob, config) : await postPhoto(blob, name);
  if (outcome.ok) {
    stopCamera(); // the camera light goes off while the result is read
    setPreview(blob);
    dispatch({ type: "prediction-received", result: { ...outcome.body, where } });
    return;
  }
  if (outcome.kind === "phone") dispatch({ type: "engine-failed", message: outcome.message });
  dispatch({ type: "prediction-failed", failure: failureFor(outcome) });
  if (!page.stream) startCamera();
}

async function checkServer() {
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    dispatch({ type: "server-checked", ok: response.ok });
  } catch {
    dispatch({ type: "server-checked", ok: false });
  }
}

// --- The result, filled once per answer -----------------------------------------------------

function setPreview(blob) {
  if (page.previewUrl) URL.revokeObjectURL(page.previewUrl);
  page.previewUrl = URL.createObjectURL(blob);
  $("preview").src = page.previewUrl;
}

function showResult(view) {
  $("status-banner").className = `status status-${view.status}`;
  $("status-banner").dataset.status = view.status;
  $("result-heading").textContent = view.title;
  $("status-reasons").replaceChildren(...view.reasons.map(reasonItem));
  $("output-warnings").replaceChildren(...view.outputWarnings.map(reasonItem));
  $("top3").replaceChildren(...view.top.map(barRow));
  $("all-classes").replaceChildren(...view.all.map(tableRow));
  $("model-variant").textContent = view.model;
  $("result-where").textContent = view.whereText;
  $("result-where").dataset.where = view.where;
  $("disclaimer").textContent = view.disclaimer;
  $("result-heading").focus();
  $("announcer").textContent = view.announcement;
}

function reasonItem(reason) {
  const item = document.createElement("li");
  item.dataset.code = reason.code;
  item.className = `reason reason-${reason.code}`;
  item.textContent = reason.message;
  return item;
}

function barRow(p) {
  const row = $("bar-row").content.firstElementChild.cloneNode(true);
  row.dataset.code = p.code;
  row.dataset.probability = String(p.probability);
  row.querySelector(".bar-name").textContent = p.name;
  row.querySelector(".bar-code").textContent = `(${p.code})`;
  // CSSOM, not a style attribute: the CSP forbids inline styles in markup.
  row.querySelector(".bar-fill").style.width = p.barWidth;
  row.querySelector(".bar-value").textContent = p.percent;
  return row;
}

function tableRow(p) {
  const row = document.createElement("tr");
  row.dataset.code = p.code;
  const name = document.createElement("td");
  name.textContent = `${p.name} (${p.code})`;
  const value = document.createElement("td");
  value.className = "num";
  value.textContent = p.percent;
  row.append(name, value);
  return row;
}

function retake() {
  dispatch({ type: "retake" });
  $("capture-heading").scrollIntoView({ block: "start" });
  startCamera();
}

// --- Start ----------------------------------------------------------------------------------

// Resolves to the registration, or null where there is none (insecure context, or refused).
function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return Promise.resolve(null); // insecure context: no offline shell, still works
  return navigator.serviceWorker.register("/sw.js").catch((err) => {
    console.warn("LesionLite: service worker not registered, no offline page:", err);
    return null;
  });
}

function start() {
  $("capture").addEventListener("click", onCapture);
  $("camera-file").addEventListener("change", onFileChosen);
  $("gallery-file").addEventListener("change", onFileChosen);
  $("retake").addEventListener("click", retake);
  $("show-anyway").addEventListener("click", () => dispatch({ type: "show-anyway" }));
  $("error-retry").addEventListener("click", () => page.lastUpload && classify(page.lastUpload.blob, page.lastUpload.name));
  window.addEventListener("online", checkServer);
  window.addEventListener("offline", () => dispatch({ type: "server-checked", ok: false }));
  for (const id of ["engine-phone", "engine-kiosk"]) {
    $(id).addEventListener("change", (event) => dispatch({ type: "mode-chosen", mode: event.target.value }));
  }
  render(page.state);
  const registration = registerServiceWorker();
  bootOnPhone(config, registration).then(
    (variant) => dispatch({ type: "engine-ready", variant }),
    (err) => dispatch({ type: "engine-failed", message: err.message }),
  );
  checkServer();
  startCamera();
}

start(); // the entry module: loading it starts the page (logic.js, imported above, does nothing)
