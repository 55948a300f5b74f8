/**
 * The playground page: prompt editor, policy panel, generation (enforced, no policy, or both
 * with the same seed), replay slider, certificate and SARIF, bring-your-own model.
 * All Ward work happens in the worker, through `WardClient`.
 *
 * @module
 */

import type { EditorView } from "@codemirror/view";
import { replay } from "../src/canvas.js";
import type { Cell } from "../src/canvas.js";
import { WardClient, WardError } from "../src/client.js";
import type { BackendChoice, Finding, GenerateRequest, GenerationResult, ModelSource, PolicyInfo, PolicySource, RuleInfo, StartEvent, StepEvent, Strategy } from "../src/protocol.js";
import { attachTooltips, renderCanvas, renderCertificate, ruleTable } from "../src/render.js";
import { canvasCss } from "../src/element/secure-codegen.styles.js";
import { EXAMPLES } from "./examples.js";
import { promptEditor, setText, showFindings, showYamlError, yamlEditor } from "./editor.js";

const WASM_BASE = "/wasm/";
const DEFAULT_MODEL = "/models/ward-tiny-code/";
const PACK_URLS: Record<string, string> = {
  python: "/policies/python/pack.yaml",
  base: "/policies/base/pack.yaml",
};
const SAMPLE_RULE = `rules:
  - id: custom.no-pickle-loads
    message: Do not unpickle data; use json.loads.
    severity: ERROR
    languages: [python]
    metadata:
      cwe: "CWE-502: Deserialization of Untrusted Data"
    pattern-regex: '\\bpickle\\.loads\\s*\\('
`;

function $(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (!e) throw new Error(`playground: #${id} is missing from the page`);
  return e;
}
const $in = (id: string) => $(id) as HTMLInputElement;
const $btn = (id: string) => $(id) as HTMLButtonElement;

type PaneId = "none" | "enforced";
interface Pane {
  id: PaneId;
  pre: HTMLElement;
  tip: HTMLElement;
  note: HTMLElement;
  box: HTMLElement;
  start: StartEvent | null;
  steps: StepEvent[];
  cells: Cell[];
  result: GenerationResult | null;
  sarif: string | null;
}

// The canvas styles are shared with <secure-codegen>; a constructed sheet needs no inline style.
const canvasSheet = new CSSStyleSheet();
canvasSheet.replaceSync(canvasCss);
document.adoptedStyleSheets = [...document.adoptedStyleSheets, canvasSheet];

const worker = new Worker(new URL("../src/worker.ts", import.meta.url), { type: "module", name: "ward" });
const client = new WardClient(worker);

const state = {
  rules: [] as RuleInfo[],
  policy: null as PolicyInfo | null,
  disabled: new Set<string>(),
  customYaml: "",
  canGenerate: false,
  running: null as { cancel(): void; done: Promise<unknown> } | null,
  stopRequested: false,
  modelName: "ward-tiny-code",
};

const panes: Record<PaneId, Pane> = {
  none: { id: "none", pre: $("canvas-none"), tip: $("tip-none"), note: $("note-none"), box: $("pane-none"), start: null, steps: [], cells: [], result: null, sarif: null },
  enforced: { id: "enforced", pre: $("canvas-enforced"), tip: $("tip-enforced"), note: $("note-enforced"), box: $("pane-enforced"), start: null, steps: [], cells: [], result: null, sarif: null },
};
for (const p of Object.values(panes)) {
  attachTooltips(p.pre.parentElement as HTMLElement, p.tip, (pos) => p.cells.find((c) => c.position === pos), () => ruleTable(state.rules, p.result?.certificate));
}

function setPageState(s: "loading" | "ready" | "generating" | "done" | "stopped" | "error"): void {
  document.body.dataset.state = s;
}

function status(text: string, kind: "info" | "error" = "info"): void {
  const el = $("gen-status");
  el.textContent = text;
  el.classList.toggle("error-text", kind === "error");
}

// ------------------------------------------------------------------ editors

let checkTimer: ReturnType<typeof setTimeout> | undefined;
const prompt: EditorView = promptEditor($("prompt-editor"), EXAMPLES[0].prompt, () => scheduleCheck());
const yamlView: EditorView = yamlEditor($("yaml-editor"), SAMPLE_RULE, () => {
  $("yaml-status").textContent = "Edited: press Apply to compile and enforce.";
});

function scheduleCheck(): void {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(() => void runCheck(), 250);
}

async function runCheck(): Promise<void> {
  if (!state.policy) return;
  const text = prompt.state.doc.toString();
  try {
    const findings = await client.check(text);
    showFindings(prompt, findings);
    renderFindingList(findings);
  } catch (e) {
    $("prompt-findings").textContent = `check failed: ${(e as Error).message}`;
  }
}

function renderFindingList(findings: readonly Finding[]): void {
  const box = $("prompt-findings");
  if (findings.length === 0) {
    box.textContent = "No findings in the prompt.";
    box.dataset.count = "0";
    return;
  }
  box.dataset.count = String(findings.length);
  const ul = document.createElement("ul");
  for (const f of findings) {
    const li = document.createElement("li");
    li.className = f.enforced ? "f-error" : "f-warn";
    li.textContent = `${f.line}:${f.column} ${f.rule_id} — ${f.message}`;
    ul.append(li);
  }
  box.replaceChildren(ul);
}

// ------------------------------------------------------------------ examples

const exampleSel = $("example") as HTMLSelectElement;
for (const ex of EXAMPLES) {
  const o = document.createElement("option");
  o.value = ex.id;
  o.textContent = ex.title;
  exampleSel.append(o);
}
exampleSel.addEventListener("change", () => {
  const ex = EXAMPLES.find((e) => e.id === exampleSel.value);
  if (!ex) return;
  setText(prompt, ex.prompt);
  $in("steps").value = String(ex.steps);
  $in("adversary").value = ex.insecure;
});
$in("steps").value = String(EXAMPLES[0].steps);
$in("adversary").value = EXAMPLES[0].insecure;

/** The completion the adversarial model prefers, when that mode is on. */
function oracle(): string | undefined {
  return $in("adversary-on").checked && $in("adversary").value !== "" ? $in("adversary").value : undefined;
}

// ------------------------------------------------------------------ policy

function policySource(): PolicySource {
  const packs = [...document.querySelectorAll<HTMLInputElement>('input[name="pack"]:checked')].map((i) => PACK_URLS[i.value]);
  const src: PolicySource = { packs, disable: [...state.disabled] };
  if (state.customYaml.trim()) src.inline = state.customYaml;
  return src;
}

function showPolicy(info: PolicyInfo): void {
  state.policy = info;
  // Keep rules the user switched off in the list so they can be switched back on.
  const known = new Map(state.rules.map((r) => [r.id, r]));
  for (const r of info.rules) known.set(r.id, r);
  const ids = new Set(info.rules.map((r) => r.id));
  state.rules = [...known.values()].filter((r) => ids.has(r.id) || state.disabled.has(r.id));
  $("policy-digest").textContent = info.digest ?? "";
  const enforced = info.rules.filter((r) => r.status === "enforced").length;
  $("rule-count").textContent = `(${enforced} enforced, ${info.rules.length - enforced} other)`;
  renderRules();
  $("effective").textContent = info.text ?? info.rules.map((r) => `${r.status.padEnd(9)} ${r.severity.padEnd(8)} ${r.id}`).join("\n");
}

function renderRules(): void {
  const filter = $in("rule-filter").value.trim().toLowerCase();
  const ul = $("rules");
  const items: HTMLElement[] = [];
  for (const r of state.rules) {
    if (filter && !`${r.id} ${r.message} ${r.cwe.join(" ")}`.toLowerCase().includes(filter)) continue;
    const li = document.createElement("li");
    const label = document.createElement("label");
    const cb = document.createElement("input");
    cb.type = "checkbox";
    cb.checked = !state.disabled.has(r.id);
    cb.dataset.rule = r.id;
    cb.addEventListener("change", () => {
      if (cb.checked) state.disabled.delete(r.id);
      else state.disabled.add(r.id);
      void applyPolicy();
    });
    const id = document.createElement("span");
    id.className = "mono";
    id.textContent = r.id;
    const sev = document.createElement("span");
    const st = state.disabled.has(r.id) ? "disabled" : r.status;
    sev.className = `sev sev-${st}`;
    sev.textContent = st === "enforced" ? "enforced" : st === "disabled" ? "off" : r.severity.toLowerCase();
    label.append(cb, " ", id, " ", sev);
    label.title = `${r.message}${r.cwe.length ? `\n${r.cwe.join(", ")}` : ""}`;
    li.append(label);
    items.push(li);
  }
  ul.replaceChildren(...items);
}
$in("rule-filter").addEventListener("input", renderRules);
for (const cb of document.querySelectorAll<HTMLInputElement>('input[name="pack"]')) cb.addEventListener("change", () => void applyPolicy());

async function applyPolicy(keepYamlError = false): Promise<boolean> {
  try {
    const info = await client.setPolicy(policySource());
    showPolicy(info);
    if (!keepYamlError) showYamlError(yamlView, null);
    scheduleCheck();
    return true;
  } catch (e) {
    const err = e as WardError;
    if (err.policyError) {
      const pe = err.policyError;
      const inCustom = pe.file?.replace(/^\/+/, "").startsWith("inline/custom/") || (!pe.file && state.customYaml.trim() !== "");
      if (inCustom) showYamlError(yamlView, { message: err.message, line: pe.line, column: pe.column });
      $("yaml-status").textContent = `Compile error${pe.line !== undefined ? ` at line ${pe.line}${pe.column !== undefined ? `, column ${pe.column}` : ""}` : pe.column !== undefined ? ` at column ${pe.column}` : ""}: ${err.message}`;
      $("yaml-status").classList.add("error-text");
    } else {
      status(`Policy failed: ${err.message}`, "error");
    }
    return false;
  }
}

$btn("apply-yaml").addEventListener("click", async () => {
  const previous = state.customYaml;
  state.customYaml = yamlView.state.doc.toString();
  $("yaml-status").classList.remove("error-text");
  $("yaml-status").textContent = "Compiling…";
  if (await applyPolicy()) {
    $("yaml-status").textContent = state.customYaml.trim() ? "Compiled: enforced on the next run." : "Custom rules removed.";
  } else {
    state.customYaml = previous; // the last policy that compiled stays in force
    await applyPolicy(true).catch(() => undefined);
  }
});
$btn("clear-yaml").addEventListener("click", async () => {
  setText(yamlView, "");
  state.customYaml = "";
  showYamlError(yamlView, null);
  $("yaml-status").classList.remove("error-text");
  if (await applyPolicy()) $("yaml-status").textContent = "Custom rules removed.";
});

// ------------------------------------------------------------------ loading

function progressUi(): (p: { asset: string; loaded: number; total: number | null; done: boolean }) => void {
  const totals = new Map<string, { loaded: number; total: number | null }>();
  const bar = $("progress") as HTMLProgressElement;
  return (p) => {
    totals.set(p.asset, { loaded: p.loaded, total: p.total });
    let loaded = 0;
    let total = 0;
    for (const t of totals.values()) {
      loaded += t.loaded;
      total += t.total ?? t.loaded;
    }
    bar.hidden = false;
    bar.max = Math.max(1, total);
    bar.value = loaded;
    $("load-status").textContent = `Loading ${p.asset}: ${(p.loaded / 1048576).toFixed(1)}${p.total ? ` / ${(p.total / 1048576).toFixed(1)}` : ""} MB`;
  };
}

/** How to get the current model's bytes again (transferred buffers are gone after init). */
let currentModel: () => Promise<ModelSource> = async () => ({ kind: "url", base: DEFAULT_MODEL });

function backendChoice(): BackendChoice {
  return ($("backend-choice") as HTMLSelectElement).value as BackendChoice;
}

/** Marks the page as loading: Generate is disabled until `load` ends. */
function beginLoading(): void {
  setPageState("loading");
  state.canGenerate = false;
  $btn("generate").disabled = true;
}

/**
 * Stops the generation in flight, if any, and waits for it to end: the worker refuses to load
 * a model or a policy while a generation runs.
 */
async function stopRunning(): Promise<void> {
  if (!state.running) return;
  state.stopRequested = true;
  const run = state.running;
  run.cancel();
  await run.done.catch(() => null);
}

async function load(model: ModelSource): Promise<void> {
  beginLoading();
  status("Loading the wasm module, the model and the policy…");
  const onProgress = progressUi();
  try {
    const ready = await client.init({ wasmBase: WASM_BASE, model, policy: policySource(), backend: backendChoice(), onProgress });
    showPolicy(ready.policy);
    state.canGenerate = true;
    const b = ready.backend;
    // A short badge; the full reason (why `auto` took the CPU) is its tooltip and label.
    const why = b?.reason ? (/software/.test(b.reason) ? "software WebGPU adapter skipped" : "no WebGPU") : "";
    $("backend").textContent = b ? (b.backend === "webgpu" ? `WebGPU · ${b.adapter ?? "adapter"}` : `CPU${why ? ` (${why})` : ""}`) : "backend: none";
    $("backend").title = b?.reason ?? "compute backend in use";
    $("backend").setAttribute("aria-label", b ? `backend: ${b.backend}${b.reason ? `, ${b.reason}` : ""}` : "backend: none");
    $("backend").dataset.backend = b?.backend ?? "";
    state.modelName = ready.model?.name ?? state.modelName;
    $("model-name").textContent = `model: ${state.modelName}`;
    // Where the loaded model came from: "url" (the default, served) or "files" (a folder
    // opened from disk), so that a folder with the default model's name is told apart.
    $("model-name").dataset.source = model.kind;
    status("Ready. Pick an example or write a prompt, then Generate.");
    setPageState("ready");
  } catch (e) {
    const err = e as WardError;
    state.canGenerate = false;
    if (err.code === "wasm-api-missing" && model) {
      // The policy-only build: check and explain still work.
      try {
        const ready = await client.init({ wasmBase: WASM_BASE, policy: policySource(), onProgress });
        showPolicy(ready.policy);
        $("backend").textContent = "backend: none (policy-only wasm)";
      } catch {
        /* the first error is the one to show */
      }
    }
    status(err.message, "error");
    setPageState("error");
  } finally {
    ($("progress") as HTMLProgressElement).hidden = true;
    $("load-status").textContent = "";
    $btn("generate").disabled = !state.canGenerate;
    $btn("apply-yaml").disabled = state.policy === null;
    scheduleCheck();
  }
}

$in("model-folder").addEventListener("change", async () => {
  const files = [...($in("model-folder").files ?? [])];
  if (files.length === 0) return;
  const byName = new Map(files.map((f) => [f.name, f]));
  const folder = (files[0].webkitRelativePath || files[0].name).split("/")[0] || "model";
  const missing = ["config.json", "model.safetensors", "tokenizer.json"].filter((n) => !byName.has(n));
  if (missing.length > 0) {
    status(`The folder ${folder} lacks ${missing.join(", ")} (a Hugging Face model folder holds config.json, model.safetensors and tokenizer.json).`, "error");
    return;
  }
  currentModel = async () => {
    const [config, weights, tokenizer] = await Promise.all(["config.json", "model.safetensors", "tokenizer.json"].map((n) => byName.get(n)!.arrayBuffer()));
    return { kind: "files", name: folder, config, weights, tokenizer };
  };
  state.modelName = folder;
  await reload(`Reading the model folder ${folder}…`);
});

/**
 * Loads `currentModel()` again: the page is marked loading at once (before the files are
 * read), so that Generate cannot start on the model being replaced, and a generation in
 * flight is stopped first.
 */
async function reload(what: string): Promise<void> {
  beginLoading();
  status(what);
  await stopRunning();
  let model: ModelSource;
  try {
    model = await currentModel();
  } catch (e) {
    status(`Could not read the model: ${(e as Error).message}`, "error");
    setPageState("error");
    return;
  }
  await load(model);
}

($("backend-choice") as HTMLSelectElement).addEventListener("change", async () => {
  await reload("Switching the compute backend…");
});

// ------------------------------------------------------------------ generation

function mode(): "enforced" | "none" | "both" {
  return ((document.querySelector('input[name="mode"]:checked') as HTMLInputElement | null)?.value ?? "enforced") as "enforced" | "none" | "both";
}

function request(enforce: boolean): GenerateRequest {
  const num = (id: string, min: number, int = true): number => {
    const v = Number($in(id).value);
    if (!Number.isFinite(v) || v < min || (int && !Number.isInteger(v))) throw new Error(`${id} must be ${int ? "an integer" : "a number"} ≥ ${min}, got ${JSON.stringify($in(id).value)}`);
    return v;
  };
  return {
    prompt: prompt.state.doc.toString(),
    steps: num("steps", 1),
    strategy: ($("strategy") as HTMLSelectElement).value as Strategy,
    seed: num("seed", 0),
    temperature: num("temperature", 0, false),
    enforce,
  };
}

function renderPane(p: Pane, upTo?: number): void {
  if (!p.start) {
    p.pre.textContent = "";
    return;
  }
  const n = upTo ?? p.steps.length;
  const snap = replay(p.start, p.steps, n);
  p.cells = snap.cells;
  const fresh = n > 0 && p.steps[n - 1] ? p.steps[n - 1].step : null;
  renderCanvas(p.pre, snap, ruleTable(state.rules, p.result?.certificate), fresh);
}

function updateSlider(): void {
  const max = Math.max(panes.none.steps.length, panes.enforced.steps.length);
  const s = $in("slider");
  s.max = String(max);
  s.value = String(max);
  s.disabled = max === 0;
  $("slider-label").textContent = `step ${max} / ${max}`;
}

$in("slider").addEventListener("input", () => {
  const k = Number($in("slider").value);
  $("slider-label").textContent = `step ${k} / ${$in("slider").max}`;
  for (const p of Object.values(panes)) if (!p.box.hidden) renderPane(p, Math.min(k, p.steps.length));
});

async function runPane(p: Pane, req: GenerateRequest): Promise<GenerationResult | null> {
  p.start = null;
  p.steps = [];
  p.result = null;
  p.sarif = null;
  p.note.textContent = "";
  p.pre.textContent = "";
  const handle = client.generate(req, {
    stepDelayMs: 0,
    oracle: oracle(),
    onStart: (ev) => {
      p.start = ev;
      renderPane(p);
    },
    onStep: (ev) => {
      p.steps.push(ev);
      renderPane(p);
      updateSlider();
      status(`${p.id === "none" ? "No policy" : "Enforced"}: step ${ev.step + 1}, ${ev.open} open${ev.blocked.length ? `, ${ev.blocked.length} blocked` : ""}`);
    },
  });
  state.running = handle;
  const result = await handle.done;
  state.running = null;
  if (!result) return null;
  p.result = result;
  p.sarif = await client.sarif();
  renderPane(p);
  const c = result.certificate;
  p.note.textContent = `${c.findings.length} finding${c.findings.length === 1 ? "" : "s"}, ${c.blocked_total} blocked`;
  p.note.dataset.findings = String(c.findings.length);
  return result;
}

function showDiff(none: GenerationResult, enforced: GenerationResult): void {
  const box = $("diff");
  const fN = none.certificate.findings;
  const fE = enforced.certificate.findings;
  const lines: string[] = [];
  lines.push(none.text === enforced.text ? "Same text with and without the policy (nothing needed blocking)." : "The policy changed the output.");
  lines.push(`No policy: ${fN.length} finding${fN.length === 1 ? "" : "s"}${fN.length ? ` (${[...new Set(fN.map((f) => f.rule_id))].join(", ")})` : ""}.`);
  lines.push(`Enforced: ${fE.length} finding${fE.length === 1 ? "" : "s"}, ${enforced.certificate.blocked_total} candidate${enforced.certificate.blocked_total === 1 ? "" : "s"} blocked${enforced.certificate.remasks ? `, ${enforced.certificate.remasks} remasks` : ""}.`);
  box.replaceChildren(...lines.map((l) => Object.assign(document.createElement("p"), { textContent: l })));
  box.dataset.differs = String(none.text !== enforced.text);
  box.dataset.findingsNone = String(fN.length);
  box.dataset.findingsEnforced = String(fE.length);
  box.hidden = false;
}

function showCertificate(p: Pane): void {
  const box = $("certificate");
  if (!p.result) return;
  renderCertificate(box, p.result);
  box.dataset.verdict = p.result.certificate.verdict;
  box.dataset.findings = String(p.result.certificate.findings.length);
  $btn("download-cert").disabled = false;
  $btn("download-sarif").disabled = p.sarif === null;
  lastCertPane = p;
}
let lastCertPane: Pane | null = null;

$btn("generate").addEventListener("click", async () => {
  let reqs: Array<[Pane, GenerateRequest]>;
  const m = mode();
  try {
    reqs = m === "both" ? [[panes.none, request(false)], [panes.enforced, request(true)]] : m === "none" ? [[panes.none, request(false)]] : [[panes.enforced, request(true)]];
  } catch (e) {
    status((e as Error).message, "error");
    return;
  }
  panes.none.box.hidden = m === "enforced";
  panes.enforced.box.hidden = m === "none";
  $("diff").hidden = true;
  $btn("generate").disabled = true;
  $btn("stop").disabled = false;
  state.stopRequested = false;
  setPageState("generating");
  for (const p of Object.values(panes)) {
    p.start = null;
    p.steps = [];
    p.result = null;
    p.pre.textContent = "";
    p.note.textContent = "";
  }
  updateSlider();
  try {
    for (const [p, req] of reqs) {
      if (state.stopRequested) break;
      const r = await runPane(p, req);
      if (!r) break;
      showCertificate(p);
    }
    if (state.stopRequested) {
      status("Stopped.");
      setPageState("stopped");
    } else {
      if (m === "both" && panes.none.result && panes.enforced.result) showDiff(panes.none.result, panes.enforced.result);
      const last = reqs[reqs.length - 1][0].result;
      status(last ? `Done in ${last.timings.total_ms.toFixed(0)} ms: ${last.certificate.verdict}.` : "Done.");
      setPageState("done");
    }
  } catch (e) {
    status((e as Error).message, "error");
    setPageState("error");
  } finally {
    state.running = null;
    $btn("generate").disabled = !state.canGenerate;
    $btn("stop").disabled = true;
  }
});

$btn("stop").addEventListener("click", () => {
  state.stopRequested = true;
  state.running?.cancel();
});

function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
$btn("download-cert").addEventListener("click", () => {
  if (lastCertPane?.result) download("ward-certificate.json", JSON.stringify(lastCertPane.result.certificate, null, 2), "application/json");
});
$btn("download-sarif").addEventListener("click", () => {
  if (lastCertPane?.sarif) download("ward.sarif", lastCertPane.sarif, "application/sarif+json");
});

// ------------------------------------------------------------------ start

if ("serviceWorker" in navigator && location.protocol !== "file:") {
  navigator.serviceWorker.register("./sw.js", { type: "module" }).catch((e: Error) => console.warn(`service worker not registered (no offline copy of the page): ${e.message}`));
}
setPageState("loading");
void currentModel().then(load);
