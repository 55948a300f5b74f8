//! The sampler with the real model: the shipped default model (infilling keeps prefix and
//! suffix byte for byte, determinism by seed, an insecure-pulling prompt completed securely
//! with what was blocked listed), and both logits conventions (ours/LLaDA, and the Dream
//! family's shift by one) on tiny random models.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ward_model::{Device, Model, ModelConfig};
use ward_policy::PolicyBuilder;
use ward_sampler::model::{LoadedModel, ModelSource};
use ward_sampler::{Engine, GenerateRequest, LogitsSource, OracleSource, Strategy};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Shipped {
    loaded: std::sync::Mutex<LoadedModel>,
    engine: Engine,
}

fn shipped() -> &'static Shipped {
    static S: OnceLock<Shipped> = OnceLock::new();
    S.get_or_init(|| {
        let loaded =
            LoadedModel::load(&root().join("models/ward-tiny-code"), &Device::flex()).unwrap();
        let policy = Arc::new(
            PolicyBuilder::new()
                .compile_path(root().join("policies/python"))
                .unwrap(),
        );
        let engine = loaded.engine(Some(policy)).unwrap();
        Shipped {
            loaded: std::sync::Mutex::new(loaded),
            engine,
        }
    })
}

fn generate(req: &GenerateRequest) -> ward_sampler::GenerationResult {
    let s = shipped();
    let mut l = s.loaded.lock().unwrap_or_else(|e| e.into_inner());
    let l = &mut *l;
    s.engine
        .generate(req, &l.tokenizer, &mut l.source, |_| true)
        .unwrap_or_else(|e| panic!("{req:?}: {e}"))
}

#[test]
fn infilling_keeps_prefix_and_suffix_byte_for_byte() {
    let prefix = "def area(width, height):\n    \"\"\"Return the area.\"\"\"\n    ";
    let suffix = "\n\n\ndef main():\n    print(area(2, 3))\n";
    for strategy in [Strategy::LowConfidence, Strategy::Threshold] {
        for early_end in [true, false] {
            let req = GenerateRequest {
                strategy,
                steps: Some(4),
                early_end,
                ..GenerateRequest::new(format!("{prefix}<|hole:12|>{suffix}"))
            };
            let r = generate(&req);
            assert!(r.text.starts_with(prefix), "{:?}", r.text);
            assert!(r.text.ends_with(suffix), "{:?}", r.text);
            assert_eq!(r.text, format!("{prefix}{}{suffix}", r.holes[0]));
            if early_end {
                // The model may end the hole early, but never before its first token.
                assert!((1..=12).contains(&r.tokens), "{} tokens", r.tokens);
            } else {
                assert_eq!(
                    r.tokens, 12,
                    "an exact infill hole is filled with all its tokens"
                );
            }
            assert_eq!(r.certificate.enforced_findings, 0);
        }
    }
}

#[test]
fn same_seed_same_text_and_other_seed_differs() {
    let req = |seed| GenerateRequest {
        temperature: 1.0,
        seed,
        steps: Some(6),
        ..GenerateRequest::new("import os\n\n\ndef load(path):\n    <|hole:16|>")
    };
    let (a, b) = (generate(&req(11)), generate(&req(11)));
    assert_eq!(a.text, b.text);
    assert_eq!(a.certificate.model.digest, b.certificate.model.digest);
    let c = generate(&req(12));
    assert_ne!(
        a.text, c.text,
        "sampling at temperature 1 with another seed"
    );
}

#[test]
fn insecure_pulling_prompt_completes_securely_and_lists_what_was_blocked() {
    // The tiny default model is not pulled toward `shell=True` by context alone (it writes
    // newlines and punctuation here), so the pull is made explicit: the model's own logits
    // plus a strong preference for the insecure continuation (the security evaluation's
    // oracle arm on the real model).
    let prompt = "import subprocess\n\n\ndef deploy(cmd):\n    subprocess.call(cmd, <|hole:6|>\n";
    let insecure = "shell=True)\n";
    let s = shipped();
    let mut l = s.loaded.lock().unwrap_or_else(|e| e.into_inner());
    let l = &mut *l;
    let run = |l: &mut LoadedModel, enforce: bool| {
        let req = GenerateRequest {
            enforce,
            ..GenerateRequest::new(prompt)
        };
        let (mut sess, start) = s.engine.start(&req, &l.tokenizer).unwrap();
        let ids = ward_model::tokenizer::encode(&l.tokenizer, insecure).unwrap();
        let mut target = vec![None; start.canvas.len()];
        for (k, &h) in start.holes.iter().enumerate() {
            target[h] = ids.get(k).copied();
        }
        let mut src = OracleSource::new(&mut l.source, target);
        while sess.step(&mut src).unwrap().is_some() {}
        sess.result().unwrap()
    };
    let free = run(l, false);
    let safe = run(l, true);
    eprintln!(
        "--no-policy: {:?} findings {:?}",
        free.holes[0],
        free.certificate
            .findings
            .iter()
            .map(|f| &f.rule_id)
            .collect::<Vec<_>>()
    );
    eprintln!(
        "enforced:    {:?} blocked {}",
        safe.holes[0], safe.blocked_candidates
    );
    assert!(
        free.holes[0].starts_with("shell=True"),
        "{:?}",
        free.holes[0]
    );
    assert!(free.certificate.enforced_findings > 0);
    assert!(free.certificate.policy.is_none());
    assert_eq!(safe.certificate.enforced_findings, 0, "{:?}", safe.text);
    assert_ne!(safe.holes[0], free.holes[0]);
    let blocked: Vec<&str> = safe
        .certificate
        .policy
        .as_ref()
        .unwrap()
        .enforced_rules
        .iter()
        .filter(|r| r.blocked_candidates > 0)
        .map(|r| r.id.as_str())
        .collect();
    assert!(blocked.iter().any(|id| id.contains("shell")), "{blocked:?}");
    let sarif = safe
        .certificate
        .to_sarif(s.engine.policy().unwrap(), &safe.bytes, "generated.py");
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(
        sarif["runs"][0]["results"].as_array().map(|r| r.len()),
        Some(0)
    );
}

fn tiny(model_type: &str, shift: Option<bool>) -> ModelConfig {
    let mut c = ModelConfig::small(64, 32, 64, 2, 4, 2);
    c.model_type = model_type.into();
    c.shift_logits = shift;
    c.mask_token_id = Some(1);
    c.eos_token_id = Some(0);
    c
}

#[test]
fn dream_family_logits_are_read_shifted_by_one() {
    let device = Device::flex();
    let base = Model::random(tiny("qwen2", None), &device);
    assert!(!base.config().shifted_logits());
    let dream_cfg = tiny("Dream", None);
    assert!(dream_cfg.shifted_logits());
    let mut arch = tiny("qwen2", None);
    arch.architectures = Some(vec!["DreamModel".into()]);
    assert!(arch.shifted_logits());
    assert!(!tiny("Dream", Some(false)).shifted_logits());
    let dream = Model::new(dream_cfg, base.net().clone(), device.clone());
    let ids: Vec<u32> = vec![5, 9, 1, 1, 7, 3];
    let positions = [0usize, 2, 3, 5];
    let mut plain = ModelSource::new(base.clone());
    let mut shifted = ModelSource::new(dream);
    assert!(shifted.shifted() && !plain.shifted());
    let v = 64;
    let all: Vec<usize> = (0..ids.len()).collect();
    let p = plain.logits(&ids, &all).unwrap();
    let s = shifted.logits(&ids, &positions).unwrap();
    for (k, &pos) in positions.iter().enumerate() {
        let from = pos.saturating_sub(1); // cat(logits[:, :1], logits[:, :-1])
        let want = &p[from * v..(from + 1) * v];
        let got = &s[k * v..(k + 1) * v];
        let d = want
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "position {pos}: max diff {d}");
    }
    // Unshifted: position i reads output i.
    let q = plain.logits(&ids, &positions).unwrap();
    for (k, &pos) in positions.iter().enumerate() {
        let d = p[pos * v..(pos + 1) * v]
            .iter()
            .zip(&q[k * v..(k + 1) * v])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5);
    }
}

#[test]
fn canvases_longer_than_the_window_are_served_from_windows() {
    let device = Device::flex();
    let m = Model::random(tiny("qwen2", None), &device);
    let ids: Vec<u32> = (0..40).map(|i| (i * 7 % 60) as u32 + 2).collect();
    let mut src = ModelSource::new(m.clone());
    src.set_window(16);
    let positions = [0usize, 3, 20, 21, 39];
    let out = src.logits(&ids, &positions).unwrap();
    assert_eq!(out.len(), positions.len() * 64);
    assert!(out.iter().all(|x| x.is_finite()));
    // A position inside one window gets exactly that window's logits.
    let mut direct = ModelSource::new(m);
    direct.set_window(1000);
    let w = direct.logits(&ids[24..40], &[15]).unwrap();
    let d = w
        .iter()
        .zip(&out[4 * 64..5 * 64])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-5, "{d}");
}

#[test]
fn a_model_from_bytes_is_the_model_from_its_folder_and_bad_bytes_name_the_file() {
    let dir = root().join("models/ward-tiny-code");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let (cfg, w, tok) = (
        read("config.json"),
        read("model.safetensors"),
        read("tokenizer.json"),
    );
    let device = Device::flex();
    let m = LoadedModel::from_bytes("ward-tiny-code", &cfg, w.clone(), &tok, &device).unwrap();
    let d = LoadedModel::load(&dir, &device).unwrap();
    assert_eq!(m.info.digest, d.info.digest);
    assert_eq!(m.special, d.special);
    let e =
        LoadedModel::from_bytes("m", &cfg, w[..w.len() / 2].to_vec(), &tok, &device).unwrap_err();
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    let e = LoadedModel::from_bytes("m", b"{\"hidden_size\": \"x\"}", w.clone(), &tok, &device)
        .unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
    let e = LoadedModel::from_bytes("m", &cfg, w, b"{}", &device).unwrap_err();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
}
