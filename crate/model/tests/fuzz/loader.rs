//! The check of the `loader` fuzz target (`crate/model/fuzz`), shared with the regression test
//! that replays its findings (`tests/fuzz_findings.rs`): a `config.json` and a safetensors
//! file give a model or a clear error naming the cause, never a panic. (The fuzz target also
//! bounds the largest allocation by the input's size.)

use std::path::{Path, PathBuf};

use ward_model::config::ModelConfig;
use ward_model::weights::{build_transformer, WeightSource};

/// One fuzz input: `config.json` text, a NUL byte, then the safetensors bytes.
pub fn run(data: &[u8]) {
    let (config, weights) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(config) = std::str::from_utf8(config) else {
        return;
    };
    let cfg = match ModelConfig::from_json_str(config, Path::new("fuzz/config.json")) {
        Ok(cfg) => cfg,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "{e:?}");
            return;
        }
    };
    let src =
        match WeightSource::from_bytes(PathBuf::from("fuzz/model.safetensors"), weights.to_vec()) {
            Ok(src) => src,
            Err(e) => {
                assert!(!e.to_string().is_empty(), "{e:?}");
                return;
            }
        };
    let device = Default::default();
    if let Err(e) = build_transformer(&cfg, src, &device) {
        assert!(!e.to_string().is_empty(), "{e:?}");
    }
}
