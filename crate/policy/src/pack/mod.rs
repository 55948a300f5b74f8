//! Packs: the YAML rule language, loading, and the hierarchy (`extends`, `disable`,
//! severity overrides). The result is an [`EffectivePolicy`]: the rules in force, in order,
//! each with where it came from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{suggest, CompileError, ErrorKind};

mod parse;
mod resolve;

pub(crate) use parse::locate_in_file;

/// A rule's severity, as in Semgrep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// `ERROR`: enforced.
    Error,
    /// `WARNING`: reported only.
    Warning,
    /// `INFO`: reported only.
    Info,
    /// `CRITICAL` (Semgrep's newer scale): enforced.
    Critical,
    /// `HIGH`: enforced.
    High,
    /// `MEDIUM`: reported only.
    Medium,
    /// `LOW`: reported only.
    Low,
}

const SEVERITIES: &[&str] = &[
    "ERROR", "WARNING", "INFO", "CRITICAL", "HIGH", "MEDIUM", "LOW",
];

impl Severity {
    /// Parse the YAML spelling (`ERROR`, `WARNING`, ...).
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "ERROR" => Severity::Error,
            "WARNING" => Severity::Warning,
            "INFO" => Severity::Info,
            "CRITICAL" => Severity::Critical,
            "HIGH" => Severity::High,
            "MEDIUM" => Severity::Medium,
            "LOW" => Severity::Low,
            _ => return None,
        })
    }

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
        }
    }

    /// True for the severities enforced during generation (ERROR, CRITICAL, HIGH).
    pub fn enforced(self) -> bool {
        matches!(self, Severity::Error | Severity::Critical | Severity::High)
    }

    /// The SARIF result level.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Error | Severity::Critical | Severity::High => "error",
            Severity::Warning | Severity::Medium => "warning",
            Severity::Info | Severity::Low => "note",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule's match must start to count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleScope {
    /// Only in code (the default).
    Code,
    /// Only inside string literals.
    String,
    /// Only inside comments.
    Comment,
    /// Anywhere.
    Any,
}

impl RuleScope {
    /// Whether a match starting in lexical scope `s` counts.
    pub fn admits(self, s: crate::Scope) -> bool {
        match self {
            RuleScope::Any => true,
            RuleScope::Code => s == crate::Scope::Code,
            RuleScope::String => s == crate::Scope::String,
            RuleScope::Comment => s == crate::Scope::Comment,
        }
    }

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleScope::Code => "code",
            RuleScope::String => "string",
            RuleScope::Comment => "comment",
            RuleScope::Any => "any",
        }
    }
}

/// A rule's pattern, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `pattern-regex`.
    Regex(String),
    /// `pattern-either`: any alternative.
    Either(Vec<Pattern>),
    /// `patterns`: a positive pattern and `pattern-not-regex` exclusions.
    Patterns {
        /// The positive pattern (a regex or an either of regexes).
        positive: Box<Pattern>,
        /// Regexes whose match inside the positive match's text suppresses it.
        not: Vec<String>,
    },
}

/// One alternative of a rule in normal form: a positive regex and its exclusions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alternative {
    /// The positive regex.
    pub regex: String,
    /// Exclusion regexes (`pattern-not-regex`).
    pub not: Vec<String>,
}

impl Pattern {
    /// The pattern flattened into alternatives (positive regex, exclusions).
    pub fn alternatives(&self) -> Vec<Alternative> {
        let mut out = Vec::new();
        self.flatten(&[], &mut out);
        out
    }

    fn flatten(&self, not: &[String], out: &mut Vec<Alternative>) {
        match self {
            Pattern::Regex(r) => out.push(Alternative {
                regex: r.clone(),
                not: not.to_vec(),
            }),
            Pattern::Either(ps) => ps.iter().for_each(|p| p.flatten(not, out)),
            Pattern::Patterns { positive, not: n } => {
                let mut all = not.to_vec();
                all.extend(n.iter().cloned());
                positive.flatten(&all, out)
            }
        }
    }
}

/// A rule of the effective policy.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Unique id, e.g. `python.subprocess-shell-true`.
    pub id: String,
    /// What is wrong and what to write instead.
    pub message: String,
    /// Severity after overrides.
    pub severity: Severity,
    /// Languages as written.
    pub languages: Vec<String>,
    /// CWE ids and titles from `metadata.cwe`.
    pub cwe: Vec<String>,
    /// All metadata, as JSON.
    pub metadata: serde_json::Value,
    /// Lexical scope in which a match must start.
    pub scope: RuleScope,
    /// The pattern.
    pub pattern: Pattern,
    /// The pack that defines the rule.
    pub pack: String,
    /// The file that defines the rule.
    pub source: PathBuf,
    /// 1-based line of the rule's `id` in its file, when found.
    pub line: Option<usize>,
    /// False when a later pack disabled it.
    pub enabled: bool,
    /// Changes made by later packs, e.g. "severity ERROR → WARNING by policies/x/pack.yaml".
    pub history: Vec<String>,
    /// `paths: include:` globs (empty: every file), as Semgrep reads them: see
    /// [`Rule::applies_to_path`].
    pub paths_include: Vec<String>,
    /// `paths: exclude:` globs.
    pub paths_exclude: Vec<String>,
    /// Load warnings: where the rule means something else in Ward than in Semgrep (a
    /// `pattern-not-regex` that Semgrep also applies around the finding; see
    /// `policies/README.md`). `ward check` prints them on standard error, `ward explain`
    /// under the rule and in its JSON.
    pub warnings: Vec<String>,
}

impl Rule {
    /// True when the rule is enabled and its severity is enforced during generation.
    pub fn enforced(&self) -> bool {
        self.enabled && self.severity.enforced()
    }
}

/// The effective policy: the packs' rules after `extends`, `disable` and overrides.
#[derive(Clone, Debug)]
pub struct EffectivePolicy {
    /// Name of the top pack.
    pub name: String,
    /// The pack files, in resolution order (bases first).
    pub files: Vec<PathBuf>,
    /// All rules, disabled ones included (with `enabled: false`), bases first.
    pub rules: Vec<Rule>,
    /// The pack's `max-states:` (the nearest pack in the hierarchy that sets it): the state
    /// budget of one module, overriding [`crate::PolicyConfig::max_states`] wherever this
    /// policy is compiled (`ward check`, `ward explain`, generation).
    pub max_states: Option<usize>,
}

/// Glob match of `pat` against `s`: `*` any run within a path component, `**` any run across
/// components, `?` one character (not `/`), `[...]` is not special.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some(b'*') if pat.get(1) == Some(&b'*') => {
            let rest = pat[2..].strip_prefix(b"/").unwrap_or(&pat[2..]);
            (0..=s.len())
                .any(|i| (i == 0 || s[i - 1] == b'/' || rest.is_empty()) && glob(rest, &s[i..]))
                || glob(&pat[2..], s)
        }
        Some(b'*') => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != b'/')
            .any(|i| glob(&pat[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && s[0] != b'/' && glob(&pat[1..], &s[1..]),
        Some(&c) => !s.is_empty() && s[0] == c && glob(&pat[1..], &s[1..]),
    }
}

/// Whether Semgrep-style glob `pat` selects `path` (relative, `/`-separated): a pattern
/// without `/` matches any component of the path (a folder or the file name: `tests`,
/// `*_test.py`); one with `/` matches the path from its start, or a leading part of it (a
/// folder: `src/app` selects `src/app/x.py`); a leading `/` is dropped.
fn path_matches(pat: &str, path: &str) -> bool {
    let pat = pat.trim_end_matches('/');
    let path = path.trim_start_matches("./");
    if !pat.contains('/') {
        return path.split('/').any(|c| glob(pat.as_bytes(), c.as_bytes()));
    }
    let pat = pat.trim_start_matches('/');
    let parts: Vec<&str> = path.split('/').collect();
    (1..=parts.len()).any(|k| glob(pat.as_bytes(), parts[..k].join("/").as_bytes()))
}

impl Rule {
    /// Whether the rule applies to the file at `path` (relative to the folder checked, with
    /// `/`): it matches some `paths.include` glob (or there are none) and no
    /// `paths.exclude` glob.
    pub fn applies_to_path(&self, path: &str) -> bool {
        let path = path.replace('\\', "/");
        (self.paths_include.is_empty() || self.paths_include.iter().any(|g| path_matches(g, &path)))
            && !self.paths_exclude.iter().any(|g| path_matches(g, &path))
    }
}

/// Whether a rule with these `languages` applies to Python files: Python itself, or any
/// file (`generic`, `regex`).
pub(crate) fn applies_to_python(languages: &[String]) -> bool {
    languages.is_empty()
        || languages.iter().any(|l| {
            matches!(
                l.to_ascii_lowercase().as_str(),
                "python" | "python2" | "python3" | "py" | "generic" | "regex" | "none"
            )
        })
}

/// Resolve a `--policy` argument: a pack file or a folder with `pack.yaml`.
pub(crate) fn pack_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("pack.yaml")
    } else {
        path.to_path_buf()
    }
}
