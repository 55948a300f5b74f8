//! SARIF 2.1.0 output of findings (the shape GitHub code scanning accepts): rule metadata
//! with CWE tags and `security-severity`, results with locations and fingerprints. Shared by
//! `ward check`, the generation certificate and the wasm API.

use serde_json::{json, Value};

use crate::{CompiledPolicy, Finding, Rule};

/// One scanned artefact: its URI, its text and its findings.
#[derive(Clone, Debug)]
pub struct SarifFile<'a> {
    /// The artefact's URI (a path; `./` and backslashes are normalised).
    pub uri: String,
    /// Its text.
    pub text: &'a [u8],
    /// Its findings.
    pub findings: &'a [Finding],
}

/// A SARIF 2.1.0 log of `files` with the rules of `policy`. `extra` may add properties to a
/// rule's `properties` object (for example, what generation blocked).
pub fn sarif_log(
    policy: &CompiledPolicy,
    files: &[SarifFile<'_>],
    extra: impl Fn(&Rule) -> Option<Value>,
) -> Value {
    let rules: Vec<Value> = policy
        .rules()
        .iter()
        .map(|r| {
            let mut tags = vec!["security".to_string()];
            tags.extend(cwe_tags(&r.cwe));
            let mut props = json!({
                "tags": tags,
                "precision": "high",
                "problem.severity": r.severity.sarif_level(),
                "security-severity": security_severity(r.severity),
                "cwe": r.cwe,
                "ward-scope": r.scope.as_str(),
                "ward-enforced": r.enforced(),
            });
            if let (Some(Value::Object(more)), Value::Object(p)) = (extra(r), &mut props) {
                p.extend(more);
            }
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": { "text": r.message.lines().next().unwrap_or("").trim() },
                "fullDescription": { "text": r.message.trim() },
                "help": { "text": format!("{}\n\nCWE: {}", r.message.trim(), r.cwe.join(", ")) },
                "defaultConfiguration": { "level": r.severity.sarif_level() },
                "properties": props,
            })
        })
        .collect();
    let mut results = Vec::new();
    for file in files {
        let text = file.text;
        let uri = file.uri.replace('\\', "/");
        let uri = uri.trim_start_matches("./").to_string();
        for f in file.findings {
            let line_text = text.split(|&b| b == b'\n').nth(f.line - 1).unwrap_or(&[]);
            results.push(json!({
                "ruleId": f.rule_id,
                "ruleIndex": f.rule,
                "level": f.severity.sarif_level(),
                "message": { "text": f.message.trim() },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri, "uriBaseId": "%SRCROOT%" },
                        "region": {
                            "startLine": f.line,
                            "startColumn": char_column(text, f.start),
                            "endLine": f.end_pos.line,
                            "endColumn": char_column(text, f.end),
                            "snippet": { "text": String::from_utf8_lossy(&text[f.start..f.end]) },
                        }
                    }
                }],
                "partialFingerprints": {
                    "primaryLocationLineHash": format!("{:016x}:{}", fnv(line_text), f.rule_id),
                },
            }));
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "ward",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/ward",
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}

/// Column in Unicode code points of byte offset `off` (1-based).
fn char_column(text: &[u8], off: usize) -> usize {
    let off = off.min(text.len());
    let line_start = text[..off]
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    String::from_utf8_lossy(&text[line_start..off])
        .chars()
        .count()
        + 1
}

/// GitHub's `security-severity` score of a severity.
pub fn security_severity(sev: crate::Severity) -> &'static str {
    use crate::Severity::*;
    match sev {
        Critical => "9.5",
        Error | High => "8.0",
        Warning | Medium => "5.0",
        Info | Low => "2.0",
    }
}

/// `external/cwe/cwe-N` tags of `CWE-N: title` entries.
pub fn cwe_tags(cwe: &[String]) -> Vec<String> {
    cwe.iter()
        .filter_map(|c| {
            let id = c.split(':').next()?.trim();
            let n = id.strip_prefix("CWE-")?;
            Some(format!("external/cwe/cwe-{n}"))
        })
        .collect()
}

/// FNV-1a, for line fingerprints.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
