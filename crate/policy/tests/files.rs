//! Packs loaded from an in-memory map of file name → text (`EffectivePolicy::from_files`),
//! as the browser does: the same effective policy as from disk, and errors that name files.

use std::collections::BTreeMap;
use std::path::Path;

use ward_policy::{EffectivePolicy, ErrorKind, Severity};

fn shipped() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    ["base/pack.yaml", "python/pack.yaml"]
        .iter()
        .map(|n| {
            (
                n.to_string(),
                std::fs::read_to_string(root.join(n)).unwrap(),
            )
        })
        .collect()
}

fn rule(id: &str, sev: &str, re: &str) -> String {
    format!(
        "  - id: {id}\n    message: do not do {id}\n    severity: {sev}\n    languages: [python]\n    pattern-regex: '{re}'\n"
    )
}

#[test]
fn shipped_pack_from_memory_equals_disk() {
    let disk =
        EffectivePolicy::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/python"))
            .unwrap();
    for top in ["python", "python/pack.yaml", "./python/"] {
        let mem = EffectivePolicy::from_files(&shipped(), top).unwrap();
        assert_eq!(mem.name, disk.name);
        let ids = |e: &EffectivePolicy| {
            e.rules
                .iter()
                .map(|r| (r.id.clone(), r.severity, r.enabled, r.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&mem), ids(&disk), "top = {top}");
        let files: Vec<String> = mem.files.iter().map(|f| f.display().to_string()).collect();
        assert_eq!(files, ["base/pack.yaml", "python/pack.yaml"]);
    }
}

#[test]
fn overrides_and_disable_apply_in_memory() {
    let mut files = BTreeMap::new();
    files.insert(
        "base/pack.yaml".to_string(),
        format!(
            "pack: base\nrules:\n{}{}",
            rule("b.one", "ERROR", "one\\("),
            rule("b.two", "ERROR", "two\\(")
        ),
    );
    files.insert(
        "proj/pack.yaml".to_string(),
        "pack: proj\nextends: [../base]\ndisable: [b.one]\nseverity:\n  b.two: WARNING\n"
            .to_string(),
    );
    let eff = EffectivePolicy::from_files(&files, "proj").unwrap();
    let one = eff.rules.iter().find(|r| r.id == "b.one").unwrap();
    let two = eff.rules.iter().find(|r| r.id == "b.two").unwrap();
    assert!(!one.enabled);
    assert_eq!(two.severity, Severity::Warning);
    assert!(
        two.history[0].contains("proj/pack.yaml"),
        "{:?}",
        two.history
    );
}

#[test]
fn missing_file_names_it_and_the_given_files() {
    let mut files = shipped();
    files.remove("base/pack.yaml");
    let e = EffectivePolicy::from_files(&files, "python").unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Io);
    let s = e.to_string();
    assert!(
        s.contains("base/pack.yaml") && s.contains("python/pack.yaml"),
        "{s}"
    );
    let e = EffectivePolicy::from_files(&files, "nope").unwrap_err();
    assert!(e.to_string().contains("nope/pack.yaml"), "{e}");
}

#[test]
fn cycle_in_memory_is_an_error() {
    let mut files = BTreeMap::new();
    files.insert(
        "a/pack.yaml".to_string(),
        format!(
            "pack: a\nextends: [../b]\nrules:\n{}",
            rule("a.x", "ERROR", "x\\(")
        ),
    );
    files.insert(
        "b/pack.yaml".to_string(),
        format!(
            "pack: b\nextends: [../a]\nrules:\n{}",
            rule("b.y", "ERROR", "y\\(")
        ),
    );
    let e = EffectivePolicy::from_files(&files, "a").unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Cycle);
    assert!(e.to_string().contains("a/pack.yaml"), "{e}");
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let mut files = BTreeMap::new();
    files.insert(
        "p.yaml".to_string(),
        "pack: p\nrules: [\n  - id: x\n".to_string(),
    );
    let e = EffectivePolicy::from_files(&files, "p.yaml").unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Yaml);
    assert_eq!(e.file().unwrap(), Path::new("p.yaml"));
    assert!(e.line().is_some(), "{e}");
}
