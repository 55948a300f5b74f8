/**
 * DOM rendering of a canvas snapshot and of the certificate summary, shared by
 * `<secure-codegen>` and the playground. Blocked places are focusable marks; hovering or
 * focusing one shows which rule blocked what, its CWE and the probability mass removed.
 *
 * @module
 */

import { blockedMass, blockingRules, CanvasSnapshot, Cell } from "./canvas.js";
import type { Certificate, GenerationResult, RuleInfo } from "./protocol.js";

/** Rule metadata by id, for tooltips. */
export type RuleTable = ReadonlyMap<string, Pick<RuleInfo, "id" | "message" | "cwe" | "severity">>;

/** Builds a rule table from the policy's rules and (when there is one) a certificate. */
export function ruleTable(rules: readonly RuleInfo[] | undefined, certificate?: Certificate | null): Map<string, Pick<RuleInfo, "id" | "message" | "cwe" | "severity">> {
  const t = new Map<string, Pick<RuleInfo, "id" | "message" | "cwe" | "severity">>();
  for (const r of rules ?? []) t.set(r.id, r);
  for (const r of certificate?.policy?.enforced_rules ?? []) t.set(r.id, { id: r.id, message: r.message, cwe: r.cwe, severity: r.severity });
  return t;
}

function el<K extends keyof HTMLElementTagNameMap>(doc: Document, tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = doc.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A short, screen-reader friendly description of why a cell is marked. */
export function describeBlock(cell: Cell, rules: RuleTable): string {
  const ids = blockingRules(cell);
  const mass = blockedMass(cell);
  const parts = ids.map((id) => {
    const r = rules.get(id);
    const cwe = r && r.cwe.length > 0 ? ` (${r.cwe.join(", ")})` : "";
    return `${id}${cwe}`;
  });
  return `policy blocked ${cell.blocked.length} candidate${cell.blocked.length === 1 ? "" : "s"} here: ${parts.join("; ")}; probability mass removed ${(mass * 100).toFixed(1)}%`;
}

/**
 * Renders `snap` into `pre` (replacing its content). Cells committed in step `freshStep` are
 * highlighted. Returns the marks (focusable elements of blocked cells).
 */
export function renderCanvas(pre: HTMLElement, snap: CanvasSnapshot, rules: RuleTable, freshStep: number | null = null): HTMLElement[] {
  const doc = pre.ownerDocument;
  const frag = doc.createDocumentFragment();
  const marks: HTMLElement[] = [];
  for (const c of snap.cells) {
    let span: HTMLElement;
    if (c.state === "mask") {
      span = el(doc, "span", "tok mask");
      span.setAttribute("aria-label", "masked");
    } else {
      span = el(doc, "span", `tok ${c.state}`, c.text);
      if (c.state === "committed" && freshStep !== null && c.step === freshStep) span.classList.add("fresh");
      if (c.end) span.classList.add("end");
    }
    span.dataset.pos = String(c.position);
    if (c.remasked > 0) span.classList.add("remasked");
    if (c.blocked.length > 0) {
      span.classList.add("blocked");
      span.tabIndex = 0;
      span.setAttribute("role", "mark");
      span.setAttribute("aria-label", `${c.state === "mask" ? "masked" : JSON.stringify(c.text)}, ${describeBlock(c, rules)}`);
      marks.push(span);
    }
    frag.append(span);
  }
  pre.replaceChildren(frag);
  return marks;
}

/** Fills a tooltip element with the details of the blocks at `cell`. */
export function fillTip(tip: HTMLElement, cell: Cell, rules: RuleTable): void {
  const doc = tip.ownerDocument;
  const kids: HTMLElement[] = [];
  for (const id of blockingRules(cell)) {
    const r = rules.get(id);
    const p = el(doc, "p");
    p.append(el(doc, "span", "rule", id));
    if (r?.severity) p.append(doc.createTextNode(` · ${r.severity}`));
    if (r && r.cwe.length > 0) p.append(doc.createTextNode(" · "), el(doc, "span", "cwe", r.cwe.join(", ")));
    kids.push(p);
    if (r?.message) kids.push(el(doc, "p", "msg", r.message));
  }
  const cands = el(doc, "p");
  cands.append(doc.createTextNode("Blocked: "));
  cell.blocked.forEach((b, i) => {
    if (i > 0) cands.append(doc.createTextNode(", "));
    cands.append(el(doc, "span", "cand", JSON.stringify(b.text)), doc.createTextNode(` p=${b.probability.toFixed(3)} (step ${b.step})`));
  });
  kids.push(cands);
  kids.push(el(doc, "p", "mass", `Probability mass removed: ${(blockedMass(cell) * 100).toFixed(1)}%`));
  tip.replaceChildren(...kids);
}

/**
 * Shows the tooltip on hover and focus of any `.blocked` descendant of `root`; Escape hides
 * it. `cellAt` maps a position back to its cell. `tip` must be inside a positioned ancestor.
 */
export function attachTooltips(root: HTMLElement, tip: HTMLElement, cellAt: (pos: number) => Cell | undefined, rules: () => RuleTable): void {
  tip.setAttribute("role", "tooltip");
  tip.hidden = true;
  if (!tip.id) tip.id = `ward-tip-${Math.random().toString(36).slice(2, 9)}`;
  const show = (target: HTMLElement) => {
    const pos = Number(target.dataset.pos);
    const cell = cellAt(pos);
    if (!cell || cell.blocked.length === 0) return;
    fillTip(tip, cell, rules());
    tip.hidden = false;
    target.setAttribute("aria-describedby", tip.id);
    const host = tip.offsetParent as HTMLElement | null;
    const hr = host?.getBoundingClientRect() ?? { left: 0, top: 0 };
    const tr = target.getBoundingClientRect();
    tip.style.left = `${Math.max(0, tr.left - hr.left)}px`;
    tip.style.top = `${tr.bottom - hr.top + 6}px`;
  };
  const hide = () => {
    tip.hidden = true;
  };
  const blockedOf = (e: Event): HTMLElement | null => {
    const t = e.target as HTMLElement | null;
    return t && t.closest ? (t.closest(".blocked") as HTMLElement | null) : null;
  };
  root.addEventListener("mouseover", (e) => {
    const b = blockedOf(e);
    if (b) show(b);
  });
  root.addEventListener("mouseout", (e) => {
    if (blockedOf(e)) hide();
  });
  root.addEventListener("focusin", (e) => {
    const b = blockedOf(e);
    if (b) show(b);
  });
  root.addEventListener("focusout", hide);
  root.addEventListener("keydown", (e) => {
    if ((e as KeyboardEvent).key === "Escape") hide();
  });
}

/** Renders a certificate summary into `box`. */
export function renderCertificate(box: HTMLElement, result: GenerationResult): void {
  const doc = box.ownerDocument;
  const cert = result.certificate;
  const verdict = el(doc, "div");
  const v = el(doc, "span", `verdict ${cert.verdict}`, cert.verdict === "clean" ? "✓ clean" : "✗ findings");
  verdict.append(v);
  const nFind = cert.findings.length;
  verdict.append(
    doc.createTextNode(
      ` — ${nFind} finding${nFind === 1 ? "" : "s"} on re-scan (${cert.enforced_findings} of enforced rules), ` +
        `${cert.blocked_total} candidate${cert.blocked_total === 1 ? "" : "s"} blocked, ${cert.remasks} remask${cert.remasks === 1 ? "" : "s"}`,
    ),
  );
  const facts = el(doc, "ul");
  const li = (label: string, value: string) => {
    const item = el(doc, "li");
    item.append(doc.createTextNode(`${label}: `), el(doc, "code", undefined, value));
    facts.append(item);
  };
  if (cert.policy) {
    li("policy", `${cert.policy.digest} (${cert.policy.enforced_rules.length} enforced, ${cert.policy.reported_rules.length} reported)`);
    const hit = cert.policy.enforced_rules.filter((r) => r.blocked_candidates > 0);
    for (const r of hit) li(`blocked by ${r.id}`, `${r.blocked_candidates} candidate(s), probability mass ${r.blocked_mass.toFixed(2)} in all (summed over steps and positions)`);
  } else {
    li("policy", "none (not enforced)");
  }
  li("model", `${cert.model.name} ${cert.model.digest}`);
  li("seed", String(cert.seed));
  li("time", `${result.timings.total_ms.toFixed(0)} ms (model ${result.timings.model_ms.toFixed(0)} ms, guard ${result.timings.guard_ms.toFixed(1)} ms), ${result.steps} steps`);
  for (const f of cert.findings) li(`finding ${f.rule_id}`, `line ${f.line}, column ${f.column}${f.enforced ? " (enforced rule)" : ""}`);
  box.replaceChildren(verdict, facts);
  box.hidden = false;
}
