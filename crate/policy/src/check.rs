//! The DFA checker: [`CompiledPolicy::check`] reports every finding of every enabled rule.
//!
//! Semantics (shared with [`crate::RegexChecker`], which computes the same findings without
//! any of this crate's automata): for each rule, scanning left to right from `p = 0`, a
//! finding ends at the smallest `e` such that some match `[s, e)` of the rule with `s ≥ p`
//! starts in the rule's scope (and, for `patterns`, its text contains no exclusion match);
//! then `p = e` and the scan goes on. The finding's span starts at the smallest such `s`.
//! Rules with `scope: code` match against the code view of the text ([`crate::scan`]:
//! comments, backslash line continuations and form feeds read as spaces, a lone `\r` as
//! `\n`, byte for byte), the way CPython's tokenizer reads code; the others against the
//! text itself.
//!
//! Each rule runs on its own reporting DFA; a rule whose reporting DFA would exceed the state
//! budget (possible for reported-only rules with wide gaps) is scanned by the regex engine
//! with the same semantics instead. Enforced rules always have a module.

use crate::compile::CompiledPolicy;
use crate::finding::Finding;
use crate::module::{RuleIndex, StateId};

impl CompiledPolicy {
    /// Every finding of every enabled rule in `text`, sorted by position then rule.
    pub fn check(&self, text: &[u8]) -> Vec<Finding> {
        let mut ends: Vec<(RuleIndex, usize)> = Vec::new();
        // Prefilter: an enforced module that never reaches its violated state on this text
        // proves that none of its rules has a finding here (the module is exactly "some match
        // of one of its rules"), so their reporting DFAs need not run.
        let mut quiet = vec![false; self.rules.len()];
        for m in &self.modules {
            let s = m.run(m.start(), text);
            if !m.is_violated(s) && m.is_clean_end(s) {
                for &r in m.rules() {
                    quiet[r as usize] = true;
                }
            }
        }
        let mut fallback = Vec::new();
        for (ri, &quiet) in quiet.iter().enumerate() {
            if quiet {
                continue;
            }
            let Some(rd) = self.report.get(ri) else {
                fallback.push(ri as RuleIndex);
                continue;
            };
            let m = &rd.dfa;
            let mut s = m.start();
            for (i, &b) in text.iter().enumerate() {
                let n = m.next(s, b);
                if n == StateId::VIOLATED {
                    ends.push((ri as RuleIndex, i));
                    s = m.next(rd.reset[s.as_usize()], b);
                } else {
                    s = n;
                }
            }
            if !m.is_clean_end(s) {
                ends.push((ri as RuleIndex, text.len()));
            }
        }
        if ends.is_empty() && fallback.is_empty() {
            return Vec::new();
        }
        let (scopes, view) = crate::lexer::scan(text);
        let mut out = self.findings_from_ends(text, &view, &scopes, ends);
        if !fallback.is_empty() {
            let finder = &self.span_finder;
            for r in fallback {
                let mut p = 0;
                while let Some((s, e)) = finder.earliest(r, text, &view, &scopes, p) {
                    out.push(self.finding(r, text, s, e));
                    p = e;
                }
            }
            out.sort_by_key(|f| (f.start, f.end, f.rule));
        }
        out
    }

    /// True if `text` violates no enforced rule (what the guard guarantees).
    pub fn is_clean_enforced(&self, text: &[u8]) -> bool {
        self.modules.iter().all(|m| {
            let s = m.run(m.start(), text);
            !m.is_violated(s) && m.is_clean_end(s)
        })
    }

    /// Build findings from (rule, end) pairs, locating each span's start.
    pub(crate) fn findings_from_ends(
        &self,
        text: &[u8],
        view: &[u8],
        scopes: &[crate::lexer::Scope],
        mut ends: Vec<(RuleIndex, usize)>,
    ) -> Vec<Finding> {
        let matcher = &self.span_finder;
        let mut out = Vec::with_capacity(ends.len());
        ends.sort_by_key(|&(r, e)| (r, e));
        let mut prev: Option<(RuleIndex, usize)> = None;
        for (r, e) in ends {
            let p = match prev {
                Some((pr, pe)) if pr == r => pe,
                _ => 0,
            };
            prev = Some((r, e));
            let start = matcher.start_of(r, text, view, scopes, p, e).unwrap_or(p);
            out.push(self.finding(r, text, start, e));
        }
        out.sort_by_key(|f| (f.start, f.end, f.rule));
        out
    }

    pub(crate) fn finding(&self, r: RuleIndex, text: &[u8], start: usize, end: usize) -> Finding {
        Finding::new(r, &self.rules[r as usize], text, start, end)
    }
}
