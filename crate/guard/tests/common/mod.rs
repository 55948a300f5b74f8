//! Shared helpers for the guard's integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use ward_guard::{Guard, TokenKind, TokenPolicy, Vocab};
use ward_policy::{CompiledPolicy, PolicyBuilder, RegexChecker};

/// Small deterministic RNG (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// Number of cases: `WARD_PROPTEST_CASES` or the default.
pub fn cases(default: usize) -> usize {
    std::env::var("WARD_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub fn yaml_pack(rules: &[(&str, &str, &str)]) -> String {
    let mut s = String::from("pack: test\nrules:\n");
    for (id, sev, re) in rules {
        s.push_str(&format!(
            "  - id: {id}\n    message: test rule {id}\n    severity: {sev}\n    languages: [python]\n    pattern-regex: '{}'\n",
            re.replace('\'', "''")
        ));
    }
    s
}

pub fn compile(rules: &[(&str, &str, &str)]) -> CompiledPolicy {
    let y = yaml_pack(rules);
    PolicyBuilder::new()
        .compile_str(&y, "test.yaml")
        .unwrap_or_else(|e| panic!("{e}\n{y}"))
}

pub fn token_policy(policy: CompiledPolicy, vocab: Vocab) -> Arc<TokenPolicy> {
    Arc::new(TokenPolicy::new(Arc::new(policy), Arc::new(vocab)))
}

/// Enforced findings of the independent regex checker.
pub fn enforced_findings(policy: &CompiledPolicy, text: &[u8]) -> Vec<String> {
    let rc = RegexChecker::new(policy);
    rc.check(text)
        .into_iter()
        .filter(|f| policy.rules()[f.rule as usize].enforced())
        .map(|f| format!("{} at {}..{}", f.rule_id, f.start, f.end))
        .collect()
}

pub fn vocab_with_specials(tokens: &[Vec<u8>], end: bool, empty: bool) -> Vocab {
    let mut toks: Vec<Vec<u8>> = tokens.to_vec();
    let mut kinds = vec![TokenKind::Text; toks.len()];
    if end {
        toks.push(Vec::new());
        kinds.push(TokenKind::End);
    }
    if empty {
        toks.push(Vec::new());
        kinds.push(TokenKind::Empty);
    }
    Vocab::from_parts(&toks, kinds).unwrap()
}

pub fn describe(g: &Guard) -> String {
    let v = g.token_policy().vocab();
    g.tokens()
        .iter()
        .map(|t| match t {
            None => "_".to_string(),
            Some(t) => match v.kind(*t) {
                TokenKind::End => "<end>".into(),
                TokenKind::Empty => "<empty>".into(),
                TokenKind::Text => format!("{:?}", String::from_utf8_lossy(v.bytes(*t))),
            },
        })
        .collect::<Vec<_>>()
        .join("|")
}
