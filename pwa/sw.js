// The service worker: the app shell (this release's files) is precached at install and served
// from the cache, so the app opens with no network. Replication (/couch/) and the API (/api/)
// are never touched: they go to the network as if there were no worker. A new release installs
// beside the old one and waits until the worker chooses to switch (app.js asks).
// The server fills in the release and the file list (server/web/shell.py).

const RELEASE = "__LINLI_RELEASE__";
const SHELL = __LINLI_SHELL__;
const CACHE = `linli-shell-${RELEASE}`;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("linli-shell-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()));
});

self.addEventListener("message", (event) => {
  if (event.data === "activate-update") self.skipWaiting();
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const scope = new URL(self.registration.scope);
  if (event.request.method !== "GET" || url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) {
    return; // replication, the API, anything else: straight to the network
  }
  event.respondWith(
    caches.open(CACHE)
      .then((cache) => cache.match(event.request, { ignoreSearch: true }))
      .then((hit) => hit || fetch(event.request)));
});
