import { describe, expect, it } from "vitest";
import { locatePolicyError, normalisePolicy, plain, policyErrorInfo, WasmEngine } from "./wasm-engine.js";

describe("wasm adapter", () => {
  it("normalises `ward explain --json` into PolicyInfo", () => {
    const info = normalisePolicy({
      pack: "python",
      files: ["policies/python/pack.yaml", "policies/base/pack.yaml"],
      rules: [
        { id: "python.eval", severity: "ERROR", enabled: true, enforced: true, pack: "python", cwe: ["CWE-95"], message: "m" },
        { id: "python.debug", severity: "WARNING", enabled: true, enforced: false, pack: "python", cwe: "CWE-489", message: "d" },
        { id: "base.x", severity: "ERROR", enabled: false, enforced: true, pack: "base", cwe: [], message: "x" },
      ],
      stats: { compile_ms: 12.34, modules: [{ rules: [0], states: 40 }, { rules: [1], states: 2 }] },
    });
    expect(info.rules.map((r) => [r.id, r.status])).toEqual([
      ["python.eval", "enforced"],
      ["python.debug", "reported"],
      ["base.x", "disabled"],
    ]);
    expect(info.rules[1].cwe).toEqual(["CWE-489"]);
    expect(info.text).toContain("2 modules, 42 states, compiled in 12.3 ms");
    expect(info.text).toContain("enforced  ERROR    python.eval  (python)");
  });

  it("reads the WardError fields, falling back to the message", () => {
    const gathered = { files: { "inline/custom/pack.yaml": "" }, root: "inline/custom/pack.yaml", inlineLineOffset: 1 };
    const e = Object.assign(new Error("bad regex"), { name: "WardError", kind: "policy", rule: "custom.a", file: "inline/custom/pack.yaml", line: 6, column: 9 });
    expect(policyErrorInfo(e, gathered)).toEqual({ message: "bad regex", rule_id: "custom.a", file: "inline/custom/pack.yaml", line: 6, column: 9 });
    expect(locatePolicyError("inline/custom/pack.yaml:3:7: rule `custom.b` has no pattern", ["inline/custom/pack.yaml"])).toEqual({ file: "inline/custom/pack.yaml", line: 3, column: 7, rule_id: "custom.b" });
  });

  it("moves a regex error's column from the pattern to the file", () => {
    const yaml = "pack: custom\nrules:\n  - id: custom.a\n    pattern-regex: 'x'\n  - id: custom.la\n    message: m\n    pattern-regex: 'foo(?=bar)'\n";
    const gathered = { files: { "inline/custom/pack.yaml": yaml }, root: "inline/custom/pack.yaml", inlineLineOffset: 1 };
    const e = Object.assign(new Error("policy: inline/custom/pack.yaml:1:4: rule `custom.la`: look-around is not regular: `(?=` at column 4 of pattern `foo(?=bar)`"), { rule: "custom.la", file: "inline/custom/pack.yaml", line: 1, column: 4 });
    expect(policyErrorInfo(e, gathered)).toMatchObject({ line: 7, column: 24 });
    expect(yaml.split("\n")[6].slice(23, 26)).toBe("(?=");
  });

  it("turns Maps and JSON text into plain data", () => {
    expect(plain(new Map<string, unknown>([["a", new Map([["b", 1]])]]))).toEqual({ a: { b: 1 } });
    expect(plain('{"x":[1,2]}')).toEqual({ x: [1, 2] });
  });

  it("loads a matching artefact, and compiles (saying why) when the wasm refuses it", () => {
    const made: string[] = [];
    const explain = { pack: "python", rules: [{ id: "python.eval", severity: "ERROR", enabled: true, enforced: true }], stats: { compile_ms: 3.5, modules: [{ states: 9 }] } };
    class FakePolicy {
      loadMs = 3.5;
      constructor(_files: Record<string, string>, top: string) {
        made.push(`compiled ${top}`);
      }
      static fromArtefactFor(bytes: Uint8Array, _files: Record<string, string>, top: string): FakePolicy {
        if (bytes[0] !== 1) throw Object.assign(new Error("stale artefact: `policies/python/pack.yaml` has changed since it was compiled"), { name: "WardError", kind: "artefact" });
        made.push(`artefact ${top}`);
        return Object.create(FakePolicy.prototype, { loadMs: { value: 0.5 } });
      }
      explain() {
        return explain;
      }
      check() {
        return [];
      }
    }
    const engine = new WasmEngine({ default: async () => undefined, Policy: FakePolicy as never });
    const root = "policies/python/pack.yaml";
    const ok = engine.setPolicy({ files: { [root]: "" }, root, inlineLineOffset: 0, artefact: { url: "/policies/python/pack.wardpol", bytes: new Uint8Array([1]) } });
    expect(ok.loadedFrom).toBe("artefact");
    expect(ok.loadMs).toBe(0.5);
    expect(ok.text).toContain("loaded from the precompiled artefact in 3.5 ms");
    const stale = engine.setPolicy({ files: { [root]: "" }, root, inlineLineOffset: 0, artefact: { url: "/policies/python/pack.wardpol", bytes: new Uint8Array([2]) } });
    expect(stale.loadedFrom).toBe("compiled");
    expect(stale.artefactNote).toContain("has changed since it was compiled");
    expect(stale.text).toContain("artefact not used: /policies/python/pack.wardpol: stale artefact");
    expect(stale.text?.split("\n")[1]).toMatch(/^artefact not used: /);
    const none = engine.setPolicy({ files: { [root]: "" }, root, inlineLineOffset: 0 });
    expect(none.loadedFrom).toBe("compiled");
    expect(none.artefactNote).toBeUndefined();
    expect(made).toEqual([`artefact ${root}`, `compiled ${root}`, `compiled ${root}`]);
  });

  it("prepares from a fitting lift artefact, and builds the rows (saying why) when the wasm refuses one", async () => {
    const calls: string[] = [];
    class FakePolicy {
      constructor() {}
      explain() {
        return { pack: "python", rules: [], stats: { compile_ms: 1, modules: [] } };
      }
      check() {
        return [];
      }
    }
    const gen = {
      backend: () => ({ backend: "cpu" }),
      prepare: () => (calls.push("built"), 7),
      prepareWithRows: (_p: unknown, rows: Uint8Array) => {
        if (rows[0] !== 1) throw Object.assign(new Error("lift artefact: built for another vocabulary (tokenizer): rebuild it for this tokenizer"), { name: "WardError", kind: "artefact" });
        calls.push("loaded");
        return 2;
      },
      start: () => ({}),
      startWithoutPolicy: () => ({}),
      step: () => undefined,
      cancel: () => {},
      result: () => ({}),
      sarif: () => "",
    };
    const engine = new WasmEngine({ default: async () => undefined, Policy: FakePolicy as never, Generator: { create: async () => gen } as never });
    engine.setPolicy({ files: { "policies/python/pack.yaml": "" }, root: "policies/python/pack.yaml", inlineLineOffset: 0 });
    await engine.loadModel({ name: "m", config: new Uint8Array(), weights: new Uint8Array(), tokenizer: new Uint8Array() }, "cpu");
    expect(engine.prepare(new Uint8Array([1]))).toEqual({ ms: 2, rows: "artefact" });
    const refused = engine.prepare(new Uint8Array([2]));
    expect(refused).toMatchObject({ ms: 7, rows: "built" });
    expect(refused?.note).toContain("lift artefact not used: lift artefact: built for another vocabulary");
    expect(engine.prepare()).toEqual({ ms: 7, rows: "built" });
    expect(calls).toEqual(["loaded", "built", "built"]);
  });
});
