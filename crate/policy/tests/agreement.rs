//! Property test: the DFA checker (`check`) and the independent regex checker agree on
//! random rules and random text, and the enforced modules agree with both about whether a
//! text violates an enforced rule. Cases: `PROPTEST_CASES` (default 96).

use proptest::prelude::*;
use ward_policy::{ErrorKind, PolicyBuilder, RegexChecker};

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("\\(".to_string()),
        Just("\\)".to_string()),
        Just("\"".to_string()),
        Just("#".to_string()),
        Just("[ab]".to_string()),
        Just("[^)\\n]".to_string()),
        Just("\\w".to_string()),
        Just("\\s".to_string()),
        Just(".".to_string()),
        Just("\\b".to_string()),
        Just("^".to_string()),
        Just("$".to_string()),
    ]
}

fn regex() -> impl Strategy<Value = String> {
    let piece = || {
        (
            atom(),
            prop_oneof![
                Just(""),
                Just(""),
                Just("*"),
                Just("+"),
                Just("?"),
                Just("{1,2}")
            ],
        )
            .prop_map(|(a, r)| {
                if a == "\\b" || a == "^" || a == "$" {
                    a
                } else {
                    format!("{a}{r}")
                }
            })
            .boxed()
    };
    let first = (atom(), prop_oneof![Just(""), Just("+"), Just("{1,2}")])
        .prop_filter("consuming", |(a, _)| a != "\\b" && a != "^" && a != "$")
        .prop_map(|(a, r)| format!("{a}{r}"));
    let seq = (
        prop::collection::vec(piece(), 0..2),
        first,
        prop::collection::vec(piece(), 0..3),
    )
        .prop_map(|(a, f, b)| format!("{}{f}{}", a.concat(), b.concat()));
    prop::collection::vec(seq, 1..3).prop_map(|v| v.join("|"))
}

fn rule_yaml(i: usize, re: &str, not: Option<&str>, scope: &str, sev: &str) -> String {
    let pat = match not {
        None => format!("    pattern-regex: '{re}'\n"),
        Some(n) => format!(
            "    patterns:\n      - pattern-regex: '{re}'\n      - pattern-not-regex: '{n}'\n"
        ),
    };
    format!(
        "  - id: r{i}\n    message: m\n    severity: {sev}\n    languages: [python]\n    scope: {scope}\n{pat}"
    )
}

fn text() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b'a'),
            Just(b'b'),
            Just(b'('),
            Just(b')'),
            Just(b'"'),
            Just(b'\''),
            Just(b'#'),
            Just(b'\n'),
            Just(b' '),
            Just(b'f'),
            Just(b'{'),
            Just(b'}'),
            Just(b'\\'),
        ],
        0..40,
    )
}

fn scope() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("code"), Just("string"), Just("comment"), Just("any")]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(96), ..ProptestConfig::default() })]

    #[test]
    fn dfa_and_regex_checkers_agree(
        rules in prop::collection::vec((regex(), prop::option::of(regex()), scope(), prop_oneof![Just("ERROR"), Just("WARNING")]), 1..4),
        texts in prop::collection::vec(text(), 1..6),
    ) {
        let mut yaml = String::from("pack: p\nrules:\n");
        for (i, (re, not, sc, sev)) in rules.iter().enumerate() {
            yaml.push_str(&rule_yaml(i, re, not.as_deref(), sc, sev));
        }
        let policy = match PolicyBuilder::new().max_states(20_000).compile_str(&yaml, "p.yaml") {
            Ok(p) => p,
            Err(e) => {
                // only empty-match and size rejections are expected for generated patterns
                prop_assert!(
                    matches!(e.kind(), ErrorKind::EmptyMatch | ErrorKind::SizeLimit | ErrorKind::BadRegex),
                    "unexpected error {}", e
                );
                prop_assume!(false);
                unreachable!()
            }
        };
        let rc = RegexChecker::new(&policy);
        for t in &texts {
            let a = policy.check(t);
            let b = rc.check(t);
            prop_assert_eq!(&a, &b, "text {:?}\n{}", String::from_utf8_lossy(t), yaml);
            let enforced_violation = a.iter().any(|f| f.enforced);
            prop_assert_eq!(!policy.is_clean_enforced(t), enforced_violation, "modules vs checkers on {:?}\n{}", String::from_utf8_lossy(t), yaml);
        }
    }
}
