//! Replays every fuzz finding (minimised inputs in `tests/fuzz/<target>/`) through the check
//! of its fuzz target (`crate/guard/fuzz`), so a fixed bug stays fixed. Adding a finding: copy
//! the minimised artifact (`cargo fuzz tmin`) into the target's folder under a name that says
//! what it was.

#[path = "fuzz/guard.rs"]
mod guard;
#[path = "fuzz/tokenizer.rs"]
mod tokenizer;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("a readable folder").path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), data)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn tokenizer_findings_stay_fixed() {
    for (name, data) in inputs("tokenizer") {
        eprintln!("{name}");
        tokenizer::run(&data);
    }
}

#[test]
fn guard_findings_stay_fixed() {
    for (name, data) in inputs("guard") {
        eprintln!("{name}");
        guard::run(&data);
    }
}
