/**
 * The engine over the `ward-web` wasm package (crate/web, built by wasm-bindgen with
 * `--target web` into a folder holding `ward_web.js` and `ward_web_bg.wasm`).
 *
 * The glue module is imported from the same origin; the `.wasm` bytes go through the asset
 * loader (progress, Cache API) and are handed to the glue's `init`.
 *
 * @module
 */

import type { BackendChoice, BackendReport, Finding, GenerateRequest, GenerationResult, PolicyErrorInfo, PolicyInfo, RuleInfo, StartEvent, StepEvent } from "../protocol.js";
import { loadAsset } from "./assets.js";
import { Engine, EngineLoader, ModelBytes, PolicyCompileError, PrepareInfo, Run, WasmUnavailableError } from "./engine.js";
import type { GatheredPolicy } from "./policy-files.js";

/** File name of the wasm-bindgen glue inside the package folder. */
export const GLUE_FILE = "ward_web.js";
/** File name of the wasm binary inside the package folder. */
export const WASM_FILE = "ward_web_bg.wasm";

/** The parts of the wasm-bindgen module the engine uses (see crate/web/README.md). */
interface WardWebModule {
  default: (init?: { module_or_path: BufferSource }) => Promise<unknown>;
  Policy?: WasmPolicyClass;
  Generator?: WasmGeneratorClass;
}

/**
 * `new Policy(files, top)`: files is a plain object of file name → YAML text;
 * `Policy.fromArtefactFor(bytes, files, top)` loads a precompiled artefact of those files.
 */
interface WasmPolicyClass {
  new (files: Record<string, string>, top: string): WasmPolicy;
  fromArtefactFor?(bytes: Uint8Array, files: Record<string, string>, top: string): WasmPolicy;
}

interface WasmPolicy {
  /** Milliseconds the compile (or the artefact load) took. */
  readonly loadMs?: number;
  explain(): unknown;
  check(text: string): unknown;
  free?(): void;
}

/** `Generator.create(config, weights, tokenizer, backend, name?)` (crate/web, feature `model`). */
interface WasmGeneratorClass {
  create(config: Uint8Array, weights: Uint8Array, tokenizer: Uint8Array, backend: string, name?: string): Promise<WasmGenerator>;
}

interface WasmGenerator {
  backend(): unknown;
  /** Lifts `policy` to the model's vocabulary ahead of the first start (ms taken). */
  prepare?(policy: WasmPolicy): number;
  /** The same with the rows loaded from a lift artefact (throws `kind: "artefact"` when it does not fit). */
  prepareWithRows?(policy: WasmPolicy, rows: Uint8Array): number;
  /** Enforces `policy` when `request.enforce`; it also re-scans the output for the certificate. */
  start(policy: WasmPolicy, request: unknown, oracle?: string): unknown;
  /** No policy at all (`request.enforce` must be false). */
  startWithoutPolicy(request: unknown, oracle?: string): unknown;
  /** A Promise of the step event, or of undefined when done or cancelled. */
  step(): Promise<unknown> | unknown;
  cancel(): void;
  result(): unknown;
  sarif(): string;
  free?(): void;
}

/** Loads the package at `wasmBase`; a missing package is a `wasm-not-built` error. */
export const loadWasmEngine: EngineLoader = async (wasmBase, onProgress) => {
  const glue = new URL(GLUE_FILE, wasmBase);
  let status = 0;
  try {
    status = (await fetch(glue.href, { method: "HEAD", cache: "no-store" })).status;
  } catch {
    // Offline: the import below may still come from the service worker's cache.
  }
  let mod: WardWebModule;
  if (status === 404) {
    throw new WasmUnavailableError(
      "wasm-not-built",
      `the wasm package is not built: ${glue.pathname} is missing (HTTP 404). Build it with \`make wasm\` (crate/web), then rebuild the web app.`,
    );
  }
  try {
    mod = (await import(/* @vite-ignore */ glue.href)) as WardWebModule;
  } catch (e) {
    throw new WasmUnavailableError("wasm-not-built", `could not load the wasm glue ${glue.pathname}: ${(e as Error).message}`);
  }
  const bytes = await loadAsset(new URL(WASM_FILE, wasmBase), (p) => onProgress(p.loaded, p.total, p.source, p.done));
  try {
    await mod.default({ module_or_path: bytes });
  } catch (e) {
    throw new WasmUnavailableError("wasm-not-built", `could not instantiate ${WASM_FILE}: ${(e as Error).message}`);
  }
  watchPanics();
  return new WasmEngine(mod);
};

/** The last Rust panic message console_error_panic_hook printed (first lines). */
let lastPanic: string | null = null;

/** Remembers panic messages so a crash can be reported with its cause, not just "unreachable". */
function watchPanics(): void {
  const original = console.error.bind(console);
  console.error = (...args: unknown[]) => {
    const text = args.map(String).join(" ");
    if (/panicked at/.test(text)) lastPanic = text.split("\n").filter((l) => l.trim()).slice(0, 2).join(": ");
    original(...args);
  };
}

/** A Rust panic in the wasm: the module is unusable until it is loaded again. */
export class WasmCrashError extends Error {
  constructor(cause: Error) {
    super(`the wasm module crashed (a bug in ward-web; reload the page): ${lastPanic ?? cause.message}`);
    this.name = "WasmCrashError";
  }
}

function jsError(e: unknown): Error {
  if (typeof WebAssembly !== "undefined" && e instanceof WebAssembly.RuntimeError) return new WasmCrashError(e);
  if (e instanceof Error) return e;
  return new Error(typeof e === "string" ? e : JSON.stringify(e));
}

/** Converts a value the wasm returned (a JS object, a Map, or JSON text) to plain data. */
export function plain<T>(v: unknown): T {
  if (typeof v === "string") {
    try {
      return JSON.parse(v) as T;
    } catch {
      return v as T;
    }
  }
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of v) o[String(k)] = plain(val);
    return o as T;
  }
  if (Array.isArray(v)) return v.map((x) => plain(x)) as T;
  if (v !== null && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) o[k] = plain(val);
    return o as T;
  }
  return v as T;
}

/**
 * Parses a compile error message into a location. ward-policy's messages name the file, the
 * rule id, and `line L, column C` or `L:C`.
 */
export function locatePolicyError(message: string, files: string[]): { file?: string; rule_id?: string; line?: number; column?: number } {
  const out: { file?: string; rule_id?: string; line?: number; column?: number } = {};
  const file = files.filter((f) => message.includes(f)).sort((a, b) => b.length - a.length)[0];
  if (file) out.file = file;
  const lc = /line (\d+),? column (\d+)/i.exec(message) ?? /:(\d+):(\d+)/.exec(message);
  if (lc) {
    out.line = Number(lc[1]);
    out.column = Number(lc[2]);
  } else {
    const col = /column (\d+)/i.exec(message);
    if (col) out.column = Number(col[1]);
  }
  const rule = /rule `?([A-Za-z0-9_.-]+)`?/.exec(message);
  if (rule) out.rule_id = rule[1];
  return out;
}

/**
 * The location of a `WardError` from the wasm (fields `kind`, `rule`, `file`, `line`,
 * `column`), falling back to what the message says. For a regex error whose column counts in
 * the regex, the column is moved to the file's column when the regex is found on that line.
 */
export function policyErrorInfo(e: unknown, gathered: GatheredPolicy): PolicyErrorInfo {
  const err = jsError(e);
  const f = e as { rule?: unknown; file?: unknown; line?: unknown; column?: unknown };
  const fromMsg = locatePolicyError(err.message, Object.keys(gathered.files));
  const info: PolicyErrorInfo = {
    message: err.message,
    rule_id: typeof f.rule === "string" ? f.rule : fromMsg.rule_id,
    file: typeof f.file === "string" ? f.file : fromMsg.file,
    line: typeof f.line === "number" ? f.line : fromMsg.line,
    column: typeof f.column === "number" ? f.column : fromMsg.column,
  };
  // A regex error counts its column in the pattern: find the pattern in the file.
  const pattern = /of pattern `([^`]*)`/.exec(err.message)?.[1];
  const text = info.file !== undefined ? gathered.files[info.file] : undefined;
  if (pattern !== undefined && text !== undefined && info.rule_id !== undefined) {
    const regexColumn = Number(/at column (\d+) of pattern/.exec(err.message)?.[1] ?? info.column ?? 1);
    const at = locatePattern(text, info.rule_id, pattern, regexColumn);
    if (at) {
      info.line = at.line;
      info.column = at.column;
    }
  }
  return info;
}

/**
 * The 1-based line and column in `yaml` of column `regexColumn` of `pattern` in rule
 * `ruleId` (the first occurrence of the pattern's text after the rule's `id:` line, as written
 * plain, single-quoted or double-quoted). Null when it cannot be found (a block scalar that
 * splits it, escapes that change it).
 */
export function locatePattern(yaml: string, ruleId: string, pattern: string, regexColumn: number): { line: number; column: number } | null {
  const lines = yaml.split(/\r?\n/);
  const idRe = new RegExp(`\\bid\\s*:\\s*["']?${ruleId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["']?\\s*$`);
  const start = lines.findIndex((l) => idRe.test(l));
  if (start < 0) return null;
  const forms = [pattern, pattern.replace(/'/g, "''")];
  for (let i = start; i < lines.length; i++) {
    if (i > start && /^\s*-\s+id\s*:/.test(lines[i])) break; // the next rule
    for (const form of forms) {
      const k = lines[i].indexOf(form);
      if (k >= 0) return { line: i + 1, column: k + regexColumn };
    }
  }
  return { line: start + 1, column: 1 };
}

/** The error for a policy-only wasm build asked to generate. */
export function noGenerator(): WasmUnavailableError {
  return new WasmUnavailableError("wasm-api-missing", "this wasm package has no `Generator` (it is the policy-only build, or the generator is not there yet)");
}

/** Runs a wasm call, turning a crash (a Rust panic) into a `WasmCrashError`. */
function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw jsError(e);
  }
}

/** The engine over a loaded wasm-bindgen module (exported for tests with a stand-in module). */
export class WasmEngine implements Engine {
  private policy: WasmPolicy | null = null;
  private generator: WasmGenerator | null = null;

  constructor(private readonly mod: WardWebModule) {}

  setPolicy(gathered: GatheredPolicy): PolicyInfo {
    const Policy = this.mod.Policy;
    if (typeof Policy !== "function") {
      throw new WasmUnavailableError("wasm-api-missing", "the wasm package has no `Policy` export");
    }
    let p: WasmPolicy | null = null;
    let artefactNote: string | undefined;
    if (gathered.artefact && typeof Policy.fromArtefactFor === "function") {
      try {
        p = Policy.fromArtefactFor(gathered.artefact.bytes, gathered.files, gathered.root);
      } catch (e) {
        const err = jsError(e);
        if (err instanceof WasmCrashError) throw err;
        // Stale, corrupt or from another version: compile the files instead, and say why.
        artefactNote = `${gathered.artefact.url}: ${err.message}`;
      }
    } else if (gathered.artefact) {
      artefactNote = "this wasm package cannot load artefacts (no Policy.fromArtefactFor)";
    }
    const loadedFrom = p ? "artefact" : "compiled";
    if (!p) {
      try {
        p = new Policy(gathered.files, gathered.root);
      } catch (e) {
        const err = jsError(e);
        if (err instanceof WasmCrashError) throw err;
        throw new PolicyCompileError(policyErrorInfo(e, gathered));
      }
    }
    const made = p;
    this.policy?.free?.();
    this.policy = made;
    const info = normalisePolicy(plain(guard(() => made.explain())), { from: loadedFrom, note: artefactNote });
    if (typeof made.loadMs === "number") info.loadMs = made.loadMs;
    return info;
  }

  check(text: string): Finding[] {
    const p = this.policy;
    if (!p) throw new Error("no policy loaded");
    return plain<Finding[]>(guard(() => p.check(text)));
  }

  async loadModel(model: ModelBytes, backend: BackendChoice): Promise<{ backend: BackendReport; vocab_size?: number }> {
    const G = this.mod.Generator;
    if (!G || typeof G.create !== "function") throw noGenerator();
    let g: WasmGenerator;
    try {
      g = await G.create(model.config, model.weights, model.tokenizer, backend, model.name);
    } catch (e) {
      throw jsError(e);
    }
    this.generator?.free?.();
    this.generator = g;
    return { backend: plain<BackendReport>(g.backend()) };
  }

  hasModel(): boolean {
    return this.generator !== null;
  }

  prepare(rows?: Uint8Array): PrepareInfo | null {
    const g = this.generator;
    const p = this.policy;
    if (!g || !p || typeof g.prepare !== "function") return null;
    let note: string | undefined;
    if (rows && typeof g.prepareWithRows === "function") {
      try {
        return { ms: g.prepareWithRows(p, rows), rows: "artefact" };
      } catch (e) {
        const err = jsError(e);
        if (err instanceof WasmCrashError) throw err;
        // Not this policy's or this tokenizer's rows: build them instead.
        note = `lift artefact not used: ${err.message}`;
      }
    }
    const ms = guard(() => g.prepare!(p));
    return note === undefined ? { ms, rows: "built" } : { ms, rows: "built", note };
  }

  canGenerate(): boolean {
    return typeof this.mod.Generator?.create === "function";
  }

  start(request: GenerateRequest, oracle?: string): Run {
    const g = this.generator;
    if (!g) throw new Error("no model loaded");
    let start: StartEvent;
    try {
      // The policy goes along even without enforcement: the certificate's re-scan uses it.
      const p = this.policy;
      start = plain<StartEvent>(p ? g.start(p, request, oracle) : g.startWithoutPolicy(request, oracle));
    } catch (e) {
      const err = jsError(e);
      err.name = "PromptError";
      throw err;
    }
    return {
      start,
      step: async () => {
        let ev: unknown;
        try {
          ev = await g.step();
        } catch (e) {
          throw jsError(e);
        }
        return ev === undefined || ev === null ? null : plain<StepEvent>(ev);
      },
      cancel: () => g.cancel(),
      result: () => plain<GenerationResult>(guard(() => g.result())),
      sarif: () => guard(() => g.sarif()),
    };
  }
}

/**
 * Normalises `explain` output (the shape of `ward explain --json --stats`: `pack`, `files`,
 * `rules` with `enabled`/`enforced`, `stats`) into the protocol's `PolicyInfo`, with a text
 * rendering of the effective policy.
 */
/** How a policy was loaded: from its precompiled artefact, or compiled (with why the artefact was not used). */
export interface PolicyLoad {
  from: "artefact" | "compiled";
  /** Why an artefact that was offered was not used (stale, corrupt, unsupported). */
  note?: string;
}

/**
 * The wasm `explain()` JSON as a `PolicyInfo`. With `load`, records how the policy was loaded
 * (`loadedFrom`, `artefactNote`) and says so in the explain text: "loaded from the precompiled
 * artefact in N ms" instead of "compiled in", and a line "artefact not used: …" after the first.
 */
export function normalisePolicy(raw: unknown, load?: PolicyLoad): PolicyInfo {
  const r = (raw ?? {}) as Record<string, unknown>;
  const rules = Array.isArray(r.rules) ? r.rules : [];
  const info: PolicyInfo = {
    digest: typeof r.digest === "string" ? r.digest : undefined,
    text: typeof r.text === "string" ? r.text : undefined,
    rules: rules.map((x): RuleInfo => {
      const o = x as Record<string, unknown>;
      const cwe = o.cwe;
      const status = typeof o.status === "string" ? o.status : o.enabled === false ? "disabled" : o.enforced === true ? "enforced" : "reported";
      return {
        id: String(o.id ?? ""),
        severity: String(o.severity ?? ""),
        status,
        message: String(o.message ?? ""),
        cwe: Array.isArray(cwe) ? cwe.map(String) : typeof cwe === "string" ? [cwe] : [],
        pack: typeof o.pack === "string" ? o.pack : undefined,
      };
    }),
  };
  if (info.text === undefined) info.text = explainText(r, info);
  if (load) {
    info.loadedFrom = load.from;
    if (load.note !== undefined) info.artefactNote = load.note;
    if (info.text) info.text = describeLoad(info.text, load);
  }
  return info;
}

function describeLoad(text: string, load: PolicyLoad): string {
  const lines = text.split("\n");
  if (load.from === "artefact") {
    const i = lines.findIndex((l) => /compiled in [\d.]+ ms/.test(l));
    if (i >= 0) lines[i] = lines[i].replace(/compiled in ([\d.]+ ms)/, "loaded from the precompiled artefact in $1");
  }
  if (load.note !== undefined) lines.splice(1, 0, `artefact not used: ${load.note}`);
  return lines.join("\n");
}

function explainText(r: Record<string, unknown>, info: PolicyInfo): string {
  const lines: string[] = [];
  if (typeof r.pack === "string") lines.push(`pack ${r.pack}`);
  if (Array.isArray(r.files)) lines.push(`files: ${r.files.join(", ")}`);
  const stats = r.stats as { compile_ms?: number; modules?: Array<{ rules?: unknown[]; states?: number }> } | undefined;
  if (stats?.modules) {
    const states = stats.modules.reduce((a, m) => a + (m.states ?? 0), 0);
    lines.push(`${stats.modules.length} modules, ${states} states${typeof stats.compile_ms === "number" ? `, compiled in ${stats.compile_ms.toFixed(1)} ms` : ""}`);
  }
  lines.push("");
  for (const rule of info.rules) lines.push(`${rule.status.padEnd(9)} ${rule.severity.padEnd(8)} ${rule.id}${rule.pack ? `  (${rule.pack})` : ""}`);
  return lines.join("\n");
}
