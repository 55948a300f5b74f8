//! The policy side of the bindings, free of JavaScript types so that it is tested natively:
//! a pack hierarchy from an in-memory file map, compiled; `explain` and `check` as JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use ward_policy::{CompiledPolicy, EffectivePolicy, Finding, PolicyBuilder};

use crate::clock;
use crate::error::{Kind, Result, WebError};

/// The compile-time limit in the browser (`PolicyConfig::max_compile_time` is 10 s natively).
/// Wasm runs the compiler on one thread and much slower than native code: the shipped python
/// pack takes 5–7 s in headless Chromium on this project's 2-core machine (about 0.15 s
/// natively), so the native limit would refuse it on a slower laptop or a busy machine (CI saw
/// it exceeded). The limit still ends a pathological custom rule, after a minute.
pub const BROWSER_COMPILE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A compiled policy and how long it took to get it.
#[derive(Clone, Debug)]
pub struct PolicyCore {
    /// The compiled policy (shared with token guards).
    pub policy: Arc<CompiledPolicy>,
    /// Milliseconds spent loading and compiling (or loading the artefact).
    pub load_ms: f64,
}

impl PolicyCore {
    /// Resolves the pack `top` among `files` (name → YAML text) and compiles it.
    pub fn from_files(files: &BTreeMap<String, String>, top: &str) -> Result<PolicyCore> {
        clock::install();
        let t0 = clock::now_ms();
        let eff = EffectivePolicy::from_files(files, top)?;
        let policy = PolicyBuilder::new()
            .max_compile_time(BROWSER_COMPILE_LIMIT)
            .compile(&eff)?;
        Ok(PolicyCore {
            policy: Arc::new(policy),
            load_ms: clock::now_ms() - t0,
        })
    }

    /// Loads a precompiled artefact (`ward compile-policy`) instead of compiling. A malformed
    /// artefact, another format version or a bad checksum is a [`Kind::Artefact`] error.
    pub fn from_artefact(bytes: &[u8]) -> Result<PolicyCore> {
        clock::install();
        let t0 = clock::now_ms();
        let policy = CompiledPolicy::from_artefact(bytes).map_err(|e| {
            let mut w = WebError::from(e);
            w.kind = Kind::Artefact;
            w
        })?;
        Ok(PolicyCore {
            policy: Arc::new(policy),
            load_ms: clock::now_ms() - t0,
        })
    }

    /// Loads a precompiled artefact on condition that it was compiled from exactly `files` with
    /// top `top` (up to a common folder prefix: see `ArtefactSources::matches`), so that a
    /// stale artefact next to edited pack files is never enforced in their place. Another
    /// artefact is a [`Kind::Artefact`] error whose message starts `stale artefact:` and says
    /// what differs; the caller then compiles `files`.
    pub fn from_artefact_for(
        bytes: &[u8],
        files: &BTreeMap<String, String>,
        top: &str,
    ) -> Result<PolicyCore> {
        let artefact = |msg: String| WebError::new(Kind::Artefact, msg);
        let sources = ward_policy::artefact_sources(bytes).map_err(|e| artefact(e.to_string()))?;
        sources
            .matches(files, top)
            .map_err(|why| artefact(format!("stale artefact: {why}")))?;
        PolicyCore::from_artefact(bytes)
    }

    /// The artefact of this policy, given the files and top it was compiled from.
    pub fn to_artefact(&self, files: &BTreeMap<String, String>, top: &str) -> Vec<u8> {
        self.policy.to_artefact(files, top)
    }

    /// The effective policy as JSON: the shape of `ward explain --json --stats`
    /// (`pack`, `files`, `rules`, `stats`), with `stats.compile_ms` measured here.
    pub fn explain(&self) -> Value {
        explain_json(&self.policy, self.load_ms)
    }

    /// Every finding in `text` as JSON objects (see [`finding_json`]).
    pub fn check(&self, text: &str) -> Value {
        Value::Array(
            self.policy
                .check(text.as_bytes())
                .iter()
                .map(finding_json)
                .collect(),
        )
    }
}

/// `ward explain --json --stats` of a compiled policy, with `digest`: the certificate's
/// policy digest (`ward_policy::digest::policy_digest`).
pub fn explain_json(c: &CompiledPolicy, load_ms: f64) -> Value {
    ward_policy::explain::explain_json(
        c.effective(),
        &ward_policy::digest::policy_digest(c),
        Some(ward_policy::explain::stats_json(c, load_ms)),
    )
}

/// One finding as JSON: `rule_id`, `message`, `severity`, `enforced`, `cwe`, `start`, `end`
/// (UTF-8 byte offsets), `line`, `column` (1-based, column in bytes), `end_line`,
/// `end_column` — the fields of the certificate's findings plus the end position.
pub fn finding_json(f: &Finding) -> Value {
    json!({
        "rule_id": f.rule_id, "message": f.message.trim(), "severity": f.severity.as_str(),
        "enforced": f.enforced, "cwe": f.cwe, "start": f.start, "end": f.end,
        "line": f.line, "column": f.column, "end_line": f.end_pos.line,
        "end_column": f.end_pos.column,
    })
}
