/**
 * The page side of the worker protocol: `WardClient` starts the worker, sends commands and
 * turns the reports into promises and callbacks. The main thread never runs the model or the
 * policy engine.
 *
 * @module
 */

import type {
  BackendChoice,
  ErrorCode,
  ErrorReport,
  Finding,
  GenerateRequest,
  GenerationResult,
  ModelSource,
  PolicyErrorInfo,
  PolicyInfo,
  PolicySource,
  ProgressReport,
  ReadyReport,
  StartEvent,
  StepEvent,
  WorkerCommand,
  WorkerReport,
} from "./protocol.js";
import { isReport } from "./protocol.js";

/** An error reported by the worker; `message` names the cause. */
export class WardError extends Error {
  /** Machine-readable cause. */
  readonly code: ErrorCode;
  /** Where a policy compile error is, when known. */
  readonly policyError?: PolicyErrorInfo;
  constructor(report: Pick<ErrorReport, "code" | "message" | "policyError">) {
    super(report.message);
    this.name = "WardError";
    this.code = report.code;
    this.policyError = report.policyError;
  }
}

/** What `init` loads. */
export interface InitOptions {
  /** Base URL of the wasm package folder. */
  wasmBase: string;
  /** The model; omit for check / explain only. */
  model?: ModelSource;
  policy: PolicySource;
  backend?: BackendChoice;
  /** Download progress of each asset. */
  onProgress?: (p: ProgressReport) => void;
}

/** Callbacks and options of one generation. */
export interface GenerateOptions {
  onStart?: (e: StartEvent) => void;
  onStep?: (e: StepEvent) => void;
  /** Milliseconds the worker waits after each step (animation); 0 by default. */
  stepDelayMs?: number;
  /** Hole-fill text the model is made to prefer (the sampler's oracle adversary). */
  oracle?: string;
}

/** A generation in flight. */
export interface GenerationHandle {
  /** The command id (what `cancel` stops). */
  readonly id: number;
  /** The result, or null when the generation was cancelled. */
  readonly done: Promise<GenerationResult | null>;
  /** Stops the generation after the current step. */
  cancel(): void;
}

/** Anything that behaves like a dedicated Worker (a real one, or a test double). */
export interface WorkerLike {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  addEventListener(type: "message", listener: (ev: MessageEvent) => void): void;
  addEventListener(type: "error", listener: (ev: ErrorEvent | Event) => void): void;
  terminate(): void;
}

interface Pending {
  resolve: (r: WorkerReport) => void;
  reject: (e: Error) => void;
  onReport?: (r: WorkerReport) => void;
}

/** `url` resolved against the document (the worker resolves against its own script URL). */
function absolute(url: string): string {
  const base = typeof document !== "undefined" ? document.baseURI : typeof location !== "undefined" ? location.href : undefined;
  return new URL(url, base).href;
}

function folder(url: string): string {
  return url.endsWith("/") ? url : url + "/";
}

function absolutePolicy(p: PolicySource): PolicySource {
  return { ...p, packs: p.packs?.map(absolute) };
}

/** File name of the worker script that ships next to this module. */
const WORKER_FILE = "worker.js";

/** URL of the worker script that ships next to this module. */
export function defaultWorkerUrl(): URL {
  // Not a string literal on purpose: bundlers must leave this URL to run time.
  return new URL(WORKER_FILE, import.meta.url);
}

/** Creates the module worker at `url`. */
export function startWorker(url: URL | string = defaultWorkerUrl()): WorkerLike {
  return new Worker(url, { type: "module", name: "ward" });
}

/** The page's handle on one Ward worker. */
export class WardClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly worker: WorkerLike;
  private dead: Error | null = null;

  /** Wraps `worker` (by default a new module worker from `worker.js` next to this file). */
  constructor(worker?: WorkerLike) {
    this.worker = worker ?? startWorker();
    this.worker.addEventListener("message", (ev: MessageEvent) => this.onMessage(ev.data));
    this.worker.addEventListener("error", (ev: ErrorEvent | Event) => {
      const msg = (ev as ErrorEvent).message || "the worker script failed to load (is it served, with the right MIME type?)";
      this.dead = new WardError({ code: "protocol", message: `Ward worker error: ${msg}` });
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
    });
  }

  private onMessage(data: unknown): void {
    if (!isReport(data)) return;
    const p = this.pending.get(data.id);
    if (!p) return;
    if (data.type === "error") {
      this.pending.delete(data.id);
      p.reject(new WardError(data));
      return;
    }
    if (data.type === "progress" || data.type === "start" || data.type === "step") {
      p.onReport?.(data);
      return;
    }
    this.pending.delete(data.id);
    p.resolve(data);
  }

  private send(cmd: WorkerCommand, onReport?: (r: WorkerReport) => void, transfer?: Transferable[]): Promise<WorkerReport> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.pending.set(cmd.id, { resolve, reject, onReport });
      this.worker.postMessage(cmd, transfer);
    });
  }

  /** Loads the wasm, the policy and (optionally) the model. */
  async init(opts: InitOptions): Promise<ReadyReport> {
    const transfer: Transferable[] = [];
    if (opts.model?.kind === "files") transfer.push(opts.model.config, opts.model.weights, opts.model.tokenizer);
    const model: ModelSource | undefined = opts.model?.kind === "url" ? { kind: "url", base: absolute(folder(opts.model.base)) } : opts.model;
    const cmd: WorkerCommand = {
      type: "init",
      id: this.nextId++,
      wasmBase: absolute(folder(opts.wasmBase)),
      model,
      policy: absolutePolicy(opts.policy),
      backend: opts.backend ?? "auto",
    };
    const r = await this.send(cmd, (rep) => rep.type === "progress" && opts.onProgress?.(rep), transfer);
    return r as ReadyReport;
  }

  /** Replaces the policy; resolves with the effective policy. */
  async setPolicy(policy: PolicySource): Promise<PolicyInfo> {
    const r = await this.send({ type: "set-policy", id: this.nextId++, policy: absolutePolicy(policy) });
    return (r as Extract<WorkerReport, { type: "policy" }>).policy;
  }

  /** Scans `text` with the current policy. */
  async check(text: string): Promise<Finding[]> {
    const r = await this.send({ type: "check", id: this.nextId++, text });
    return (r as Extract<WorkerReport, { type: "check" }>).findings;
  }

  /** SARIF 2.1.0 of the last finished generation. */
  async sarif(): Promise<string> {
    const r = await this.send({ type: "sarif", id: this.nextId++ });
    return (r as Extract<WorkerReport, { type: "sarif" }>).sarif;
  }

  /** Starts a generation. */
  generate(request: GenerateRequest, opts: GenerateOptions = {}): GenerationHandle {
    const id = this.nextId++;
    const cmd: WorkerCommand = { type: "generate", id, request, stepDelayMs: opts.stepDelayMs };
    if (opts.oracle !== undefined) cmd.oracle = opts.oracle;
    const done = this.send(cmd, (rep) => {
      if (rep.type === "start") opts.onStart?.(rep.event);
      else if (rep.type === "step") opts.onStep?.(rep.event);
    }).then((r) => (r.type === "result" ? r.result : null));
    return { id, done, cancel: () => this.cancel(id) };
  }

  /** Stops generation `target` after its current step. */
  cancel(target: number): void {
    if (this.dead) return;
    this.worker.postMessage({ type: "cancel", id: this.nextId++, target } satisfies WorkerCommand);
  }

  /** Ends the worker; pending calls reject. */
  terminate(): void {
    this.worker.terminate();
    this.dead = new WardError({ code: "protocol", message: "the Ward worker was terminated" });
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
  }
}
