//! Fuzz "YAML + regex → compiled policy → check": any input must give Ok or a clean
//! `CompileError`, never a panic, a hang or unbounded memory (limits are set small).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use ward_policy::PolicyBuilder;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Either a whole pack, or a single regex wrapped into a rule.
    let yaml = if text.starts_with("pack:") || text.starts_with("rules:") {
        text.to_string()
    } else {
        let (re, body) = text.split_once('\n').unwrap_or((text, "x = 1"));
        let re = re.replace('\'', "''");
        let _ = body;
        format!("pack: f\nrules:\n  - id: f.r\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: '{re}'\n")
    };
    let builder = PolicyBuilder::new().max_states(2000).max_compile_time(Duration::from_millis(500));
    if let Ok(policy) = builder.compile_str(&yaml, "fuzz.yaml") {
        let sample = text.as_bytes();
        let a = policy.check(sample);
        let b = ward_policy::RegexChecker::new(&policy).check(sample);
        assert_eq!(a, b, "DFA and regex checkers disagree");
    }
});
