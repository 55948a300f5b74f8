//! Reading one pack file: the YAML's keys checked and its rules converted (patterns,
//! scopes, paths, severities), with errors that name the file, the rule and the line.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPack {
    pack: Option<String>,
    description: Option<String>,
    extends: Option<Vec<String>>,
    disable: Option<Vec<String>>,
    severity: Option<BTreeMap<String, String>>,
    rules: Option<Vec<RawRule>>,
    #[serde(rename = "max-states")]
    max_states: Option<usize>,
}

pub(super) const PACK_KEYS: &[&str] = &[
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
pub(super) struct RawRule {
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

pub(super) const RULE_KEYS: &[&str] = &[
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
pub(super) struct RawItem {
    #[serde(rename = "pattern-regex")]
    pattern_regex: Option<String>,
    #[serde(rename = "pattern-not-regex")]
    pattern_not_regex: Option<String>,
    #[serde(rename = "pattern-either")]
    pattern_either: Option<Vec<RawItem>>,
    patterns: Option<Vec<RawItem>>,
}

pub(super) const ITEM_KEYS: &[&str] = &[
    "pattern-regex",
    "pattern-not-regex",
    "pattern-either",
    "patterns",
];

/// A parsed pack file, before its hierarchy is resolved.
pub(super) struct PackFile {
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) extends: Vec<String>,
    pub(super) disable: Vec<String>,
    pub(super) severity: Vec<(String, Severity)>,
    pub(super) rules: Vec<Rule>,
    pub(super) max_states: Option<usize>,
}

pub(super) fn yaml_error(e: &serde_yaml::Error, file: &Path) -> CompileError {
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
pub(super) fn find_rule_line(text: &str, id: &str) -> Option<usize> {
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

pub(super) fn metadata_to_json(v: &serde_yaml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

pub(super) fn convert_item(
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

pub(super) fn convert_either(items: &[RawItem], rule: &str) -> Result<Pattern, CompileError> {
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

pub(super) fn convert_patterns(items: &[RawItem], rule: &str) -> Result<Pattern, CompileError> {
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

pub(super) fn parse_pack(text: &str, path: &Path) -> Result<PackFile, CompileError> {
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

pub(super) fn convert_rule(
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
pub(super) fn parse_paths(
    v: Option<&serde_yaml::Value>,
) -> Result<(Vec<String>, Vec<String>), String> {
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
