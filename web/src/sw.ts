/**
 * Service worker of the playground and the docs demo: keeps the page shell (HTML, scripts,
 * styles, the worker and the wasm glue) so that a second visit works offline. Large assets
 * (the model, the `.wasm`, policy packs) are cached by the Ward worker itself through the
 * Cache API and pass through here untouched.
 *
 * Strategy: network first (so a rebuilt app is picked up at once), the cached copy when the
 * network is unreachable. At install it precaches the files listed in `precache.json`, which
 * the build writes next to this script.
 *
 * @module
 */

declare const self: ServiceWorkerGlobalScope;

const SHELL_CACHE = "ward-shell-v1";
const SHELL_DESTINATIONS = new Set(["document", "script", "style", "worker", "sharedworker", "manifest", "image", "font"]);

self.addEventListener("install", (event: ExtendableEvent) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      try {
        const res = await fetch(new URL("precache.json", self.registration.scope), { cache: "no-store" });
        if (res.ok) {
          const list = (await res.json()) as string[];
          await cache.addAll(list.map((p) => new URL(p, self.registration.scope).href));
        }
      } catch {
        // Precaching is an optimisation: pages still get cached as they load.
      }
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event: ExtendableEvent) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("fetch", (event: FetchEvent) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/__")) return;
  if (req.mode !== "navigate" && !SHELL_DESTINATIONS.has(req.destination)) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      try {
        const res = await fetch(req);
        if (res.ok && res.type === "basic") {
          await cache.put(req, res.clone());
        }
        return res;
      } catch (e) {
        const hit = (await cache.match(req, { ignoreSearch: true })) ?? (req.mode === "navigate" ? await cache.match(new URL("./", self.registration.scope).href) : undefined);
        if (hit) return hit;
        throw e;
      }
    })(),
  );
});

export {};
