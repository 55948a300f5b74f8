import { beforeEach, describe, expect, it } from "vitest";
import { FakeOrigin, installFakeCaches, ORIGIN } from "../test/fakes.js";
import { AssetError, loadAsset, sameOriginUrl } from "./assets.js";

let store: Map<string, Response>;
beforeEach(() => {
  store = installFakeCaches();
});

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const big = new Uint8Array(1_000_000).map((_, i) => i % 251);

describe("loadAsset", () => {
  it("downloads with progress and keeps a copy", async () => {
    const o = new FakeOrigin();
    o.put("/m/model.safetensors", big);
    const seen: Array<[number, number | null, string, boolean]> = [];
    const buf = await loadAsset(new URL(`${ORIGIN}/m/model.safetensors`), (p) => seen.push([p.loaded, p.total, p.source, p.done]), o.fetch);
    expect(sameBytes(new Uint8Array(buf), big)).toBe(true);
    expect(seen[0]).toEqual([0, 1_000_000, "network", false]);
    expect(seen.at(-1)).toEqual([1_000_000, 1_000_000, "network", true]);
    expect(store.has(`${ORIGIN}/m/model.safetensors`)).toBe(true);
  });

  it("revalidates the cached copy (304) and works offline", async () => {
    const o = new FakeOrigin();
    o.put("/m/a.json", "{}");
    await loadAsset(new URL(`${ORIGIN}/m/a.json`), undefined, o.fetch);
    const sources: string[] = [];
    await loadAsset(new URL(`${ORIGIN}/m/a.json`), (p) => sources.push(p.source), o.fetch);
    expect(o.requests.at(-1)?.headers["if-none-match"]).toBe('"/m/a.json-1"');
    expect(sources.at(-1)).toBe("cache");
    o.offline = true;
    const text = new TextDecoder().decode(await loadAsset(new URL(`${ORIGIN}/m/a.json`), undefined, o.fetch));
    expect(text).toBe("{}");
    // Offline without a copy: the error names the path.
    await expect(loadAsset(new URL(`${ORIGIN}/m/b.json`), undefined, o.fetch)).rejects.toThrow("could not fetch /m/b.json: Failed to fetch (and no cached copy)");
  });

  it("a changed file replaces the cached copy", async () => {
    const o = new FakeOrigin();
    o.put("/p.yaml", "one");
    await loadAsset(new URL(`${ORIGIN}/p.yaml`), undefined, o.fetch);
    o.put("/p.yaml", "two", '"v2"');
    expect(new TextDecoder().decode(await loadAsset(new URL(`${ORIGIN}/p.yaml`), undefined, o.fetch))).toBe("two");
  });

  it("HTTP errors name the status", async () => {
    const o = new FakeOrigin();
    const e = await loadAsset(new URL(`${ORIGIN}/nope.wasm`), undefined, o.fetch).catch((x) => x);
    expect(e).toBeInstanceOf(AssetError);
    expect(e.status).toBe(404);
    expect(e.message).toBe("could not fetch /nope.wasm: HTTP 404 Not Found");
  });
});

describe("sameOriginUrl", () => {
  it("resolves relative URLs and refuses other origins", () => {
    expect(sameOriginUrl("../m/", `${ORIGIN}/app/index.html`, ORIGIN).href).toBe(`${ORIGIN}/m/`);
    expect(() => sameOriginUrl("https://evil.example/x", `${ORIGIN}/`, ORIGIN)).toThrow("assets must come from this origin");
    expect(() => sameOriginUrl("http://127.0.0.1:9999/x", `${ORIGIN}/`, ORIGIN)).toThrow("refusing to load");
  });
});
