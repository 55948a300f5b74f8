//! PCRE fidelity of imported Semgrep regexes: the constructs of `tests/data/pcre.yaml` mean
//! what they mean in PCRE (Python's `re` as the reference, run here), on both checkers, and
//! the constructs with no equal meaning are rejected with their column. Skipped, with a
//! note, when `python3` is not available.

use std::io::Write;
use std::process::{Command, Stdio};

use serde::Deserialize;
use ward_policy::{PolicyBuilder, RegexChecker};

#[derive(Deserialize)]
struct Data {
    patterns: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    pattern: String,
    python: Option<String>,
    #[serde(default)]
    texts: Vec<String>,
    reject: Option<usize>,
}

fn rule(pattern: &str) -> String {
    format!(
        "pack: t\nrules:\n  - id: t.r\n    message: m\n    severity: ERROR\n    languages: [generic]\n    scope: any\n    pattern-regex: '{}'\n",
        pattern.replace('\'', "''")
    )
}

/// Python's answer for each (pattern, text): does `re.search` find a match?
fn python_answers(queries: &[(String, String)]) -> Option<Vec<bool>> {
    let script = "import json, re, sys\nfor line in sys.stdin:\n    p, t = json.loads(line)\n    print(json.dumps(re.search(p, t, re.M) is not None))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    {
        let mut stdin = child.stdin.take().unwrap();
        for q in queries {
            writeln!(stdin, "{}", serde_json::to_string(q).unwrap()).unwrap();
        }
    }
    let out = child.wait_with_output().ok()?;
    assert!(out.status.success(), "python3 failed");
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l == "true")
            .collect(),
    )
}

#[test]
fn pcre_constructs_mean_what_python_re_says() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pcre.yaml");
    let data: Data = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries = Vec::new();
    for e in data.patterns.iter().filter(|e| e.reject.is_none()) {
        for t in &e.texts {
            queries.push((e.python.clone().unwrap_or(e.pattern.clone()), t.clone()));
        }
    }
    let Some(want) = python_answers(&queries) else {
        eprintln!("python3 not found: skipped");
        return;
    };
    let mut k = 0;
    let mut failures = Vec::new();
    for e in &data.patterns {
        let compiled = PolicyBuilder::new().compile_str(&rule(&e.pattern), "t.yaml");
        if let Some(col) = e.reject {
            match compiled {
                Ok(_) => failures.push(format!("`{}` compiled; it must be rejected", e.pattern)),
                Err(err) => {
                    if err.column() != Some(col) || err.rule() != Some("t.r") {
                        failures.push(format!(
                            "`{}`: rejected at column {:?} of rule {:?}, want column {col}: {err}",
                            e.pattern,
                            err.column(),
                            err.rule()
                        ));
                    }
                }
            }
            continue;
        }
        let p = compiled.unwrap_or_else(|err| panic!("`{}` does not compile: {err}", e.pattern));
        let rc = RegexChecker::new(&p);
        for t in &e.texts {
            let dfa = !p.check(t.as_bytes()).is_empty();
            let re = !rc.check(t.as_bytes()).is_empty();
            if dfa != want[k] || re != want[k] {
                failures.push(format!(
                    "`{}` on {t:?}: check {dfa}, regex checker {re}, Python re {}",
                    e.pattern, want[k]
                ));
            }
            k += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
