//! The independent checker: runs each rule's regexes directly on the text with
//! `regex-automata`'s own engines ([`crate::span`]), without any of the automata this crate
//! builds. It shares only the finding semantics (see [`crate::check`]), the finding type and
//! the lexer that assigns scopes.
//!
//! It is slower (it tries every start position) and is meant for cross-checks and for the
//! final certificate of generated text.

use crate::compile::CompiledPolicy;
use crate::finding::Finding;
use crate::lexer::scan;
use crate::module::RuleIndex;
use crate::span::SpanFinder;

/// The independent regex checker (see the module docs).
///
/// # Example
/// ```
/// use ward_policy::{PolicyBuilder, RegexChecker};
/// let p = PolicyBuilder::new().compile_path(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/mini.yaml")).unwrap();
/// let text = b"os.system(cmd)  # os.system(x)\n";
/// assert_eq!(RegexChecker::new(&p).check(text), p.check(text));
/// ```
#[derive(Debug)]
pub struct RegexChecker<'p> {
    policy: &'p CompiledPolicy,
    finder: std::sync::Arc<SpanFinder>,
}

impl<'p> RegexChecker<'p> {
    /// A checker for the rules of `policy`.
    pub fn new(policy: &'p CompiledPolicy) -> Self {
        RegexChecker {
            policy,
            finder: policy.span_finder.clone(),
        }
    }

    /// Every finding of every enabled rule, with the same semantics as
    /// [`CompiledPolicy::check`].
    pub fn check(&self, text: &[u8]) -> Vec<Finding> {
        let (scopes, view) = scan(text);
        let mut out = Vec::new();
        for r in 0..self.policy.rules().len() as RuleIndex {
            let mut p = 0;
            while let Some((s, e)) = self.finder.earliest(r, text, &view, &scopes, p) {
                out.push(self.policy.finding(r, text, s, e));
                p = e;
            }
        }
        out.sort_by_key(|f| (f.start, f.end, f.rule));
        out
    }

    /// Findings of enforced rules only.
    pub fn check_enforced(&self, text: &[u8]) -> Vec<Finding> {
        self.check(text)
            .into_iter()
            .filter(|f| f.enforced)
            .collect()
    }
}
