/**
 * The worker's command handling, independent of the global worker scope: it owns the engine
 * (the wasm module), the assets and the generation loop, and answers every command with
 * reports of the protocol. `worker.ts` wires it to `self`; tests drive it directly.
 *
 * @module
 */

import type {
  ErrorCode,
  GenerateCommand,
  InitCommand,
  ModelSource,
  PolicyInfo,
  PolicySource,
  WorkerCommand,
  WorkerReport,
} from "../protocol.js";
import { validateCommand } from "../protocol.js";
import { AssetError, loadAsset, sameOriginUrl } from "./assets.js";
import { checkModelFiles, Engine, EngineLoader, ModelBytes, ModelFileError, PolicyCompileError, PrepareInfo, Run, WasmUnavailableError } from "./engine.js";
import { artefactUrl, gatherPolicy, GatheredPolicy, liftUrl } from "./policy-files.js";

/** Adds what `prepare` did (where the token rows came from, and how long) to the policy's description. */
function notePrepared(policy: PolicyInfo, prep: PrepareInfo | null | undefined): void {
  if (!prep) return;
  policy.rows = prep.rows;
  policy.rowsMs = prep.ms;
  if (prep.note) policy.rowsNote = prep.note;
  const line =
    prep.rows === "artefact"
      ? `token rows loaded from the lift artefact in ${prep.ms.toFixed(1)} ms`
      : `token rows built in ${prep.ms.toFixed(1)} ms${prep.note ? ` (${prep.note})` : ""}`;
  policy.text = policy.text ? `${policy.text}\n${line}` : line;
}

/** Where the worker runs: its origin, how it fetches and how it waits between steps. */
export interface CoreEnv {
  /** Origin of the page; every asset must come from it. */
  origin: string;
  /** Base URL that relative asset URLs resolve against (the page's URL). */
  base: string;
  fetch: typeof fetch;
  /** Waits `ms` milliseconds (and lets queued commands, such as cancel, run). */
  sleep: (ms: number) => Promise<void>;
}

/** The worker's state machine. */
export class WorkerCore {
  private engine: Engine | null = null;
  private wasmBase: string | null = null;
  private running: { id: number; run: Run; cancelled: boolean } | null = null;
  private lastRun: Run | null = null;
  private policyOffset = 0;
  /** The policy last gathered and the model last loaded (for the lift artefact's URL). */
  private gathered: GatheredPolicy | null = null;
  private modelName: string | null = null;

  constructor(
    private readonly env: CoreEnv,
    private readonly loader: EngineLoader,
    private readonly post: (report: WorkerReport, transfer?: Transferable[]) => void,
  ) {}

  /** Handles one message from the page. Never throws: failures become error reports. */
  async handle(data: unknown): Promise<void> {
    const v = validateCommand(data);
    if (!v.ok) {
      this.post({ type: "error", id: v.id, code: "protocol", message: v.message });
      return;
    }
    const cmd = v.command;
    try {
      await this.dispatch(cmd);
    } catch (e) {
      this.fail(cmd.id, e);
    }
  }

  private async dispatch(cmd: WorkerCommand): Promise<void> {
    switch (cmd.type) {
      case "init":
        return this.init(cmd);
      case "set-policy": {
        const engine = this.requireEngine();
        const policy = engine.setPolicy(await this.gather(cmd.id, cmd.policy));
        if (engine.hasModel() && !this.running) notePrepared(policy, engine.prepare?.(await this.liftRows(cmd.id)));
        this.post({ type: "policy", id: cmd.id, policy });
        return;
      }
      case "check": {
        const findings = this.requireEngine().check(cmd.text);
        this.post({ type: "check", id: cmd.id, findings });
        return;
      }
      case "sarif": {
        if (!this.lastRun) throw new CoreError("not-ready", "no finished generation yet: generate first, then ask for SARIF");
        this.post({ type: "sarif", id: cmd.id, sarif: this.lastRun.sarif() });
        return;
      }
      case "cancel": {
        if (this.running && this.running.id === cmd.target) {
          this.running.cancelled = true;
          this.running.run.cancel();
        }
        return;
      }
      case "generate":
        return this.generate(cmd);
    }
  }

  private async init(cmd: InitCommand): Promise<void> {
    if (this.running) throw new CoreError("busy", "a generation is running: cancel it before loading another model or policy");
    const wasmBase = sameOriginUrl(cmd.wasmBase, this.env.base, this.env.origin).href;
    if (!this.engine || this.wasmBase !== wasmBase) {
      this.engine = await this.loader(wasmBase, (loaded, total, source, done) =>
        this.post({ type: "progress", id: cmd.id, asset: "ward_web_bg.wasm", url: new URL("ward_web_bg.wasm", wasmBase).href, loaded, total, source, done }),
      );
      this.wasmBase = wasmBase;
    }
    const engine = this.engine;
    // Files opened from disk are checked at once (they are in memory); a build without the
    // generator says so before a model is downloaded.
    if (cmd.model?.kind === "files") checkModelFiles(await this.modelBytes(cmd.id, cmd.model));
    if (cmd.model && !engine.canGenerate()) {
      throw new WasmUnavailableError("wasm-api-missing", "this wasm package has no `Generator` (it is the policy-only build, or the generator is not there yet)");
    }
    const policy = engine.setPolicy(await this.gather(cmd.id, cmd.policy));
    let backend = null;
    let model = null;
    if (cmd.model) {
      const bytes = await this.modelBytes(cmd.id, cmd.model);
      const checked = checkModelFiles(bytes);
      const loaded = await engine.loadModel(bytes, cmd.backend);
      backend = loaded.backend;
      model = { name: bytes.name, vocab_size: loaded.vocab_size ?? checked.vocab_size };
      this.modelName = bytes.name;
    }
    // The lift of the policy to the model's vocabulary, now rather than at the first Generate
    // (its rows loaded from the lift artefact when the server has one for this model).
    if (engine.hasModel()) notePrepared(policy, engine.prepare?.(await this.liftRows(cmd.id)));
    this.post({ type: "ready", id: cmd.id, backend, policy, model });
  }

  private async gather(id: number, source: PolicySource): Promise<GatheredPolicy> {
    const gathered = await gatherPolicy(source, this.env.base, async (url) => {
      const buf = await this.policyAsset(id, sameOriginUrl(url.href, this.env.base, this.env.origin));
      return new TextDecoder().decode(buf);
    });
    this.policyOffset = gathered.inlineLineOffset;
    this.gathered = gathered;
    // A precompiled artefact next to the root pack, when the server has one; none (404) or
    // one that cannot be fetched means compiling, which is always correct.
    const au = artefactUrl(gathered, this.env.base);
    if (au && au.origin === this.env.origin) {
      try {
        gathered.artefact = { url: au.href, bytes: new Uint8Array(await this.policyAsset(id, au)) };
      } catch (e) {
        if (!(e instanceof AssetError)) throw e;
      }
    }
    return gathered;
  }

  /**
   * The lift artefact of the current policy for the current model, when the server has one
   * (only next to a precompiled artefact that was used); none (404) or one that cannot be
   * fetched means building the rows, which is always correct.
   */
  private async liftRows(id: number): Promise<Uint8Array | undefined> {
    const g = this.gathered;
    if (!g?.artefact || !this.modelName) return undefined;
    const u = liftUrl(g, this.modelName, this.env.base);
    if (!u || u.origin !== this.env.origin) return undefined;
    try {
      return new Uint8Array(await this.policyAsset(id, u));
    } catch (e) {
      if (!(e instanceof AssetError)) throw e;
      return undefined;
    }
  }

  /** A policy file (pack or artefact), with progress named `<pack folder>/<file>`. */
  private policyAsset(id: number, u: URL): Promise<ArrayBuffer> {
    const asset = u.pathname.split("/").slice(-2).join("/");
    return loadAsset(u, (p) => this.post({ type: "progress", id, asset, url: u.href, ...p }), this.env.fetch);
  }

  private async modelBytes(id: number, source: ModelSource): Promise<ModelBytes> {
    if (source.kind === "files") {
      return {
        name: source.name,
        config: new Uint8Array(source.config),
        weights: new Uint8Array(source.weights),
        tokenizer: new Uint8Array(source.tokenizer),
      };
    }
    const base = sameOriginUrl(source.base.endsWith("/") ? source.base : source.base + "/", this.env.base, this.env.origin);
    const name = base.pathname.replace(/\/$/, "").split("/").pop() || base.pathname;
    const get = async (file: string) => {
      const u = sameOriginUrl(file, base.href, this.env.origin);
      try {
        return new Uint8Array(await loadAsset(u, (p) => this.post({ type: "progress", id, asset: `${name}/${file}`, url: u.href, ...p }), this.env.fetch));
      } catch (e) {
        if (e instanceof AssetError && e.status === 404) throw new ModelFileError(`${name}/${file} is missing (HTTP 404 at ${u.pathname})`);
        throw e;
      }
    };
    // Sequential on purpose: progress reads one file at a time and memory peaks lower.
    const config = await get("config.json");
    const tokenizer = await get("tokenizer.json");
    const weights = await get("model.safetensors");
    return { name, config, weights, tokenizer };
  }

  private async generate(cmd: GenerateCommand): Promise<void> {
    const engine = this.requireEngine();
    if (!engine.hasModel()) throw new CoreError("not-ready", "no model loaded: send `init` with a model first");
    if (this.running) throw new CoreError("busy", `generation ${this.running.id} is still running: cancel it or wait for its result`);
    const run = engine.start(cmd.request, cmd.oracle);
    const state = { id: cmd.id, run, cancelled: false };
    this.running = state;
    try {
      this.post({ type: "start", id: cmd.id, event: run.start });
      let steps = 0;
      for (;;) {
        // Yield first so a cancel sent right after generate is seen before any step.
        await this.env.sleep(cmd.stepDelayMs ?? 0);
        if (state.cancelled) {
          this.post({ type: "cancelled", id: cmd.id, steps });
          return;
        }
        const ev = await run.step();
        if (ev === null) break;
        steps++;
        this.post({ type: "step", id: cmd.id, event: ev });
      }
      if (state.cancelled) {
        this.post({ type: "cancelled", id: cmd.id, steps });
        return;
      }
      const result = run.result();
      this.lastRun = run;
      this.post({ type: "result", id: cmd.id, result });
    } finally {
      this.running = null;
    }
  }

  private requireEngine(): Engine {
    if (!this.engine) throw new CoreError("not-ready", "the worker is not initialised: send `init` first");
    return this.engine;
  }

  private fail(id: number, e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof Error && e.name === "WasmCrashError") {
      // The module's memory may be corrupt: the next init loads it again.
      this.engine = null;
      this.wasmBase = null;
    }
    let code: ErrorCode = "generate";
    if (e instanceof CoreError) code = e.code;
    else if (e instanceof Error && e.name === "WasmCrashError") code = "wasm-crashed";
    else if (e instanceof WasmUnavailableError) code = e.code;
    else if (e instanceof AssetError) code = "asset";
    else if (e instanceof ModelFileError) code = "model";
    else if (e instanceof PolicyCompileError) {
      const info = { ...e.info };
      if (info.line !== undefined && this.policyOffset > 0 && info.file && info.file.replace(/^\/+/, "").startsWith("inline/custom/")) {
        info.line -= this.policyOffset;
      }
      this.post({ type: "error", id, code: "policy", message, policyError: info });
      return;
    } else if (e instanceof Error && e.name === "PromptError") code = "prompt";
    this.post({ type: "error", id, code, message });
  }
}

/** An error with a protocol code. */
export class CoreError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "CoreError";
  }
}
