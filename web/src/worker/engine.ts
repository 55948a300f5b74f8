/**
 * What the worker needs from the wasm module, as one narrow interface. `wasm-engine.ts`
 * implements it over the `ward-web` package; the worker core only talks to this, so its
 * protocol handling is testable without a browser.
 *
 * @module
 */

import type {
  BackendChoice,
  BackendReport,
  Finding,
  GenerateRequest,
  GenerationResult,
  PolicyErrorInfo,
  PolicyInfo,
  StartEvent,
  StepEvent,
} from "../protocol.js";
import type { GatheredPolicy } from "./policy-files.js";

/** Model bytes as the wasm takes them. */
export interface ModelBytes {
  name: string;
  config: Uint8Array;
  weights: Uint8Array;
  tokenizer: Uint8Array;
}

/** A policy that failed to compile; `info` locates the cause when the wasm says where. */
export class PolicyCompileError extends Error {
  readonly info: PolicyErrorInfo;
  constructor(info: PolicyErrorInfo) {
    super(info.message);
    this.name = "PolicyCompileError";
    this.info = info;
  }
}

/** The wasm package is missing, or lacks an export the worker needs. */
export class WasmUnavailableError extends Error {
  readonly code: "wasm-not-built" | "wasm-api-missing";
  constructor(code: "wasm-not-built" | "wasm-api-missing", message: string) {
    super(message);
    this.name = "WasmUnavailableError";
    this.code = code;
  }
}

/** A model file that is missing or malformed; the message names the file and field. */
export class ModelFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelFileError";
  }
}

/** One generation in progress. */
export interface Run {
  /** The start event (canvas, holes). */
  readonly start: StartEvent;
  /** Takes one step; null when the generation is finished (the wasm's step is async). */
  step(): StepEvent | null | Promise<StepEvent | null>;
  /** Stops the generation; `step` returns null afterwards. */
  cancel(): void;
  /** The finished generation with its certificate (after `step` returned null). */
  result(): GenerationResult;
  /** SARIF 2.1.0 text of the certificate (after `step` returned null). */
  sarif(): string;
}

/** What `Engine.prepare` did: the milliseconds, and whether the rows came from a lift artefact. */
export interface PrepareInfo {
  ms: number;
  rows: "artefact" | "built";
  /** Why a lift artefact that was there was not used. */
  note?: string;
}

/** The wasm module, loaded. */
export interface Engine {
  /** Compiles a policy (replacing the current one) and describes it. */
  setPolicy(policy: GatheredPolicy): PolicyInfo;
  /** Findings of the independent checker on `text` with the current policy. */
  check(text: string): Finding[];
  /** Loads a model on a backend (replacing the current one). */
  loadModel(model: ModelBytes, backend: BackendChoice): Promise<{ backend: BackendReport; vocab_size?: number }>;
  /** True once a model is loaded. */
  hasModel(): boolean;
  /**
   * Does now the per-policy work the first generation would do (the lift of the current
   * policy to the model's vocabulary); milliseconds taken, or null when there is nothing to
   * prepare (no model, no policy, or a wasm build without it). `rows`: the policy's lift
   * artefact for this model (`ward compile-policy --lift-tokenizer … --lift-out …`), loaded
   * instead of building the rows when it fits; one that does not (another policy, compiler
   * or tokenizer) is set aside and the rows are built, which is always correct.
   */
  prepare?(rows?: Uint8Array): PrepareInfo | null;
  /** True when this wasm build can generate at all (has the `Generator`). */
  canGenerate(): boolean;
  /**
   * Starts a generation with the current model and policy; `oracle` (hole-fill text) makes
   * the model prefer those tokens (the sampler's oracle adversary).
   */
  start(request: GenerateRequest, oracle?: string): Run;
}

/** Loads the engine from the wasm package at `wasmBase` (URL of its folder). */
export type EngineLoader = (wasmBase: string, onWasmProgress: (loaded: number, total: number | null, source: "network" | "cache", done: boolean) => void) => Promise<Engine>;

/**
 * Checks the model files a user opened (or the server sent) before they reach the wasm, so the
 * common mistakes name the file and the field.
 */
export function checkModelFiles(model: ModelBytes): { vocab_size?: number } {
  const name = model.name;
  if (model.config.byteLength === 0) throw new ModelFileError(`${name}/config.json is empty`);
  let config: unknown;
  try {
    config = JSON.parse(new TextDecoder().decode(model.config));
  } catch (e) {
    throw new ModelFileError(`${name}/config.json is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new ModelFileError(`${name}/config.json must hold a JSON object`);
  }
  const c = config as Record<string, unknown>;
  for (const field of ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"]) {
    if (typeof c[field] !== "number") {
      throw new ModelFileError(`${name}/config.json: field \`${field}\` is missing or not a number`);
    }
  }
  if (model.weights.byteLength < 8) {
    throw new ModelFileError(`${name}/model.safetensors is too short (${model.weights.byteLength} bytes) to be a safetensors file`);
  }
  const view = new DataView(model.weights.buffer, model.weights.byteOffset, model.weights.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen <= 0 || headerLen > model.weights.byteLength - 8) {
    throw new ModelFileError(`${name}/model.safetensors: header length ${headerLen} does not fit in the file (${model.weights.byteLength} bytes)`);
  }
  let tokenizer: unknown;
  try {
    tokenizer = JSON.parse(new TextDecoder().decode(model.tokenizer));
  } catch (e) {
    throw new ModelFileError(`${name}/tokenizer.json is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof tokenizer !== "object" || tokenizer === null || typeof (tokenizer as { model?: unknown }).model !== "object") {
    throw new ModelFileError(`${name}/tokenizer.json: field \`model\` is missing (not a Hugging Face tokenizer file)`);
  }
  return { vocab_size: c.vocab_size as number };
}
