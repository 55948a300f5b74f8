//! `languages:` (issue 14): a rule for another language does not fire on Python (it is
//! disabled, with the reason in its history), and `generic`/`regex` rules default to
//! `scope: any` (they read any file, with no lexer), Python rules to `scope: code`.

use ward_policy::{EffectivePolicy, PolicyBuilder, RuleScope};

const PACK: &str = r#"pack: l
rules:
  - id: l.apex
    message: m
    severity: ERROR
    languages: [apex]
    pattern-regex: 'password'
  - id: l.generic
    message: m
    severity: ERROR
    languages: [generic]
    pattern-regex: 'secret'
  - id: l.python
    message: m
    severity: ERROR
    languages: [python]
    pattern-regex: 'evil'
"#;

#[test]
fn languages_select_rules_and_default_scopes() {
    let eff = EffectivePolicy::from_str(PACK, "l.yaml").unwrap();
    let by_id = |id: &str| eff.rules.iter().find(|r| r.id == id).unwrap();
    assert!(!by_id("l.apex").enabled);
    assert!(
        by_id("l.apex").history[0].contains("apex"),
        "{:?}",
        by_id("l.apex").history
    );
    assert_eq!(by_id("l.generic").scope, RuleScope::Any);
    assert_eq!(by_id("l.python").scope, RuleScope::Code);
    let p = PolicyBuilder::new().compile(&eff).unwrap();
    let text = b"password = 1  # secret evil\nevil()\n";
    let found = p.check(text);
    let ids: Vec<&str> = found.iter().map(|f| f.rule_id.as_str()).collect();
    assert_eq!(ids, ["l.generic", "l.python"], "{ids:?}");
}

#[test]
fn paths_include_and_exclude_select_files() {
    let yaml = r#"pack: p
rules:
  - id: p.r
    message: m
    severity: WARNING
    languages: [python]
    paths:
      include: ["src/", "*.py"]
      exclude: [tests, "*_test.py", "/src/vendor/**"]
    pattern-regex: 'evil'
"#;
    let eff = EffectivePolicy::from_str(yaml, "p.yaml").unwrap();
    let r = &eff.rules[0];
    for (path, want) in [
        ("src/app.py", true),
        ("app.py", true),
        ("src/tests/x.py", false),
        ("tests/x.py", false),
        ("src/app_test.py", false),
        ("src/vendor/lib/x.py", false),
        ("lib/x.pyc", false),
        ("./src/app.py", true),
    ] {
        assert_eq!(r.applies_to_path(path), want, "{path}");
    }
    let bad = yaml.replace("exclude:", "exlude:");
    let e = EffectivePolicy::from_str(&bad, "p.yaml").unwrap_err();
    assert!(e.to_string().contains("paths.exlude"), "{e}");
}

#[test]
fn max_states_is_a_pack_option() {
    // A rule over the default 4 096-state budget fails with a message naming the limit; the
    // pack's `max-states:` raises the budget wherever the pack is compiled, and a base's
    // value holds unless the top pack sets its own.
    let rule = "rules:\n  - id: b.big\n    message: m\n    severity: ERROR\n    languages: [generic]\n    pattern-regex: 'a[ab]{12}c'\n";
    let e = PolicyBuilder::new()
        .compile_str(&format!("pack: b\n{rule}"), "b.yaml")
        .unwrap_err();
    assert!(e.to_string().contains("4096"), "{e}");
    let eff = EffectivePolicy::from_str(&format!("pack: b\nmax-states: 20000\n{rule}"), "b.yaml")
        .unwrap();
    assert_eq!(eff.max_states, Some(20000));
    let p = PolicyBuilder::new().compile(&eff).unwrap();
    assert!(p.modules()[0].num_states() > 4096);
    let small =
        EffectivePolicy::from_str(&format!("pack: b\nmax-states: 100\n{rule}"), "b.yaml").unwrap();
    let e = PolicyBuilder::new()
        .max_states(100_000)
        .compile(&small)
        .unwrap_err();
    assert!(e.to_string().contains("100 states"), "{e}");
}
