//! Packs: the YAML rule language, loading, and the hierarchy (`extends`, `disable`,
//! severity overrides). The result is an [`EffectivePolicy`]: the rules in force, in order,
//! each with where it came from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{suggest, CompileError, ErrorKind};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPack {
    pack: Option<String>,
    description: Option<String>,
    extends: Option<Vec<String>>,
    disable: Option<Vec<String>>,
    severity: Option<BTreeMap<String, String>>,
    rules: Option<Vec<RawRule>>,
    #[serde(rename = "max-states")]
    max_states: Option<usize>,
}

const PACK_KEYS: &[&str] = &[
    "max-states",
    "pack",
    "description",
    "extends",
    "disable",
    "severity",
    "rules",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Option<String>,
    message: Option<String>,
    severity: Option<String>,
    languages: Option<Vec<String>>,
    metadata: Option<serde_yaml::Value>,
    scope: Option<String>,
    #[serde(rename = "pattern-regex")]
    pattern_regex: Option<String>,
    #[serde(rename = "pattern-either")]
    pattern_either: Option<Vec<RawItem>>,
    patterns: Option<Vec<RawItem>>,
    // Semgrep keys that are accepted and ignored.
    fix: Option<serde_yaml::Value>,
    #[serde(rename = "fix-regex")]
    fix_regex: Option<serde_yaml::Value>,
    paths: Option<serde_yaml::Value>,
    options: Option<serde_yaml::Value>,
    #[serde(rename = "min-version")]
    min_version: Option<serde_yaml::Value>,
    #[serde(rename = "max-version")]
    max_version: Option<serde_yaml::Value>,
    // Semgrep AST patterns: recognised so that the error can say they are unsupported.
    pattern: Option<serde_yaml::Value>,
    #[serde(rename = "pattern-not")]
    pattern_not: Option<serde_yaml::Value>,
    #[serde(rename = "pattern-inside")]
    pattern_inside: Option<serde_yaml::Value>,
}

const RULE_KEYS: &[&str] = &[
    "id",
    "message",
    "severity",
    "languages",
    "metadata",
    "scope",
    "pattern-regex",
    "pattern-either",
    "patterns",
    "fix",
    "fix-regex",
    "paths",
    "options",
    "min-version",
    "max-version",
    "pattern",
    "pattern-not",
    "pattern-inside",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    #[serde(rename = "pattern-regex")]
    pattern_regex: Option<String>,
    #[serde(rename = "pattern-not-regex")]
    pattern_not_regex: Option<String>,
    #[serde(rename = "pattern-either")]
    pattern_either: Option<Vec<RawItem>>,
    patterns: Option<Vec<RawItem>>,
}

const ITEM_KEYS: &[&str] = &[
    "pattern-regex",
    "pattern-not-regex",
    "pattern-either",
    "patterns",
];

/// A parsed pack file, before its hierarchy is resolved.
struct PackFile {
    name: String,
    path: PathBuf,
    extends: Vec<String>,
    disable: Vec<String>,
    severity: Vec<(String, Severity)>,
    rules: Vec<Rule>,
    max_states: Option<usize>,
}

fn yaml_error(e: &serde_yaml::Error, file: &Path) -> CompileError {
    let msg = e.to_string();
    let (kind, mut text) = if msg.contains("unknown field") {
        (ErrorKind::UnknownKey, msg.clone())
    } else if msg.contains("missing field") {
        (ErrorKind::MissingField, msg.clone())
    } else if msg.contains("invalid type") || msg.contains("invalid value") {
        (ErrorKind::BadValue, msg.clone())
    } else {
        (ErrorKind::Yaml, format!("malformed YAML: {msg}"))
    };
    if kind == ErrorKind::UnknownKey {
        if let Some(start) = msg.find("unknown field `") {
            let rest = &msg[start + 15..];
            if let Some(end) = rest.find('`') {
                let key = &rest[..end];
                let all: Vec<&str> = PACK_KEYS
                    .iter()
                    .chain(RULE_KEYS)
                    .chain(ITEM_KEYS)
                    .copied()
                    .collect();
                if let Some(s) = suggest(key, &all) {
                    text = format!("{msg} (did you mean `{s}`?)");
                }
            }
        }
    }
    let mut err = CompileError::new(kind, text).in_file(file);
    if let Some(loc) = e.location() {
        err = err.at(loc.line(), loc.column());
    }
    err
}

/// 1-based line of `id: <id>` in `text`.
fn find_rule_line(text: &str, id: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            if let Some(rest) = t.strip_prefix("id:") {
                let v = rest.trim().trim_matches(|c| c == '"' || c == '\'');
                v == id
            } else {
                false
            }
        })
        .map(|i| i + 1)
}

/// (line, column) of a regex construct in the file, when the pattern appears literally.
pub(crate) fn locate_in_file(
    text: &str,
    pattern: &str,
    regex_col: usize,
) -> Option<(usize, usize)> {
    if pattern.is_empty() {
        return None;
    }
    for (i, l) in text.lines().enumerate() {
        if let Some(p) = l.find(pattern) {
            return Some((i + 1, l[..p].chars().count() + regex_col));
        }
    }
    None
}

fn metadata_to_json(v: &serde_yaml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn convert_item(
    item: &RawItem,
    rule: &str,
    in_patterns: bool,
) -> Result<Option<Pattern>, CompileError> {
    let n = [
        item.pattern_regex.is_some(),
        item.pattern_not_regex.is_some(),
        item.pattern_either.is_some(),
        item.patterns.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n != 1 {
        return Err(CompileError::new(
            ErrorKind::BadValue,
            "each pattern item must have exactly one of pattern-regex, pattern-not-regex, pattern-either, patterns",
        )
        .for_rule(rule));
    }
    if let Some(r) = &item.pattern_regex {
        return Ok(Some(Pattern::Regex(r.clone())));
    }
    if item.pattern_not_regex.is_some() {
        if !in_patterns {
            return Err(CompileError::new(
                ErrorKind::BadValue,
                "pattern-not-regex is only allowed directly inside `patterns`",
            )
            .for_rule(rule));
        }
        return Ok(None);
    }
    if let Some(items) = &item.pattern_either {
        return Ok(Some(convert_either(items, rule)?));
    }
    Ok(Some(convert_patterns(
        item.patterns.as_ref().unwrap(),
        rule,
    )?))
}

fn convert_either(items: &[RawItem], rule: &str) -> Result<Pattern, CompileError> {
    if items.is_empty() {
        return Err(
            CompileError::new(ErrorKind::BadValue, "pattern-either is empty").for_rule(rule),
        );
    }
    let mut out = Vec::new();
    for it in items {
        if let Some(p) = convert_item(it, rule, false)? {
            out.push(p);
        }
    }
    Ok(Pattern::Either(out))
}

fn convert_patterns(items: &[RawItem], rule: &str) -> Result<Pattern, CompileError> {
    let mut positive = Vec::new();
    let mut not = Vec::new();
    for it in items {
        if let Some(n) = &it.pattern_not_regex {
            not.push(n.clone());
        }
        if let Some(p) = convert_item(it, rule, true)? {
            positive.push(p);
        }
    }
    if positive.len() != 1 {
        return Err(CompileError::new(
            ErrorKind::BadValue,
            format!(
                "`patterns` needs exactly one positive pattern (pattern-regex or pattern-either), found {}",
                positive.len()
            ),
        )
        .for_rule(rule));
    }
    Ok(Pattern::Patterns {
        positive: Box::new(positive.pop().unwrap()),
        not,
    })
}

fn parse_pack(text: &str, path: &Path) -> Result<PackFile, CompileError> {
    let raw: RawPack = serde_yaml::from_str(text).map_err(|e| yaml_error(&e, path))?;
    let name = raw.pack.clone().unwrap_or_else(|| {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("pack");
        if stem == "pack" {
            path.parent()
                .and_then(|p| p.file_name())
                .and_then(|s| s.to_str())
                .unwrap_or("pack")
                .to_string()
        } else {
            stem.to_string()
        }
    });
    let _ = &raw.description;
    let mut severity = Vec::new();
    for (id, sev) in raw.severity.unwrap_or_default() {
        let s = Severity::parse(&sev).ok_or_else(|| {
            let hint = suggest(&sev.to_uppercase(), SEVERITIES).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
            CompileError::new(
                ErrorKind::BadValue,
                format!("severity override for `{id}`: unknown severity `{sev}`{hint}; expected one of {}", SEVERITIES.join(", ")),
            )
            .in_file(path)
        })?;
        severity.push((id, s));
    }
    let mut rules = Vec::new();
    for (i, r) in raw.rules.unwrap_or_default().into_iter().enumerate() {
        rules.push(convert_rule(r, i, text, path, &name)?);
    }
    Ok(PackFile {
        name,
        path: path.to_path_buf(),
        max_states: raw.max_states,
        extends: raw.extends.unwrap_or_default(),
        disable: raw.disable.unwrap_or_default(),
        severity,
        rules,
    })
}

fn convert_rule(
    r: RawRule,
    index: usize,
    text: &str,
    path: &Path,
    pack: &str,
) -> Result<Rule, CompileError> {
    let id = r.id.clone().ok_or_else(|| {
        CompileError::new(
            ErrorKind::MissingField,
            format!("rule #{} has no `id`", index + 1),
        )
        .in_file(path)
    })?;
    if id.trim().is_empty() {
        return Err(CompileError::new(
            ErrorKind::BadValue,
            format!("rule #{} has an empty `id`", index + 1),
        )
        .in_file(path));
    }
    let line = find_rule_line(text, &id);
    let fail = |kind: ErrorKind, msg: String| {
        let mut e = CompileError::new(kind, msg).in_file(path).for_rule(&id);
        if let Some(l) = line {
            e = e.at(l, 1);
        }
        e
    };
    if r.pattern.is_some() || r.pattern_not.is_some() || r.pattern_inside.is_some() {
        return Err(fail(
            ErrorKind::UnsupportedRegex,
            "Semgrep AST patterns (`pattern`, `pattern-not`, `pattern-inside`) are not supported; Ward enforces regex rules (pattern-regex, pattern-either, patterns with pattern-not-regex)".into(),
        ));
    }
    let (paths_include, paths_exclude) =
        parse_paths(r.paths.as_ref()).map_err(|m| fail(ErrorKind::BadValue, m))?;
    let _ = (
        &r.fix,
        &r.fix_regex,
        &r.options,
        &r.min_version,
        &r.max_version,
    );
    let message = r
        .message
        .ok_or_else(|| fail(ErrorKind::MissingField, "missing field `message`".into()))?;
    let sev_s = r
        .severity
        .ok_or_else(|| fail(ErrorKind::MissingField, "missing field `severity`".into()))?;
    let severity = Severity::parse(&sev_s).ok_or_else(|| {
        let hint = suggest(&sev_s.to_uppercase(), SEVERITIES)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        fail(
            ErrorKind::BadValue,
            format!(
                "unknown severity `{sev_s}`{hint}; expected one of {}",
                SEVERITIES.join(", ")
            ),
        )
    })?;
    let languages = r
        .languages
        .ok_or_else(|| fail(ErrorKind::MissingField, "missing field `languages`".into()))?;
    // `generic` and `regex` rules read any file and need no lexer: their default scope is
    // `any`; a rule for Python (or for several languages) defaults to `code`.
    let untyped = !languages.is_empty()
        && languages.iter().all(|l| {
            matches!(
                l.to_ascii_lowercase().as_str(),
                "generic" | "regex" | "none"
            )
        });
    let scope = match r.scope.as_deref() {
        None if untyped => RuleScope::Any,
        None | Some("code") => RuleScope::Code,
        Some("string") => RuleScope::String,
        Some("comment") => RuleScope::Comment,
        Some("any") => RuleScope::Any,
        Some(other) => {
            let hint = suggest(other, &["code", "string", "comment", "any"])
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(fail(
                ErrorKind::BadValue,
                format!("unknown scope `{other}`{hint}; expected code, string, comment or any"),
            ));
        }
    };
    let given = [
        r.pattern_regex.is_some(),
        r.pattern_either.is_some(),
        r.patterns.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given == 0 {
        return Err(fail(
            ErrorKind::MissingField,
            "missing a pattern: give one of pattern-regex, pattern-either, patterns".into(),
        ));
    }
    if given > 1 {
        return Err(fail(
            ErrorKind::BadValue,
            "give only one of pattern-regex, pattern-either, patterns".into(),
        ));
    }
    let pattern = if let Some(p) = r.pattern_regex {
        Pattern::Regex(p)
    } else if let Some(items) = r.pattern_either {
        convert_either(&items, &id).map_err(|e| e.in_file(path))?
    } else {
        convert_patterns(r.patterns.as_ref().unwrap(), &id).map_err(|e| e.in_file(path))?
    };
    let metadata = r
        .metadata
        .as_ref()
        .map(metadata_to_json)
        .unwrap_or(serde_json::Value::Null);
    let cwe = match metadata.get("cwe") {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(serde_json::Value::Null) | None => vec![],
        Some(other) => vec![other.to_string()],
    };
    let warnings = crate::fidelity::not_regex_warnings(&pattern);
    let for_python = applies_to_python(&languages);
    let history = if for_python {
        vec![]
    } else {
        vec![format!(
            "disabled: languages [{}] do not include python (Ward checks and generates Python)",
            languages.join(", ")
        )]
    };
    Ok(Rule {
        id,
        message,
        severity,
        languages,
        cwe,
        metadata,
        scope,
        pattern,
        pack: pack.to_string(),
        source: path.to_path_buf(),
        line,
        paths_include,
        paths_exclude,
        enabled: for_python,
        history,
        warnings,
    })
}

/// `paths: {include: [...], exclude: [...]}` as two lists of globs.
fn parse_paths(v: Option<&serde_yaml::Value>) -> Result<(Vec<String>, Vec<String>), String> {
    let Some(v) = v else {
        return Ok((vec![], vec![]));
    };
    let map = v
        .as_mapping()
        .ok_or("`paths` must be a mapping with `include` and/or `exclude` lists")?;
    let mut inc = vec![];
    let mut exc = vec![];
    for (k, val) in map {
        let key = k.as_str().unwrap_or("");
        let list: Vec<String> = match val {
            serde_yaml::Value::String(s) => vec![s.clone()],
            serde_yaml::Value::Sequence(xs) => xs
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .ok_or_else(|| format!("`paths.{key}` entries must be strings"))
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(format!("`paths.{key}` must be a list of globs")),
        };
        match key {
            "include" => inc = list,
            "exclude" => exc = list,
            other => {
                return Err(format!(
                    "unknown key `paths.{other}`; expected include or exclude"
                ))
            }
        }
    }
    Ok((inc, exc))
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

/// `path` with `.` dropped and `a/..` folded, without touching the file system (for the
/// in-memory file map, whose keys are relative paths such as `python/pack.yaml`).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect()
}

impl EffectivePolicy {
    /// Load the pack at `path` (a pack file or a folder with `pack.yaml`) and resolve its
    /// hierarchy.
    pub fn load(path: impl AsRef<Path>) -> Result<EffectivePolicy, CompileError> {
        let file = pack_file(path.as_ref());
        let mut loader = Loader::default();
        let (name, rules) = loader.resolve(&file)?;
        finish(name, loader.order, rules, &file, loader.max_states)
    }

    /// Load the pack `top` from an in-memory map of file name → YAML text and resolve its
    /// hierarchy there, without a file system (the browser passes the files it fetched).
    ///
    /// Names are relative paths with `/`, e.g. `python/pack.yaml` and `base/pack.yaml`;
    /// `top` and `extends` entries name a file or a folder holding `pack.yaml`, and `extends`
    /// is resolved relative to the extending file's folder, as on disk. A name that is not in
    /// the map is an error naming it and the files that were given.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// let mut files = BTreeMap::new();
    /// files.insert("base/pack.yaml".to_string(), "pack: base\nrules:\n  - id: no-eval\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'eval\\('\n".to_string());
    /// files.insert("app/pack.yaml".to_string(), "pack: app\nextends: [../base]\nseverity: { no-eval: WARNING }\n".to_string());
    /// let eff = ward_policy::EffectivePolicy::from_files(&files, "app").unwrap();
    /// assert_eq!(eff.name, "app");
    /// assert_eq!(eff.rules[0].severity, ward_policy::Severity::Warning);
    /// ```
    pub fn from_files(
        files: &BTreeMap<String, String>,
        top: &str,
    ) -> Result<EffectivePolicy, CompileError> {
        let mem: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(k, v)| (normalize(Path::new(k)), v.clone()))
            .collect();
        let mut loader = Loader {
            memory: Some(mem),
            ..Loader::default()
        };
        let file = loader.pack_file(Path::new(top));
        let (name, rules) = loader.resolve(&file)?;
        finish(name, loader.order, rules, &file, loader.max_states)
    }

    /// Parse a pack from a string; `extends` paths are relative to the current directory.
    pub fn from_str(yaml: &str, name: &str) -> Result<EffectivePolicy, CompileError> {
        let mut loader = Loader::default();
        let path = PathBuf::from(name);
        let pf = parse_pack(yaml, &path)?;
        let (n, rules) = loader.resolve_parsed(pf, Path::new("."))?;
        finish(n, loader.order, rules, &path, loader.max_states)
    }

    /// The enabled rules.
    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }

    /// The load warnings of the enabled rules, one line each, naming the rule and where it
    /// is defined: `rule `ID` (FILE:LINE): WARNING`.
    pub fn warnings(&self) -> Vec<String> {
        self.enabled()
            .flat_map(|r| {
                let at = format!(
                    "{}{}",
                    r.source.display(),
                    r.line.map(|l| format!(":{l}")).unwrap_or_default()
                );
                r.warnings
                    .iter()
                    .map(move |w| format!("rule `{}` ({at}): {w}", r.id))
            })
            .collect()
    }
}

fn finish(
    name: String,
    files: Vec<PathBuf>,
    rules: Vec<Rule>,
    top: &Path,
    max_states: Option<usize>,
) -> Result<EffectivePolicy, CompileError> {
    if !rules.iter().any(|r| r.enabled) {
        return Err(CompileError::new(
            ErrorKind::EmptyPack,
            "the pack has no enabled rules (after extends and disable)",
        )
        .in_file(top));
    }
    Ok(EffectivePolicy {
        name,
        files,
        rules,
        max_states,
    })
}

#[derive(Default)]
struct Loader {
    /// The first `max-states:` met, the top pack's before its bases'.
    max_states: Option<usize>,
    stack: Vec<PathBuf>,
    done: HashMap<PathBuf, (String, Vec<Rule>)>,
    order: Vec<PathBuf>,
    /// Pack files by normalized name, when loading from memory instead of the disk.
    memory: Option<BTreeMap<PathBuf, String>>,
}

impl Loader {
    /// A pack file or a folder with `pack.yaml`, on disk or in the memory map.
    fn pack_file(&self, path: &Path) -> PathBuf {
        match &self.memory {
            None => pack_file(path),
            Some(files) => {
                let p = normalize(path);
                if files.contains_key(&p) {
                    p
                } else {
                    p.join("pack.yaml")
                }
            }
        }
    }

    /// The file's identity: its canonical path on disk, its normalized name in memory.
    fn canonical(&self, file: &Path) -> Result<PathBuf, CompileError> {
        match &self.memory {
            None => file.canonicalize().map_err(|e| {
                CompileError::new(ErrorKind::Io, format!("cannot read pack: {e}")).in_file(file)
            }),
            Some(files) => {
                let p = normalize(file);
                if files.contains_key(&p) {
                    Ok(p)
                } else {
                    let names: Vec<String> =
                        files.keys().map(|k| k.display().to_string()).collect();
                    Err(CompileError::new(
                        ErrorKind::Io,
                        format!(
                            "cannot read pack: no file `{}` among the given files ({})",
                            p.display(),
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ),
                    )
                    .in_file(file))
                }
            }
        }
    }

    fn read(&self, canon: &Path, file: &Path) -> Result<String, CompileError> {
        match &self.memory {
            None => std::fs::read_to_string(canon).map_err(|e| {
                CompileError::new(ErrorKind::Io, format!("cannot read pack: {e}")).in_file(file)
            }),
            Some(files) => Ok(files.get(canon).cloned().unwrap_or_default()),
        }
    }

    fn resolve(&mut self, file: &Path) -> Result<(String, Vec<Rule>), CompileError> {
        let canon = self.canonical(file)?;
        if let Some(i) = self.stack.iter().position(|p| *p == canon) {
            let cycle: Vec<String> = self.stack[i..]
                .iter()
                .chain(std::iter::once(&canon))
                .map(|p| p.display().to_string())
                .collect();
            return Err(CompileError::new(
                ErrorKind::Cycle,
                format!("`extends` cycle: {}", cycle.join(" → ")),
            )
            .in_file(file));
        }
        if let Some(done) = self.done.get(&canon) {
            return Ok(done.clone());
        }
        let text = self.read(&canon, file)?;
        let pf = parse_pack(&text, file)?;
        self.stack.push(canon.clone());
        let dir = canon.parent().unwrap_or(Path::new(".")).to_path_buf();
        let res = self.resolve_parsed(pf, &dir);
        self.stack.pop();
        let res = res?;
        self.done.insert(canon, res.clone());
        Ok(res)
    }

    fn resolve_parsed(
        &mut self,
        pf: PackFile,
        dir: &Path,
    ) -> Result<(String, Vec<Rule>), CompileError> {
        if self.max_states.is_none() {
            self.max_states = pf.max_states;
        }
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen_files: HashSet<PathBuf> = HashSet::new();
        for ext in &pf.extends {
            let target = self.pack_file(&dir.join(ext));
            let key = self.canonical(&target).unwrap_or(target.clone());
            if !seen_files.insert(key) {
                continue;
            }
            let (_, ext_rules) = self.resolve(&target).map_err(|e| e.in_file(&pf.path))?;
            for r in ext_rules {
                if let Some(prev) = rules.iter().find(|x| x.id == r.id) {
                    if prev.source == r.source {
                        continue; // the same rule reached twice (diamond)
                    }
                    return Err(duplicate(&r.id, &prev.source, &r.source));
                }
                rules.push(r);
            }
        }
        let path_s = pf.path.display().to_string();
        for id in &pf.disable {
            match rules
                .iter_mut()
                .chain(std::iter::empty())
                .find(|r| r.id == *id)
            {
                Some(r) => {
                    r.enabled = false;
                    r.history.push(format!("disabled by {path_s}"));
                }
                None => {
                    if pf.rules.iter().any(|r| r.id == *id) {
                        continue;
                    }
                    return Err(unknown_rule(id, "disable", &pf.path, &rules));
                }
            }
        }
        for (id, sev) in &pf.severity {
            match rules.iter_mut().find(|r| r.id == *id) {
                Some(r) => {
                    r.history
                        .push(format!("severity {} → {} by {path_s}", r.severity, sev));
                    r.severity = *sev;
                }
                None => {
                    if pf.rules.iter().any(|r| r.id == *id) {
                        continue;
                    }
                    return Err(unknown_rule(id, "severity", &pf.path, &rules));
                }
            }
        }
        for mut r in pf.rules {
            if let Some(prev) = rules.iter().find(|x| x.id == r.id) {
                return Err(duplicate(&r.id, &prev.source, &r.source));
            }
            if pf.disable.contains(&r.id) {
                r.enabled = false;
                r.history.push(format!("disabled by {path_s}"));
            }
            if let Some((_, sev)) = pf.severity.iter().find(|(id, _)| *id == r.id) {
                r.history
                    .push(format!("severity {} → {} by {path_s}", r.severity, sev));
                r.severity = *sev;
            }
            rules.push(r);
        }
        if !self.order.contains(&pf.path) {
            self.order.push(pf.path.clone());
        }
        Ok((pf.name, rules))
    }
}

fn duplicate(id: &str, a: &Path, b: &Path) -> CompileError {
    CompileError::new(
        ErrorKind::DuplicateId,
        format!(
            "duplicate rule id `{id}`: defined in {} and in {}",
            a.display(),
            b.display()
        ),
    )
    .in_file(b)
    .for_rule(id)
}

fn unknown_rule(id: &str, what: &str, file: &Path, rules: &[Rule]) -> CompileError {
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    let hint = suggest(id, &ids)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    CompileError::new(
        ErrorKind::UnknownRule,
        format!("`{what}` names unknown rule `{id}`{hint}"),
    )
    .in_file(file)
}

impl EffectivePolicy {
    /// Load several packs and combine them in order, as if one pack extended all of them.
    /// A rule id defined by two different files is an error naming both.
    pub fn load_all(paths: &[impl AsRef<Path>]) -> Result<EffectivePolicy, CompileError> {
        if paths.len() == 1 {
            return Self::load(paths[0].as_ref());
        }
        let mut loader = Loader::default();
        let mut rules: Vec<Rule> = Vec::new();
        let mut names = Vec::new();
        for p in paths {
            let file = pack_file(p.as_ref());
            let (name, rs) = loader.resolve(&file)?;
            names.push(name);
            for r in rs {
                if let Some(prev) = rules.iter().find(|x| x.id == r.id) {
                    if prev.source == r.source {
                        continue;
                    }
                    return Err(duplicate(&r.id, &prev.source, &r.source));
                }
                rules.push(r);
            }
        }
        let top = paths
            .last()
            .map(|p| pack_file(p.as_ref()))
            .unwrap_or_default();
        finish(
            names.join("+"),
            loader.order,
            rules,
            &top,
            loader.max_states,
        )
    }
}
