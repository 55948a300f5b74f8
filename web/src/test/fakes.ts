/**
 * Test doubles for the unit tests: an in-memory HTTP origin, an in-memory Cache API, and an
 * engine that stands in for the wasm module (it fills holes with scripted tokens and reports a
 * blocked candidate), wired to the real `WorkerCore` behind a `WorkerLike`. Only tests use
 * these; the shipped worker always runs the wasm.
 */
import type { WorkerLike } from "../client.js";
import type { BackendChoice, Finding, GenerateRequest, GenerationResult, PolicyInfo, StartEvent, StepEvent, WorkerReport } from "../protocol.js";
import { holeSizes } from "../protocol.js";
import { WorkerCore } from "../worker/core.js";
import type { Engine, ModelBytes, PrepareInfo, Run } from "../worker/engine.js";
import { PolicyCompileError } from "../worker/engine.js";
import type { GatheredPolicy } from "../worker/policy-files.js";

export const ORIGIN = "http://127.0.0.1:8080";

/** A fake origin: path → body; records requests. */
export class FakeOrigin {
  files = new Map<string, { body: Uint8Array; etag: string }>();
  requests: Array<{ url: string; headers: Record<string, string> }> = [];
  offline = false;

  put(path: string, body: string | Uint8Array, etag = `"${path}-1"`): void {
    this.files.set(path, { body: typeof body === "string" ? new TextEncoder().encode(body) : body, etag });
  }

  fetch: typeof fetch = async (input, init) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    const headers = Object.fromEntries(Object.entries((init?.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]));
    this.requests.push({ url: url.href, headers });
    if (this.offline) throw new TypeError("Failed to fetch");
    const f = this.files.get(url.pathname);
    if (!f) return new Response("not found", { status: 404, statusText: "Not Found" });
    if (headers["if-none-match"] === f.etag) return new Response(null, { status: 304, headers: { etag: f.etag } });
    return new Response(f.body.slice(0), { status: 200, headers: { etag: f.etag, "content-length": String(f.body.byteLength) } });
  };
}

/** An in-memory `caches` (CacheStorage) sufficient for the asset loader. */
export function installFakeCaches(): Map<string, Response> {
  const store = new Map<string, Response>();
  const cache = {
    match: async (key: string) => store.get(key)?.clone(),
    put: async (key: string, res: Response) => {
      store.set(key, res.clone());
    },
  };
  (globalThis as unknown as { caches: unknown }).caches = { open: async () => cache };
  return store;
}

/** Minimal valid model files (what `checkModelFiles` accepts). */
export function modelFiles(): { config: string; weights: Uint8Array; tokenizer: string } {
  const header = new TextEncoder().encode(JSON.stringify({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }));
  const weights = new Uint8Array(8 + header.byteLength + 4);
  new DataView(weights.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  weights.set(header, 8);
  return {
    config: JSON.stringify({ hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 1, vocab_size: 16, mask_token_id: 1 }),
    weights,
    tokenizer: JSON.stringify({ model: { type: "BPE", vocab: {} } }),
  };
}

/** Serves the default model and two packs from a fake origin. */
export function standardOrigin(): FakeOrigin {
  const o = new FakeOrigin();
  const m = modelFiles();
  o.put("/models/tiny/config.json", m.config);
  o.put("/models/tiny/model.safetensors", m.weights);
  o.put("/models/tiny/tokenizer.json", m.tokenizer);
  o.put("/policies/base/pack.yaml", "pack: base\nrules:\n  - id: base.secret\n    severity: ERROR\n    message: no secrets\n    pattern-regex: 'AKIA[0-9A-Z]{16}'\n");
  o.put("/policies/python/pack.yaml", "pack: python\nextends: [../base]\nrules:\n  - id: python.os-system\n    severity: ERROR\n    message: no os.system\n    metadata: {cwe: 'CWE-78'}\n    pattern-regex: 'os\\.system\\('\n");
  return o;
}

/**
 * The wasm stand-in: fills each hole position with `t<position>` one position per step,
 * and reports that `system` was blocked at the first hole by python.os-system.
 */
export class FakeEngine implements Engine {
  policy: GatheredPolicy | null = null;
  model: ModelBytes | null = null;
  requests: GenerateRequest[] = [];
  oracles: Array<string | undefined> = [];
  cancelled = 0;

  setPolicy(p: GatheredPolicy): PolicyInfo {
    const text = p.files[p.root] ?? "";
    const bad = /pattern-regex: '([^']*\(\?[=!<][^']*)'/.exec(Object.values(p.files).join("\n"));
    if (bad) {
      throw new PolicyCompileError({ message: `rule custom.x: look-around is not supported (line 5, column 20)`, file: "inline/custom/pack.yaml", rule_id: "custom.x", line: 5, column: 20 });
    }
    this.policy = p;
    const ids = [...Object.values(p.files).join("\n").matchAll(/- id: ([\w.-]+)/g)].map((m) => m[1]);
    const disabled = /disable: \[([^\]]*)\]/.exec(text)?.[1].split(",").map((s) => JSON.parse(s.trim())) ?? [];
    return {
      digest: "sha256:fake",
      rules: ids.map((id) => ({ id, severity: "ERROR", status: disabled.includes(id) ? "disabled" : "enforced", message: `message of ${id}`, cwe: id === "python.os-system" ? ["CWE-78"] : [] })),
    };
  }

  check(text: string): Finding[] {
    const i = text.indexOf("os.system(");
    if (i < 0) return [];
    return [{ rule_id: "python.os-system", message: "no os.system", severity: "ERROR", enforced: true, cwe: ["CWE-78"], start: i, end: i + 10, line: 1, column: i + 1 }];
  }

  async loadModel(model: ModelBytes, backend: BackendChoice) {
    this.model = model;
    return { backend: { backend: backend === "webgpu" ? "webgpu" : "cpu", adapter: backend === "webgpu" ? "SwiftShader" : undefined }, vocab_size: 16 };
  }

  hasModel(): boolean {
    return this.model !== null;
  }

  /** Policies (by root) the engine was asked to prepare for the model. */
  prepared: string[] = [];
  /** The lift artefact bytes each prepare got (undefined: none). */
  preparedRows: (Uint8Array | undefined)[] = [];
  prepare(rows?: Uint8Array): PrepareInfo | null {
    if (!this.model || !this.policy) return null;
    this.prepared.push(this.policy.root);
    this.preparedRows.push(rows);
    return rows ? { ms: 0.5, rows: "artefact" } : { ms: 1, rows: "built" };
  }

  /** Set false to stand in for the policy-only build. */
  generator = true;

  canGenerate(): boolean {
    return this.generator;
  }

  start(request: GenerateRequest, oracle?: string): Run {
    this.requests.push(request);
    this.oracles.push(oracle);
    const sizes = holeSizes(request.prompt);
    if (request.prompt.includes("os.system(")) {
      const e = new Error("prompt already violates python.os-system at bytes 0..10");
      e.name = "PromptError";
      throw e;
    }
    const prefix = request.prompt.split("<|hole:")[0];
    const holes = Array.from({ length: sizes.reduce((a, b) => a + b, 0) }, (_, i) => i + 1);
    const start: StartEvent = {
      type: "start",
      canvas: [{ position: 0, token: 5, text: prefix, kind: "fixed" }, ...holes.map((p) => ({ position: p, token: null, text: "", kind: "hole" as const }))],
      holes,
      steps: request.steps ?? holes.length,
      enforce: request.enforce !== false,
    };
    let next = 0;
    let stopped = false;
    const engine = this;
    return {
      start,
      step(): StepEvent | null {
        if (stopped || next >= holes.length) return null;
        const pos = holes[next];
        const ev: StepEvent = {
          type: "step",
          step: next,
          block: 0,
          committed: [{ position: pos, token: 7, text: `t${pos}`, probability: 0.5 }],
          blocked: next === 0 && request.enforce !== false ? [{ position: pos, token: 9, text: "system", probability: 0.4, rule_ids: ["python.os-system"] }] : [],
          remasks: [],
          open: holes.length - next - 1,
          model_ms: 1,
          guard_ms: 0.1,
        };
        next++;
        return ev;
      },
      cancel() {
        stopped = true;
        engine.cancelled++;
      },
      result(): GenerationResult {
        const filled = holes.map((p) => `t${p}`).join("");
        return {
          type: "result",
          text: prefix + filled,
          holes: [filled],
          tokens: holes.length,
          steps: holes.length,
          forward_passes: holes.length,
          blocked_candidates: request.enforce !== false ? 1 : 0,
          remasks: 0,
          mean_logprob: -0.7,
          timings: { total_ms: 10, model_ms: 8, guard_ms: 1 },
          certificate: {
            format: "ward-certificate/1",
            policy: request.enforce !== false ? { digest: "sha256:fake", enforced_rules: [{ id: "python.os-system", severity: "ERROR", message: "no os.system", cwe: ["CWE-78"], blocked_candidates: 1, blocked_mass: 0.4 }], reported_rules: [] } : null,
            model: { digest: "sha256:model", name: "tiny", vocab_size: 16 },
            request,
            seed: request.seed ?? 0,
            blocked_total: request.enforce !== false ? 1 : 0,
            remasks: 0,
            findings: [],
            enforced_findings: 0,
            verdict: "clean",
          },
        };
      },
      sarif: () => JSON.stringify({ version: "2.1.0", runs: [] }),
    };
  }
}

/** A `WorkerLike` that runs the real `WorkerCore` in-process over a `FakeEngine`. */
export class InProcessWorker implements WorkerLike {
  readonly engine = new FakeEngine();
  readonly posted: unknown[] = [];
  readonly reports: WorkerReport[] = [];
  readonly core: WorkerCore;
  terminated = false;
  private listeners: Array<(ev: MessageEvent) => void> = [];

  constructor(readonly origin: FakeOrigin = standardOrigin(), stepDelay = 0) {
    this.core = new WorkerCore(
      { origin: ORIGIN, base: `${ORIGIN}/`, fetch: origin.fetch, sleep: (ms) => new Promise((r) => setTimeout(r, ms + stepDelay)) },
      async (_base, onProgress) => {
        onProgress(10, 10, "network", true);
        return this.engine;
      },
      (report) => {
        this.reports.push(report);
        // Structured clone, as postMessage does.
        const copy = structuredClone(report);
        queueMicrotask(() => this.listeners.forEach((l) => l({ data: copy } as MessageEvent)));
      },
    );
  }

  postMessage(message: unknown): void {
    this.posted.push(structuredClone(message));
    void this.core.handle(structuredClone(message));
  }

  addEventListener(type: "message" | "error", listener: (ev: MessageEvent) => void): void {
    if (type === "message") this.listeners.push(listener);
  }

  terminate(): void {
    this.terminated = true;
  }
}
