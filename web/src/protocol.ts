/**
 * The only protocol between a page and the Ward worker: one tagged union of commands
 * (page → worker) and one of reports (worker → page). Every message is structured-cloneable
 * plain data; binary assets travel as transferable `ArrayBuffer`s.
 *
 * The JSON shapes of the generation events (`StartEvent`, `StepEvent`, `GenerationResult`,
 * `Certificate`) are those of `ward generate --format json` and of the wasm `step()`.
 *
 * @module
 */

// ---------------------------------------------------------------- generation shapes

/** Position-choice strategy of the sampler. */
export type Strategy = "low_confidence" | "entropy" | "margin" | "random" | "threshold";

/** Every strategy name, in the order the UI lists them. */
export const STRATEGIES: readonly Strategy[] = [
  "low_confidence",
  "entropy",
  "margin",
  "random",
  "threshold",
];

/** Which compute backend the caller asks for. */
export type BackendChoice = "auto" | "webgpu" | "cpu";

/** Every backend choice. */
export const BACKEND_CHOICES: readonly BackendChoice[] = ["auto", "webgpu", "cpu"];

/** A generation request (the sampler's `GenerateRequest`, snake_case as in its JSON). */
export interface GenerateRequest {
  /** Prompt text; `<|hole:N|>` marks up to N tokens to fill (`early_end`). No hole: `max_new`. */
  prompt: string;
  /** Tokens to generate after a prompt without holes (default 64). */
  max_new?: number;
  /** Denoising steps (default: hole tokens / 2, at least 1). */
  steps?: number;
  /** Position-choice strategy (default `low_confidence`). */
  strategy?: Strategy;
  /** Confidence threshold of the `threshold` strategy (default 0.9). */
  threshold?: number;
  /** Block length in tokens for semi-autoregressive decoding (0 = one block). */
  block?: number;
  /** Sampling temperature (0 = greedy). */
  temperature?: number;
  /** Top-k filter (0 = off). */
  top_k?: number;
  /** Nucleus filter (1.0 = off). */
  top_p?: number;
  /** RNG seed: the same seed and backend give the same output. */
  seed?: number;
  /** Whether the policy is enforced during generation (default true). */
  enforce?: boolean;
  /**
   * Whether an infill hole (text after it) may end before its N tokens when the model ends
   * it, never at its first position nor right after blank text alone (default true; false:
   * exactly N tokens).
   */
  early_end?: boolean;
}

/** One canvas position of the start event. */
export interface CanvasCell {
  /** Token index in the canvas. */
  position: number;
  /** Token id, or null for a hole. */
  token: number | null;
  /** Decoded text of the token ("" for a hole). */
  text: string;
  /** A prompt token or a position to fill. */
  kind: "fixed" | "hole";
}

/** First event of a generation: the canvas and where the holes are. */
export interface StartEvent {
  type: "start";
  canvas: CanvasCell[];
  holes: number[];
  steps: number;
  enforce: boolean;
}

/** A token committed at a position. */
export interface Commit {
  position: number;
  token: number;
  text: string;
  probability: number;
  /** True when the position was filled because the text ended before it. */
  end?: boolean;
}

/** A candidate the policy removed: the model wanted it, a rule forbade it. */
export interface Blocked {
  position: number;
  token: number;
  text: string;
  probability: number;
  rule_ids: string[];
}

/** A remask: commits near `position` were undone to get out of a cross-module conflict. */
export interface Remask {
  position: number;
  reopened: number[];
  rule_ids: string[];
}

/** One denoising step. */
export interface StepEvent {
  type: "step";
  step: number;
  block: number;
  committed: Commit[];
  blocked: Blocked[];
  remasks: Remask[];
  open: number;
  model_ms: number;
  guard_ms: number;
  /** Guard work on a second thread during the forward pass (native builds; 0 in wasm). */
  guard_parallel_ms?: number;
}

/** An enforced rule as the certificate lists it. */
export interface CertificateRule {
  id: string;
  severity: string;
  message: string;
  cwe: string[];
  blocked_candidates: number;
  blocked_mass: number;
}

/** A finding of the independent checker (`check`) in a text. */
export interface Finding {
  rule_id: string;
  message: string;
  severity: string;
  enforced: boolean;
  cwe: string[];
  /** Byte offsets into the text. */
  start: number;
  end: number;
  /** 1-based line and column of `start`. */
  line: number;
  column: number;
}

/** The certificate of a finished generation (`format: "ward-certificate/1"`). */
export interface Certificate {
  format: string;
  policy: {
    name?: string;
    digest: string;
    enforced_rules: CertificateRule[];
    reported_rules: string[];
  } | null;
  model: { digest: string; name: string; vocab_size: number };
  /** The policy the final re-scan used when none was enforced. */
  scanned_with?: string | null;
  request: GenerateRequest;
  seed: number;
  blocked_total: number;
  blocked_mass?: number;
  remasks: number;
  findings: Finding[];
  enforced_findings: number;
  verdict: "clean" | "findings";
}

/** Timings of a generation in milliseconds. */
export interface Timings {
  total_ms: number;
  model_ms: number;
  guard_ms: number;
  /** Guard work on a second thread during forward passes (native builds; 0 in wasm). */
  guard_parallel_ms?: number;
}

/** The finished generation. */
export interface GenerationResult {
  type: "result";
  text: string;
  holes: string[];
  tokens: number;
  steps: number;
  forward_passes: number;
  blocked_candidates: number;
  remasks: number;
  mean_logprob: number;
  timings: Timings;
  certificate: Certificate;
}

// ---------------------------------------------------------------- policy shapes

/** One rule of the effective policy, for display (what `explain` reports). */
export interface RuleInfo {
  id: string;
  severity: string;
  /** `enforced` (ERROR/CRITICAL/HIGH), `reported` or `disabled`. */
  status: "enforced" | "reported" | "disabled" | string;
  message: string;
  cwe: string[];
  /** The pack the rule comes from, when known. */
  pack?: string;
}

/** The effective policy after the pack hierarchy is resolved. */
export interface PolicyInfo {
  /** `sha256:…` digest of the effective policy, when the wasm reports one. */
  digest?: string;
  rules: RuleInfo[];
  /** The human-readable `explain` text, when the wasm gives one. */
  text?: string;
  /**
   * How the policy was made: `artefact` (a precompiled `pack.wardpol` loaded, no compile) or
   * `compiled` (in the worker), and the milliseconds that took.
   */
  loadedFrom?: "artefact" | "compiled";
  loadMs?: number;
  /** Why an artefact that was there was not used (stale, corrupt, another version). */
  artefactNote?: string;
  /**
   * With a model: where the policy's token rows for it came from (`artefact`: the lift
   * artefact `pack.<model>.wardlift` loaded; `built`: lifted in the worker), the
   * milliseconds that took, and why a lift artefact that was there was not used.
   */
  rows?: "artefact" | "built";
  rowsMs?: number;
  rowsNote?: string;
}

/**
 * Where a policy comes from. `packs` are URLs of pack files (`…/pack.yaml`) whose `extends`
 * are followed relative to each file; `files` is an already-gathered map of file name → text
 * (what the wasm takes); `inline` is YAML text of a pack or rules file that may extend packs
 * named in `packs`. `disable` switches rules off by id. Everything is combined, later winning.
 */
export interface PolicySource {
  packs?: string[];
  files?: Record<string, string>;
  inline?: string;
  disable?: string[];
}

/** A policy compile error, located when the wasm says where. */
export interface PolicyErrorInfo {
  message: string;
  file?: string;
  rule_id?: string;
  line?: number;
  column?: number;
}

// ---------------------------------------------------------------- model shapes

/**
 * Where the model comes from: a base URL of a folder holding `config.json`,
 * `model.safetensors` and `tokenizer.json`, or the three files' bytes (a folder the user
 * opened from disk; nothing is uploaded).
 */
export type ModelSource =
  | { kind: "url"; base: string }
  | {
      kind: "files";
      name: string;
      config: ArrayBuffer;
      weights: ArrayBuffer;
      tokenizer: ArrayBuffer;
    };

/** The backend the wasm picked, and the adapter's name on WebGPU. */
export interface BackendReport {
  backend: "webgpu" | "cpu" | string;
  adapter?: string;
  /** Why the wasm fell back to the CPU, when it did. */
  reason?: string;
}

// ---------------------------------------------------------------- commands (page → worker)

/** Load (or replace) the wasm module, the model and the policy. */
export interface InitCommand {
  type: "init";
  /** Correlates the replies with this command. */
  id: number;
  /** Base URL of the wasm package (`ward_web.js`, `ward_web_bg.wasm`). */
  wasmBase: string;
  /** The model; omit for a policy-only session (check / explain). */
  model?: ModelSource;
  policy: PolicySource;
  backend: BackendChoice;
}

/** Replace the policy only (the model stays loaded). */
export interface SetPolicyCommand {
  type: "set-policy";
  id: number;
  policy: PolicySource;
}

/** Generate; the worker answers with start, step…, result (or error / cancelled). */
export interface GenerateCommand {
  type: "generate";
  id: number;
  request: GenerateRequest;
  /** Milliseconds to wait after each step (0 = as fast as possible); for animation. */
  stepDelayMs?: number;
  /**
   * The oracle adversary of the sampler: text whose tokens the model is made to prefer at the
   * hole positions, in order (as `ward generate --oracle-file`). With an insecure completion
   * it shows what the policy blocks even when the model itself would not write it.
   */
  oracle?: string;
}

/** Stop the running generation of `target` after the current step. */
export interface CancelCommand {
  type: "cancel";
  id: number;
  /** The `id` of the generate command to stop. */
  target: number;
}

/** Scan a text with the current policy's independent checker. */
export interface CheckCommand {
  type: "check";
  id: number;
  text: string;
}

/** SARIF 2.1.0 of the last finished generation's certificate. */
export interface SarifCommand {
  type: "sarif";
  id: number;
}

/** Every message the page sends to the worker. */
export type WorkerCommand =
  | InitCommand
  | SetPolicyCommand
  | GenerateCommand
  | CancelCommand
  | CheckCommand
  | SarifCommand;

// ---------------------------------------------------------------- reports (worker → page)

/** Download progress of one asset (bytes; `total` is null when the server gave no length). */
export interface ProgressReport {
  type: "progress";
  id: number;
  asset: string;
  url: string;
  loaded: number;
  total: number | null;
  /** Where the bytes came from: the network, or the Cache API (offline or unchanged). */
  source: "network" | "cache";
  done: boolean;
}

/** Answer to `init`: what was loaded. */
export interface ReadyReport {
  type: "ready";
  id: number;
  /** Null for a policy-only session. */
  backend: BackendReport | null;
  policy: PolicyInfo;
  model: { name: string; vocab_size?: number } | null;
}

/** Answer to `set-policy`. */
export interface PolicyReport {
  type: "policy";
  id: number;
  policy: PolicyInfo;
}

/** Generation started. */
export interface StartReport {
  type: "start";
  id: number;
  event: StartEvent;
}

/** One step was taken. */
export interface StepReport {
  type: "step";
  id: number;
  event: StepEvent;
}

/** Generation finished. */
export interface ResultReport {
  type: "result";
  id: number;
  result: GenerationResult;
}

/** Generation stopped by `cancel` before it finished. */
export interface CancelledReport {
  type: "cancelled";
  id: number;
  /** Steps taken before the stop. */
  steps: number;
}

/** Answer to `check`. */
export interface CheckReport {
  type: "check";
  id: number;
  findings: Finding[];
}

/** Answer to `sarif`. */
export interface SarifReport {
  type: "sarif";
  id: number;
  sarif: string;
}

/** Machine-readable cause of an error. */
export type ErrorCode =
  | "wasm-not-built"
  | "wasm-api-missing"
  | "wasm-crashed"
  | "asset"
  | "model"
  | "policy"
  | "prompt"
  | "generate"
  | "busy"
  | "not-ready"
  | "protocol";

/** A command failed; `message` names the cause (file, field, rule, span). */
export interface ErrorReport {
  type: "error";
  id: number;
  code: ErrorCode;
  message: string;
  /** For `policy` errors: where in the YAML, when known. */
  policyError?: PolicyErrorInfo;
}

/** Every message the worker sends to the page. */
export type WorkerReport =
  | ProgressReport
  | ReadyReport
  | PolicyReport
  | StartReport
  | StepReport
  | ResultReport
  | CancelledReport
  | CheckReport
  | SarifReport
  | ErrorReport;

const COMMAND_TYPES: ReadonlySet<string> = new Set([
  "init",
  "set-policy",
  "generate",
  "cancel",
  "check",
  "sarif",
]);

const REPORT_TYPES: ReadonlySet<string> = new Set([
  "progress",
  "ready",
  "policy",
  "start",
  "step",
  "result",
  "cancelled",
  "check",
  "sarif",
  "error",
]);

/**
 * Checks that `data` is a command of this protocol and says what is wrong otherwise.
 * The worker runs this on every message so a malformed one gets a clear error, not a crash.
 */
export function validateCommand(data: unknown): { ok: true; command: WorkerCommand } | { ok: false; id: number; message: string } {
  if (typeof data !== "object" || data === null) {
    return { ok: false, id: -1, message: `a command must be an object, got ${data === null ? "null" : typeof data}` };
  }
  const rec = data as Record<string, unknown>;
  const id = typeof rec.id === "number" && Number.isInteger(rec.id) ? rec.id : -1;
  if (id < 0) return { ok: false, id, message: "command field `id` must be a non-negative integer" };
  if (typeof rec.type !== "string" || !COMMAND_TYPES.has(rec.type)) {
    return { ok: false, id, message: `unknown command type ${JSON.stringify(rec.type)}; expected one of ${[...COMMAND_TYPES].join(", ")}` };
  }
  const need = (field: string, kind: string): string | null =>
    typeof rec[field] === kind ? null : `command \`${rec.type}\` field \`${field}\` must be a ${kind}, got ${typeof rec[field]}`;
  let problem: string | null = null;
  switch (rec.type) {
    case "init":
      problem = need("wasmBase", "string") ?? need("policy", "object") ?? need("backend", "string");
      if (!problem && !BACKEND_CHOICES.includes(rec.backend as BackendChoice)) {
        problem = `command \`init\` field \`backend\` must be one of ${BACKEND_CHOICES.join(", ")}, got ${JSON.stringify(rec.backend)}`;
      }
      break;
    case "set-policy":
      problem = need("policy", "object");
      break;
    case "generate":
      problem = need("request", "object");
      if (!problem && rec.oracle !== undefined && typeof rec.oracle !== "string") problem = "command `generate` field `oracle` must be a string";
      if (!problem) problem = validateRequest(rec.request as Record<string, unknown>);
      break;
    case "cancel":
      problem = need("target", "number");
      break;
    case "check":
      problem = need("text", "string");
      break;
  }
  if (problem) return { ok: false, id, message: problem };
  return { ok: true, command: data as WorkerCommand };
}

/** Checks a request's fields; returns what is wrong, or null. */
export function validateRequest(req: Record<string, unknown>): string | null {
  if (req === null || typeof req !== "object") return "request must be an object";
  if (typeof req.prompt !== "string") return "request field `prompt` must be a string";
  const ints: Array<[string, number]> = [
    ["max_new", 1],
    ["steps", 1],
    ["block", 0],
    ["top_k", 0],
    ["seed", 0],
  ];
  for (const [f, min] of ints) {
    const v = req[f];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      return `request field \`${f}\` must be an integer ≥ ${min}, got ${JSON.stringify(v)}`;
    }
  }
  for (const f of ["threshold", "temperature", "top_p"]) {
    const v = req[f];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || v < 0)) {
      return `request field \`${f}\` must be a finite number ≥ 0, got ${JSON.stringify(v)}`;
    }
  }
  if (req.strategy !== undefined && !STRATEGIES.includes(req.strategy as Strategy)) {
    return `request field \`strategy\` must be one of ${STRATEGIES.join(", ")}, got ${JSON.stringify(req.strategy)}`;
  }
  for (const f of ["enforce", "early_end"]) {
    if (req[f] !== undefined && typeof req[f] !== "boolean") {
      return `request field \`${f}\` must be a boolean`;
    }
  }
  return null;
}

/** True when `data` looks like a report of this protocol (used by the page side). */
export function isReport(data: unknown): data is WorkerReport {
  return (
    typeof data === "object" &&
    data !== null &&
    typeof (data as { type?: unknown }).type === "string" &&
    REPORT_TYPES.has((data as { type: string }).type) &&
    typeof (data as { id?: unknown }).id === "number"
  );
}

/** The hole marker syntax: `<|hole:N|>`. */
export const HOLE_RE = /<\|hole:(\d+)\|>/g;

/** Hole token counts of a prompt, in order (empty when it has no hole). */
export function holeSizes(prompt: string): number[] {
  return [...prompt.matchAll(HOLE_RE)].map((m) => Number(m[1]));
}
