// LesionLite service worker: keeps the app shell, the on-device runtime and the model available
// offline, so that after one visit a phone analyses photos with no network at all. It never
// caches /api: photos and the server's predictions must not linger on a phone.

// The server replaces the tokens with hashes of the shell, of the runtime build and of the
// bundle's manifest: each has its own cache, so a new model does not re-download the runtime.
const CACHES = {
  shell: "lesionlite-shell-__SHELL_VERSION__",
  runtime: "lesionlite-runtime-__RUNTIME_VERSION__",
  model: "lesionlite-model-__BUNDLE_VERSION__",
};
const OFFLINE_PAGE = "/offline.html";
const SHELL = [
  "/",
  OFFLINE_PAGE,
  "/static/js/app.js",
  "/static/js/logic.js",
  "/static/js/answer.js",
  "/static/js/onphone.js",
  "/static/js/ondevice.js",
  "/static/js/preprocess.js",
  "/static/js/decode.js",
  "/static/js/photo-limits.js",
  "/static/js/honesty.js",
  "/static/js/integrity.js",
  "/static/js/request.js",
  "/static/base.css",
  "/static/styles.css",
  "/manifest.webmanifest",
  "/static/icons/icon-192.png",
  "/static/icons/icon-512.png",
  "/static/icons/maskable-512.png",
];
// The runtime and the model are not precached: the page downloads them once, through this
// worker, which keeps exactly the wasm build the browser picked (relaxed SIMD or compat).
const RUNTIME_PREFIX = "/static/vendor/";
const MODEL_PREFIX = "/bundle/";

// Install: precache the whole shell, so the first offline visit already opens.
self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHES.shell)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

// Activate: drop every cache of an older shell, runtime or bundle, then control open pages at once.
self.addEventListener("activate", (event) => {
  const current = new Set(Object.values(CACHES));
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => !current.has(key)).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

function isApi(url) {
  return url.pathname.startsWith("/api/") || url.pathname === "/healthz";
}

function cacheFor(url) {
  if (url.pathname.startsWith(RUNTIME_PREFIX)) return CACHES.runtime;
  if (url.pathname.startsWith(MODEL_PREFIX)) return CACHES.model;
  return CACHES.shell;
}

// Only complete, successful same-origin answers are worth keeping (no errors, no redirects).
function cacheable(response) {
  return response.status < 400 && response.type === "basic";
}

async function putInCache(name, request, response) {
  if (!cacheable(response)) return;
  const cache = await caches.open(name);
  await cache.put(request, response);
}

// Pages: the network first, so a running server always gives the latest page; offline, the
// cached copy, or the page that explains what works without a connection.
async function networkFirst(request) {
  try {
    const response = await fetch(request);
    await putInCache(CACHES.shell, request, response.clone());
    return response;
  } catch {
    const cache = await caches.open(CACHES.shell);
    return (await cache.match(request, { ignoreSearch: true })) ?? (await cache.match(OFFLINE_PAGE));
  }
}

// Static files, the runtime and the model: versioned with their cache, so the cached copy is the right one.
async function cacheFirst(request, name) {
  const cached = await caches.match(request, { cacheName: name });
  if (cached) return cached;
  const response = await fetch(request);
  await putInCache(name, request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  // Non-GET (the predict POST), other origins and the API go straight to the network.
  if (request.method !== "GET" || url.origin !== self.location.origin || isApi(url)) return;
  event.respondWith(request.mode === "navigate" ? networkFirst(request) : cacheFirst(request, cacheFor(url)));
});
