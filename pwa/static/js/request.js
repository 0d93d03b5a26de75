// The one way both pages (app.js, kiosk.js) ask the server for an answer: a JSON body with its
// status, or why there was none, never longer than the time limit.

import { REQUEST_TIMEOUT_MS } from "./logic.js";

// {kind: "http", ok, status, statusText, body} | {kind: "timeout"} | {kind: "network"};
// failureFor (logic.js) turns the last three into what the person reads.
export async function requestJson(url, init, timeoutMs = REQUEST_TIMEOUT_MS) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(url, { ...init, signal: controller.signal });
    const body = await response.json().catch(() => null);
    return { kind: "http", ok: response.ok, status: response.status, statusText: response.statusText, body };
  } catch {
    return { kind: controller.signal.aborted ? "timeout" : "network" };
  } finally {
    clearTimeout(timer);
  }
}
