//! The CPython standard library's top-level `.py` files, found through `python3` (shared by
//! `tests/lexer_vs_cpython.rs` and `benches/policy.rs`).

use std::path::PathBuf;
use std::process::Command;

/// The stdlib's top-level Python files in sorted order, or `None` when `python3` cannot be
/// run.
pub fn stdlib_py_files() -> Option<Vec<PathBuf>> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    files.sort();
    Some(files)
}
