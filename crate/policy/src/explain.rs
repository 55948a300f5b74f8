//! The effective policy as JSON: the one description that `ward explain --json` prints and
//! the wasm package's `Policy.explain()` returns, so the two never drift apart.
//!
//! Keys: `pack`, `digest` (the certificate's policy digest), `files` (bases first), `rules`
//! (per rule: `id`, `severity`, `enabled`, `enforced`, `scope`, `pack`, `source`, `line`,
//! `cwe`, `message`, `history`, `warnings` (where the rule means something else in Semgrep),
//! `alternatives` with `regex` and `not`), `warnings` (those of the enabled rules, one line
//! each, naming the rule) and, when statistics are asked for, `stats` (`compile_ms`,
//! `memory_bytes`, `modules` with `rules`, `states`, `classes`, `memory_bytes`, and
//! `rule_states` with `id` and `states`).

use serde_json::{json, Value};

use crate::{CompiledPolicy, EffectivePolicy, Rule};

/// One rule of the effective policy as JSON.
pub fn rule_json(r: &Rule) -> Value {
    json!({
        "id": r.id, "severity": r.severity.as_str(), "enabled": r.enabled,
        "enforced": r.enforced(), "scope": r.scope.as_str(), "pack": r.pack,
        "source": r.source.display().to_string(), "line": r.line, "cwe": r.cwe,
        "message": r.message.trim(), "history": r.history, "warnings": r.warnings,
        "alternatives": r.pattern.alternatives().iter()
            .map(|a| json!({"regex": a.regex, "not": a.not})).collect::<Vec<_>>(),
    })
}

/// The compiled policy's statistics as JSON; `compile_ms` is the caller's measure of the load
/// (a compile, or the read of a precompiled artefact).
pub fn stats_json(c: &CompiledPolicy, compile_ms: f64) -> Value {
    let st = c.stats();
    json!({
        "compile_ms": compile_ms,
        "memory_bytes": st.memory_bytes,
        "modules": st.modules.iter().map(|m| json!({
            "rules": m.rules, "states": m.states, "classes": m.classes,
            "memory_bytes": m.memory_bytes,
        })).collect::<Vec<_>>(),
        "rule_states": c.rules().iter().zip(&c.reporting_states())
            .map(|(r, n)| json!({"id": r.id, "states": n})).collect::<Vec<_>>(),
    })
}

/// The whole description: the effective policy `eff`, its policy `digest`, and `stats` when
/// given (see [`stats_json`]).
pub fn explain_json(eff: &EffectivePolicy, digest: &str, stats: Option<Value>) -> Value {
    let mut v = json!({
        "pack": eff.name,
        "digest": digest,
        "files": eff.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "rules": eff.rules.iter().map(rule_json).collect::<Vec<_>>(),
        "warnings": eff.warnings(),
    });
    if let Some(s) = stats {
        v["stats"] = s;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicyBuilder;

    #[test]
    fn describes_every_rule_and_the_stats() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/python");
        let eff = EffectivePolicy::load(&dir).unwrap();
        let c = PolicyBuilder::new().compile(&eff).unwrap();
        let v = explain_json(c.effective(), "sha256:x", Some(stats_json(&c, 1.5)));
        assert_eq!(v["digest"], "sha256:x");
        assert_eq!(v["rules"].as_array().unwrap().len(), eff.rules.len());
        assert_eq!(v["rules"][0]["id"], eff.rules[0].id.as_str());
        assert_eq!(v["stats"]["compile_ms"], 1.5);
        assert_eq!(
            v["stats"]["rule_states"].as_array().unwrap().len(),
            c.rules().len()
        );
        assert!(explain_json(&eff, "d", None).get("stats").is_none());
    }
}
