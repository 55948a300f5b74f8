//! Every case in `policies/cases/` through every engine that answers "does this text
//! violate?": the compiled reporting DFAs (`check`), the independent regex checker, and the
//! enforced modules (for enforced rules).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use ward_policy::{CompiledPolicy, PolicyBuilder, RegexChecker};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    pack: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    rule: String,
    expect: String,
    input: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

#[test]
fn every_case_file_on_every_engine() {
    let mut packs: HashMap<String, CompiledPolicy> = HashMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("cases"))
        .expect("policies/cases exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no case files");
    let mut failures = Vec::new();
    let mut count = 0;
    let mut per_rule: HashMap<String, (usize, usize)> = HashMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let cf: CaseFile =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let policy = packs.entry(cf.pack.clone()).or_insert_with(|| {
            PolicyBuilder::new()
                .compile_path(root().join(&cf.pack))
                .unwrap_or_else(|e| panic!("pack {} does not compile: {e}", cf.pack))
        });
        let rc = RegexChecker::new(policy);
        for (i, c) in cf.cases.iter().enumerate() {
            count += 1;
            let want = match c.expect.as_str() {
                "violation" => true,
                "clean" => false,
                other => panic!(
                    "{}: case {i}: expect must be violation or clean, not {other}",
                    f.display()
                ),
            };
            let Some(ri) = policy.rule_index(&c.rule) else {
                failures.push(format!(
                    "{}: case {i}: unknown rule {}",
                    f.display(),
                    c.rule
                ));
                continue;
            };
            let e = per_rule.entry(c.rule.clone()).or_default();
            if want {
                e.0 += 1
            } else {
                e.1 += 1
            }
            let bytes = c.input.as_bytes();
            let dfa = policy.check(bytes).iter().any(|x| x.rule == ri);
            let re = rc.check(bytes).iter().any(|x| x.rule == ri);
            if dfa != want || re != want {
                failures.push(format!(
                    "{}: case {i} rule {} expect {}: dfa={} regex={}\n---\n{}---",
                    f.display(),
                    c.rule,
                    c.expect,
                    dfa,
                    re,
                    c.input
                ));
            }
            let rule = policy.rule(ri);
            if rule.enforced() {
                // the enforced modules must agree on the text as a whole
                let any_enforced = policy.check(bytes).iter().any(|x| x.enforced);
                assert_eq!(
                    !policy.is_clean_enforced(bytes),
                    any_enforced,
                    "{}: case {i}: modules vs check",
                    f.display()
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // every rule of every pack has at least two violating and two clean cases
    for (name, p) in &packs {
        for r in p.rules() {
            if r.pack != *name {
                continue;
            }
            let (v, c) = per_rule.get(&r.id).copied().unwrap_or_default();
            assert!(
                v >= 2 && c >= 2,
                "rule {} has {v} violating and {c} clean cases (need 2 and 2)",
                r.id
            );
        }
    }
}

#[test]
fn shipped_rules_carry_cwe_and_message() {
    for pack in ["base", "python"] {
        let p = PolicyBuilder::new()
            .compile_path(root().join(pack))
            .unwrap();
        for r in p.rules() {
            assert!(
                r.cwe.iter().any(|c| c.starts_with("CWE-")),
                "{} has no CWE",
                r.id
            );
            assert!(r.message.len() > 20, "{} has no useful message", r.id);
        }
    }
}
