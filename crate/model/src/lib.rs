//! The masked-diffusion code model of Ward, in burn.
//!
//! A bidirectional transformer in the Qwen2 / LLaMA layout (token embedding; blocks of
//! RMSNorm → grouped-query attention with RoPE and **no causal mask** → RMSNorm → SwiGLU MLP;
//! final norm; LM head, tied or not), configured by a Hugging Face `config.json` and loaded from
//! safetensors with the Hugging Face tensor names. Published Qwen2-layout masked-diffusion
//! checkpoints therefore load as they are, given the memory.
//!
//! The crate also holds the byte-level BPE tokenizer trainer ([`tokenizer`]), the MDLM / LLaDA
//! trainer ([`train`]) and a forward-pass benchmark ([`bench`]), each with a `clap::Args`
//! struct so that the `ward` CLI can expose them.
//!
//! # Example
//!
//! ```no_run
//! use ward_model::{Device, Model};
//! let model = Model::load_default(&Device::flex())?;
//! let logits = model.forward_ids(&[1, 2, 3])?; // [1, 3, vocab]
//! assert_eq!(logits.dims()[2], model.config().vocab_size);
//! # Ok::<(), ward_model::Error>(())
//! ```
#![deny(missing_docs)]

pub mod bench;
pub mod config;
pub mod corpus;
pub mod error;
pub mod eval;
pub mod model;
pub mod tokenizer;
pub mod train;
pub mod weights;

use std::path::{Path, PathBuf};

pub use burn::tensor::{Device, Int, Tensor, TensorData};
pub use config::ModelConfig;
pub use error::{Error, ErrorKind, Result};
pub use model::Transformer;
/// The Hugging Face tokenizer type the model crate loads (re-exported for its users).
pub use tokenizers::Tokenizer;

/// Name of the default model folder under `models/`.
pub const DEFAULT_MODEL_NAME: &str = "ward-tiny-code";
/// Environment variable that overrides the default model folder.
pub const MODEL_DIR_ENV: &str = "WARD_MODEL_DIR";
/// File name of the config in a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the tokenizer in a model folder.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Finds the default model folder: `$WARD_MODEL_DIR`, else `models/ward-tiny-code` in the
/// current directory or one of its ancestors, else the copy in this source tree.
pub fn default_model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let rel = Path::new("models").join(DEFAULT_MODEL_NAME);
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let cand = dir.join(&rel);
            if cand.join(CONFIG_FILE).exists() {
                return Ok(cand);
            }
        }
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(&rel);
    if here.join(CONFIG_FILE).exists() {
        return Ok(here);
    }
    Err(Error::invalid(format!(
        "no default model found: set {MODEL_DIR_ENV} or run from a checkout with {}",
        rel.display()
    )))
}

/// A loaded model: its config and its weights on one device.
#[derive(Debug, Clone)]
pub struct Model {
    config: ModelConfig,
    net: Transformer,
    device: Device,
}

impl Model {
    /// Wraps a transformer and its config.
    pub fn new(config: ModelConfig, net: Transformer, device: Device) -> Self {
        Model {
            config,
            net,
            device,
        }
    }

    /// A model with random weights (for tests and training from scratch).
    pub fn random(config: ModelConfig, device: &Device) -> Self {
        let net = Transformer::init(&config, device);
        Model::new(config, net, device.clone())
    }

    /// Loads `config.json` and the safetensors weights (single file or sharded) of a model
    /// folder onto `device`.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = ModelConfig::from_file(dir.join(CONFIG_FILE))?;
        let src = weights::WeightSource::open_dir(dir)?;
        let net = weights::build_transformer(&config, src, device)?;
        Ok(Model::new(config, net, device.clone()))
    }

    /// Loads the default model (see [`default_model_dir`]).
    pub fn load_default(device: &Device) -> Result<Self> {
        Self::load(default_model_dir()?, device)
    }

    /// Writes `config.json` and `model.safetensors` (f32) into `dir`, creating it.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        self.config.save(dir.join(CONFIG_FILE))?;
        weights::save_safetensors(&self.net, dir.join(weights::WEIGHTS_FILE), None)
    }

    /// The config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The burn module.
    pub fn net(&self) -> &Transformer {
        &self.net
    }

    /// Consumes the model and returns the burn module.
    pub fn into_net(self) -> Transformer {
        self.net
    }

    /// The device holding the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The id of the mask token, from `config.json`.
    pub fn mask_token_id(&self) -> Option<u32> {
        self.config.mask_token_id
    }

    /// The id of the end-of-text token, from `config.json`.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.config.eos_token_id
    }

    /// Logits for a batch of token ids.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.net.forward(ids)
    }

    /// Logits for one sequence.
    ///
    /// # Shapes
    /// - `ids`: `seq` token ids
    /// - output: `[1, seq, vocab]`
    pub fn forward_ids(&self, ids: &[u32]) -> Result<Tensor<3>> {
        self.forward_batch(&[ids.to_vec()])
    }

    /// Logits for a batch of sequences of equal length.
    ///
    /// # Shapes
    /// - `batch`: `batch` sequences of `seq` token ids
    /// - output: `[batch, seq, vocab]`
    pub fn forward_batch(&self, batch: &[Vec<u32>]) -> Result<Tensor<3>> {
        let ids = self.ids_tensor(batch)?;
        Ok(self.forward(ids))
    }

    /// Checks and uploads a batch of token ids.
    pub fn ids_tensor(&self, batch: &[Vec<u32>]) -> Result<Tensor<2, Int>> {
        let b = batch.len();
        let s = batch.first().map_or(0, |x| x.len());
        if b == 0 || s == 0 {
            return Err(Error::invalid("empty batch"));
        }
        let mut flat = Vec::with_capacity(b * s);
        for (i, seq) in batch.iter().enumerate() {
            if seq.len() != s {
                return Err(Error::invalid(format!(
                    "sequence {i} has {} tokens, sequence 0 has {s}",
                    seq.len()
                )));
            }
            for &t in seq {
                if t as usize >= self.config.vocab_size {
                    return Err(Error::invalid(format!(
                        "token id {t} is not below vocab_size = {}",
                        self.config.vocab_size
                    )));
                }
                flat.push(t as i64);
            }
        }
        Ok(Tensor::from_data(
            TensorData::new(flat, [b, s]),
            &self.device,
        ))
    }
}
