//! Replays every fuzz finding of the model loader (minimised inputs in `tests/fuzz/loader/`)
//! through the check of its fuzz target (`crate/model/fuzz`), so a fixed bug stays fixed.

#[path = "fuzz/loader.rs"]
mod loader;

#[test]
fn loader_findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/loader");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a readable folder").path())
        .collect();
    paths.sort();
    for path in paths {
        eprintln!("{}", path.display());
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        loader::run(&data);
    }
}
