//! Compile errors: every error names its cause (file, line and column, rule id, construct).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::Instant;

/// What went wrong, without the location details (see [`CompileError`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A pack file could not be read.
    Io,
    /// The YAML is malformed.
    Yaml,
    /// A key that the rule language does not know.
    UnknownKey,
    /// A required field is missing.
    MissingField,
    /// A field has a value of the wrong type or an invalid value.
    BadValue,
    /// A regex does not parse.
    BadRegex,
    /// A regex uses a construct that is not regular (look-around, backreference) or not supported.
    UnsupportedRegex,
    /// A regex can match the empty string.
    EmptyMatch,
    /// A pack has no rules at all (after resolving its hierarchy).
    EmptyPack,
    /// Two rules share an id.
    DuplicateId,
    /// `disable` or `severity` names a rule that does not exist.
    UnknownRule,
    /// The `extends` graph has a cycle.
    Cycle,
    /// A module (or a single rule) needs more bytes (tables, NFA, regex checker) than the limit.
    SizeLimit,
    /// A module (or a single rule) needs more DFA states than the per-module state budget
    /// (`max-states`); [`CompileError::is_size_limit_exceeded`] is true for it too.
    StateLimit,
    /// Compilation ran past the time limit.
    TimeLimit,
}

/// An error from loading or compiling a policy. Its `Display` names the file, line and
/// column, the rule and the construct where known.
///
/// One pointer wide (the details are boxed), so `Result<_, CompileError>` stays cheap to
/// return on the compiler's hot paths.
#[derive(Clone)]
pub struct CompileError(Box<Details>);

#[derive(Clone)]
struct Details {
    kind: ErrorKind,
    file: Option<PathBuf>,
    line: Option<usize>,
    column: Option<usize>,
    rule: Option<String>,
    message: String,
}

impl fmt::Debug for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0;
        f.debug_struct("CompileError")
            .field("kind", &d.kind)
            .field("file", &d.file)
            .field("line", &d.line)
            .field("column", &d.column)
            .field("rule", &d.rule)
            .field("message", &d.message)
            .finish()
    }
}

impl CompileError {
    /// A new error of `kind` with a message.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CompileError(Box::new(Details {
            kind,
            file: None,
            line: None,
            column: None,
            rule: None,
            message: message.into(),
        }))
    }

    /// Attach the file.
    pub(crate) fn in_file(mut self, file: &Path) -> Self {
        if self.0.file.is_none() {
            self.0.file = Some(file.to_path_buf());
        }
        self
    }

    /// Attach a line and column (1-based).
    pub(crate) fn at(mut self, line: usize, column: usize) -> Self {
        if self.0.line.is_none() {
            self.0.line = Some(line);
            self.0.column = Some(column);
        }
        self
    }

    /// Attach the rule id.
    pub(crate) fn for_rule(mut self, rule: &str) -> Self {
        if self.0.rule.is_none() {
            self.0.rule = Some(rule.to_string());
        }
        self
    }

    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The file the error is in, if known.
    pub fn file(&self) -> Option<&Path> {
        self.0.file.as_deref()
    }

    /// The 1-based line in the file, if known.
    pub fn line(&self) -> Option<usize> {
        self.0.line
    }

    /// The 1-based column (in the file, or in the regex for regex errors), if known.
    pub fn column(&self) -> Option<usize> {
        self.0.column
    }

    /// The rule id the error is about, if any.
    pub fn rule(&self) -> Option<&str> {
        self.0.rule.as_deref()
    }

    /// The message without location.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// True if a size limit (states or bytes) was exceeded.
    pub fn is_size_limit_exceeded(&self) -> bool {
        matches!(self.0.kind, ErrorKind::SizeLimit | ErrorKind::StateLimit)
    }

    /// True if the per-module state budget (`max-states`) was exceeded.
    pub fn is_state_limit_exceeded(&self) -> bool {
        self.0.kind == ErrorKind::StateLimit
    }

    /// True if the time limit was exceeded.
    pub fn is_time_limit_exceeded(&self) -> bool {
        self.0.kind == ErrorKind::TimeLimit
    }
}

/// The compile-time budget of one compilation (or of one reporting DFA built later): every
/// loop of the compiler whose length grows with the input calls [`Deadline::check`] every
/// few thousand iterations, so any pack fails within the limit plus a small margin.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    start: Instant,
    limit: Duration,
}

impl Deadline {
    /// A budget of `limit` from `start`.
    pub(crate) fn new(start: Instant, limit: Duration) -> Self {
        Deadline { start, limit }
    }

    /// Adds `work` to `counter` and, once that passes 64 Ki, reads the clock
    /// ([`Deadline::check`]) and starts counting again: for loops whose iterations cost very
    /// different amounts.
    #[inline]
    pub(crate) fn tick(&self, counter: &mut usize, work: usize) -> Result<(), CompileError> {
        *counter += work;
        if *counter >= 1 << 16 {
            *counter = 0;
            self.check()?;
        }
        Ok(())
    }

    /// A [`ErrorKind::TimeLimit`] error once the budget is spent.
    pub(crate) fn check(&self) -> Result<(), CompileError> {
        if self.start.elapsed() > self.limit {
            return Err(CompileError::new(
                ErrorKind::TimeLimit,
                format!("compilation exceeded the time limit of {:?}", self.limit),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.0.file {
            write!(f, "{}", file.display())?;
            if let Some(l) = self.0.line {
                write!(f, ":{l}")?;
                if let Some(c) = self.0.column {
                    write!(f, ":{c}")?;
                }
            }
            write!(f, ": ")?;
        }
        if let Some(r) = &self.0.rule {
            write!(f, "rule `{r}`: ")?;
        }
        write!(f, "{}", self.0.message)
    }
}

impl std::error::Error for CompileError {}

/// Levenshtein distance, for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
