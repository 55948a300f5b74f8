//! The DFA checker: [`CompiledPolicy::check`] reports every finding of every enabled rule.
//!
//! Semantics (shared with [`crate::RegexChecker`], which computes the same findings without
//! any of this crate's automata): for each rule, scanning left to right from `p = 0`, a
//! finding ends at the smallest `e` such that some match `[s, e)` of the rule with `s ≥ p`
//! starts in the rule's scope (and, for `patterns`, its text contains no exclusion match);
//! then `p = e` and the scan goes on. The finding's span starts at the smallest such `s`.
//!
//! Each rule runs on its own reporting DFA; a rule whose reporting DFA would exceed the state
//! budget (possible for reported-only rules with wide gaps) is scanned by the regex engine
//! with the same semantics instead. Enforced rules always have a module.

use crate::compile::CompiledPolicy;
use crate::module::{RuleIndex, StateId};
use crate::pack::Severity;

/// A 1-based line and column (column in bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineCol {
    /// 1-based line.
    pub line: usize,
    /// 1-based byte column.
    pub column: usize,
}

/// One finding: a rule that matches at a span of the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Index of the rule in [`CompiledPolicy::rules`].
    pub rule: RuleIndex,
    /// The rule's id.
    pub rule_id: String,
    /// The rule's severity (after overrides).
    pub severity: Severity,
    /// The rule's CWE entries.
    pub cwe: Vec<String>,
    /// The rule's message.
    pub message: String,
    /// Byte offset where the match starts.
    pub start: usize,
    /// Byte offset where the match ends (exclusive).
    pub end: usize,
    /// Line and column of `start`.
    pub line: usize,
    /// 1-based byte column of `start`.
    pub column: usize,
    /// Line and column of `end`.
    pub end_pos: LineCol,
    /// True when the rule is enforced during generation.
    pub enforced: bool,
}

/// Line and column of byte offset `off`.
pub(crate) fn line_col(text: &[u8], off: usize) -> LineCol {
    let before = &text[..off.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    LineCol { line, column: col }
}

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
        let scopes = crate::lexer::scope_of_bytes(text);
        let mut out = self.findings_from_ends(text, &scopes, ends);
        if !fallback.is_empty() {
            let finder = crate::regex_check::SpanFinder::new(self);
            for r in fallback {
                let mut p = 0;
                while let Some((s, e)) = finder.earliest(r, text, &scopes, p) {
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
        scopes: &[crate::lexer::Scope],
        mut ends: Vec<(RuleIndex, usize)>,
    ) -> Vec<Finding> {
        let matcher = crate::regex_check::SpanFinder::new(self);
        let mut out = Vec::with_capacity(ends.len());
        ends.sort_by_key(|&(r, e)| (r, e));
        let mut prev: Option<(RuleIndex, usize)> = None;
        for (r, e) in ends {
            let p = match prev {
                Some((pr, pe)) if pr == r => pe,
                _ => 0,
            };
            prev = Some((r, e));
            let start = matcher.start_of(r, text, scopes, p, e).unwrap_or(p);
            out.push(self.finding(r, text, start, e));
        }
        out.sort_by_key(|f| (f.start, f.end, f.rule));
        out
    }

    pub(crate) fn finding(&self, r: RuleIndex, text: &[u8], start: usize, end: usize) -> Finding {
        let rule = &self.rules[r as usize];
        let lc = line_col(text, start);
        Finding {
            rule: r,
            rule_id: rule.id.clone(),
            severity: rule.severity,
            cwe: rule.cwe.clone(),
            message: rule.message.clone(),
            start,
            end,
            line: lc.line,
            column: lc.column,
            end_pos: line_col(text, end),
            enforced: rule.enforced(),
        }
    }
}
