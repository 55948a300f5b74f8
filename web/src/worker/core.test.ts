import { beforeEach, describe, expect, it } from "vitest";
import { WardClient, WardError } from "../client.js";
import type { WorkerReport } from "../protocol.js";
import { FakeOrigin, InProcessWorker, installFakeCaches, ORIGIN, standardOrigin } from "../test/fakes.js";

const policy = { packs: [`${ORIGIN}/policies/python/pack.yaml`] };
const model = { kind: "url" as const, base: `${ORIGIN}/models/tiny/` };

async function ready(origin: FakeOrigin = standardOrigin()) {
  const worker = new InProcessWorker(origin);
  const client = new WardClient(worker);
  const progress: WorkerReport[] = [];
  const r = await client.init({ wasmBase: `${ORIGIN}/wasm/`, model, policy, backend: "cpu", onProgress: (p) => progress.push(p) });
  return { worker, client, ready: r, progress };
}

beforeEach(() => {
  installFakeCaches();
});

describe("worker protocol", () => {
  it("init loads the wasm, the pack hierarchy and the model, with progress", async () => {
    const { worker, ready: r, progress } = await ready();
    expect(r.type).toBe("ready");
    expect(r.backend).toEqual({ backend: "cpu" });
    expect(r.model).toEqual({ name: "tiny", vocab_size: 16 });
    expect(r.policy.rules.map((x) => x.id).sort()).toEqual(["base.secret", "python.os-system"]);
    expect(Object.keys(worker.engine.policy!.files).sort()).toEqual(["policies/base/pack.yaml", "policies/python/pack.yaml"]);
    const assets = new Set(progress.map((p) => (p.type === "progress" ? p.asset : "")));
    for (const a of ["ward_web_bg.wasm", "tiny/config.json", "tiny/model.safetensors", "tiny/tokenizer.json", "python/pack.yaml", "base/pack.yaml"]) expect(assets).toContain(a);
    expect(progress.filter((p) => p.type === "progress" && p.done).length).toBeGreaterThanOrEqual(6);
  });

  it("passes a pack's precompiled artefact to the engine, and compiles when there is none", async () => {
    const origin = standardOrigin();
    const art = new Uint8Array([87, 65, 82, 68, 80, 79, 76, 0, 2]);
    origin.put("/policies/python/pack.wardpol", art);
    const { worker, progress } = await ready(origin);
    expect(worker.engine.policy!.artefact?.url).toBe(`${ORIGIN}/policies/python/pack.wardpol`);
    expect([...worker.engine.policy!.artefact!.bytes]).toEqual([...art]);
    expect(progress.some((p) => p.type === "progress" && p.asset === "python/pack.wardpol" && p.done)).toBe(true);
    // The standard origin has none: a 404 is no error, the engine gets only the files.
    const plain = await ready();
    expect(plain.worker.engine.policy!.artefact).toBeUndefined();
    // Inline YAML or a combination of packs is never precompiled: nothing is fetched for it.
    await plain.client.setPolicy({ packs: [`${ORIGIN}/policies/python/pack.yaml`], disable: ["python.os-system"] });
    expect(plain.worker.engine.policy!.artefact).toBeUndefined();
    expect(plain.worker.engine.policy!.root).toBe("inline/root/pack.yaml");
  });

  it("hands the policy's lift artefact for the model to prepare when the server has one", async () => {
    const origin = standardOrigin();
    origin.put("/policies/python/pack.wardpol", new Uint8Array([87, 65, 82, 68, 80, 79, 76, 0, 2]));
    const rows = new Uint8Array([87, 65, 82, 68, 76, 73, 70, 84, 1]);
    origin.put("/policies/python/pack.tiny.wardlift", rows);
    const { worker, client, progress, ready: r } = await ready(origin);
    expect(r.policy.rows).toBe("artefact");
    expect(r.policy.text).toContain("token rows loaded from the lift artefact");
    expect(worker.engine.preparedRows.length).toBe(1);
    expect([...worker.engine.preparedRows[0]!]).toEqual([...rows]);
    expect(progress.some((p) => p.type === "progress" && p.asset === "python/pack.tiny.wardlift" && p.done)).toBe(true);
    // A pack without one (404): the rows are built, and nothing fails.
    const base = await client.setPolicy({ packs: [`${ORIGIN}/policies/base/pack.yaml`] });
    expect(worker.engine.preparedRows[1]).toBeUndefined();
    expect(base.rows).toBe("built");
    // Without a precompiled artefact no lift artefact is fetched at all.
    const plain = await ready();
    expect(plain.worker.engine.preparedRows).toEqual([undefined]);
  });

  it("lifts the policy for the model ahead of the first generate, at init and on a new policy", async () => {
    const { client, worker } = await ready();
    expect(worker.engine.prepared).toEqual(["policies/python/pack.yaml"]);
    await client.setPolicy({ packs: [`${ORIGIN}/policies/base/pack.yaml`] });
    expect(worker.engine.prepared).toEqual(["policies/python/pack.yaml", "policies/base/pack.yaml"]);
  });

  it("generate streams start, one step per commit, then the result", async () => {
    const { client, worker } = await ready();
    const steps: number[] = [];
    let holes: number[] = [];
    const h = client.generate({ prompt: "x = <|hole:3|>", seed: 4, steps: 3 }, { onStart: (s) => (holes = s.holes), onStep: (e) => steps.push(e.step) });
    const result = await h.done;
    expect(holes).toEqual([1, 2, 3]);
    expect(steps).toEqual([0, 1, 2]);
    expect(result?.text).toBe("x = t1t2t3");
    expect(result?.certificate.verdict).toBe("clean");
    expect(worker.engine.requests[0]).toEqual({ prompt: "x = <|hole:3|>", seed: 4, steps: 3 });
    expect(JSON.parse(await client.sarif()).version).toBe("2.1.0");
  });

  it("cancel stops a run between steps and the worker takes the next one", async () => {
    const { client, worker } = await ready();
    let seen = 0;
    const h = client.generate({ prompt: "<|hole:50|>" }, { onStep: () => ++seen === 2 && h.cancel() });
    expect(await h.done).toBeNull();
    expect(seen).toBeLessThan(50);
    expect(worker.engine.cancelled).toBe(1);
    expect(worker.reports.some((r) => r.type === "cancelled")).toBe(true);
    expect((await client.generate({ prompt: "<|hole:2|>" }).done)?.text).toBe("t1t2");
  });

  it("a second generate while one runs is refused as busy", async () => {
    const { client } = await ready();
    const first = client.generate({ prompt: "<|hole:20|>" });
    await expect(client.generate({ prompt: "<|hole:2|>" }).done).rejects.toMatchObject({ code: "busy" });
    first.cancel();
    await first.done;
  });

  it("errors name their cause", async () => {
    const worker = new InProcessWorker();
    const client = new WardClient(worker);
    await expect(client.check("x")).rejects.toMatchObject({ code: "not-ready", message: expect.stringContaining("send `init` first") });
    // A model file missing from the server is named.
    const origin = standardOrigin();
    origin.files.delete("/models/tiny/tokenizer.json");
    await expect(new WardClient(new InProcessWorker(origin)).init({ wasmBase: `${ORIGIN}/wasm/`, model, policy })).rejects.toMatchObject({ code: "model", message: "tiny/tokenizer.json is missing (HTTP 404 at /models/tiny/tokenizer.json)" });
    // A broken config names the file and the field.
    const o2 = standardOrigin();
    o2.put("/models/tiny/config.json", JSON.stringify({ hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 1 }), '"v2"');
    await expect(new WardClient(new InProcessWorker(o2)).init({ wasmBase: `${ORIGIN}/wasm/`, model, policy })).rejects.toThrow("tiny/config.json: field `vocab_size` is missing or not a number");
    // Another origin is refused before any request.
    const o3 = standardOrigin();
    await expect(new WardClient(new InProcessWorker(o3)).init({ wasmBase: `${ORIGIN}/wasm/`, model: { kind: "url", base: "https://cdn.example/m/" }, policy })).rejects.toMatchObject({ code: "asset", message: expect.stringContaining("assets must come from this origin") });
    expect(o3.requests.some((r) => r.url.startsWith("https://cdn.example"))).toBe(false);
    // A prompt that already violates is a prompt error.
    const { client: c4 } = await ready();
    await expect(c4.generate({ prompt: "os.system(x) <|hole:2|>" }).done).rejects.toMatchObject({ code: "prompt", message: expect.stringContaining("python.os-system") });
  });

  it("a policy-only build refuses a model before downloading it, and still checks", async () => {
    const origin = standardOrigin();
    const worker = new InProcessWorker(origin);
    worker.engine.generator = false;
    const client = new WardClient(worker);
    await expect(client.init({ wasmBase: `${ORIGIN}/wasm/`, model, policy })).rejects.toMatchObject({ code: "wasm-api-missing", message: expect.stringContaining("no `Generator`") });
    expect(origin.requests.some((r) => r.url.includes("/models/"))).toBe(false);
    const r = await client.init({ wasmBase: `${ORIGIN}/wasm/`, policy });
    expect(r.model).toBeNull();
    expect(await client.check("os.system(1)")).toHaveLength(1);
  });

  it("malformed commands get a protocol error, not a crash", async () => {
    const worker = new InProcessWorker();
    await worker.core.handle({ type: "generate", id: 9, request: { prompt: "x", strategy: "best" } });
    expect(worker.reports.at(-1)).toMatchObject({ type: "error", id: 9, code: "protocol", message: expect.stringContaining("`strategy`") });
  });

  it("a custom rule's compile error maps back to the editor's line", async () => {
    const { client } = await ready();
    const err = (await client.setPolicy({ ...policy, inline: "rules:\n  - id: custom.x\n    severity: ERROR\n    pattern-regex: 'a(?=b)'\n" }).catch((e) => e)) as WardError;
    expect(err).toBeInstanceOf(WardError);
    expect(err.code).toBe("policy");
    // The wasm saw one line more (the `pack:` line added in front).
    expect(err.policyError).toMatchObject({ rule_id: "custom.x", line: 4, column: 20 });
    // The previous policy is still usable.
    expect(await client.check("os.system(1)")).toHaveLength(1);
  });

  it("set-policy with disabled rules reports them as disabled", async () => {
    const { client } = await ready();
    const info = await client.setPolicy({ ...policy, disable: ["python.os-system"] });
    expect(info.rules.find((r) => r.id === "python.os-system")?.status).toBe("disabled");
  });
});
