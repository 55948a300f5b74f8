//! Loading, parity with transformers, error messages, and the shipped default model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use ward_model::{Device, ErrorKind, Model, ModelConfig};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ward-model-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Expected {
    ids: Vec<Vec<u32>>,
    shape: Vec<usize>,
    logits: Vec<f32>,
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(fixture().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    Expected {
        ids: serde_json::from_value(v["ids"].clone()).unwrap(),
        shape: serde_json::from_value(v["shape"].clone()).unwrap(),
        logits: serde_json::from_value(v["logits"].clone()).unwrap(),
    }
}

fn max_abs_diff(model: &Model, e: &Expected) -> f32 {
    let logits = model.forward_batch(&e.ids).unwrap();
    assert_eq!(logits.dims().to_vec(), e.shape);
    let got: Vec<f32> = logits.into_data().convert::<f32>().try_to_vec().unwrap();
    got.iter()
        .zip(&e.logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// Rewrites the fixture's weights through `edit` (name, dtype, shape, f32 values) into `dir`.
fn rewrite(dir: &Path, edit: impl Fn(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>)) {
    let bytes = std::fs::read(fixture().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut ts: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut ts);
    let views: Vec<(String, TensorView<'_>)> = ts
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    std::fs::copy(fixture().join("config.json"), dir.join("config.json")).unwrap();
}

#[test]
fn parity_with_transformers_single_file() {
    let model = Model::load(fixture(), &Device::flex()).unwrap();
    let d = max_abs_diff(&model, &expected());
    assert!(d < 1e-4, "max |Δlogit| = {d}");
}

#[test]
fn parity_with_transformers_sharded() {
    let model = Model::load(fixture().join("shards"), &Device::flex()).unwrap();
    let d = max_abs_diff(&model, &expected());
    assert!(d < 1e-4, "max |Δlogit| = {d}");
}

#[test]
fn loads_f16_and_bf16() {
    for (dtype, tol) in [(Dtype::F16, 2e-2), (Dtype::BF16, 2e-1)] {
        let dir = scratch(&format!("{dtype:?}"));
        rewrite(&dir, |ts| {
            for (_, d, _, b) in ts.iter_mut() {
                let vals = b
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                *b = match dtype {
                    Dtype::F16 => vals
                        .flat_map(|x| half::f16::from_f32(x).to_le_bytes())
                        .collect(),
                    _ => vals
                        .flat_map(|x| half::bf16::from_f32(x).to_le_bytes())
                        .collect(),
                };
                *d = dtype;
            }
        });
        let model = Model::load(&dir, &Device::flex()).unwrap();
        let d = max_abs_diff(&model, &expected());
        assert!(d < tol, "{dtype:?}: max |Δlogit| = {d}");
    }
}

#[test]
fn attention_is_bidirectional() {
    let model = Model::load(fixture(), &Device::flex()).unwrap();
    let a = model.forward_ids(&[1, 2, 3, 4]).unwrap();
    let b = model.forward_ids(&[1, 2, 3, 5]).unwrap();
    let first = |t: ward_model::Tensor<3>| -> Vec<f32> {
        t.narrow(1, 0, 1)
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap()
    };
    assert_ne!(
        first(a),
        first(b),
        "a later token must change earlier logits"
    );
}

#[test]
fn missing_extra_and_misshapen_tensors_are_named() {
    let dev = Device::flex();
    let dir = scratch("missing");
    rewrite(&dir, |ts| {
        ts.retain(|t| t.0 != "model.layers.1.mlp.up_proj.weight")
    });
    let e = Model::load(&dir, &dev).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::MissingTensor { .. }), "{e}");
    assert!(
        e.to_string().contains("model.layers.1.mlp.up_proj.weight"),
        "{e}"
    );

    let dir = scratch("extra");
    rewrite(&dir, |ts| {
        let t = ts[0].clone();
        ts.push(("model.layers.7.extra.weight".into(), t.1, t.2, t.3));
    });
    let e = Model::load(&dir, &dev).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::UnexpectedTensor { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("model.layers.7.extra.weight"), "{e}");

    let dir = scratch("shape");
    rewrite(&dir, |ts| {
        let t = ts.iter_mut().find(|t| t.0 == "model.norm.weight").unwrap();
        t.2 = vec![t.2[0] / 2, 2];
    });
    let e = Model::load(&dir, &dev).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::ShapeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("model.norm.weight"), "{e}");
}

#[test]
fn truncated_or_corrupt_weights_name_the_file() {
    let dev = Device::flex();
    let bytes = std::fs::read(fixture().join("model.safetensors")).unwrap();
    for (name, data) in [
        ("truncated", bytes[..bytes.len() - 100].to_vec()),
        ("corrupt", {
            let mut b = bytes.clone();
            b[10] = b'#';
            b
        }),
        ("tiny", vec![1, 2, 3]),
    ] {
        let dir = scratch(name);
        std::fs::write(dir.join("model.safetensors"), data).unwrap();
        std::fs::copy(fixture().join("config.json"), dir.join("config.json")).unwrap();
        let e = Model::load(&dir, &dev).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Safetensors { .. }),
            "{name}: {e}"
        );
        assert!(e.to_string().contains("model.safetensors"), "{name}: {e}");
    }
}

#[test]
fn config_with_a_wrong_field_type_names_the_field() {
    let text = std::fs::read_to_string(fixture().join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["num_hidden_layers"] = serde_json::json!("two");
    let e = ModelConfig::from_json_str(&v.to_string(), Path::new("config.json")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Config { .. }), "{e}");
    assert!(e.to_string().contains("num_hidden_layers"), "{e}");

    let e = ModelConfig::from_json_str("{", Path::new("x/config.json")).unwrap_err();
    assert!(e.to_string().contains("x/config.json"), "{e}");
}

#[test]
fn save_and_load_round_trip() {
    let dev = Device::flex();
    let mut cfg = ModelConfig::small(50, 16, 24, 1, 2, 1);
    cfg.mask_token_id = Some(49);
    let model = Model::random(cfg.clone(), &dev);
    let dir = scratch("roundtrip");
    model.save(&dir).unwrap();
    let back = Model::load(&dir, &dev).unwrap();
    assert_eq!(back.config(), &cfg);
    let ids = [3u32, 7, 49, 1, 0];
    let logits = |m: &Model| -> Vec<f32> {
        m.forward_ids(&ids)
            .unwrap()
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap()
    };
    assert_eq!(logits(&model), logits(&back));
    assert!(
        model.forward_ids(&[50]).is_err(),
        "out-of-range ids are rejected"
    );
}

#[test]
fn tokenizer_must_match_the_vocab_size() {
    let dir = ward_model::default_model_dir().unwrap();
    let mut cfg = ModelConfig::from_file(dir.join("config.json")).unwrap();
    ward_model::tokenizer::load_tokenizer_for(dir.join("tokenizer.json"), &cfg).unwrap();
    cfg.vocab_size += 1;
    let e =
        ward_model::tokenizer::load_tokenizer_for(dir.join("tokenizer.json"), &cfg).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Tokenizer { .. }), "{e}");
    assert!(e.to_string().contains("vocab_size"), "{e}");
}

/// The shipped default model loads into the current architecture, and its masked-token
/// accuracy at 15 % on the fixed held-out batch is at least the model card's figure minus a
/// small tolerance.
#[test]
fn shipped_model_loads_and_keeps_its_accuracy() {
    let dir = ward_model::default_model_dir().unwrap();
    let model = Model::load(&dir, &Device::flex()).unwrap();
    assert!(model.mask_token_id().is_some());
    let held: Vec<Vec<u32>> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("heldout.json")).unwrap()).unwrap();
    let metrics: HashMap<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    let card = metrics["heldout_acc15"].as_f64().unwrap();
    let acc = ward_model::train::model_masked_accuracy(
        &model,
        &held,
        0.15,
        ward_model::train::HELDOUT_SEED,
    )
    .unwrap();
    assert!(acc >= card - 0.01, "accuracy {acc} < card {card} - 0.01");
}

#[derive(clap::Parser)]
struct TrainCli {
    #[command(flatten)]
    args: ward_model::train::TrainArgs,
}

/// `ward train --init DIR` starts from the weights of a model folder (its shape, not the shape
/// flags), trains every tensor, and reads a package-split corpus (`train/`, `valid/`).
#[test]
fn warm_start_trains_from_the_given_weights() {
    use clap::Parser;
    let tmp = std::env::temp_dir().join(format!("ward-warm-start-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let corpus = tmp.join("corpus");
    for (d, body) in [
        ("train/p", "def add(a, b):\n    return a + b\n"),
        ("valid/q", "x = [i for i in range(3)]\n"),
    ] {
        std::fs::create_dir_all(corpus.join(d)).unwrap();
        std::fs::write(corpus.join(d).join("m.py"), body.repeat(40)).unwrap();
    }
    let tok = ward_model::default_model_dir()
        .unwrap()
        .join("tokenizer.json");
    let mut cfg = ModelConfig::small(8192, 32, 64, 1, 2, 1);
    cfg.mask_token_id = Some(1);
    cfg.eos_token_id = Some(0);
    cfg.max_position_embeddings = 32;
    let init = tmp.join("init");
    Model::random(cfg.clone(), &Device::flex())
        .save(&init)
        .unwrap();
    let run = tmp.join("run");
    let args = TrainCli::parse_from([
        "t",
        "--tokenizer",
        tok.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--init",
        init.to_str().unwrap(),
        // Shape flags that --init must override.
        "--hidden-size",
        "64",
        "--layers",
        "3",
        "--seq-len",
        "32",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--eval-every",
        "1000",
        "--eval-seqs",
        "2",
        "--checkpoint-every",
        "1000",
        "--no-progress",
    ])
    .args;
    let report = ward_model::train::run_train(&args).unwrap();
    assert_eq!(report.steps, 2);
    assert_eq!(report.params, cfg.num_params());
    let read = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    let (a, b) = (read(&init), read(&run.join("latest")));
    let (a, b) = (
        SafeTensors::deserialize(&a).unwrap(),
        SafeTensors::deserialize(&b).unwrap(),
    );
    assert_eq!(a.len(), b.len());
    for (name, t) in a.tensors() {
        let u = b.tensor(&name).unwrap();
        assert_eq!(t.shape(), u.shape(), "{name}");
        assert_ne!(t.data(), u.data(), "{name} was not trained");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
