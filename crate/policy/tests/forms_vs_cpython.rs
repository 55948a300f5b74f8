//! Bypass by form, against CPython's own parser (`tests/scripts/forms_ast.py`): every
//! `violation` case of `policies/cases/python-forms.yaml` really calls `eval` or passes
//! `shell=True` under CPython (and every `clean` case does not), and the code view that
//! `scope: code` rules read ([`ward_policy::scan`]) parses to the same AST as the text, on
//! those cases and on stdlib files. (That the rules catch the cases on every engine is
//! `tests/cases.rs`.) Skipped, with a note, when `python3` is not available.

use std::io::Write;
use std::process::{Command, Stdio};

use serde::Deserialize;

#[path = "common/stdlib.rs"]
mod stdlib;

#[derive(Deserialize)]
struct CaseFile {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    rule: String,
    expect: String,
    input: String,
}

fn run_script(lines: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/forms_ast.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn view_string(text: &[u8]) -> String {
    String::from_utf8(ward_policy::scan(text).1).expect("the view of UTF-8 text is UTF-8")
}

#[test]
fn form_cases_mean_what_they_say_under_cpython() {
    if stdlib::stdlib_py_files().is_none() {
        eprintln!("python3 not found: skipped");
        return;
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/cases/python-forms.yaml"
    );
    let cf: CaseFile = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let lines: Vec<serde_json::Value> = cf
        .cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "rule": c.rule, "expect": c.expect, "input": c.input,
                "view": view_string(c.input.as_bytes()),
            })
        })
        .collect();
    let res = run_script(&lines);
    assert_eq!(res.len(), cf.cases.len());
    let mut failures = Vec::new();
    let mut compared = 0;
    for (c, r) in cf.cases.iter().zip(&res) {
        let want = c.expect == "violation";
        if r["cpython"].as_bool() != Some(want) {
            failures.push(format!(
                "{} {:?}: expected {} but CPython says {} {}",
                c.rule, c.input, c.expect, r["cpython"], r["why"]
            ));
        }
        match r["same_ast"].as_bool() {
            Some(true) => compared += 1,
            Some(false) => failures.push(format!(
                "{:?}: its view {:?} parses to another AST",
                c.input,
                view_string(c.input.as_bytes())
            )),
            None => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 15, "only {compared} cases compared by AST");
}

#[test]
fn code_view_is_the_same_program_on_stdlib() {
    let Some(mut files) = stdlib::stdlib_py_files() else {
        eprintln!("python3 not found: skipped");
        return;
    };
    files.truncate(
        std::env::var("WARD_LEXER_FILES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let lines: Vec<serde_json::Value> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read(f).ok()?;
            let view = String::from_utf8(ward_policy::scan(&text).1).ok()?;
            Some(serde_json::json!({"file": f, "view": view}))
        })
        .collect();
    let res = run_script(&lines);
    let mut same = 0;
    for (l, r) in lines.iter().zip(&res) {
        match r["same_ast"].as_bool() {
            Some(true) => same += 1,
            Some(false) => panic!("{}: the code view parses to another AST", l["file"]),
            None => {}
        }
    }
    assert!(same >= 40, "only {same} files compared");
    eprintln!("{same} stdlib files: the code view parses to the same AST");
}
