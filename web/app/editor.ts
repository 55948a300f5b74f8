/**
 * CodeMirror 6 editors of the playground: the prompt (Python, `<|hole:N|>` holes shown as
 * chips, `check` findings as diagnostics) and the custom-rule YAML editor (compile errors at
 * their line and column).
 *
 * @module
 */

import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { yaml } from "@codemirror/lang-yaml";
import { bracketMatching, HighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { tags as t } from "@lezer/highlight";
import { Diagnostic, lintGutter, setDiagnostics } from "@codemirror/lint";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { EditorState, Extension } from "@codemirror/state";
import { Decoration, DecorationSet, drawSelection, EditorView, highlightActiveLine, keymap, lineNumbers, MatchDecorator, ViewPlugin, ViewUpdate } from "@codemirror/view";
import type { Finding } from "../src/protocol.js";

const holeMatcher = new MatchDecorator({
  regexp: /<\|hole:\d+\|>/g,
  decoration: () => Decoration.mark({ class: "cm-hole" }),
});

const holes = ViewPlugin.fromClass(
  class {
    decorations: DecorationSet;
    constructor(view: EditorView) {
      this.decorations = holeMatcher.createDeco(view);
    }
    update(u: ViewUpdate) {
      this.decorations = holeMatcher.updateDeco(u, this.decorations);
    }
  },
  { decorations: (v) => v.decorations },
);

/** Syntax colours from CSS variables, so light and dark schemes both read well. */
const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.definitionKeyword, t.moduleKeyword, t.operatorKeyword], color: "var(--hl-keyword)" },
  { tag: [t.string, t.special(t.string)], color: "var(--hl-string)" },
  { tag: [t.comment, t.lineComment, t.blockComment], color: "var(--hl-comment)", fontStyle: "italic" },
  { tag: [t.number, t.bool, t.null, t.atom], color: "var(--hl-number)" },
  { tag: [t.function(t.variableName), t.function(t.propertyName), t.definition(t.variableName)], color: "var(--hl-function)" },
  { tag: [t.className, t.typeName], color: "var(--hl-type)" },
  { tag: [t.propertyName, t.attributeName], color: "var(--hl-property)" },
  { tag: t.invalid, color: "var(--ward-block)" },
]);

/** Editor chrome from the page's colour variables (they inherit into the shadow root). */
const chrome = EditorView.theme({
  "&": { backgroundColor: "var(--ward-code-bg)", color: "var(--ward-fg)" },
  ".cm-gutters": { backgroundColor: "var(--ward-code-bg)", color: "var(--ward-muted-fg)", borderRight: "1px solid var(--ward-border)" },
  ".cm-activeLine": { backgroundColor: "var(--cm-active-line)" },
  ".cm-activeLineGutter": { backgroundColor: "var(--cm-active-line)" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--ward-fg)" },
  "&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection": { backgroundColor: "var(--cm-selection)" },
  ".cm-tooltip": { backgroundColor: "var(--ward-tip-bg)", color: "var(--ward-tip-fg)", border: "1px solid var(--ward-border)", maxWidth: "min(36rem, 90vw)" },
});

function base(onChange: (text: string) => void, label: string): Extension[] {
  return [
    lineNumbers(),
    history(),
    drawSelection(),
    indentOnInput(),
    bracketMatching(),
    highlightActiveLine(),
    highlightSelectionMatches(),
    syntaxHighlighting(highlight),
    chrome,
    lintGutter(),
    keymap.of([...defaultKeymap, ...historyKeymap, ...searchKeymap, indentWithTab]),
    EditorView.contentAttributes.of({ "aria-label": label }),
    EditorView.updateListener.of((u) => {
      if (u.docChanged) onChange(u.state.doc.toString());
    }),
  ];
}

/** Styles of the editors inside their shadow roots. */
const editorCss = `
:host {
  display: block;
  --hl-keyword: #8250df; --hl-string: #0a3069; --hl-comment: #6e7781; --hl-number: #0550ae;
  --hl-function: #6639ba; --hl-type: #953800; --hl-property: #0550ae;
  --cm-active-line: rgb(9 105 218 / 0.06); --cm-selection: rgb(9 105 218 / 0.2);
}
@media (prefers-color-scheme: dark) {
  :host {
    --hl-keyword: #ff7b72; --hl-string: #a5d6ff; --hl-comment: #8b949e; --hl-number: #79c0ff;
    --hl-function: #d2a8ff; --hl-type: #ffa657; --hl-property: #79c0ff;
    --cm-active-line: rgb(110 118 129 / 0.12); --cm-selection: rgb(56 139 253 / 0.35);
  }
}
.cm-editor { min-height: var(--editor-min-height, 11rem); max-height: 26rem; font-size: 13px; background: var(--ward-code-bg); color: var(--ward-fg); }
.cm-scroller { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, monospace; }
.cm-editor.cm-focused { outline: 2px solid var(--ward-focus); }
.cm-content { caret-color: var(--ward-fg); }
.cm-hole { background: var(--ward-mask); border-radius: 3px; color: var(--ward-accent); font-weight: 600; }
`;

/**
 * Mounts an editor inside a shadow root of `parent`: CodeMirror then styles itself with
 * constructed style sheets, which the strict CSP (`style-src 'self'`) allows, instead of
 * `<style>` elements, which it blocks.
 */
function mount(parent: HTMLElement, state: EditorState): EditorView {
  const shadow = parent.shadowRoot ?? parent.attachShadow({ mode: "open" });
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(editorCss);
  shadow.adoptedStyleSheets = [...shadow.adoptedStyleSheets, sheet];
  const inner = document.createElement("div");
  shadow.append(inner);
  return new EditorView({ parent: inner, root: shadow, state });
}

/** Creates the prompt editor in `parent`. */
export function promptEditor(parent: HTMLElement, text: string, onChange: (text: string) => void): EditorView {
  return mount(parent, EditorState.create({ doc: text, extensions: [...base(onChange, "prompt"), python(), holes] }));
}

/** Creates the YAML editor in `parent`. */
export function yamlEditor(parent: HTMLElement, text: string, onChange: (text: string) => void): EditorView {
  return mount(parent, EditorState.create({ doc: text, extensions: [...base(onChange, "custom rule YAML"), yaml()] }));
}

/** Replaces the whole text of an editor. */
export function setText(view: EditorView, text: string): void {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
}

/** Byte offset → character offset (the checker reports UTF-8 byte offsets). */
export function byteToCharOffset(text: string, byte: number): number {
  const enc = new TextEncoder();
  let bytes = 0;
  let i = 0;
  for (const ch of text) {
    if (bytes >= byte) break;
    bytes += enc.encode(ch).length;
    i += ch.length;
  }
  return i;
}

/** Shows `check` findings as diagnostics in the prompt editor. */
export function showFindings(view: EditorView, findings: readonly Finding[]): void {
  const text = view.state.doc.toString();
  const len = view.state.doc.length;
  const diags: Diagnostic[] = findings.map((f) => {
    const from = Math.min(len, byteToCharOffset(text, f.start));
    const to = Math.max(from, Math.min(len, byteToCharOffset(text, f.end)));
    return {
      from,
      to,
      severity: f.enforced ? "error" : "warning",
      source: f.rule_id,
      message: `${f.rule_id}${f.cwe.length ? ` (${f.cwe.join(", ")})` : ""}: ${f.message}`,
    };
  });
  view.dispatch(setDiagnostics(view.state, diags));
}

/** Shows a compile error at a 1-based line and column of the YAML editor (or clears it). */
export function showYamlError(view: EditorView, err: { message: string; line?: number; column?: number } | null): void {
  if (!err) {
    view.dispatch(setDiagnostics(view.state, []));
    return;
  }
  const doc = view.state.doc;
  const lineNo = Math.min(Math.max(1, err.line ?? 1), doc.lines);
  const line = doc.line(lineNo);
  const from = Math.min(line.to, line.from + Math.max(0, (err.column ?? 1) - 1));
  view.dispatch(setDiagnostics(view.state, [{ from, to: Math.min(line.to, from + 1) === from ? from : Math.min(line.to, from + 1), severity: "error", message: err.message }]));
}
