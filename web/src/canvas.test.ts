import { describe, expect, it } from "vitest";
import { blockedMass, blockingRules, replay } from "./canvas.js";
import type { StartEvent, StepEvent } from "./protocol.js";

const start: StartEvent = {
  type: "start",
  canvas: [
    { position: 0, token: 3, text: "os.", kind: "fixed" },
    { position: 1, token: null, text: "", kind: "hole" },
    { position: 2, token: null, text: "", kind: "hole" },
  ],
  holes: [1, 2],
  steps: 3,
  enforce: true,
};
const step = (n: number, extra: Partial<StepEvent>): StepEvent => ({ type: "step", step: n, block: 0, committed: [], blocked: [], remasks: [], open: 0, model_ms: 0, guard_ms: 0, ...extra });
const steps: StepEvent[] = [
  step(0, { committed: [{ position: 1, token: 8, text: "getenv", probability: 0.3 }], blocked: [{ position: 1, token: 9, text: "system", probability: 0.6, rule_ids: ["python.os-system"] }, { position: 1, token: 10, text: "popen", probability: 0.05, rule_ids: ["python.os-system", "python.x"] }] }),
  step(1, { committed: [{ position: 2, token: 11, text: "(", probability: 0.9 }] }),
  step(2, { remasks: [{ position: 2, reopened: [1, 2], rule_ids: ["python.x"] }], committed: [{ position: 2, token: 12, text: "(k)", probability: 0.8 }] }),
];

describe("replay", () => {
  it("starts with masks and fixed text", () => {
    const s = replay(start, steps, 0);
    expect(s.cells.map((c) => c.state)).toEqual(["fixed", "mask", "mask"]);
    expect(s.open).toBe(2);
  });
  it("applies commits and records blocks with their step", () => {
    const s = replay(start, steps, 2);
    expect(s.cells.map((c) => c.text)).toEqual(["os.", "getenv", "("]);
    expect(s.blockedTotal).toBe(2);
    expect(blockingRules(s.cells[1])).toEqual(["python.os-system", "python.x"]);
    expect(blockedMass(s.cells[1])).toBeCloseTo(0.65);
    expect(s.cells[1].blocked[0].step).toBe(0);
  });
  it("remasks reopen positions, later commits fill them again", () => {
    const s = replay(start, steps);
    expect(s.cells[1]).toMatchObject({ state: "mask", remasked: 1, text: "" });
    expect(s.cells[2]).toMatchObject({ state: "committed", text: "(k)", step: 2, remasked: 1 });
    expect(s.open).toBe(1);
  });
});

describe("blockedMass", () => {
  it("is the most removed in one step, not a sum over steps (never above 100%)", () => {
    const mark = (step: number, probability: number) => ({ step, token: 1, text: "x", probability, rule_ids: ["r"] });
    const cell = { blocked: [mark(1, 0.9), mark(2, 0.95), mark(2, 0.04), mark(3, 0.99)] } as unknown as Parameters<typeof blockedMass>[0];
    expect(blockedMass(cell)).toBeCloseTo(0.99, 6);
    const one = { blocked: [mark(1, 0.3), mark(1, 0.1)] } as unknown as Parameters<typeof blockedMass>[0];
    expect(blockedMass(one)).toBeCloseTo(0.4, 6);
  });
});
