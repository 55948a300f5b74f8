//! The training corpus: the Python source files that ship with CPython, without test suites.
//!
//! Files are listed in a sorted, deterministic order and split into train and validation by a
//! hash of their path relative to the stdlib root, so the split does not depend on the machine
//! or on the order of the file system.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Directory names that are never part of the corpus (test suites, third-party packages,
/// caches).
pub const EXCLUDED_DIRS: &[&str] = &[
    "test",
    "tests",
    "idle_test",
    "site-packages",
    "dist-packages",
    "__pycache__",
];

/// Which part of the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// About 95 % of the files.
    Train,
    /// About 5 % of the files.
    Validation,
}

/// Asks `python3` for the stdlib path (`sysconfig.get_paths()["stdlib"]`).
pub fn python_stdlib_dir() -> Result<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .map_err(|e| Error::io("python3", e))?;
    if !out.status.success() {
        return Err(Error::invalid("python3 could not report its stdlib path"));
    }
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if s.is_empty() {
        return Err(Error::invalid("python3 reported an empty stdlib path"));
    }
    Ok(PathBuf::from(s))
}

/// 64-bit FNV-1a hash (stable across platforms and releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The split a file belongs to, from its path relative to the corpus root.
pub fn split_of(rel: &Path) -> Split {
    let key = rel.to_string_lossy().replace('\\', "/");
    if fnv1a(key.as_bytes()) % 20 == 0 {
        Split::Validation
    } else {
        Split::Train
    }
}

fn is_test_file(name: &str) -> bool {
    name.starts_with("test_") || name == "conftest.py"
}

/// All `.py` files under `root`, sorted, without test suites.
pub fn list_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = walk_py(
        root,
        |dir| !EXCLUDED_DIRS.contains(&dir),
        |file| !is_test_file(file),
    )?;
    out.sort();
    if out.is_empty() {
        return Err(Error::invalid(format!(
            "no Python files under {}",
            root.display()
        )));
    }
    Ok(out)
}

/// The `*.py` files under `root` (unsorted): folders whose name `enter_dir` accepts are
/// searched, files whose name `keep_file` accepts are kept. An unreadable folder is an error
/// naming it.
pub fn walk_py(
    root: &Path,
    enter_dir: impl Fn(&str) -> bool,
    keep_file: impl Fn(&str) -> bool,
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if ft.is_dir() {
                if enter_dir(&name) {
                    stack.push(path);
                }
            } else if ft.is_file() && name.ends_with(".py") && keep_file(&name) {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// Whether `root` is split by package: it has `train/` and `valid/` folders (as
/// `crate/model/scripts/build_corpus.py` writes it).
pub fn is_package_split(root: &Path) -> bool {
    root.join("train").is_dir() && root.join("valid").is_dir()
}

/// The files of one split, sorted. A package-split corpus (`train/` and `valid/` folders)
/// gives every `.py` file of the split's folder, tests included; any other root is split by a
/// hash of the relative path, without test suites.
pub fn split_files(root: &Path, split: Split) -> Result<Vec<PathBuf>> {
    if is_package_split(root) {
        let dir = root.join(match split {
            Split::Train => "train",
            Split::Validation => "valid",
        });
        return crate::eval::collect_files(&[dir]);
    }
    Ok(list_files(root)?
        .into_iter()
        .filter(|p| split_of(p.strip_prefix(root).unwrap_or(p)) == split)
        .collect())
}

/// Reads a file as text, replacing invalid UTF-8.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_deterministic_and_mostly_train() {
        let a = split_of(Path::new("json/decoder.py"));
        assert_eq!(a, split_of(Path::new("json/decoder.py")));
        let n = (0..1000)
            .filter(|i| split_of(Path::new(&format!("m{i}.py"))) == Split::Validation)
            .count();
        assert!((20..100).contains(&n), "{n}");
    }

    #[test]
    fn package_split_roots_use_their_folders() {
        let root = std::env::temp_dir().join(format!("ward-corpus-split-{}", std::process::id()));
        for (d, f) in [
            ("train/a", "x.py"),
            ("train/a/tests", "test_x.py"),
            ("valid/b", "y.py"),
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
            std::fs::write(root.join(d).join(f), "x = 1\n").unwrap();
        }
        assert!(is_package_split(&root));
        let train = split_files(&root, Split::Train).unwrap();
        assert_eq!(train.len(), 2, "{train:?}");
        let valid = split_files(&root, Split::Validation).unwrap();
        assert_eq!(valid, vec![root.join("valid/b/y.py")]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
