//! Bad input: every class gives a clear error naming file, line/column, rule and construct.

use ward_policy::{ErrorKind, PolicyBuilder};

fn compile(yaml: &str) -> ward_policy::CompileError {
    PolicyBuilder::new()
        .compile_str(yaml, "test.yaml")
        .expect_err("should fail")
}

const HEAD: &str = "pack: t\nrules:\n  - id: t.rule\n    message: m\n    severity: ERROR\n    languages: [python]\n";

#[test]
fn malformed_yaml_has_line_and_column() {
    let e = compile("pack: t\nrules:\n  - id: 'unterminated\n    message: x\n");
    assert_eq!(e.kind(), &ErrorKind::Yaml);
    assert!(e.line().is_some(), "{e}");
    assert!(e.to_string().starts_with("test.yaml:"), "{e}");
}

#[test]
fn unknown_key_with_suggestion() {
    let e = compile(&format!("{HEAD}    patern-regex: 'x'\n"));
    assert_eq!(e.kind(), &ErrorKind::UnknownKey);
    let s = e.to_string();
    assert!(
        s.contains("patern-regex") && s.contains("did you mean `pattern-regex`"),
        "{s}"
    );
    assert_eq!(e.line(), Some(7), "{s}");
}

#[test]
fn unknown_pack_key() {
    let e = compile("pack: t\nextend: [x]\nrules: []\n");
    assert_eq!(e.kind(), &ErrorKind::UnknownKey);
    assert!(e.to_string().contains("did you mean `extends`"), "{e}");
}

#[test]
fn missing_fields_name_the_rule() {
    let e = compile("pack: t\nrules:\n  - id: t.rule\n    severity: ERROR\n    languages: [python]\n    pattern-regex: x\n");
    assert_eq!(e.kind(), &ErrorKind::MissingField);
    assert_eq!(e.rule(), Some("t.rule"));
    assert!(e.to_string().contains("message"), "{e}");
    let e = compile(HEAD);
    assert_eq!(e.kind(), &ErrorKind::MissingField);
    assert!(e.to_string().contains("pattern"), "{e}");
    let e = compile("pack: t\nrules:\n  - message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: x\n");
    assert_eq!(e.kind(), &ErrorKind::MissingField);
    assert!(e.to_string().contains("rule #1 has no `id`"), "{e}");
}

#[test]
fn bad_values() {
    let e = compile("pack: t\nrules:\n  - id: t.rule\n    message: m\n    severity: EROR\n    languages: [python]\n    pattern-regex: x\n");
    assert_eq!(e.kind(), &ErrorKind::BadValue);
    assert!(e.to_string().contains("did you mean `ERROR`"), "{e}");
    let e = compile(&format!("{HEAD}    scope: strings\n    pattern-regex: x\n"));
    assert!(e.to_string().contains("did you mean `string`"), "{e}");
    let e = compile(&format!(
        "{HEAD}    pattern-regex: x\n    patterns:\n      - pattern-regex: y\n"
    ));
    assert_eq!(e.kind(), &ErrorKind::BadValue);
    let e = compile(&format!(
        "{HEAD}    patterns:\n      - pattern-not-regex: y\n"
    ));
    assert!(e.to_string().contains("exactly one positive"), "{e}");
    let e = compile("pack: t\nrules:\n  - id: t.rule\n    message: m\n    severity: ERROR\n    languages: python\n    pattern-regex: x\n");
    assert_eq!(e.kind(), &ErrorKind::BadValue, "{e}");
}

#[test]
fn lookaround_names_rule_construct_and_column() {
    let e = compile(&format!("{HEAD}    pattern-regex: 'eval(?!uate)\\('\n"));
    assert_eq!(e.kind(), &ErrorKind::UnsupportedRegex);
    let s = e.to_string();
    assert!(
        s.contains("t.rule") && s.contains("look-around") && s.contains("column 5"),
        "{s}"
    );
    let e = compile(&format!("{HEAD}    pattern-regex: '(?<=x)y'\n"));
    assert_eq!(e.kind(), &ErrorKind::UnsupportedRegex);
    assert!(e.to_string().contains("column 1"), "{e}");
}

#[test]
fn backreference_is_rejected() {
    let e = compile(&format!("{HEAD}    pattern-regex: '(a)\\1'\n"));
    assert_eq!(e.kind(), &ErrorKind::UnsupportedRegex);
    let s = e.to_string();
    assert!(s.contains("backreference") && s.contains("column 4"), "{s}");
}

#[test]
fn bad_regex_and_empty_match() {
    let e = compile(&format!("{HEAD}    pattern-regex: 'eval(('\n"));
    assert_eq!(e.kind(), &ErrorKind::BadRegex);
    assert!(e.to_string().contains("t.rule"), "{e}");
    let e = compile(&format!("{HEAD}    pattern-regex: 'x*'\n"));
    assert_eq!(e.kind(), &ErrorKind::EmptyMatch);
    let e = compile(&format!(
        "{HEAD}    patterns:\n      - pattern-regex: 'a'\n      - pattern-not-regex: '\\b'\n"
    ));
    assert_eq!(e.kind(), &ErrorKind::EmptyMatch);
}

#[test]
fn empty_pack() {
    let e = compile("pack: t\nrules: []\n");
    assert_eq!(e.kind(), &ErrorKind::EmptyPack);
    let e = compile("pack: t\n");
    assert_eq!(e.kind(), &ErrorKind::EmptyPack);
}

#[test]
fn ast_patterns_are_rejected_clearly() {
    let e = compile(&format!("{HEAD}    pattern: eval(...)\n"));
    assert!(e.to_string().contains("AST patterns"), "{e}");
}

#[test]
fn state_limit_fails_fast_naming_the_rule() {
    let yaml = format!("{HEAD}    pattern-regex: '[ab]*a[ab]{{14}}c'\n");
    let t = std::time::Instant::now();
    let e = PolicyBuilder::new()
        .max_states(500)
        .compile_str(&yaml, "test.yaml")
        .unwrap_err();
    assert!(e.is_size_limit_exceeded(), "{e}");
    assert_eq!(e.rule(), Some("t.rule"));
    assert!(t.elapsed().as_secs() < 5);
}

#[test]
fn time_limit() {
    let yaml = format!("{HEAD}    pattern-regex: '[ab]*a[ab]{{18}}c'\n");
    let e = PolicyBuilder::new()
        .max_states(10_000_000)
        .max_compile_time(std::time::Duration::from_millis(50))
        .compile_str(&yaml, "test.yaml")
        .unwrap_err();
    assert!(
        e.is_time_limit_exceeded() || e.is_size_limit_exceeded(),
        "{e}"
    );
}

#[test]
fn reported_rule_too_large_for_any_engine_fails_cleanly() {
    // A WARNING rule too large for a reporting DFA falls back to the regex engine; if that
    // engine cannot build it within its limit either, compilation fails naming the rule.
    let yaml = "pack: t\nrules:\n  - id: t.huge\n    message: m\n    severity: WARNING\n    languages: [python]\n    pattern-regex: '[ab]*a[ab]{22}c'\n";
    let t = std::time::Instant::now();
    match PolicyBuilder::new().compile_str(yaml, "test.yaml") {
        Err(e) => {
            assert!(
                e.is_size_limit_exceeded() || e.is_time_limit_exceeded(),
                "{e}"
            );
            assert_eq!(e.rule(), Some("t.huge"), "{e}");
        }
        Ok(p) => {
            // if it did fit, checking must still work
            assert!(p.check(b"ab").is_empty());
        }
    }
    assert!(t.elapsed().as_secs() < 30);
}
