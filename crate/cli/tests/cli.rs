//! The `ward` binary end to end on real files: exit codes, formats, errors.

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
fn insecure_sample_has_findings_and_exit_1() {
    let (code, out, err) = ward(&["check", "tests/samples/insecure.py"]);
    assert_eq!(code, 1, "{out}{err}");
    for id in [
        "python.subprocess-shell-true",
        "python.pickle-load",
        "python.yaml-load",
        "python.weak-hash",
        "python.tls-verify-disabled",
    ] {
        assert!(out.contains(id), "missing {id} in\n{out}");
    }
    // comment and string occurrences are not findings
    assert!(!out.contains("python.os-system"), "{out}");
    assert!(!out.contains("python.eval"), "{out}");
}

#[test]
fn clean_sample_exit_0() {
    let (code, out, err) = ward(&["check", "tests/samples/clean.py"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 finding(s)"), "{out}");
}

#[test]
fn folder_scan_and_json() {
    let (code, out, _) = ward(&["check", "--format", "json", "tests/samples"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let arr = v.as_array().unwrap();
    assert!(arr
        .iter()
        .all(|f| f["path"].as_str().unwrap().ends_with("insecure.py")));
    let f = arr
        .iter()
        .find(|f| f["rule_id"] == "python.pickle-load")
        .unwrap();
    assert_eq!(f["line"], 17);
    assert!(f["cwe"][0].as_str().unwrap().starts_with("CWE-502"));
}

#[test]
fn sarif_is_2_1_0_with_rules_cwe_and_locations() {
    let (code, out, _) = ward(&["check", "--format", "sarif", "tests/samples/insecure.py"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(!rules.is_empty());
    for r in rules {
        assert!(r["id"].is_string() && r["shortDescription"]["text"].is_string());
        let tags = r["properties"]["tags"].as_array().unwrap();
        assert!(
            tags.iter()
                .any(|t| t.as_str().unwrap().starts_with("external/cwe/cwe-")),
            "{r}"
        );
        assert!(r["properties"]["security-severity"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .is_ok());
    }
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for res in results {
        let idx = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], res["ruleId"]);
        let region = &res["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
        assert!(region["startColumn"].as_u64().unwrap() >= 1);
        assert_eq!(
            res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "tests/samples/insecure.py"
        );
    }
}

#[test]
fn bad_policy_is_exit_2_with_file_and_cause() {
    let dir = std::env::temp_dir().join(format!("ward-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pack = dir.join("pack.yaml");
    std::fs::write(&pack, "pack: bad\nrules:\n  - id: bad.look\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'a(?=b)'\n").unwrap();
    let (code, _, err) = ward(&[
        "check",
        "--policy",
        pack.to_str().unwrap(),
        "tests/samples/clean.py",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.look") && err.contains("look-around") && err.contains("pack.yaml"),
        "{err}"
    );
    let (code, _, err) = ward(&["check", "tests/samples/missing.py"]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.py"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn explain_shows_origin_and_stats() {
    let (code, out, err) = ward(&["explain", "--stats", "--policy", "policies/python"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("base/pack.yaml") && out.contains("python/pack.yaml"),
        "{out}"
    );
    assert!(out.contains("python.pickle-load") && out.contains("enforced"));
    assert!(out.contains("enforced module(s)") && out.contains("states"));
}

#[test]
fn explain_reports_the_compile_errors_check_would() {
    // Without --stats too (issue 14): a pattern that does not translate from PCRE, and one
    // that regex-syntax rejects, each named with its rule and column, exit 2 like check.
    let dir = std::env::temp_dir().join(format!("ward-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (pattern, col) in [("a++", 3), ("x(?<=a)b", 2)] {
        let yaml = format!(
            "pack: t\nrules:\n  - id: t.bad\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: '{pattern}'\n"
        );
        let f = dir.join("pack.yaml");
        std::fs::write(&f, yaml).unwrap();
        let f = f.to_string_lossy().to_string();
        let (code, out, err) = ward(&["explain", "--policy", &f]);
        assert_eq!(code, 2, "{pattern}: {out}{err}");
        assert!(
            err.contains("t.bad") && err.contains(&format!("column {col}")),
            "{pattern}: {err}"
        );
        let (code, _, err2) = ward(&["check", "--policy", &f, "tests/samples/clean.py"]);
        assert_eq!(code, 2, "{err2}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_honours_paths_and_languages() {
    // `paths: exclude` drops the rule's findings in matching files; a rule for another
    // language never fires on Python (issue 14).
    let dir = std::env::temp_dir().join(format!("ward-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("pack.yaml");
    std::fs::write(
        &f,
        "pack: t\nrules:\n  - id: t.pickle\n    message: m\n    severity: WARNING\n    languages: [python]\n    paths:\n      exclude: [samples]\n    pattern-regex: 'pickle'\n  - id: t.apex\n    message: m\n    severity: WARNING\n    languages: [apex]\n    pattern-regex: 'import'\n  - id: t.any\n    message: m\n    severity: WARNING\n    languages: [python]\n    paths:\n      include: ['*.py']\n    pattern-regex: 'yaml'\n",
    )
    .unwrap();
    let f = f.to_string_lossy().to_string();
    let (code, out, err) = ward(&["check", "--policy", &f, "tests/samples/insecure.py"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("t.any"), "{out}");
    assert!(
        !out.contains("t.pickle") && !out.contains("t.apex"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn closed_output_pipe_is_not_a_panic() {
    // More findings than a pipe buffer holds, read by a reader that stops after a few bytes
    // (`ward check … | head`).
    let dir = std::env::temp_dir().join(format!("ward-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sample = std::fs::read_to_string(root().join("tests/samples/insecure.py")).unwrap();
    std::fs::write(dir.join("many.py"), sample.repeat(300)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["check", "--format", "json"])
        .arg(dir.join("many.py"))
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "model")]
mod generate {
    use super::*;

    #[test]
    fn lift_rows_are_written_once_then_loaded_and_a_bad_cache_is_rebuilt() {
        let dir = std::env::temp_dir().join(format!("ward-lift-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cache = dir.join("python.wardlift");
        let args = |c: &std::path::Path| {
            vec![
                "generate".to_string(),
                "--prompt".into(),
                "x = <|hole:4|>\n".into(),
                "--seed".into(),
                "2".into(),
                "--lift-rows".into(),
                c.to_str().unwrap().to_string(),
            ]
        };
        let run = |c: &std::path::Path| {
            let a = args(c);
            ward(&a.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let (code, first, err) = run(&cache);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("built the token rows and wrote them"), "{err}");
        let bytes = std::fs::read(&cache).unwrap();
        assert_eq!(&bytes[..8], b"WARDLIFT");
        // Loaded the second time: nothing built, the same text.
        let (code, second, err) = run(&cache);
        assert_eq!(code, 0, "{err}");
        assert!(!err.contains("built the token rows"), "{err}");
        assert_eq!(first, second);
        // A file that is not a lift artefact is replaced, saying why.
        std::fs::write(&cache, b"not rows").unwrap();
        let (code, third, err) = run(&cache);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("not a lift artefact"), "{err}");
        assert_eq!(first, third);
        assert_eq!(std::fs::read(&cache).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn text_format_prints_exactly_the_filled_prompt() {
        let prompt = "def f(x):\n    <|hole:6|>\n\nprint(f(2))\n";
        let (code, out, err) = ward(&["generate", "--prompt", prompt, "--steps", "3"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("def f(x):\n    "), "{out:?}");
        assert!(out.ends_with("\n\nprint(f(2))\n"), "{out:?}");
        assert!(
            err.contains("tokens") && err.contains("blocked candidates"),
            "{err}"
        );
    }

    #[test]
    fn json_format_streams_events_then_the_result_and_writes_sarif() {
        let dir = std::env::temp_dir().join(format!("ward-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sarif = dir.join("c.sarif");
        let cert = dir.join("c.json");
        let (code, out, err) = ward(&[
            "generate",
            "--prompt-file",
            "tests/samples/demo_prompt.txt",
            "--oracle-file",
            "tests/samples/demo_pull.txt",
            "--format",
            "json",
            "--sarif",
            sarif.to_str().unwrap(),
            "--certificate",
            cert.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["type"], "start");
        assert!(lines[1..lines.len() - 1]
            .iter()
            .all(|l| l["type"] == "step"));
        let last = lines.last().unwrap();
        assert_eq!(last["type"], "result");
        assert_eq!(last["certificate"]["enforced_findings"], 0);
        assert!(last["blocked_candidates"].as_u64().unwrap() > 0, "{last}");
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
        assert_eq!(s["version"], "2.1.0");
        let c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&cert).unwrap()).unwrap();
        assert_eq!(c["format"], "ward-certificate/1");
        // Unconstrained, the same pull writes the violation, and the re-scan reports it.
        let (code, out, _) = ward(&[
            "generate",
            "--no-policy",
            "--prompt-file",
            "tests/samples/demo_prompt.txt",
            "--oracle-file",
            "tests/samples/demo_pull.txt",
        ]);
        assert_eq!(code, 0);
        assert!(out.contains("shell=True"), "{out}");
    }

    #[test]
    fn bad_input_exits_2_naming_the_cause() {
        let (code, _, err) = ward(&[
            "generate",
            "--prompt",
            "import os\nos.system(c)\n<|hole:2|>",
        ]);
        assert_eq!(code, 2);
        assert!(
            err.contains("python.os-system") && err.contains("bytes"),
            "{err}"
        );
        let (code, _, err) = ward(&["generate", "--prompt", "x = <|hole:two|>"]);
        assert_eq!(code, 2);
        assert!(err.contains("byte 4"), "{err}");
        let (code, _, err) = ward(&["generate", "--model", "/nonexistent", "--prompt", "x"]);
        assert_eq!(code, 2);
        assert!(err.contains("/nonexistent"), "{err}");
        let (code, _, err) = ward(&["generate", "--prompt", "x", "--top-p", "0"]);
        assert_eq!(code, 2);
        assert!(err.contains("top_p"), "{err}");
        let (code, _, err) = ward(&["generate"]);
        assert_eq!(code, 2);
        assert!(err.contains("--prompt"), "{err}");
    }

    #[test]
    fn eval_model_measures_real_files_as_json() {
        let args = [
            "eval-model",
            "--data",
            "tests/samples",
            "--max-windows",
            "4",
            "--infills",
            "2",
            "--mask",
            "0.15,0.5",
            "--format",
            "json",
        ];
        let (code, out, err) = ward(&args);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["data"]["files"].as_u64().unwrap() >= 2, "{v}");
        assert_eq!(v["data"]["window"], 256);
        let masked = v["masked"].as_array().unwrap();
        assert_eq!(masked.len(), 2);
        for m in masked {
            let acc = m["accuracy"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&acc), "{m}");
            assert!(m["cross_entropy"].as_f64().unwrap() > 0.0, "{m}");
            assert!(m["masked_tokens"].as_u64().unwrap() > 0, "{m}");
        }
        let i = &v["infill"];
        assert_eq!(i["measured"], 2, "{i}");
        assert!(i["parsed"].as_u64().unwrap() <= 2, "{i}");
        assert!(v["model_digest"].as_str().unwrap().starts_with("sha256:"));
        // The same seed gives the same figures.
        let (_, again, _) = ward(&args);
        assert_eq!(out, again);
    }

    #[test]
    fn eval_model_bad_input_exits_2_naming_the_cause() {
        let (code, _, err) = ward(&["eval-model", "--data", "/nonexistent/code"]);
        assert_eq!(code, 2);
        assert!(err.contains("/nonexistent/code"), "{err}");
        let dir = std::env::temp_dir().join(format!("ward-eval-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (code, _, err) = ward(&["eval-model", "--data", dir.to_str().unwrap()]);
        assert_eq!(code, 2);
        assert!(err.contains("no Python"), "{err}");
        std::fs::write(dir.join("empty.py"), "").unwrap();
        let (code, _, err) = ward(&[
            "eval-model",
            "--data",
            dir.to_str().unwrap(),
            "--infills",
            "0",
        ]);
        assert_eq!(code, 2);
        assert!(err.contains("no text"), "{err}");
        let (code, _, err) = ward(&["eval-model", "--data", "tests/samples", "--mask", "1.5"]);
        assert_eq!(code, 2);
        assert!(err.contains("--mask 1.5"), "{err}");
        // A model whose tokenizer does not match its config.
        let model = dir.join("model");
        std::fs::create_dir_all(&model).unwrap();
        let src = root().join("models/ward-tiny-code");
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(src.join(f), model.join(f)).unwrap();
        }
        // GPT-2's byte-level BPE (a fixture of the guard's decoding tests): not 8192 tokens.
        let fixture: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root().join("crate/guard/tests/hf/gpt2_byte_level.json"))
                .unwrap(),
        )
        .unwrap();
        std::fs::write(
            model.join("tokenizer.json"),
            fixture["tokenizer"].to_string(),
        )
        .unwrap();
        let (code, _, err) = ward(&[
            "eval-model",
            "--model",
            model.to_str().unwrap(),
            "--data",
            "tests/samples",
        ]);
        assert_eq!(code, 2);
        assert!(
            err.contains("vocab_size") && err.contains("tokenizer"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn compile_policy_writes_an_artefact_that_checks_like_the_pack() {
    let dir = std::env::temp_dir().join(format!("ward-compile-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("python.wardpol");
    let (code, _, err) = ward(&[
        "compile-policy",
        "--policy",
        "policies/python",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("46 enabled rules") || err.contains("enabled rules"),
        "{err}"
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..8], b"WARDPOL\0");
    let loaded = ward_policy::CompiledPolicy::from_artefact(&bytes).unwrap();
    let compiled = ward_policy::PolicyBuilder::new()
        .compile_path(root().join("policies/python"))
        .unwrap();
    let sample = std::fs::read(root().join("tests/samples/insecure.py")).unwrap();
    let ids = |p: &ward_policy::CompiledPolicy| -> Vec<(String, usize)> {
        p.check(&sample)
            .iter()
            .map(|f| (f.rule_id.clone(), f.start))
            .collect()
    };
    assert!(!ids(&compiled).is_empty());
    assert_eq!(ids(&loaded), ids(&compiled));
    // A pack that does not exist: exit 2 naming it, nothing written.
    let missing = dir.join("missing.wardpol");
    let (code, _, err) = ward(&[
        "compile-policy",
        "--policy",
        "no/such/pack",
        "-o",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no/such/pack"), "{err}");
    assert!(!missing.exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn compile_policy_writes_the_lift_artefact_for_a_tokenizer() {
    let dir = std::env::temp_dir().join(format!("ward-compile-lift-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pol, lift) = (dir.join("base.wardpol"), dir.join("base.wardlift"));
    let tok = root().join("models/ward-tiny-code/tokenizer.json");
    let compile_with = |tokenizer: &std::path::Path| {
        ward(&[
            "compile-policy",
            "--policy",
            "policies/base",
            "-o",
            pol.to_str().unwrap(),
            "--lift-tokenizer",
            tokenizer.to_str().unwrap(),
            "--lift-out",
            lift.to_str().unwrap(),
        ])
    };
    let (code, _, err) = compile_with(&tok);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("token rows of"), "{err}");
    // It loads into the policy as the browser gets it (from the artefact) with the tokenizer.
    let policy = std::sync::Arc::new(
        ward_policy::CompiledPolicy::from_artefact(&std::fs::read(&pol).unwrap()).unwrap(),
    );
    let vocab = std::sync::Arc::new(
        ward_guard::vocab::from_tokenizer_json(&std::fs::read_to_string(&tok).unwrap()).unwrap(),
    );
    let tp = ward_guard::TokenPolicy::new(policy.clone(), vocab);
    assert_eq!(
        tp.load_rows_artefact(&std::fs::read(&lift).unwrap()),
        Ok(policy.modules().len())
    );
    // `--lift-out` without `--lift-tokenizer` is a usage error.
    let (code, _, err) = ward(&[
        "compile-policy",
        "-o",
        pol.to_str().unwrap(),
        "--lift-out",
        lift.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--lift-tokenizer"), "{err}");
    // A tokenizer that does not parse: exit 2 naming the file.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{").unwrap();
    let (code, _, err) = compile_with(&bad);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.json"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
