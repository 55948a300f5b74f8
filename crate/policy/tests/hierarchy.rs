//! Pack hierarchy: extends, disable, severity overrides, cycles, duplicates, unknown ids.

use std::path::{Path, PathBuf};

use ward_policy::{EffectivePolicy, ErrorKind, PolicyBuilder, Severity};

fn dir() -> tempdir::Dir {
    tempdir::Dir::new()
}

mod tempdir {
    use std::path::{Path, PathBuf};
    pub struct Dir(pub PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "ward-hier-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn write(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            p
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn rule(id: &str, sev: &str, re: &str) -> String {
    format!(
        "  - id: {id}\n    message: do not do {id}, do the safe thing instead\n    severity: {sev}\n    languages: [python]\n    metadata: {{ cwe: \"CWE-1\" }}\n    pattern-regex: '{re}'\n"
    )
}

fn setup() -> tempdir::Dir {
    let d = dir();
    d.write(
        "base/pack.yaml",
        &format!(
            "pack: base\nrules:\n{}{}",
            rule("b.one", "ERROR", "one\\("),
            rule("b.two", "ERROR", "two\\(")
        ),
    );
    d.write(
        "lang/pack.yaml",
        &format!(
            "pack: lang\nextends: [../base]\nseverity:\n  b.two: WARNING\nrules:\n{}",
            rule("l.three", "ERROR", "three\\(")
        ),
    );
    d.write(
        "proj/pack.yaml",
        &format!("pack: proj\nextends: [../lang]\ndisable: [b.one]\nseverity:\n  b.two: ERROR\nrules:\n{}", rule("p.four", "INFO", "four\\(")),
    );
    d
}

#[test]
fn extends_disable_override_later_wins() {
    let d = setup();
    let eff = EffectivePolicy::load(d.path().join("proj")).unwrap();
    let ids: Vec<&str> = eff.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["b.one", "b.two", "l.three", "p.four"]);
    let one = &eff.rules[0];
    assert!(!one.enabled && one.history.iter().any(|h| h.contains("disabled by")));
    let two = &eff.rules[1];
    assert_eq!(
        two.severity,
        Severity::Error,
        "project override wins over language override"
    );
    assert_eq!(two.history.len(), 2);
    assert_eq!(eff.files.len(), 3);
    assert!(eff.files[0].ends_with("base/pack.yaml"));

    let p = PolicyBuilder::new().compile(&eff).unwrap();
    assert_eq!(p.rules().len(), 3, "disabled rules are not compiled");
    let f = p.check(b"one(); two(); three(); four()");
    let ids: Vec<&str> = f.iter().map(|f| f.rule_id.as_str()).collect();
    assert_eq!(ids, ["b.two", "l.three", "p.four"]);
    assert!(!f[2].enforced, "INFO is reported only");
    // only enforced rules are in modules
    let enforced: usize = p.modules().iter().map(|m| m.rules().len()).sum();
    assert_eq!(enforced, 2);
}

#[test]
fn language_level_override_applies() {
    let d = setup();
    let eff = EffectivePolicy::load(d.path().join("lang")).unwrap();
    assert_eq!(eff.rules[1].severity, Severity::Warning);
    assert!(!eff.rules[1].enforced());
}

#[test]
fn cycle_is_an_error_naming_files() {
    let d = dir();
    d.write(
        "a/pack.yaml",
        &format!(
            "pack: a\nextends: [../b]\nrules:\n{}",
            rule("a.x", "ERROR", "x\\(")
        ),
    );
    d.write(
        "b/pack.yaml",
        &format!(
            "pack: b\nextends: [../a]\nrules:\n{}",
            rule("b.y", "ERROR", "y\\(")
        ),
    );
    let e = EffectivePolicy::load(d.path().join("a")).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Cycle);
    let s = e.to_string();
    assert!(
        s.contains("a/pack.yaml") && s.contains("b/pack.yaml"),
        "{s}"
    );
}

#[test]
fn duplicate_ids_name_both_files() {
    let d = dir();
    d.write(
        "a/pack.yaml",
        &format!("pack: a\nrules:\n{}", rule("dup.x", "ERROR", "x\\(")),
    );
    d.write(
        "b/pack.yaml",
        &format!(
            "pack: b\nextends: [../a]\nrules:\n{}",
            rule("dup.x", "ERROR", "y\\(")
        ),
    );
    let e = EffectivePolicy::load(d.path().join("b")).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::DuplicateId);
    let s = e.to_string();
    assert!(
        s.contains("a/pack.yaml") && s.contains("b/pack.yaml") && s.contains("dup.x"),
        "{s}"
    );
}

#[test]
fn unknown_disable_and_override_are_errors() {
    let d = setup();
    d.write(
        "bad/pack.yaml",
        "pack: bad\nextends: [../base]\ndisable: [b.onee]\n",
    );
    let e = EffectivePolicy::load(d.path().join("bad")).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::UnknownRule);
    assert!(e.to_string().contains("did you mean `b.one`"), "{e}");
    assert!(e.to_string().contains("bad/pack.yaml"), "{e}");
    d.write(
        "bad2/pack.yaml",
        "pack: bad2\nextends: [../base]\nseverity:\n  nope: INFO\n",
    );
    let e = EffectivePolicy::load(d.path().join("bad2")).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::UnknownRule);
}

#[test]
fn missing_extends_target_names_file() {
    let d = dir();
    d.write("a/pack.yaml", "pack: a\nextends: [../nowhere]\n");
    let e = EffectivePolicy::load(d.path().join("a")).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Io);
    assert!(e.to_string().contains("nowhere"), "{e}");
}

#[test]
fn disabling_everything_is_an_empty_pack() {
    let d = setup();
    d.write(
        "off/pack.yaml",
        "pack: off\nextends: [../base]\ndisable: [b.one, b.two]\n",
    );
    let e = EffectivePolicy::load(d.path().join("off")).unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::EmptyPack);
}

#[test]
fn shipped_python_pack_extends_base() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/python");
    let eff = EffectivePolicy::load(&p).unwrap();
    assert!(eff.rules.iter().any(|r| r.id.starts_with("base.")));
    assert!(eff.rules.iter().any(|r| r.id.starts_with("python.")));
    let _: PathBuf = eff.files[0].clone();
}

#[test]
fn compilation_is_deterministic() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/base");
    let a = PolicyBuilder::new().compile_path(&p).unwrap();
    let b = PolicyBuilder::new().compile_path(&p).unwrap();
    assert_eq!(a.modules().len(), b.modules().len());
    for (x, y) in a.modules().iter().zip(b.modules()) {
        assert_eq!(x.rules(), y.rules());
        assert_eq!(x.num_states(), y.num_states());
        assert_eq!(x.byte_classes(), y.byte_classes());
        for s in 0..x.num_states() as u32 {
            for c in 0..x.num_classes() as u8 {
                let s = ward_policy::StateId(s);
                assert_eq!(x.next_class(s, c), y.next_class(s, c));
            }
        }
    }
}
