/* playfair service worker: keeps the shell (styles, scripts, icon, offline page)
   available offline; pages go to the network first and fall back to the last copy seen,
   then to /offline. Audio and the API are never cached here (they are money and
   ranges). */
"use strict";
const SHELL = "playfair-shell-v2";
const PAGES = "playfair-pages-v1";
const SHELL_FILES = ["/static/style.css", "/static/player.css", "/static/player.js",
  "/static/app.js", "/static/icon.svg", "/offline"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(SHELL_FILES)));
  self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((key) => key !== SHELL && key !== PAGES).map((key) => caches.delete(key)))));
  self.clients.claim();
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname.includes("/stream")
      || url.pathname.endsWith("/preview")) return;
  if (url.pathname.startsWith("/static/")) {
    event.respondWith(caches.match(request).then((hit) => hit || fetch(request)));
    return;
  }
  if (request.mode === "navigate" || (request.headers.get("Accept") || "").includes("text/html")) {
    event.respondWith(fetch(request).then((response) => {
      if (response.ok) {
        const copy = response.clone();
        caches.open(PAGES).then((cache) => cache.put(request, copy));
      }
      return response;
    }).catch(() => caches.match(request).then((hit) => hit || caches.match("/offline"))));
  }
});
