//! Semgrep rules that import and mean what they meant (issue 14): `pattern-not-regex`
//! warnings where Ward's meaning differs from Semgrep's, and the state-budget error of large
//! secret detectors (what they need, and what to change). The rules are written here after
//! the shape of semgrep-rules' `generic/secrets` detectors, not copied from them.

use ward_policy::{EffectivePolicy, PolicyBuilder, RegexChecker};

fn pack(body: &str) -> String {
    format!("pack: s\nrules:\n{body}")
}

fn rule(id: &str, pattern: &str, nots: &[&str]) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    if nots.is_empty() {
        return format!(
            "  - id: {id}\n    message: m\n    severity: ERROR\n    languages: [regex]\n    pattern-regex: {}\n",
            q(pattern)
        );
    }
    let mut s = format!(
        "  - id: {id}\n    message: m\n    severity: ERROR\n    languages: [regex]\n    patterns:\n      - pattern-regex: {}\n",
        q(pattern)
    );
    for n in nots {
        s += &format!("      - pattern-not-regex: {}\n", q(n));
    }
    s
}

#[test]
fn exclusions_that_mean_the_same_in_semgrep_are_not_warned_about() {
    // Short exclusions (no match of them is longer than a finding) and exclusions that can
    // never contain a finding (a finding has a `(`, the exclusion has none).
    let yaml = pack(
        &(rule(
            "s.key",
            r"(?i)key\s*=\s*[A-Za-z0-9/+=]{40}",
            &["(?i)example|sample|test|fake"],
        ) + &rule(
            "s.call",
            r"\bopen_archive\([^)]*\)",
            &[r"\bfilter\s*=\s*\w+"],
        )),
    );
    let eff = EffectivePolicy::from_str(&yaml, "s.yaml").unwrap();
    assert!(eff.warnings().is_empty(), "{:?}", eff.warnings());
    assert!(eff.rules.iter().all(|r| r.warnings.is_empty()));
}

#[test]
fn a_finding_inside_a_longer_exclusion_is_warned_about_and_reported() {
    // Semgrep drops `12345:AA…` when it lies inside a match of `go\.mod.*`; Ward only when a
    // match of the exclusion lies inside the finding, so it reports it: the warning says so.
    let yaml = pack(&rule(
        "s.bot",
        r"[0-9]+:AA[0-9A-Za-z_-]{33}",
        &[r"go\.mod.*"],
    ));
    let eff = EffectivePolicy::from_str(&yaml, "s.yaml").unwrap();
    let w = eff.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("rule `s.bot` (s.yaml:3): pattern-not-regex `go\\.mod.*`"),
        "{w:?}"
    );
    assert!(w[0].contains("lies inside a longer match"), "{w:?}");
    // The warning is in the explain JSON, per rule and for the policy.
    let v = ward_policy::explain::explain_json(&eff, "d", None);
    assert_eq!(v["warnings"][0], w[0].as_str());
    assert_eq!(v["rules"][0]["warnings"].as_array().unwrap().len(), 1);
    // And the difference is real: Ward reports the finding inside the exclusion's match.
    let p = PolicyBuilder::new().compile(&eff).unwrap();
    let text = b"require go.mod 11:AAbg23sWSpFRCP0SfiEN6jmj59UnWan46BH5\n";
    let found = p.check(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found, RegexChecker::new(&p).check(text));
    // An exclusion inside the finding still drops it, as in Semgrep.
    assert!(p
        .check(b"11:AAgo.modWSpFRCP0SfiEN6jmj59UnWan46BH5\n")
        .is_empty());
}

#[test]
fn an_exclusion_longer_than_every_finding_is_warned_about() {
    let yaml = pack(&rule(
        "s.gkey",
        r"\bAIzaQq[0-9A-Za-z_]{33}\b",
        &[r"\bAIzaQq[0-9A-Za-z_]{33}\b[=]"],
    ));
    let eff = EffectivePolicy::from_str(&yaml, "s.yaml").unwrap();
    let w = eff.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("excludes nothing in Ward") && w[0].contains("at most 39 bytes"),
        "{w:?}"
    );
}

#[test]
fn disabled_rules_are_not_warned_about() {
    let yaml = pack(
        &(rule("s.on", "secret=[a-z]{8}", &[])
            + &rule("s.bot", r"[0-9]+:AA[0-9A-Za-z]{33}", &[r"go\.mod.*"])
                .replace("[regex]", "[apex]")),
    );
    let eff = EffectivePolicy::from_str(&yaml, "s.yaml").unwrap();
    assert_eq!(eff.rules[1].warnings.len(), 1);
    assert!(eff.warnings().is_empty(), "{:?}", eff.warnings());
}

/// A secret detector of the shape of semgrep-rules' large ones: a keyword, a gap of up to 50
/// bytes, then a counted run of a token alphabet.
const WIDE: &str = r"(?i)cloudkey.{0,50}[a-z0-9]{64}";

#[test]
fn an_over_budget_detector_is_refused_with_what_it_needs_and_what_to_change() {
    let yaml = pack(&rule("s.wide", WIDE, &[]));
    let err = PolicyBuilder::new()
        .compile_str(&yaml, "s.yaml")
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.rule(), Some("s.wide"));
    assert!(err.is_size_limit_exceeded());
    let need: usize = msg
        .split("needs ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no state count in {msg}"));
    assert!(need > 4096, "{msg}");
    assert!(
        msg.contains(&format!("set `max-states: {need}` or more in the pack")),
        "{msg}"
    );
    assert!(
        msg.contains("`[a-z0-9]{64}` at column 20 (64 positions)"),
        "{msg}"
    );
    assert!(
        msg.contains("`.{0,50}` at column 13 (50 positions)"),
        "{msg}"
    );
    // What the message says to do works: the pack's `max-states:` accepts the rule.
    let yaml = format!("max-states: {need}\n{}", pack(&rule("s.wide", WIDE, &[])));
    let p = PolicyBuilder::new().compile_str(&yaml, "s.yaml").unwrap();
    let text = format!("CLOUDKEY = \"{}\"\n", "a1".repeat(32));
    assert_eq!(p.check(text.as_bytes()).len(), 1);
    assert!(p.is_clean_enforced(b"cloudkey = short\n"));
    // So does shortening the gap to what cannot be part of the token.
    let narrow = pack(&rule(
        "s.narrow",
        r"(?i)cloudkey[^a-z0-9]{0,50}[a-z0-9]{64}",
        &[],
    ));
    let p = PolicyBuilder::new().compile_str(&narrow, "s.yaml").unwrap();
    assert!(p.stats().modules[0].states <= 4096);
    assert_eq!(p.check(text.as_bytes()).len(), 1);
}

#[test]
fn a_trailing_assertion_after_a_counted_run_is_named() {
    // A class with a non-word byte (`-`) and `\b` after the run: every overlapping candidate
    // stays alive until the boundary.
    let yaml = pack(&rule("s.tok", r"\bQQzaSy[0-9A-Za-z_-]{33}\b", &[]));
    let msg = PolicyBuilder::new()
        .compile_str(&yaml, "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("`[0-9A-Za-z_-]{33}` at column 9 (33 positions, followed by `\\b`"),
        "{msg}"
    );
    // Without the trailing `\b` it is small.
    let yaml = pack(&rule("s.tok", r"\bQQzaSy[0-9A-Za-z_-]{33}", &[]));
    assert!(PolicyBuilder::new().compile_str(&yaml, "s.yaml").is_ok());
}
