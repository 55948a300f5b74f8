/**
 * Gathers the files of a policy (packs and everything they `extends`, plus inline YAML) into
 * the map of file name → text that the wasm takes. The hierarchy itself (disable, severity
 * overrides, later winning) is resolved in wasm; here we only follow `extends` to know which
 * files to fetch.
 *
 * File names are URL paths without the leading `/` (`policies/python/pack.yaml`), the
 * relative names ward-policy's `EffectivePolicy::from_files` takes, so an
 * `extends: [../base]` entry resolves the same way here and in the wasm.
 *
 * @module
 */

import type { PolicySource } from "../protocol.js";

/** File name given to inline YAML (the playground's editor, an element's inline policy). */
export const INLINE_PACK = "inline/custom/pack.yaml";
/** File name of the synthesised root pack that combines everything. */
export const ROOT_PACK = "inline/root/pack.yaml";

/**
 * The entries of a pack's top-level `extends` key, in either YAML form
 * (`extends: [a, b]` or a block list). Quotes are removed; comments ignored.
 */
export function parseExtends(yaml: string): string[] {
  const lines = yaml.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const m = /^extends\s*:\s*(.*)$/.exec(lines[i]);
    if (!m) continue;
    const rest = stripComment(m[1]).trim();
    if (rest.startsWith("[")) {
      const body = rest.replace(/^\[/, "").replace(/\]\s*$/, "");
      return body.split(",").map(unquote).filter((s) => s.length > 0);
    }
    if (rest.length > 0) return [unquote(rest)];
    const out: string[] = [];
    for (let j = i + 1; j < lines.length; j++) {
      const item = /^\s+-\s*(.+)$/.exec(lines[j]);
      if (item) {
        out.push(unquote(stripComment(item[1])));
        continue;
      }
      if (/^\s*(#.*)?$/.test(lines[j])) continue;
      break;
    }
    return out.filter((s) => s.length > 0);
  }
  return [];
}

function stripComment(s: string): string {
  // A `#` preceded by whitespace starts a YAML comment (paths here hold no quotes with #).
  return s.replace(/(^|\s)#.*$/, "");
}

function unquote(s: string): string {
  const t = s.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  return t;
}

/** Does this YAML have a top-level `pack:` key? */
export function hasPackKey(yaml: string): boolean {
  return /^pack\s*:/m.test(yaml);
}

/** A pack reference (folder or file URL) → the URL of its `pack.yaml`. */
export function packFileUrl(ref: string, base: string): URL {
  const u = new URL(ref, base);
  if (!/\.ya?ml$/i.test(u.pathname)) {
    if (!u.pathname.endsWith("/")) u.pathname += "/";
    u.pathname += "pack.yaml";
  }
  return u;
}

/** Fetches a text file; injected so the gatherer runs without a network in tests. */
export type FetchText = (url: URL) => Promise<string>;

/** The gathered policy: files for the wasm, and which one is the root. */
export interface GatheredPolicy {
  files: Record<string, string>;
  root: string;
  /** Lines added in front of the inline YAML (to map error lines back to the editor). */
  inlineLineOffset: number;
  /**
   * A precompiled artefact (`ward compile-policy`, `pack.wardpol` next to the root
   * `pack.yaml`), when the server has one: the engine loads it instead of compiling, but only
   * if it was compiled from exactly these files (else it compiles them).
   */
  artefact?: { url: string; bytes: Uint8Array };
}

/**
 * The URL of the precompiled artefact that may sit next to the root pack file, or null when
 * the root is synthesised or inline (nothing was precompiled for it): `policies/python/pack.yaml`
 * → `/policies/python/pack.wardpol`.
 */
export function artefactUrl(gathered: GatheredPolicy, base: string): URL | null {
  if (gathered.root.startsWith("inline/") || !/\.ya?ml$/i.test(gathered.root)) return null;
  return new URL("/" + gathered.root.replace(/\.ya?ml$/i, ".wardpol"), base);
}

/**
 * The URL of the lift artefact (the policy's token rows for one model's tokenizer, `ward
 * compile-policy --lift-tokenizer … --lift-out …`) that may sit next to the precompiled
 * artefact: `policies/python/pack.yaml` and model `ward-tiny-code` →
 * `/policies/python/pack.ward-tiny-code.wardlift`; null where there is no artefact URL.
 */
export function liftUrl(gathered: GatheredPolicy, model: string, base: string): URL | null {
  const a = artefactUrl(gathered, base);
  if (!a || !/^[A-Za-z0-9._-]+$/.test(model)) return null;
  return new URL(a.pathname.replace(/\.wardpol$/, `.${model}.wardlift`), a);
}

/**
 * Gathers every file a policy source needs. Cycles and repeated packs are fetched once;
 * more than 64 files is refused (a runaway `extends` chain).
 */
export async function gatherPolicy(source: PolicySource, base: string, fetchText: FetchText): Promise<GatheredPolicy> {
  const files: Record<string, string> = { ...(source.files ?? {}) };
  const roots: string[] = [];
  const queue: URL[] = [];
  for (const ref of source.packs ?? []) {
    const u = packFileUrl(ref, base);
    roots.push(fileName(u));
    queue.push(u);
  }
  let inlineLineOffset = 0;
  if (source.inline !== undefined && source.inline.trim().length > 0) {
    let text = source.inline;
    if (!hasPackKey(text)) {
      text = `pack: custom\n${text}`;
      inlineLineOffset = 1;
    }
    files[INLINE_PACK] = text;
    roots.push(INLINE_PACK);
    for (const ext of parseExtends(text)) queue.push(packFileUrl(ext, new URL(`/${INLINE_PACK}`, base).href));
  }
  const seen = new Set(Object.keys(files));
  while (queue.length > 0) {
    const u = queue.shift()!;
    if (seen.has(fileName(u))) continue;
    seen.add(fileName(u));
    if (seen.size > 64) throw new Error("policy: more than 64 pack files (is there an `extends` loop?)");
    const text = await fetchText(u);
    files[fileName(u)] = text;
    for (const ext of parseExtends(text)) queue.push(packFileUrl(ext, u.href));
  }
  if (roots.length === 0) {
    // Only pre-gathered files: the first pack file is the root.
    const first = Object.keys(source.files ?? {}).find((n) => /\.ya?ml$/i.test(n));
    if (first !== undefined) roots.push(first);
  }
  if (roots.length === 0) throw new Error("policy: no pack given (set `packs`, `files` or `inline`)");
  const disable = source.disable ?? [];
  if (roots.length === 1 && disable.length === 0) return { files, root: roots[0], inlineLineOffset };
  // Combine several roots and the disabled rules in one synthesised pack.
  const rel = roots.map((r) => relativePath(ROOT_PACK, r));
  const lines = ["pack: root", `extends: [${rel.map((r) => JSON.stringify(r)).join(", ")}]`];
  if (disable.length > 0) lines.push(`disable: [${disable.map((d) => JSON.stringify(d)).join(", ")}]`);
  lines.push("rules: []");
  files[ROOT_PACK] = lines.join("\n") + "\n";
  return { files, root: ROOT_PACK, inlineLineOffset };
}

/** The file-map name of a URL: its path without the leading `/`. */
export function fileName(u: URL): string {
  return decodeURIComponent(u.pathname).replace(/^\/+/, "");
}

/** The path of `to` relative to the folder of the file `from` (both file-map names). */
export function relativePath(from: string, to: string): string {
  const a = from.split("/").slice(0, -1).filter(Boolean);
  const b = to.split("/").filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length - 1 && a[i] === b[i]) i++;
  return [...a.slice(i).map(() => ".."), ...b.slice(i)].join("/");
}
