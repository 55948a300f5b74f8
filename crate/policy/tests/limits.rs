//! Nothing a user types can hang the compiler (issue 16): nested repetitions of patterns that
//! can match empty compile in linear size, and every pattern either compiles or fails with a
//! size- or time-limit error naming its rule, soon after the configured limit.
//!
//! The time bounds asserted here are hang guards, many times the limit, not speed targets
//! (those are benchmarks).

use std::time::{Duration, Instant};
use ward_policy::{PolicyBuilder, PolicyConfig, RegexChecker};

fn rule(pattern: &str) -> String {
    format!(
        "pack: h\nrules:\n  - id: h.r\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: '{}'\n",
        pattern.replace('\'', "''")
    )
}

/// Texts on which the issue's family of rules matches (or not).
const TEXTS: [&[u8]; 5] = [
    b"\n\n,,-s,s#\n",
    b"x = 1\n\n \t ,,-s,s#\n",
    b",,-s,s#",
    b"a\n,,-s,s#",
    b"# \n\n,,-s,s#\n",
];

#[test]
fn the_rule_of_issue_16_compiles_and_checks() {
    // What `ward check --policy h.yaml x.py` does.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/issue16.yaml");
    let p = PolicyBuilder::new().compile_path(path).unwrap();
    assert_eq!(p.modules().len(), 1);
    let text = b"\n\n,,-s,s#\n";
    let found = p.check(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].rule_id.as_str(), found[0].start), ("h.r", 0));
    assert_eq!(found, RegexChecker::new(&p).check(text));
    assert!(!p.is_clean_enforced(text));
    assert!(p.is_clean_enforced(b"x = 1\n,,-s,s#\n"));
}

#[test]
fn nested_empty_repetitions_of_any_depth_compile() {
    // `$^\s?` then n `+` (up to the parser's nesting limit), then `\,,\-s,s#`: the same
    // language for every n, so the same module and the same findings.
    let config = PolicyConfig {
        threads: 1,
        ..PolicyConfig::default()
    };
    let mut states = None;
    for n in 1..=45 {
        let yaml = rule(&format!(
            r"$^{}\s?{}\,,\-s,s#",
            "(?:".repeat(n),
            ")+".repeat(n)
        ));
        let p = PolicyBuilder::new()
            .config(config.clone())
            .compile_str(&yaml, "h.yaml")
            .unwrap_or_else(|e| panic!("n = {n}: {e}"));
        let s = p.modules()[0].num_states();
        assert_eq!(*states.get_or_insert(s), s, "n = {n}");
        for text in TEXTS {
            assert_eq!(p.check(text), RegexChecker::new(&p).check(text), "n = {n}");
        }
    }
    // One nesting more than the parser allows is a clear error naming the rule.
    let e = PolicyBuilder::new()
        .compile_str(
            &rule(&format!(
                r"$^{}\s?{}\,,\-s,s#",
                "(?:".repeat(150),
                ")+".repeat(150)
            )),
            "h.yaml",
        )
        .unwrap_err();
    assert_eq!(e.rule(), Some("h.r"));
    assert!(e.to_string().contains("nested"), "{e}");
}

#[test]
fn pathological_patterns_fail_soon_after_the_limit_naming_the_rule() {
    // Each of these took seconds to minutes, or hundreds of MB, under the default limits:
    // large counted repetitions of patterns that can match empty, nested counters.
    let limit = Duration::from_millis(200);
    for pattern in [
        "(?:a?){10000}b",
        "(?:.{0,100}){0,100}x",
        "(?:(?:a?)+){3000}b",
        "(?:a{100}){100}",
        "(?:[ab]?[ab]?){500}[ab]{20}c",
    ] {
        let t = Instant::now();
        let r = PolicyBuilder::new()
            .max_compile_time(limit)
            .compile_str(&rule(pattern), "h.yaml");
        let took = t.elapsed();
        match r {
            Err(e) => {
                assert!(
                    e.is_time_limit_exceeded() || e.is_size_limit_exceeded(),
                    "{pattern}: {e}"
                );
                assert_eq!(e.rule(), Some("h.r"), "{pattern}: {e}");
            }
            Ok(p) => assert_eq!(p.modules().len(), 1, "{pattern}"),
        }
        assert!(took < limit * 25, "{pattern}: {took:?}");
    }
}

#[test]
fn the_build_memory_limit_is_a_size_error_naming_the_rule() {
    let e = PolicyBuilder::new()
        .config(PolicyConfig {
            max_build_bytes: 1 << 20,
            ..PolicyConfig::default()
        })
        .compile_str(&rule("(?:a?){2000}b"), "h.yaml")
        .unwrap_err();
    assert!(e.is_size_limit_exceeded(), "{e}");
    assert_eq!(e.rule(), Some("h.r"));
    assert!(e.to_string().contains("working memory"), "{e}");
}

#[test]
fn reporting_dfas_share_one_time_budget() {
    // Reported-only rules get their reporting DFA on first use by `check`; slow ones must not
    // each take the whole limit (a pack of them froze `ward check` for rules × limit).
    let mut yaml = String::from("pack: w\nrules:\n");
    for i in 0..30 {
        yaml.push_str(&format!(
            "  - id: w.r{i}\n    message: m\n    severity: WARNING\n    languages: [python]\n    pattern-regex: '(?:a?){{3000}}b{i}'\n"
        ));
    }
    // One second: the compile itself (no enforced rule, so cheap) runs under the same limit
    // and must fit in it on a loaded CI machine; 30 rules each taking the whole limit would
    // be 30 s, so 10 × the limit still tells sharing from not sharing.
    let limit = Duration::from_secs(1);
    let p = PolicyBuilder::new()
        .max_compile_time(limit)
        .compile_str(&yaml, "w.yaml")
        .unwrap();
    let text = b"aaab1\nab3 b2\n";
    let t = Instant::now();
    let found = p.check(text);
    assert!(t.elapsed() < limit * 10, "{:?}", t.elapsed());
    let ids: Vec<&str> = found.iter().map(|f| f.rule_id.as_str()).collect();
    assert_eq!(ids, ["w.r1", "w.r3", "w.r2"]);
    assert_eq!(found, RegexChecker::new(&p).check(text));
}
