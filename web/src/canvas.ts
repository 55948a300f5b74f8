/**
 * The denoising canvas as the UI sees it: built from the start event, updated by step events,
 * and replayable to any step (the playground's slider). Pure data, no DOM.
 *
 * @module
 */

import type { StartEvent, StepEvent } from "./protocol.js";

/** A candidate the policy blocked at a position, with the step it happened at. */
export interface BlockMark {
  step: number;
  token: number;
  text: string;
  probability: number;
  rule_ids: string[];
}

/** One position of the canvas. */
export interface Cell {
  position: number;
  /** `fixed`: prompt; `mask`: still to fill; `committed`: filled by the sampler. */
  state: "fixed" | "mask" | "committed";
  text: string;
  token: number | null;
  /** Step that committed it (committed cells). */
  step: number | null;
  probability: number | null;
  /** Candidates the policy removed at this position, oldest first. */
  blocked: BlockMark[];
  /** Times this position was reopened by a remask. */
  remasked: number;
  /** Filled by the end of the text (nothing shown). */
  end: boolean;
}

/** The canvas after some steps. */
export interface CanvasSnapshot {
  cells: Cell[];
  /** Steps applied. */
  steps: number;
  /** Positions still masked. */
  open: number;
  /** Blocked candidates so far. */
  blockedTotal: number;
}

/** Builds the snapshot after `upTo` steps (all of them by default). */
export function replay(start: StartEvent, steps: readonly StepEvent[], upTo: number = steps.length): CanvasSnapshot {
  const cells: Cell[] = start.canvas.map((c) => ({
    position: c.position,
    state: c.kind === "fixed" ? "fixed" : "mask",
    text: c.kind === "fixed" ? c.text : "",
    token: c.kind === "fixed" ? c.token : null,
    step: null,
    probability: null,
    blocked: [],
    remasked: 0,
    end: false,
  }));
  const byPos = new Map<number, Cell>();
  for (const c of cells) byPos.set(c.position, c);
  let blockedTotal = 0;
  const n = Math.max(0, Math.min(upTo, steps.length));
  for (let i = 0; i < n; i++) {
    const ev = steps[i];
    // Blocks first: they describe what was refused before the commit chose a token.
    for (const b of ev.blocked) {
      const c = byPos.get(b.position);
      if (!c) continue;
      c.blocked.push({ step: ev.step, token: b.token, text: b.text, probability: b.probability, rule_ids: b.rule_ids });
      blockedTotal++;
    }
    for (const r of ev.remasks) {
      for (const p of r.reopened) {
        const c = byPos.get(p);
        if (!c || c.state === "fixed") continue;
        c.state = "mask";
        c.text = "";
        c.token = null;
        c.step = null;
        c.probability = null;
        c.end = false;
        c.remasked++;
      }
    }
    for (const m of ev.committed) {
      const c = byPos.get(m.position);
      if (!c) continue;
      c.state = "committed";
      c.text = m.text;
      c.token = m.token;
      c.step = ev.step;
      c.probability = m.probability;
      c.end = m.end === true;
    }
  }
  return { cells, steps: n, open: cells.filter((c) => c.state === "mask").length, blockedTotal };
}

/**
 * Probability mass the policy removed at a cell: the most it removed in any one step (the sum
 * over that step's blocked candidates). Summing over steps would count the same mass again
 * each time the model proposes a blocked candidate anew, and pass 100%.
 */
export function blockedMass(cell: Cell): number {
  const perStep = new Map<number, number>();
  for (const b of cell.blocked) perStep.set(b.step, (perStep.get(b.step) ?? 0) + b.probability);
  return Math.min(1, Math.max(0, ...perStep.values()));
}

/** Distinct rule ids that blocked candidates at a cell. */
export function blockingRules(cell: Cell): string[] {
  return [...new Set(cell.blocked.flatMap((b) => b.rule_ids))];
}

/** Splits a text into display segments by line so a canvas can be laid out as code. */
export function visibleText(cell: Cell): string {
  return cell.state === "mask" ? "" : cell.text;
}
