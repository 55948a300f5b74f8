//! `ward compile-policy` end to end: the artefact it writes loads and checks like the pack.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ward(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn compile_policy_writes_an_artefact_that_checks_like_the_pack() {
    let dir = std::env::temp_dir().join(format!("ward-compile-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("python.wardpol");
    let (code, _, err) = ward(&["compile-policy", "--policy", "policies/python", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("46 enabled rules") || err.contains("enabled rules"), "{err}");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..8], b"WARDPOL\0");
    let loaded = ward_policy::CompiledPolicy::from_artefact(&bytes).unwrap();
    let compiled = ward_policy::PolicyBuilder::new()
        .compile_path(root().join("policies/python"))
        .unwrap();
    let sample = std::fs::read(root().join("tests/samples/insecure.py")).unwrap();
    let ids = |p: &ward_policy::CompiledPolicy| -> Vec<(String, usize)> {
        p.check(&sample).iter().map(|f| (f.rule_id.clone(), f.start)).collect()
    };
    assert!(!ids(&compiled).is_empty());
    assert_eq!(ids(&loaded), ids(&compiled));
    // A pack that does not exist: exit 2 naming it, nothing written.
    let missing = dir.join("missing.wardpol");
    let (code, _, err) = ward(&["compile-policy", "--policy", "no/such/pack", "-o", missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no/such/pack"), "{err}");
    assert!(!missing.exists());
    std::fs::remove_dir_all(&dir).ok();
}
