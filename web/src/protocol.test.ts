import { describe, expect, it } from "vitest";
import { holeSizes, isReport, validateCommand, validateRequest } from "./protocol.js";

describe("validateCommand", () => {
  it("accepts each well-formed command", () => {
    const cmds = [
      { type: "init", id: 1, wasmBase: "/wasm/", policy: { packs: ["/p/pack.yaml"] }, backend: "auto" },
      { type: "set-policy", id: 2, policy: { inline: "rules: []" } },
      { type: "generate", id: 3, request: { prompt: "x = <|hole:4|>", steps: 2, strategy: "entropy", seed: 7, enforce: false } },
      { type: "cancel", id: 4, target: 3 },
      { type: "check", id: 5, text: "eval(x)" },
      { type: "sarif", id: 6 },
    ];
    for (const c of cmds) expect(validateCommand(c)).toEqual({ ok: true, command: c });
  });

  it("names what is wrong", () => {
    expect(validateCommand(null)).toMatchObject({ ok: false, message: "a command must be an object, got null" });
    expect(validateCommand({ type: "check", text: "x" })).toMatchObject({ ok: false, id: -1, message: expect.stringContaining("`id`") });
    expect(validateCommand({ type: "fly", id: 1 })).toMatchObject({ ok: false, id: 1, message: expect.stringContaining('unknown command type "fly"') });
    expect(validateCommand({ type: "check", id: 2, text: 3 })).toMatchObject({ ok: false, message: "command `check` field `text` must be a string, got number" });
    expect(validateCommand({ type: "init", id: 3, wasmBase: "/w/", policy: {}, backend: "tpu" })).toMatchObject({ ok: false, message: expect.stringContaining('`backend` must be one of auto, webgpu, cpu, got "tpu"') });
    expect(validateCommand({ type: "generate", id: 4, request: { prompt: "x", steps: 0 } })).toMatchObject({ ok: false, id: 4, message: "request field `steps` must be an integer ≥ 1, got 0" });
  });
});

describe("validateRequest", () => {
  it("checks every typed field", () => {
    expect(validateRequest({ prompt: "a" })).toBeNull();
    expect(validateRequest({ prompt: 1 })).toBe("request field `prompt` must be a string");
    expect(validateRequest({ prompt: "a", seed: -1 })).toContain("`seed`");
    expect(validateRequest({ prompt: "a", top_p: Number.NaN })).toContain("`top_p`");
    expect(validateRequest({ prompt: "a", strategy: "best" })).toContain('got "best"');
    expect(validateRequest({ prompt: "a", enforce: "yes" })).toBe("request field `enforce` must be a boolean");
    expect(validateRequest({ prompt: "a", early_end: 1 })).toBe("request field `early_end` must be a boolean");
    expect(validateRequest({ prompt: "a", early_end: false })).toBeNull();
  });
});

describe("helpers", () => {
  it("counts hole sizes in order", () => {
    expect(holeSizes("a <|hole:3|> b <|hole:12|>")).toEqual([3, 12]);
    expect(holeSizes("no holes")).toEqual([]);
  });
  it("recognises reports", () => {
    expect(isReport({ type: "step", id: 1, event: {} })).toBe(true);
    expect(isReport({ type: "init", id: 1 })).toBe(false);
    expect(isReport({ type: "step" })).toBe(false);
  });
});
