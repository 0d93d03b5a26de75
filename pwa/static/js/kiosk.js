// LesionLite kiosk page (templates/kiosk.html), served at / when the server has a camera and the
// browser runs on the same machine: the live preview is the server's MJPEG stream, a capture is
// classified on the server (POST /api/camera/capture), whose answer carries the classified frame.
// After a result or an error, the page goes back to the camera by itself once nobody has touched
// it for the idle timeout, and forgets the photo: nothing is stored.

import { failureFor } from "./logic.js";
import { requestJson } from "./request.js";
import { CAMERA_POLL_MS, STREAM_RETRY_MS, idleNote, idleSeconds, kioskView, serverCameraProblem } from "./kiosk-logic.js";

const $ = (id) => document.getElementById(id);
const PREVIEW_URL = "/api/camera/preview";
const kiosk = {
  screen: "camera", // camera | busy | result | error
  idleSeconds: idleSeconds($("kiosk").dataset.idleSeconds),
  idleUntil: 0,
  idleTimer: null,
  pollTimer: null,
};

// The one place that decides what is visible on each screen.
function render() {
  const { screen } = kiosk;
  const shown = {
    "kiosk-preview": screen === "camera" || screen === "busy",
    "kiosk-frame": screen === "result",
    "kiosk-hint": screen === "camera",
    "kiosk-busy": screen === "busy",
    "kiosk-result": screen === "result",
    "kiosk-error": screen === "error",
    "kiosk-capture": screen === "camera" || screen === "busy",
    "kiosk-retake": screen === "result" || screen === "error",
    "kiosk-idle-note": (screen === "result" || screen === "error") && kiosk.idleSeconds > 0,
  };
  for (const [id, visible] of Object.entries(shown)) $(id).hidden = !visible;
  $("kiosk-capture").disabled = screen === "busy";
  document.body.dataset.screen = screen;
}

// --- Camera ---------------------------------------------------------------------------------

function startPreview() {
  $("kiosk-preview").src = `${PREVIEW_URL}?t=${Date.now()}`; // a new stream, never a cached one
}

function stopPreview() {
  $("kiosk-preview").removeAttribute("src"); // closes the stream: the server stops sending
}

async function pollCamera() {
  let outcome;
  try {
    const response = await fetch("/api/camera", { cache: "no-store" });
    outcome = { ok: response.ok, body: await response.json().catch(() => null) };
  } catch {
    outcome = { ok: false, body: null };
  }
  const problem = serverCameraProblem(outcome);
  const wasBroken = !$("kiosk-camera-problem").hidden;
  $("kiosk-camera-problem").textContent = problem;
  $("kiosk-camera-problem").hidden = !problem;
  if (wasBroken && !problem && kiosk.screen === "camera") startPreview(); // it recovered
}

function toCamera() {
  clearTimeout(kiosk.idleTimer);
  $("kiosk-frame").removeAttribute("src"); // the last person's photo leaves the page
  for (const id of ["kiosk-top-name", "kiosk-top-percent", "kiosk-status", "kiosk-error-text"]) $(id).textContent = "";
  for (const id of ["kiosk-others", "kiosk-reasons"]) $(id).replaceChildren();
  kiosk.screen = "camera";
  render();
  startPreview();
}

// --- Capture --------------------------------------------------------------------------------

function postCapture() {
  return requestJson("/api/camera/capture", { method: "POST" });
}

async function capture() {
  if (kiosk.screen !== "camera") return;
  kiosk.screen = "busy";
  render();
  const outcome = await postCapture();
  stopPreview();
  if (outcome.ok) showResult(kioskView(outcome.body));
  else showError(failureFor(outcome).message);
  startIdle();
}

function showResult(view) {
  if (view.frame) $("kiosk-frame").src = view.frame;
  const status = $("kiosk-status");
  status.textContent = view.statusLabel;
  status.dataset.status = view.status;
  $("kiosk-top").hidden = !view.showClass;
  $("kiosk-top").dataset.code = view.topCode;
  $("kiosk-top-name").textContent = view.topName;
  $("kiosk-top-percent").textContent = view.topPercent;
  $("kiosk-others").replaceChildren(...view.others.map(otherRow));
  $("kiosk-reasons").replaceChildren(...view.reasons.map(reasonItem));
  $("disclaimer").textContent = view.disclaimer;
  $("kiosk-announcer").textContent = view.announcement;
  kiosk.screen = "result";
  render();
}

function otherRow(p) {
  const row = document.createElement("li");
  row.dataset.code = p.code;
  const name = document.createElement("span");
  name.textContent = p.name;
  const value = document.createElement("span");
  value.textContent = p.percent;
  row.append(name, value);
  return row;
}

function reasonItem(reason) {
  const item = document.createElement("li");
  item.dataset.code = reason.code;
  item.className = `kiosk-reason-${reason.code}`;
  item.textContent = reason.message;
  return item;
}

function showError(message) {
  $("kiosk-error-text").textContent = message;
  kiosk.screen = "error";
  render();
}

// --- Idle: back to the camera when nobody touches a result ------------------------------------

function startIdle() {
  if (!kiosk.idleSeconds) return;
  kiosk.idleUntil = Date.now() + kiosk.idleSeconds * 1000;
  tickIdle();
}

function tickIdle() {
  clearTimeout(kiosk.idleTimer);
  if (kiosk.screen !== "result" && kiosk.screen !== "error") return;
  const left = (kiosk.idleUntil - Date.now()) / 1000;
  if (left <= 0) {
    toCamera();
    return;
  }
  $("kiosk-idle-note").textContent = idleNote(left);
  kiosk.idleTimer = setTimeout(tickIdle, Math.min(1000, left * 1000));
}

function touched() {
  if (kiosk.screen === "result" || kiosk.screen === "error") startIdle();
}

// --- Start ----------------------------------------------------------------------------------

function start() {
  $("kiosk-capture").addEventListener("click", capture);
  $("kiosk-retake").addEventListener("click", toCamera);
  $("kiosk-preview").addEventListener("error", () => {
    if (kiosk.screen === "camera") setTimeout(startPreview, STREAM_RETRY_MS);
  });
  document.addEventListener("pointerdown", touched, { passive: true });
  document.addEventListener("keydown", touched);
  kiosk.pollTimer = setInterval(() => kiosk.screen === "camera" && pollCamera(), CAMERA_POLL_MS);
  toCamera();
  pollCamera();
}

start();
