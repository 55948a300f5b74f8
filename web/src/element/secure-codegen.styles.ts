/**
 * Styles of `<secure-codegen>` and of the canvas view the playground shares. Colours are
 * custom properties with light and dark values (the page's `prefers-color-scheme`, or
 * `theme="light|dark"` on the element).
 *
 * @module
 */

/** Canvas styles (tokens, masks, blocked marks, tooltip), shared with the playground. */
export const canvasCss = `
.ward-canvas {
  margin: 0;
  padding: 0.75rem 1rem;
  font: 13px/1.55 ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  white-space: pre-wrap;
  word-break: break-word;
  background: var(--ward-code-bg);
  color: var(--ward-fg);
  border-radius: 6px;
  border: 1px solid var(--ward-border);
  min-height: 4.5em;
  overflow: auto;
  tab-size: 4;
}
.ward-canvas .tok { border-radius: 2px; }
.ward-canvas .fixed { color: var(--ward-muted-fg); }
.ward-canvas .mask {
  display: inline-block;
  width: 1.1ch;
  height: 1.05em;
  vertical-align: -0.15em;
  margin: 0 1px;
  border-radius: 2px;
  background: var(--ward-mask);
}
.ward-canvas .committed { color: var(--ward-fg); }
.ward-canvas .committed.fresh { background: var(--ward-fresh); }
.ward-canvas .blocked {
  text-decoration: underline wavy var(--ward-block);
  text-underline-offset: 3px;
  cursor: help;
  outline-offset: 1px;
}
.ward-canvas .blocked.mask { outline: 2px solid var(--ward-block); text-decoration: none; }
.ward-canvas .blocked:focus-visible { outline: 2px solid var(--ward-focus); }
.ward-canvas .remasked { box-shadow: inset 0 -2px 0 var(--ward-warn); }
.ward-tip {
  position: absolute;
  z-index: 10;
  max-width: min(28rem, 90vw);
  padding: 0.5rem 0.65rem;
  background: var(--ward-tip-bg);
  color: var(--ward-tip-fg);
  border: 1px solid var(--ward-border);
  border-radius: 6px;
  box-shadow: 0 4px 14px rgb(0 0 0 / 0.25);
  font: 12.5px/1.45 system-ui, sans-serif;
  white-space: normal;
}
.ward-tip[hidden] { display: none; }
.ward-tip .rule { font-family: ui-monospace, monospace; font-weight: 600; color: var(--ward-block); }
.ward-tip .cwe { color: var(--ward-muted-fg); }
.ward-tip .cand { font-family: ui-monospace, monospace; background: var(--ward-code-bg); padding: 0 0.25em; border-radius: 3px; }
.ward-tip p { margin: 0.2rem 0; }
`;

/** Colour variables, light and dark. */
export const themeCss = `
:host, .ward-theme {
  --ward-bg: #ffffff;
  --ward-fg: #1b1f24;
  --ward-muted-fg: #57606a;
  --ward-code-bg: #f6f8fa;
  --ward-border: #d0d7de;
  --ward-mask: #c9d1d9;
  --ward-fresh: #dafbe1;
  --ward-block: #cf222e;
  --ward-warn: #9a6700;
  --ward-ok: #1a7f37;
  --ward-focus: #0969da;
  --ward-tip-bg: #ffffff;
  --ward-tip-fg: #1b1f24;
  --ward-accent: #0969da;
  --ward-accent-fg: #ffffff;
}
@media (prefers-color-scheme: dark) {
  :host(:not([theme="light"])), .ward-theme:not(.light) {
    --ward-bg: #0d1117;
    --ward-fg: #e6edf3;
    --ward-muted-fg: #9198a1;
    --ward-code-bg: #161b22;
    --ward-border: #30363d;
    --ward-mask: #3d444d;
    --ward-fresh: #0f3d1f;
    --ward-block: #ff7b72;
    --ward-warn: #d29922;
    --ward-ok: #3fb950;
    --ward-focus: #4493f8;
    --ward-tip-bg: #1f242c;
    --ward-tip-fg: #e6edf3;
    --ward-accent: #2f81f7;
    --ward-accent-fg: #ffffff;
  }
}
:host([theme="dark"]), .ward-theme.dark {
  --ward-bg: #0d1117;
  --ward-fg: #e6edf3;
  --ward-muted-fg: #9198a1;
  --ward-code-bg: #161b22;
  --ward-border: #30363d;
  --ward-mask: #3d444d;
  --ward-fresh: #0f3d1f;
  --ward-block: #ff7b72;
  --ward-warn: #d29922;
  --ward-ok: #3fb950;
  --ward-focus: #4493f8;
  --ward-tip-bg: #1f242c;
  --ward-tip-fg: #e6edf3;
  --ward-accent: #2f81f7;
  --ward-accent-fg: #ffffff;
}
`;

/** The element's own layout. */
export const elementCss = `
:host {
  display: block;
  position: relative;
  color: var(--ward-fg);
  background: var(--ward-bg);
  border: 1px solid var(--ward-border);
  border-radius: 8px;
  padding: 0.75rem;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
}
:host([hidden]) { display: none; }
.canvas-wrap { position: relative; }
.bar { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem; margin-bottom: 0.5rem; }
.bar .spacer { flex: 1; }
button {
  font: inherit;
  padding: 0.3rem 0.8rem;
  border-radius: 6px;
  border: 1px solid var(--ward-border);
  background: var(--ward-code-bg);
  color: var(--ward-fg);
  cursor: pointer;
}
button.primary { background: var(--ward-accent); color: var(--ward-accent-fg); border-color: transparent; }
button:disabled { opacity: 0.5; cursor: default; }
button:focus-visible { outline: 2px solid var(--ward-focus); outline-offset: 2px; }
.status { color: var(--ward-muted-fg); font-size: 0.9em; }
.badge {
  font-size: 0.78em;
  padding: 0.1rem 0.45rem;
  border-radius: 999px;
  border: 1px solid var(--ward-border);
  color: var(--ward-muted-fg);
}
progress { width: 100%; height: 0.4rem; margin: 0 0 0.5rem; accent-color: var(--ward-accent); }
progress[hidden] { display: none; }
.cert { margin-top: 0.6rem; font-size: 0.9em; }
.cert[hidden] { display: none; }
.cert .verdict { font-weight: 600; }
.cert .verdict.clean { color: var(--ward-ok); }
.cert .verdict.findings { color: var(--ward-block); }
.cert ul { margin: 0.3rem 0 0; padding-left: 1.2rem; }
.cert code { font-family: ui-monospace, monospace; font-size: 0.95em; }
.error { color: var(--ward-block); margin-top: 0.5rem; white-space: pre-wrap; }
.error[hidden] { display: none; }
`;
