//! The check of the `compile` fuzz target (`crate/policy/fuzz`), shared with the regression
//! test that replays its findings (`tests/fuzz_findings.rs`): "YAML + regex → compiled
//! policy → check" gives a policy or a clean `CompileError`, never a panic, a hang or
//! unbounded memory (the limits are small), and the two checkers agree.

use std::time::Duration;
use ward_policy::{PolicyBuilder, RegexChecker};

/// One fuzz input: a whole pack (text starting with `pack:` or `rules:`), or a regex on the
/// first line wrapped into a one-rule pack; the whole input is then the text to check.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let yaml = if text.starts_with("pack:") || text.starts_with("rules:") {
        text.to_string()
    } else {
        let re = text.split_once('\n').map_or(text, |(re, _)| re);
        let re = re.replace('\'', "''");
        format!("pack: f\nrules:\n  - id: f.r\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: '{re}'\n")
    };
    let builder = PolicyBuilder::new()
        .max_states(2000)
        .max_compile_time(Duration::from_millis(500));
    match builder.compile_str(&yaml, "fuzz.yaml") {
        Ok(policy) => {
            let sample = text.as_bytes();
            let a = policy.check(sample);
            let b = RegexChecker::new(&policy).check(sample);
            assert_eq!(a, b, "DFA and regex checkers disagree");
            let enforced_clean = a.iter().all(|f| !f.enforced);
            assert_eq!(
                policy.is_clean_enforced(sample),
                enforced_clean,
                "modules and checker disagree"
            );
        }
        Err(e) => {
            // A clean error: it says what is wrong (and `Display` does not panic).
            assert!(!e.message().is_empty(), "{e:?}");
            let _ = e.to_string();
        }
    }
}
