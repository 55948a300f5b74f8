//! The bindings' core, natively (the same checks run in headless Chromium in `tests/web.rs`):
//! policy from a file map, `explain`, `check`, errors that name the cause, the guard on the
//! real tokenizer, and the adversarial driver.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::BTreeMap;

use common::*;
use ward_web::guard::TokenGuardCore;
use ward_web::policy::PolicyCore;
use ward_web::Kind;

fn python() -> PolicyCore {
    PolicyCore::from_files(&shipped_files(), "python").unwrap()
}

#[test]
fn explain_lists_the_effective_policy_and_modules() {
    let p = python();
    let e = p.explain();
    assert_eq!(e["pack"], "python");
    assert_eq!(e["files"][0], "base/pack.yaml");
    let rules = e["rules"].as_array().unwrap();
    assert_eq!(rules.len(), p.policy.effective().rules.len());
    assert!(rules
        .iter()
        .any(|r| r["id"] == "python.eval" && r["enforced"] == true));
    assert_eq!(
        e["stats"]["modules"].as_array().unwrap().len(),
        p.policy.modules().len()
    );
}

#[test]
fn check_gives_the_policy_findings_as_json() {
    let p = python();
    let text = "import os\nx = eval(user)\n# eval(x) in a comment\n";
    let f = p.check(text);
    let f = f.as_array().unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["rule_id"], "python.eval");
    assert_eq!(f[0]["line"], 2);
    assert_eq!(f[0]["column"], 3); // the match starts at `= eval(`
    assert_eq!(f[0]["enforced"], true);
    let span =
        &text[f[0]["start"].as_u64().unwrap() as usize..f[0]["end"].as_u64().unwrap() as usize];
    assert!(span.starts_with("= eval(u"), "{span:?}");
    assert!(p.check("print('hello')\n").as_array().unwrap().is_empty());
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let mut files = BTreeMap::new();
    files.insert(
        "p/pack.yaml".to_string(),
        "pack: p\nrules:\n  - id: [\n".to_string(),
    );
    let e = PolicyCore::from_files(&files, "p").unwrap_err();
    assert_eq!(e.kind, Kind::Policy);
    assert_eq!(e.file.as_deref(), Some("p/pack.yaml"));
    assert!(e.line.is_some(), "{e}");
    assert!(e.message.contains("p/pack.yaml"), "{e}");
}

#[test]
fn lookaround_names_rule_and_column() {
    let mut files = BTreeMap::new();
    files.insert(
        "p/pack.yaml".to_string(),
        "pack: p\nrules:\n  - id: bad.look\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'foo(?=bar)'\n".to_string(),
    );
    let e = PolicyCore::from_files(&files, "p").unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("bad.look"));
    assert!(e.column.is_some());
    assert!(
        e.message.contains("bad.look") && e.message.contains("column 4"),
        "{e}"
    );
}

#[test]
fn missing_extends_target_is_named() {
    let mut files = shipped_files();
    files.remove("base/pack.yaml");
    let e = PolicyCore::from_files(&files, "python").unwrap_err();
    assert!(e.message.contains("base/pack.yaml"), "{e}");
}

fn token_guard() -> TokenGuardCore {
    TokenGuardCore::new(python().policy, TOKENIZER_JSON).unwrap()
}

#[test]
fn bad_tokenizer_json_is_a_tokenizer_error() {
    let e = TokenGuardCore::new(python().policy, "{\"model\": 3}").unwrap_err();
    assert_eq!(e.kind, Kind::Tokenizer);
    assert!(e.message.starts_with("tokenizer.json: "), "{e}");
}

#[test]
fn guard_refuses_violations_and_names_rules() {
    let tg = token_guard();
    assert_eq!(tg.vocab_size(), 8192);
    let ids = tg.encode("x = eval(").unwrap();
    assert_eq!(tg.decode(&ids).unwrap(), "x = eval(");
    let mut c = tg.canvas(&ids, 4, &[]).unwrap();
    let arg = tg.encode("user").unwrap()[0];
    let h = ids.len();
    assert!(!c.allows(h, arg));
    let e = c.commit(h, arg).unwrap_err();
    assert_eq!(e.kind, Kind::Forbidden);
    assert!(e.rule_ids.contains(&"python.eval".to_string()), "{e:?}");
    let why = c.why_forbidden(h, arg);
    assert_eq!(why[0]["rule_id"], "python.eval");
    let allowed = c.allowed(h).unwrap();
    assert!(!allowed.is_empty() && !allowed.contains(&arg));
    assert!(allowed.iter().all(|&t| c.allows(h, t)));
    // A prompt that already violates is refused with the rule and span.
    let bad = tg.encode("y = eval(z)\n").unwrap();
    let e = tg.canvas(&bad, 4, &[]).unwrap_err();
    assert_eq!(e.kind, Kind::PromptViolates);
    assert_eq!(e.rule.as_deref(), Some("python.eval"));
    let (a, b) = e.span.unwrap();
    assert!("y = eval(z)\n"[a..b].contains("eval(z"), "{e:?}");
    assert!(tg.decode(&[9999]).is_err());
}

#[test]
fn adversary_never_gets_a_finding() {
    let tg = token_guard();
    let attack = attack_tokens(&tg);
    assert!(attack.len() > 100);
    let policy = tg.tp.policy();
    let mut refused = 0;
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let run = adversarial_run(&tg, &attack, prompt, 24, i as u64 + 1).unwrap();
        refused += run.refused;
        let findings = policy.check(run.text.as_bytes());
        assert!(
            findings.iter().all(|f| !f.enforced),
            "{prompt:?} → {:?}: {findings:?}",
            run.text
        );
        assert!(ward_policy::RegexChecker::new(policy)
            .check_enforced(run.text.as_bytes())
            .is_empty());
    }
    assert!(refused > 0, "the adversary never tried a forbidden token");
}

#[test]
fn artefact_loads_without_compiling_and_bad_ones_are_artefact_errors() {
    let p = python();
    let bytes = p.to_artefact(&shipped_files(), "python");
    let q = PolicyCore::from_artefact(&bytes).unwrap();
    assert_eq!(q.explain()["rules"], p.explain()["rules"]);
    let text = "x = eval(user)\n";
    assert_eq!(q.check(text), p.check(text));
    let mut bad = bytes.clone();
    bad[40] ^= 1;
    let e = PolicyCore::from_artefact(&bad).unwrap_err();
    assert_eq!(e.kind, Kind::Artefact);
    assert!(e.message.contains("checksum"), "{e}");
    let mut other = bytes.clone();
    other[8] = 99;
    let e = PolicyCore::from_artefact(&other).unwrap_err();
    assert_eq!(e.kind, Kind::Artefact);
    assert!(e.message.contains("format version 99"), "{e}");
}

#[test]
fn artefact_for_its_own_files_loads_and_a_stale_one_is_refused() {
    let p = python();
    let files = shipped_files();
    let bytes = p.to_artefact(&files, "python");
    // The page's names: the packs under /policies/.
    let served: std::collections::BTreeMap<String, String> = files
        .iter()
        .map(|(k, v)| (format!("policies/{k}"), v.clone()))
        .collect();
    let q = PolicyCore::from_artefact_for(&bytes, &served, "policies/python").unwrap();
    let text = "x = eval(user)\n";
    assert_eq!(q.check(text), p.check(text));
    // An edited pack file: the artefact is not used.
    let mut edited = served.clone();
    edited
        .get_mut("policies/python/pack.yaml")
        .unwrap()
        .push_str("\n# edited\n");
    let e = PolicyCore::from_artefact_for(&bytes, &edited, "policies/python").unwrap_err();
    assert_eq!(e.kind, Kind::Artefact);
    assert!(
        e.message.starts_with("stale artefact:") && e.message.contains("policies/python/pack.yaml"),
        "{e}"
    );
    // A corrupt artefact is refused before any comparison.
    let mut bad = bytes.clone();
    bad[40] ^= 1;
    let e = PolicyCore::from_artefact_for(&bad, &served, "policies/python").unwrap_err();
    assert!(e.message.contains("checksum"), "{e}");
}

#[test]
fn explain_names_the_policy_digest_of_the_certificate() {
    let p = python();
    let d = p.explain()["digest"].as_str().unwrap().to_string();
    assert_eq!(d, ward_policy::digest::policy_digest(&p.policy));
    assert!(d.starts_with("sha256:") && d.len() == 7 + 64, "{d}");
    // The artefact gives the same policy, so the same digest.
    let q = PolicyCore::from_artefact(&p.to_artefact(&shipped_files(), "python")).unwrap();
    assert_eq!(q.explain()["digest"], p.explain()["digest"]);
}
