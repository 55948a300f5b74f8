//! The `#[wasm_bindgen]` surface: thin wrappers over the native-tested core
//! ([`crate::policy`], [`crate::guard`]). Objects cross as plain JS objects (snake_case
//! fields, as in the JSON events); errors as `WardError` exceptions (see [`to_js_error`]).
//! The JavaScript API is documented in `crate/web/README.md`.

use std::collections::BTreeMap;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::error::WebError;
use crate::guard::{CanvasCore, TokenGuardCore};
use crate::policy::PolicyCore;

/// A JS `Error` named `WardError` with `kind`, `rule`, `rule_ids`, `file`, `line`, `column`
/// and `span` fields (absent ones are `null`, `rule_ids` is always an array).
pub fn to_js_error(e: &WebError) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name("WardError");
    let o: &JsValue = err.as_ref();
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(o, &JsValue::from_str(k), &v);
    };
    let opt_str = |s: &Option<String>| s.as_deref().map(JsValue::from_str).unwrap_or(JsValue::NULL);
    let opt_num = |n: Option<usize>| {
        n.map(|n| JsValue::from_f64(n as f64))
            .unwrap_or(JsValue::NULL)
    };
    set("kind", JsValue::from_str(e.kind.as_str()));
    set("rule", opt_str(&e.rule));
    let ids = js_sys::Array::new();
    for r in &e.rule_ids {
        ids.push(&JsValue::from_str(r));
    }
    set("rule_ids", ids.into());
    set("file", opt_str(&e.file));
    set("line", opt_num(e.line));
    set("column", opt_num(e.column));
    let span = match e.span {
        Some((a, b)) => {
            let s = js_sys::Array::new();
            s.push(&JsValue::from_f64(a as f64));
            s.push(&JsValue::from_f64(b as f64));
            s.into()
        }
        None => JsValue::NULL,
    };
    set("span", span);
    err.into()
}

fn js_err(e: WebError) -> JsValue {
    to_js_error(&e)
}

/// Plain JS objects and arrays from a serde value (maps as objects, as JSON would give).
pub fn to_js<T: Serialize + ?Sized>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_err(WebError::argument(format!("cannot convert to JS: {e}"))))
}

/// Sets the panic hook so that a bug (a panic) prints a readable message and stack in the
/// console. Errors never go through it: they are `WardError` exceptions.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    crate::clock::install();
}

/// The crate version (`ward-web`).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A compiled policy.
#[wasm_bindgen]
#[derive(Clone)]
pub struct Policy {
    core: PolicyCore,
}

#[wasm_bindgen]
impl Policy {
    /// Compiles the pack `top` from `files`, a plain object or a `Map` of file name → YAML
    /// text (e.g. `{"base/pack.yaml": …, "python/pack.yaml": …}`, top `"python"`).
    #[wasm_bindgen(constructor)]
    pub fn new(files: JsValue, top: &str) -> Result<Policy, JsValue> {
        let files = file_map(files)?;
        Ok(Policy {
            core: PolicyCore::from_files(&files, top).map_err(js_err)?,
        })
    }

    /// Loads a precompiled policy artefact (`ward compile-policy`; `*.wardpol`) without
    /// compiling. Throws `kind: "artefact"` for another format version, a bad checksum or a
    /// truncated file.
    #[wasm_bindgen(js_name = fromArtefact)]
    pub fn from_artefact(bytes: &[u8]) -> Result<Policy, JsValue> {
        Ok(Policy {
            core: PolicyCore::from_artefact(bytes).map_err(js_err)?,
        })
    }

    /// Loads the artefact `bytes` if it was compiled from exactly the pack files `files`
    /// (object or `Map`, as for the constructor) with top `top`, up to a common folder prefix
    /// (`python/pack.yaml` in the artefact is `policies/python/pack.yaml` on a page). Throws
    /// `kind: "artefact"`, with a message starting `stale artefact:` that says what differs,
    /// when it was not (then compile the files with `new Policy(files, top)`), and as
    /// [`Policy::from_artefact`] does for a corrupt one.
    #[wasm_bindgen(js_name = fromArtefactFor)]
    pub fn from_artefact_for(bytes: &[u8], files: JsValue, top: &str) -> Result<Policy, JsValue> {
        let files = file_map(files)?;
        Ok(Policy {
            core: PolicyCore::from_artefact_for(bytes, &files, top).map_err(js_err)?,
        })
    }

    /// The top pack's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.core.policy.name().to_string()
    }

    /// Milliseconds spent compiling (or loading the artefact).
    #[wasm_bindgen(getter, js_name = loadMs)]
    pub fn load_ms(&self) -> f64 {
        self.core.load_ms
    }

    /// The effective policy: `{pack, files, rules: [...], stats: {...}}`.
    pub fn explain(&self) -> Result<JsValue, JsValue> {
        to_js(&self.core.explain())
    }

    /// Every finding in `text`: `[{rule_id, message, severity, enforced, cwe, start, end,
    /// line, column, end_line, end_column}]` (offsets in UTF-8 bytes).
    pub fn check(&self, text: &str) -> Result<JsValue, JsValue> {
        to_js(&self.core.check(text))
    }

    /// True when `text` violates no enforced rule.
    #[wasm_bindgen(js_name = isClean)]
    pub fn is_clean(&self, text: &str) -> bool {
        self.core.policy.is_clean_enforced(text.as_bytes())
    }
}

/// A JS object or `Map` of file name → text, as a map.
fn file_map(files: JsValue) -> Result<BTreeMap<String, String>, JsValue> {
    serde_wasm_bindgen::from_value(files).map_err(|e| {
        js_err(WebError::argument(format!(
            "files: expected an object or a Map of file name → text: {e}"
        )))
    })
}

impl Policy {
    /// The core (for the other wrappers).
    pub fn core(&self) -> &PolicyCore {
        &self.core
    }
}

/// A policy lifted to a tokenizer's vocabulary, for callers that bring their own model.
#[wasm_bindgen]
pub struct TokenGuard {
    core: TokenGuardCore,
}

#[wasm_bindgen]
impl TokenGuard {
    /// Lifts `policy` to the vocabulary of `tokenizer_json` (a Hugging Face
    /// `tokenizer.json`, as text).
    #[wasm_bindgen(constructor)]
    pub fn new(policy: &Policy, tokenizer_json: &str) -> Result<TokenGuard, JsValue> {
        Ok(TokenGuard {
            core: TokenGuardCore::new(policy.core.policy.clone(), tokenizer_json)
                .map_err(js_err)?,
        })
    }

    /// Number of tokens.
    #[wasm_bindgen(getter, js_name = vocabSize)]
    pub fn vocab_size(&self) -> usize {
        self.core.vocab_size()
    }

    /// Milliseconds spent parsing the tokenizer and lifting the policy.
    #[wasm_bindgen(getter, js_name = liftMs)]
    pub fn lift_ms(&self) -> f64 {
        self.core.lift_ms
    }

    /// Greedy longest-match token ids of `text` on this vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, JsValue> {
        self.core.encode(text).map_err(js_err)
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> Result<String, JsValue> {
        self.core.decode(ids).map_err(js_err)
    }

    /// A guarded canvas: `prefix` ids, `holes` holes, `suffix` ids.
    pub fn canvas(
        &self,
        prefix: &[u32],
        holes: usize,
        suffix: &[u32],
    ) -> Result<GuardedCanvas, JsValue> {
        Ok(GuardedCanvas {
            core: self.core.canvas(prefix, holes, suffix).map_err(js_err)?,
        })
    }
}

/// One canvas under the guard: masks and commits.
#[wasm_bindgen]
pub struct GuardedCanvas {
    core: CanvasCore,
}

#[wasm_bindgen]
impl GuardedCanvas {
    /// Number of positions.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.core.guard.len()
    }

    /// Positions still open.
    pub fn holes(&self) -> Vec<u32> {
        self.core.holes()
    }

    /// Whether `token` may be committed at hole `position`.
    pub fn allows(&self, position: usize, token: u32) -> bool {
        self.core.allows(position, token)
    }

    /// Every token allowed at hole `position` (throws `kind: "conflict"` when none is).
    pub fn allowed(&self, position: usize) -> Result<Vec<u32>, JsValue> {
        self.core.allowed(position).map_err(js_err)
    }

    /// Commits `token` at hole `position` (throws `kind: "forbidden"` with the rules).
    pub fn commit(&mut self, position: usize, token: u32) -> Result<(), JsValue> {
        self.core.commit(position, token).map_err(js_err)
    }

    /// Reopens a committed position.
    pub fn uncommit(&mut self, position: usize) -> Result<(), JsValue> {
        self.core.uncommit(position).map_err(js_err)
    }

    /// Why `token` is forbidden at `position`: `[{rule_id, module, kind}]`.
    #[wasm_bindgen(js_name = whyForbidden)]
    pub fn why_forbidden(&self, position: usize, token: u32) -> Result<JsValue, JsValue> {
        to_js(&self.core.why_forbidden(position, token))
    }

    /// The text so far (holes skipped).
    pub fn text(&self) -> String {
        self.core.text()
    }

    /// True when no hole is left.
    #[wasm_bindgen(js_name = isComplete)]
    pub fn is_complete(&self) -> bool {
        self.core.is_complete()
    }
}
