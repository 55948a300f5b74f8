//! What both checkers report: a [`Finding`] (a rule matching at a span of the text) and its
//! positions. Shared by the DFA checker (`check.rs`) and the independent regex checker
//! (`regex_check.rs`), which otherwise know nothing of each other.

use crate::module::RuleIndex;
use crate::pack::{Rule, Severity};

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
    /// Index of the rule in [`CompiledPolicy::rules`](crate::CompiledPolicy::rules).
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

impl Finding {
    /// The finding of rule `rule` (at index `r`) over `text[start..end]`.
    pub(crate) fn new(r: RuleIndex, rule: &Rule, text: &[u8], start: usize, end: usize) -> Finding {
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
