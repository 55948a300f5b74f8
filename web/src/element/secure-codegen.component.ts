/**
 * `<secure-codegen>`: generates code with Ward in a Web Worker and shows the denoising as it
 * happens (masked positions, tokens as they are committed, the places where the policy
 * blocked a candidate), then the certificate summary.
 *
 * @module
 */

import { replay } from "../canvas.js";
import type { Cell } from "../canvas.js";
import { defaultWorkerUrl, startWorker, WardClient, WardError, WorkerLike } from "../client.js";
import type {
  BackendChoice,
  BackendReport,
  Certificate,
  GenerateRequest,
  GenerationResult,
  PolicySource,
  ProgressReport,
  RuleInfo,
  StartEvent,
  StepEvent,
  Strategy,
  Timings,
} from "../protocol.js";
import { BACKEND_CHOICES, STRATEGIES } from "../protocol.js";
import { attachTooltips, renderCanvas, renderCertificate, ruleTable } from "../render.js";
import { canvasCss, elementCss, themeCss } from "./secure-codegen.styles.js";

/** Detail of the `done` event. */
export interface DoneDetail {
  /** The finished text (prompt with holes filled). */
  text: string;
  certificate: Certificate;
  timings: Timings;
  /** The whole result (holes, counts). */
  result: GenerationResult;
}

/** The events `<secure-codegen>` fires (all bubble and cross the shadow boundary). */
export interface SecureCodegenEventMap {
  /** Download progress of an asset (wasm, model files, policy packs). */
  progress: CustomEvent<ProgressReport>;
  /** One denoising step. */
  step: CustomEvent<StepEvent>;
  /** The generation finished. */
  done: CustomEvent<DoneDetail>;
  /** Something failed; the Error's message names the cause. */
  error: CustomEvent<Error>;
}

/** Attributes the element observes. */
export const OBSERVED = ["prompt", "policy", "model", "steps", "strategy", "seed", "backend", "wasm", "max-new", "step-delay", "enforce", "adversary"] as const;

/**
 * Where the element finds the wasm package by default: `wasm/` at the package root, next to
 * `secure-codegen.js` (this module lives in `element/`).
 */
export function defaultWasmBase(): string {
  const folder = "../wasm/"; // not a literal in `new URL`, so bundlers leave it to run time
  return new URL(folder, import.meta.url).href;
}

/**
 * Parses the `policy` attribute: inline YAML (anything with a newline or a `rules:` key) or
 * pack URLs separated by whitespace or commas.
 */
export function parsePolicyAttribute(value: string | null): PolicySource {
  const v = (value ?? "").trim();
  if (v.length === 0) return { packs: [] };
  if (/\n/.test(v) || /(^|\s)rules\s*:/.test(v)) {
    // Inline YAML may still extend packs by URL; those are resolved relative to the page.
    return { inline: v };
  }
  return { packs: v.split(/[\s,]+/).filter(Boolean) };
}

/** Lenient parse for property getters (a getter never throws): undefined when invalid. */
function intOrUndefined(value: string | null, min: number): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const n = Number(value);
  return Number.isInteger(n) && n >= min ? n : undefined;
}

/** Strict parse for building a request: a bad value is an error naming the attribute. */
function intAttr(value: string | null, name: string, min: number): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`<secure-codegen> attribute \`${name}\` must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/** The web component. */
export class SecureCodegen extends HTMLElement {
  static readonly observedAttributes = [...OBSERVED];

  /**
   * Creates the worker each element talks to. Replace it to host the worker elsewhere
   * (or, in tests, to put a test double behind the protocol).
   */
  static createWorker: () => WorkerLike = () => startWorker(defaultWorkerUrl());

  private readonly root: ShadowRoot;
  private readonly pre: HTMLElement;
  private readonly tip: HTMLElement;
  private readonly statusEl: HTMLElement;
  private readonly backendEl: HTMLElement;
  private readonly progressEl: HTMLProgressElement;
  private readonly certEl: HTMLElement;
  private readonly errorEl: HTMLElement;
  private readonly genBtn: HTMLButtonElement;
  private readonly stopBtn: HTMLButtonElement;

  private client: WardClient | null = null;
  private initKey: string | null = null;
  private initPromise: Promise<void> | null = null;
  private rules: RuleInfo[] = [];
  private certificate: Certificate | null = null;
  private startEv: StartEvent | null = null;
  private stepEvents: StepEvent[] = [];
  private cells: Cell[] = [];
  private current: { cancel(): void } | null = null;
  private backendReport: BackendReport | null = null;
  private lastResult: GenerationResult | null = null;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    const doc = this.ownerDocument;
    const sheetText = themeCss + elementCss + canvasCss;
    if ("adoptedStyleSheets" in this.root && typeof CSSStyleSheet !== "undefined" && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(sheetText);
      this.root.adoptedStyleSheets = [sheet];
    } else {
      const style = doc.createElement("style");
      style.textContent = sheetText;
      this.root.append(style);
    }
    const bar = doc.createElement("div");
    bar.className = "bar";
    bar.setAttribute("part", "toolbar");
    this.genBtn = doc.createElement("button");
    this.genBtn.className = "primary";
    this.genBtn.type = "button";
    this.genBtn.textContent = "Generate";
    this.genBtn.setAttribute("part", "generate");
    this.stopBtn = doc.createElement("button");
    this.stopBtn.type = "button";
    this.stopBtn.textContent = "Stop";
    this.stopBtn.disabled = true;
    this.stopBtn.setAttribute("part", "stop");
    this.statusEl = doc.createElement("span");
    this.statusEl.className = "status";
    this.statusEl.setAttribute("role", "status");
    this.statusEl.setAttribute("aria-live", "polite");
    this.statusEl.textContent = "Ready to generate.";
    const spacer = doc.createElement("span");
    spacer.className = "spacer";
    this.backendEl = doc.createElement("span");
    this.backendEl.className = "badge";
    this.backendEl.setAttribute("part", "backend");
    this.backendEl.title = "compute backend";
    this.backendEl.hidden = true;
    bar.append(this.genBtn, this.stopBtn, this.statusEl, spacer, this.backendEl);
    this.progressEl = doc.createElement("progress");
    this.progressEl.hidden = true;
    this.progressEl.setAttribute("aria-label", "download progress");
    const wrap = doc.createElement("div");
    wrap.className = "canvas-wrap";
    this.pre = doc.createElement("pre");
    this.pre.className = "ward-canvas";
    this.pre.setAttribute("part", "canvas");
    this.pre.setAttribute("aria-label", "generated code");
    this.pre.tabIndex = 0;
    this.tip = doc.createElement("div");
    this.tip.className = "ward-tip";
    this.tip.setAttribute("part", "tooltip");
    wrap.append(this.pre, this.tip);
    this.certEl = doc.createElement("section");
    this.certEl.className = "cert";
    this.certEl.setAttribute("part", "certificate");
    this.certEl.setAttribute("aria-label", "certificate");
    this.certEl.hidden = true;
    this.errorEl = doc.createElement("div");
    this.errorEl.className = "error";
    this.errorEl.setAttribute("role", "alert");
    this.errorEl.setAttribute("part", "error");
    this.errorEl.hidden = true;
    this.root.append(bar, this.progressEl, wrap, this.certEl, this.errorEl);
    attachTooltips(wrap, this.tip, (pos) => this.cells.find((c) => c.position === pos), () => ruleTable(this.rules, this.certificate));
    this.genBtn.addEventListener("click", () => {
      void this.generate().catch(() => undefined);
    });
    this.stopBtn.addEventListener("click", () => this.cancel());
  }

  connectedCallback(): void {
    if (!this.pre.hasChildNodes()) this.pre.textContent = this.prompt;
  }

  disconnectedCallback(): void {
    // Free the worker (and its model) when the element leaves the page.
    this.current?.cancel();
    this.client?.terminate();
    this.client = null;
    this.initKey = null;
    this.initPromise = null;
  }

  attributeChangedCallback(name: string, oldValue: string | null, newValue: string | null): void {
    if (oldValue === newValue) return;
    if (name === "prompt" && this.stepEvents.length === 0 && !this.current) this.pre.textContent = newValue ?? "";
  }

  // ------------------------------------------------------------ properties (reflect attributes)

  /** Prompt text with `<|hole:N|>` holes. */
  get prompt(): string {
    return this.getAttribute("prompt") ?? "";
  }
  set prompt(v: string) {
    this.setAttribute("prompt", v);
  }

  /** Pack URL(s) (space or comma separated) or inline YAML. */
  get policy(): string {
    return this.getAttribute("policy") ?? "";
  }
  set policy(v: string) {
    this.setAttribute("policy", v);
  }

  /** Base URL of a model folder (config.json, model.safetensors, tokenizer.json). */
  get model(): string {
    return this.getAttribute("model") ?? "";
  }
  set model(v: string) {
    this.setAttribute("model", v);
  }

  /** Denoising steps (unset: the sampler's default). */
  get steps(): number | undefined {
    return intOrUndefined(this.getAttribute("steps"), 1);
  }
  set steps(v: number | undefined) {
    if (v === undefined) this.removeAttribute("steps");
    else this.setAttribute("steps", String(v));
  }

  /** Position-choice strategy. */
  get strategy(): Strategy {
    return (this.getAttribute("strategy") as Strategy | null) ?? "low_confidence";
  }
  set strategy(v: Strategy) {
    this.setAttribute("strategy", v);
  }

  /** RNG seed. */
  get seed(): number {
    return intOrUndefined(this.getAttribute("seed"), 0) ?? 0;
  }
  set seed(v: number) {
    this.setAttribute("seed", String(v));
  }

  /** `auto` (WebGPU when an adapter is found, else CPU), `webgpu` or `cpu`. */
  get backend(): BackendChoice {
    return (this.getAttribute("backend") as BackendChoice | null) ?? "auto";
  }
  set backend(v: BackendChoice) {
    this.setAttribute("backend", v);
  }

  /** Base URL of the wasm package (default: `wasm/` next to this module). */
  get wasm(): string {
    return this.getAttribute("wasm") ?? defaultWasmBase();
  }
  set wasm(v: string) {
    this.setAttribute("wasm", v);
  }

  /** The last result, or null. */
  get result(): GenerationResult | null {
    return this.lastResult;
  }

  /** The backend the wasm picked, once loaded. */
  get backendInfo(): BackendReport | null {
    return this.backendReport;
  }

  /** The generation request the current attributes describe (throws on a bad attribute). */
  buildRequest(): GenerateRequest {
    const strategy = this.getAttribute("strategy");
    if (strategy !== null && !STRATEGIES.includes(strategy as Strategy)) {
      throw new Error(`<secure-codegen> attribute \`strategy\` must be one of ${STRATEGIES.join(", ")}, got ${JSON.stringify(strategy)}`);
    }
    const req: GenerateRequest = { prompt: this.prompt, strategy: this.strategy, seed: intAttr(this.getAttribute("seed"), "seed", 0) ?? 0 };
    const steps = intAttr(this.getAttribute("steps"), "steps", 1);
    if (steps !== undefined) req.steps = steps;
    const maxNew = intAttr(this.getAttribute("max-new"), "max-new", 1);
    if (maxNew !== undefined) req.max_new = maxNew;
    const enforce = this.getAttribute("enforce");
    if (enforce !== null) req.enforce = enforce !== "false";
    return req;
  }

  private checkConfig(): void {
    if (!BACKEND_CHOICES.includes(this.backend)) {
      throw new Error(`<secure-codegen> attribute \`backend\` must be one of ${BACKEND_CHOICES.join(", ")}, got ${JSON.stringify(this.backend)}`);
    }
    if (this.model.trim() === "") throw new Error("<secure-codegen> needs a `model` attribute: the base URL of a model folder");
    if (this.prompt.trim() === "") throw new Error("<secure-codegen> needs a `prompt` attribute");
  }

  private emit<K extends keyof SecureCodegenEventMap>(type: K, detail: SecureCodegenEventMap[K]["detail"]): void {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  private async ensureReady(): Promise<WardClient> {
    const policy = parsePolicyAttribute(this.getAttribute("policy"));
    const key = JSON.stringify([this.wasm, this.model, this.backend, policy]);
    if (!this.client) this.client = new WardClient(SecureCodegen.createWorker());
    const client = this.client;
    if (this.initKey !== key || !this.initPromise) {
      this.initKey = key;
      this.setStatus("Loading…");
      const totals = new Map<string, { loaded: number; total: number | null }>();
      this.initPromise = client
        .init({
          wasmBase: this.wasm,
          model: { kind: "url", base: this.model },
          policy,
          backend: this.backend,
          onProgress: (p) => {
            totals.set(p.asset, { loaded: p.loaded, total: p.total });
            this.showProgress(totals);
            this.emit("progress", p);
          },
        })
        .then((ready) => {
          this.rules = ready.policy.rules;
          this.backendReport = ready.backend;
          this.progressEl.hidden = true;
          if (ready.backend) {
            this.backendEl.hidden = false;
            this.backendEl.textContent = ready.backend.backend === "webgpu" ? `WebGPU${ready.backend.adapter ? ` · ${ready.backend.adapter}` : ""}` : "CPU";
          }
        });
      this.initPromise.catch(() => {
        this.initKey = null;
        this.initPromise = null;
        this.progressEl.hidden = true;
      });
    }
    await this.initPromise;
    return client;
  }

  private showProgress(totals: Map<string, { loaded: number; total: number | null }>): void {
    let loaded = 0;
    let total = 0;
    let known = true;
    for (const t of totals.values()) {
      loaded += t.loaded;
      if (t.total === null) known = false;
      else total += t.total;
    }
    this.progressEl.hidden = false;
    if (known && total > 0) {
      this.progressEl.max = total;
      this.progressEl.value = loaded;
    } else {
      this.progressEl.removeAttribute("value");
    }
    this.setStatus(`Loading… ${(loaded / 1048576).toFixed(1)} MB`);
  }

  private setStatus(text: string): void {
    this.statusEl.textContent = text;
  }

  private showError(err: Error): void {
    this.errorEl.textContent = err.message;
    this.errorEl.hidden = false;
    this.setStatus("Failed.");
    this.emit("error", err);
  }

  private render(finished = false): void {
    if (!this.startEv) return;
    const snap = replay(this.startEv, this.stepEvents);
    this.cells = snap.cells;
    const last = !finished && this.stepEvents.length > 0 ? this.stepEvents[this.stepEvents.length - 1].step : null;
    renderCanvas(this.pre, snap, ruleTable(this.rules, this.certificate), last);
  }

  /**
   * Generates with the current attributes. Resolves with the result, or null when cancelled;
   * rejects (and fires `error`) when something fails.
   */
  async generate(): Promise<GenerationResult | null> {
    if (this.current) throw new Error("<secure-codegen> is already generating: call cancel() first");
    this.errorEl.hidden = true;
    this.certEl.hidden = true;
    this.certificate = null;
    let request: GenerateRequest;
    try {
      this.checkConfig();
      request = this.buildRequest();
    } catch (e) {
      this.showError(e as Error);
      throw e;
    }
    let cancelled = false;
    this.current = { cancel: () => (cancelled = true) };
    this.genBtn.disabled = true;
    this.stopBtn.disabled = false;
    try {
      const client = await this.ensureReady();
      if (cancelled) {
        this.setStatus("Stopped.");
        return null;
      }
      this.stepEvents = [];
      this.startEv = null;
      const delay = intAttr(this.getAttribute("step-delay"), "step-delay", 0) ?? 0;
      const adversary = this.getAttribute("adversary");
      const handle = client.generate(request, {
        stepDelayMs: delay,
        oracle: adversary === null || adversary === "" ? undefined : adversary,
        onStart: (ev) => {
          this.startEv = ev;
          this.render();
          this.setStatus(`Denoising ${ev.holes.length} positions in ${ev.steps} steps…`);
        },
        onStep: (ev) => {
          this.stepEvents.push(ev);
          this.render();
          this.setStatus(`Step ${ev.step + 1}: ${ev.open} open${ev.blocked.length > 0 ? `, ${ev.blocked.length} blocked` : ""}`);
          this.emit("step", ev);
        },
      });
      this.current = handle;
      const result = await handle.done;
      if (result === null) {
        this.setStatus(`Stopped after ${this.stepEvents.length} step${this.stepEvents.length === 1 ? "" : "s"}.`);
        return null;
      }
      this.lastResult = result;
      this.certificate = result.certificate;
      this.render(true);
      renderCertificate(this.certEl, result);
      this.setStatus(`Done in ${result.timings.total_ms.toFixed(0)} ms.`);
      this.emit("done", { text: result.text, certificate: result.certificate, timings: result.timings, result });
      return result;
    } catch (e) {
      const err = e instanceof Error ? e : new WardError({ code: "generate", message: String(e) });
      this.showError(err);
      throw err;
    } finally {
      this.current = null;
      this.genBtn.disabled = false;
      this.stopBtn.disabled = true;
    }
  }

  /** Stops the running generation after its current step (no-op when idle). */
  cancel(): void {
    this.current?.cancel();
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "secure-codegen": SecureCodegen;
  }
}

export interface SecureCodegen {
  addEventListener<K extends keyof SecureCodegenEventMap>(type: K, listener: (this: SecureCodegen, ev: SecureCodegenEventMap[K]) => unknown, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof SecureCodegenEventMap>(type: K, listener: (this: SecureCodegen, ev: SecureCodegenEventMap[K]) => unknown, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;
}
