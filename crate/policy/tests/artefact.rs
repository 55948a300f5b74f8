//! Precompiled policy artefacts: a round trip gives the same policy (modules, reporting
//! DFAs, findings), and a wrong version, a bad checksum, truncation or garbage are errors
//! that say which.

use std::collections::BTreeMap;
use std::path::Path;

use ward_policy::{
    artefact_sources, CompiledPolicy, EffectivePolicy, PolicyBuilder, StateId, ARTEFACT_FORMAT,
};

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

fn python() -> (CompiledPolicy, Vec<u8>) {
    let files = shipped();
    let eff = EffectivePolicy::from_files(&files, "python").unwrap();
    let p = PolicyBuilder::new().compile(&eff).unwrap();
    let bytes = p.to_artefact(&files, "python");
    (p, bytes)
}

#[test]
fn round_trip_gives_the_same_policy() {
    let (p, bytes) = python();
    let q = CompiledPolicy::from_artefact(&bytes).unwrap();
    assert_eq!(q.name(), p.name());
    assert_eq!(q.rules().len(), p.rules().len());
    assert_eq!(q.modules().len(), p.modules().len());
    for (a, b) in p.modules().iter().zip(q.modules()) {
        assert_eq!(a.rules(), b.rules());
        assert_eq!(a.num_states(), b.num_states());
        assert_eq!(a.byte_classes(), b.byte_classes());
        for s in 0..a.num_states() as u32 {
            let s = StateId(s);
            assert_eq!(a.is_clean_end(s), b.is_clean_end(s));
            assert_eq!(a.end_violation_rules(s), b.end_violation_rules(s));
            for byte in 0..=255u8 {
                assert_eq!(a.next(s, byte), b.next(s, byte));
                assert_eq!(a.violation_rules(s, byte), b.violation_rules(s, byte));
            }
        }
    }
    assert_eq!(q.reporting_states(), p.reporting_states());
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/samples");
    for e in std::fs::read_dir(samples).unwrap().flatten() {
        let text = std::fs::read(e.path()).unwrap();
        assert_eq!(q.check(&text), p.check(&text), "{}", e.path().display());
    }
    // Deterministic: the same policy gives the same bytes.
    assert_eq!(python().1, bytes);
}

#[test]
fn other_version_bad_checksum_truncation_and_garbage_are_errors() {
    let (_, bytes) = python();
    let mut v = bytes.clone();
    v[8..12].copy_from_slice(&(ARTEFACT_FORMAT + 1).to_le_bytes());
    let e = CompiledPolicy::from_artefact(&v).unwrap_err().to_string();
    assert!(
        e.contains("format version") && e.contains("compile-policy"),
        "{e}"
    );
    let mut v = bytes.clone();
    let mid = v.len() / 2;
    v[mid] ^= 0x40;
    let e = CompiledPolicy::from_artefact(&v).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    let e = CompiledPolicy::from_artefact(&bytes[..bytes.len() - 7])
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated"), "{e}");
    let e = CompiledPolicy::from_artefact(b"not an artefact at all, just some bytes")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a Ward policy artefact"), "{e}");
}

/// A two-file pack hierarchy, small enough to compile in milliseconds.
fn small() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    files.insert(
        "base/pack.yaml".to_string(),
        "pack: base\nrules:\n  - id: b.key\n    message: m\n    severity: ERROR\n    languages: [generic]\n    pattern-regex: 'SECRETKEY'\n".to_string(),
    );
    files.insert(
        "app/pack.yaml".to_string(),
        "pack: app\nextends: [../base]\nrules:\n  - id: a.eval\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'eval\\('\n".to_string(),
    );
    files
}

#[test]
fn sources_say_what_an_artefact_was_compiled_from_and_match_renamed_files() {
    let files = small();
    let eff = EffectivePolicy::from_files(&files, "app/pack.yaml").unwrap();
    let bytes = PolicyBuilder::new()
        .compile(&eff)
        .unwrap()
        .to_artefact(&files, "app/pack.yaml");
    let src = artefact_sources(&bytes).unwrap();
    assert_eq!(src.top, "app/pack.yaml");
    assert_eq!(src.files, files);
    assert_eq!(src.writer, env!("CARGO_PKG_VERSION"));
    // The same files under a page's URL paths match; so do the files as compiled.
    let served: BTreeMap<String, String> = files
        .iter()
        .map(|(k, v)| (format!("docs/policies/{k}"), v.clone()))
        .collect();
    src.matches(&served, "docs/policies/app/pack.yaml").unwrap();
    src.matches(&files, "app/pack.yaml").unwrap();
    // Another top, an edited file, a missing one or an extra one do not.
    let e = src
        .matches(&served, "docs/policies/base/pack.yaml")
        .unwrap_err();
    assert!(e.contains("top pack"), "{e}");
    let e = src
        .matches(&served, "docs/policies/xapp/pack.yaml")
        .unwrap_err();
    assert!(e.contains("top pack"), "{e}");
    let mut edited = served.clone();
    edited
        .get_mut("docs/policies/base/pack.yaml")
        .unwrap()
        .push_str("# changed\n");
    let e = src
        .matches(&edited, "docs/policies/app/pack.yaml")
        .unwrap_err();
    assert!(
        e.contains("docs/policies/base/pack.yaml") && e.contains("changed"),
        "{e}"
    );
    let mut missing = served.clone();
    missing.remove("docs/policies/base/pack.yaml");
    let e = src
        .matches(&missing, "docs/policies/app/pack.yaml")
        .unwrap_err();
    assert!(e.contains("not among the given files"), "{e}");
    let mut extra = served.clone();
    extra.insert(
        "inline/custom/pack.yaml".into(),
        "pack: c\nrules: []\n".into(),
    );
    let e = src
        .matches(&extra, "docs/policies/app/pack.yaml")
        .unwrap_err();
    assert!(e.contains("inline/custom/pack.yaml"), "{e}");
    // A corrupt artefact is an error here too, before anything is read.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(artefact_sources(&bad)
        .unwrap_err()
        .to_string()
        .contains("checksum"));
}
