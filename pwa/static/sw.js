// LesionLite service worker: keeps the app shell available offline. It never caches /api:
// the classifier lives on the server, and photos and predictions must not linger on a phone.

// The server replaces the token with a hash of the shell, so every release gets a new cache.
const VERSION = "__SHELL_VERSION__";
const CACHE = `lesionlite-shell-${VERSION}`;
const OFFLINE_PAGE = "/offline.html";
const SHELL = [
  "/",
  OFFLINE_PAGE,
  "/static/js/app.js",
  "/static/js/logic.js",
  "/static/styles.css",
  "/manifest.webmanifest",
  "/static/icons/icon-192.png",
  "/static/icons/icon-512.png",
  "/static/icons/maskable-512.png",
];

// Install: precache the whole shell, so the first offline visit already works.
self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

// Activate: drop every older shell version, then control already-open pages at once.
self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

function isApi(url) {
  return url.pathname.startsWith("/api/") || url.pathname === "/healthz";
}

// Only complete, successful same-origin answers are worth keeping (no errors, no redirects).
function cacheable(response) {
  return response.status < 400 && response.type === "basic";
}

async function putInCache(request, response) {
  if (!cacheable(response)) return;
  const cache = await caches.open(CACHE);
  await cache.put(request, response);
}

// Pages: the network first, so a running server always gives the latest page; offline, the
// cached copy, or the page that explains the classifier needs the server.
async function networkFirst(request) {
  try {
    const response = await fetch(request);
    await putInCache(request, response.clone());
    return response;
  } catch {
    const cache = await caches.open(CACHE);
    return (await cache.match(request, { ignoreSearch: true })) ?? (await cache.match(OFFLINE_PAGE));
  }
}

// Static files: versioned with the cache, so the cached copy is the right one.
async function cacheFirst(request) {
  const cached = await caches.match(request, { cacheName: CACHE });
  if (cached) return cached;
  const response = await fetch(request);
  await putInCache(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  // Non-GET (the predict POST), other origins and the API go straight to the network.
  if (request.method !== "GET" || url.origin !== self.location.origin || isApi(url)) return;
  event.respondWith(request.mode === "navigate" ? networkFirst(request) : cacheFirst(request));
});
