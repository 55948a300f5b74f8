//! The lexical automaton against CPython's own tokenizer on real stdlib files: every byte
//! inside a (non-f) string literal is `string`, every byte of a comment after `#` is
//! `comment`, and every byte outside strings and comments is `code`. Skipped (with a note)
//! when `python3` is not available.

use std::process::Command;

use ward_policy::{scope_of_bytes, Scope};

#[path = "common/stdlib.rs"]
mod stdlib;

#[test]
fn scopes_match_cpython_tokenize_on_stdlib() {
    let Some(mut files) = stdlib::stdlib_py_files() else {
        eprintln!("python3 not found: skipped");
        return;
    };
    let limit = std::env::var("WARD_LEXER_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    files.truncate(limit);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/py_scopes.py");
    let out = Command::new("python3")
        .arg(script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut checked_files = 0;
    let mut checked_bytes = 0usize;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = v["file"].as_str().unwrap();
        let text = std::fs::read(path).unwrap();
        let scopes = scope_of_bytes(&text);
        // expected: None = don't check (f-strings, delimiters)
        let mut want: Vec<Option<Scope>> = vec![Some(Scope::Code); text.len()];
        for s in v["strings"].as_array().unwrap() {
            let (a, b) = (
                s[0].as_u64().unwrap() as usize,
                s[1].as_u64().unwrap() as usize,
            );
            let prefix = s[2].as_i64().unwrap();
            let q = s[3].as_u64().unwrap() as usize;
            if prefix < 0 {
                for w in &mut want[a..b] {
                    *w = None;
                }
                continue;
            }
            let p = prefix as usize;
            // prefix and the first quote byte are code; then string until the last byte
            for w in &mut want[a + p + 1..b] {
                *w = Some(Scope::String);
            }
            // the rest of a triple opening quote (classified as code/string by design)
            for w in &mut want[a + p + 1..(a + p + q).min(b)] {
                *w = None;
            }
        }
        for c in v["comments"].as_array().unwrap() {
            let (a, b) = (
                c[0].as_u64().unwrap() as usize,
                c[1].as_u64().unwrap() as usize,
            );
            want[a] = Some(Scope::Code);
            for w in &mut want[a + 1..b] {
                *w = Some(Scope::Comment);
            }
            // the newline that ends a comment is read in the comment state (by design)
            if b < want.len() {
                want[b] = None;
            }
        }
        for (i, w) in want.iter().enumerate() {
            if let Some(w) = w {
                checked_bytes += 1;
                if scopes[i] != *w {
                    let lo = i.saturating_sub(40);
                    let hi = (i + 40).min(text.len());
                    panic!(
                        "{path}: byte {i}: lexer says {:?}, CPython says {:?}\ncontext: {:?}",
                        scopes[i],
                        w,
                        String::from_utf8_lossy(&text[lo..hi])
                    );
                }
            }
        }
        checked_files += 1;
    }
    assert!(checked_files >= 40, "only {checked_files} files checked");
    eprintln!("checked {checked_bytes} bytes of {checked_files} files");
}
