/**
 * Asset loading for the worker: same origin only, download progress, and the Cache API so a
 * second visit works offline.
 *
 * Strategy per asset: when a cached copy exists, revalidate it with `If-None-Match` /
 * `If-Modified-Since` (a 304 costs no body); when the network is unreachable, use the cached
 * copy; otherwise download with progress and store the response.
 *
 * @module
 */

/** Name of the Cache API cache that holds Ward's assets. */
export const CACHE_NAME = "ward-assets-v1";

/** Progress callback: bytes loaded so far, total when known, and where they come from. */
export type ProgressFn = (p: { loaded: number; total: number | null; source: "network" | "cache"; done: boolean }) => void;

/** An asset could not be loaded; the message names the URL and the cause. */
export class AssetError extends Error {
  /** HTTP status when the server answered, else 0. */
  readonly status: number;
  /** The URL that failed. */
  readonly url: string;
  constructor(url: string, status: number, message: string) {
    super(message);
    this.name = "AssetError";
    this.url = url;
    this.status = status;
  }
}

/**
 * Resolves `url` against `base` and refuses anything outside the page's origin: Ward never
 * fetches from another origin.
 */
export function sameOriginUrl(url: string, base: string, origin: string): URL {
  let u: URL;
  try {
    u = new URL(url, base);
  } catch {
    throw new AssetError(url, 0, `invalid asset URL ${JSON.stringify(url)}`);
  }
  if (u.origin !== origin) {
    throw new AssetError(u.href, 0, `refusing to load ${u.href}: assets must come from this origin (${origin})`);
  }
  return u;
}

async function openCache(): Promise<Cache | null> {
  try {
    if (typeof caches === "undefined") return null;
    return await caches.open(CACHE_NAME);
  } catch {
    return null; // e.g. an opaque origin: work without a cache
  }
}

async function readWithProgress(res: Response, source: "network" | "cache", onProgress?: ProgressFn): Promise<ArrayBuffer> {
  const lengthHeader = res.headers.get("content-length");
  const total = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : null;
  if (!res.body) {
    const buf = await res.arrayBuffer();
    onProgress?.({ loaded: buf.byteLength, total: buf.byteLength, source, done: true });
    return buf;
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  let lastReport = 0;
  onProgress?.({ loaded: 0, total, source, done: false });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    // Report at most every 256 KiB so a large model does not flood the page.
    if (loaded - lastReport >= 256 * 1024) {
      lastReport = loaded;
      onProgress?.({ loaded, total, source, done: false });
    }
  }
  const out = new Uint8Array(loaded);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  onProgress?.({ loaded, total: total ?? loaded, source, done: true });
  return out.buffer;
}

/**
 * Fetches a same-origin asset's bytes with progress, through the Cache API.
 * `fetchFn` is injectable for tests.
 */
export async function loadAsset(url: URL, onProgress?: ProgressFn, fetchFn: typeof fetch = fetch): Promise<ArrayBuffer> {
  const cache = await openCache();
  const cached = cache ? await cache.match(url.href) : undefined;
  const headers: Record<string, string> = {};
  if (cached) {
    const etag = cached.headers.get("etag");
    const modified = cached.headers.get("last-modified");
    if (etag) headers["if-none-match"] = etag;
    if (modified) headers["if-modified-since"] = modified;
  }
  let res: Response;
  try {
    // no-store: the Cache API is our cache; the HTTP cache would keep a second copy.
    res = await fetchFn(url.href, { headers, cache: "no-store", credentials: "same-origin" });
  } catch (e) {
    if (cached) return readWithProgress(cached, "cache", onProgress);
    throw new AssetError(url.href, 0, `could not fetch ${url.pathname}: ${(e as Error).message || "network error"} (and no cached copy)`);
  }
  if (res.status === 304 && cached) return readWithProgress(cached, "cache", onProgress);
  if (!res.ok) {
    if (cached && res.status >= 500) return readWithProgress(cached, "cache", onProgress);
    throw new AssetError(url.href, res.status, `could not fetch ${url.pathname}: HTTP ${res.status} ${res.statusText}`.trim());
  }
  const buf = await readWithProgress(res, "network", onProgress);
  if (cache) {
    const keep = new Headers();
    for (const h of ["content-type", "etag", "last-modified"]) {
      const v = res.headers.get(h);
      if (v) keep.set(h, v);
    }
    keep.set("content-length", String(buf.byteLength));
    try {
      await cache.put(url.href, new Response(buf.slice(0), { status: 200, headers: keep }));
    } catch {
      // Quota or storage errors only lose the offline copy; the bytes are still good.
    }
  }
  return buf;
}

/** Fetches a same-origin text asset (policy packs) through the same cache. */
export async function loadText(url: URL, onProgress?: ProgressFn, fetchFn: typeof fetch = fetch): Promise<string> {
  const buf = await loadAsset(url, onProgress, fetchFn);
  return new TextDecoder("utf-8", { fatal: false }).decode(buf);
}
