// @vitest-environment happy-dom
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GenerateCommand, InitCommand, ProgressReport, StepEvent } from "../protocol.js";
import { InProcessWorker, installFakeCaches, ORIGIN } from "../test/fakes.js";
import { parsePolicyAttribute, SecureCodegen } from "./secure-codegen.component.js";
import type { DoneDetail } from "./secure-codegen.component.js";

let workers: InProcessWorker[] = [];

beforeAll(() => {
  if (!customElements.get("secure-codegen")) customElements.define("secure-codegen", SecureCodegen);
});
beforeEach(() => {
  installFakeCaches();
  workers = [];
  SecureCodegen.createWorker = () => {
    const w = new InProcessWorker();
    workers.push(w);
    return w;
  };
  document.body.replaceChildren();
});

function make(attrs: Record<string, string>): SecureCodegen {
  const el = document.createElement("secure-codegen");
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  document.body.append(el);
  return el;
}

const base = { model: `${ORIGIN}/models/tiny/`, policy: `${ORIGIN}/policies/python/pack.yaml`, wasm: `${ORIGIN}/wasm/` };

describe("<secure-codegen> attributes → request", () => {
  it("maps every attribute into the generate and init commands", async () => {
    const el = make({ ...base, prompt: "x = <|hole:2|>", steps: "2", strategy: "entropy", seed: "42", backend: "webgpu", "max-new": "9", enforce: "false" });
    await el.generate();
    const w = workers[0];
    const init = w.posted.find((c) => (c as InitCommand).type === "init") as InitCommand;
    expect(init).toMatchObject({ wasmBase: `${ORIGIN}/wasm/`, backend: "webgpu", model: { kind: "url", base: `${ORIGIN}/models/tiny/` }, policy: { packs: [`${ORIGIN}/policies/python/pack.yaml`] } });
    const gen = w.posted.find((c) => (c as GenerateCommand).type === "generate") as GenerateCommand;
    expect(gen.request).toEqual({ prompt: "x = <|hole:2|>", steps: 2, strategy: "entropy", seed: 42, max_new: 9, enforce: false });
    expect(gen.oracle).toBeUndefined();
    el.setAttribute("adversary", "system(cmd)");
    await el.generate();
    expect(w.engine.oracles).toEqual([undefined, "system(cmd)"]);
  });

  it("properties reflect to attributes", () => {
    const el = make(base);
    el.prompt = "a<|hole:1|>";
    el.seed = 3;
    el.steps = 5;
    el.strategy = "margin";
    el.backend = "cpu";
    expect(el.getAttribute("prompt")).toBe("a<|hole:1|>");
    expect(el.buildRequest()).toEqual({ prompt: "a<|hole:1|>", seed: 3, steps: 5, strategy: "margin" });
    el.steps = undefined;
    expect(el.hasAttribute("steps")).toBe(false);
  });

  it("finds the wasm at the package root by default", () => {
    const el = make({});
    // The component lives in element/; the package's wasm/ is beside secure-codegen.js.
    expect(el.wasm.endsWith("/web/src/wasm/")).toBe(true);
  });

  it("parses the policy attribute as URLs or inline YAML", () => {
    expect(parsePolicyAttribute("/p/python/ /p/extra/pack.yaml")).toEqual({ packs: ["/p/python/", "/p/extra/pack.yaml"] });
    expect(parsePolicyAttribute("a.yaml,b.yaml")).toEqual({ packs: ["a.yaml", "b.yaml"] });
    expect(parsePolicyAttribute("rules:\n  - id: x")).toEqual({ inline: "rules:\n  - id: x" });
  });

  it("a bad attribute fires error with the attribute named, and posts nothing", async () => {
    const el = make({ ...base, prompt: "<|hole:2|>", steps: "two" });
    const errors: Error[] = [];
    document.addEventListener("error", (e) => errors.push((e as unknown as CustomEvent<Error>).detail), { once: true });
    await expect(el.generate()).rejects.toThrow("attribute `steps` must be an integer ≥ 1, got \"two\"");
    expect(errors[0].message).toContain("`steps`");
    expect(workers).toHaveLength(0);
    expect(el.shadowRoot!.querySelector(".error")!.textContent).toContain("`steps`");
  });
});

describe("<secure-codegen> events and rendering", () => {
  it("fires progress, step and done, bubbling and composed", async () => {
    const el = make({ ...base, prompt: "os.<|hole:3|>" });
    const seen: string[] = [];
    const flags: boolean[] = [];
    let done: DoneDetail | null = null;
    const steps: StepEvent[] = [];
    for (const t of ["progress", "step", "done"]) {
      document.addEventListener(t, (e) => {
        seen.push(t);
        flags.push(e.bubbles && e.composed);
        if (t === "done") done = (e as CustomEvent<DoneDetail>).detail;
        if (t === "step") steps.push((e as CustomEvent<StepEvent>).detail);
        if (t === "progress") expect((e as CustomEvent<ProgressReport>).detail.asset).toBeTypeOf("string");
      });
    }
    const result = await el.generate();
    expect(seen).toContain("progress");
    expect(steps.map((s) => s.step)).toEqual([0, 1, 2]);
    expect(seen.at(-1)).toBe("done");
    expect(flags.every(Boolean)).toBe(true);
    expect(done!.text).toBe("os.t1t2t3");
    expect(done!.certificate.verdict).toBe("clean");
    expect(done!.timings.total_ms).toBe(10);
    expect(result?.text).toBe("os.t1t2t3");
    const root = el.shadowRoot!;
    expect(root.querySelector(".cert")!.textContent).toContain("clean");
    expect(root.querySelector(".badge")!.textContent).toBe("CPU");
  });

  it("shows masks, commits and a focusable blocked mark with rule, CWE and mass", async () => {
    const el = make({ ...base, prompt: "os.<|hole:3|>" });
    let masksAfterFirst = -1;
    el.addEventListener("step", () => {
      if (masksAfterFirst < 0) masksAfterFirst = el.shadowRoot!.querySelectorAll(".mask").length;
    });
    await el.generate();
    expect(masksAfterFirst).toBe(2);
    const root = el.shadowRoot!;
    expect(root.querySelectorAll(".mask")).toHaveLength(0);
    const mark = root.querySelector<HTMLElement>(".blocked")!;
    expect(mark.textContent).toBe("t1");
    expect(mark.tabIndex).toBe(0);
    expect(mark.getAttribute("aria-label")).toContain("python.os-system (CWE-78)");
    mark.dispatchEvent(new FocusEvent("focusin", { bubbles: true }));
    const tip = root.querySelector<HTMLElement>(".ward-tip")!;
    expect(tip.hidden).toBe(false);
    expect(tip.textContent).toContain("python.os-system");
    expect(tip.textContent).toContain("CWE-78");
    expect(tip.textContent).toContain("\"system\" p=0.400");
    expect(tip.textContent).toContain("Probability mass removed: 40.0%");
    root.querySelector(".canvas-wrap")!.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    expect(tip.hidden).toBe(true);
  });

  it("cancel() stops the run and generate() resolves null", async () => {
    const el = make({ ...base, prompt: "<|hole:40|>" });
    let n = 0;
    el.addEventListener("step", () => {
      if (++n === 2) el.cancel();
    });
    expect(await el.generate()).toBeNull();
    expect(n).toBeLessThan(40);
    expect(workers[0].posted.some((c) => (c as { type: string }).type === "cancel")).toBe(true);
    expect(el.shadowRoot!.querySelector("[role=status]")!.textContent).toMatch(/^Stopped after \d+ steps?\.$/);
  });

  it("reuses the loaded worker until model, policy or backend change", async () => {
    const el = make({ ...base, prompt: "<|hole:1|>" });
    await el.generate();
    await el.generate();
    const inits = () => workers[0].posted.filter((c) => (c as { type: string }).type === "init").length;
    expect(inits()).toBe(1);
    el.backend = "cpu";
    await el.generate();
    expect(inits()).toBe(2);
    el.remove();
    expect(workers[0].terminated).toBe(true);
  });
});
