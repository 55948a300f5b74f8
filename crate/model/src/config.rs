//! The model configuration, read from a Hugging Face style `config.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The hyper-parameters of the transformer, in the Hugging Face `config.json` format of the
/// Qwen2 / LLaMA family.
///
/// Unknown fields are ignored, so the configs of published checkpoints (Dream-Coder,
/// DiffuCoder, Open-dCoder, ...) parse as they are. A field of the wrong type is an error that
/// names the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// `model_type` of the checkpoint (`qwen2`, `llama`, `Dream`, ...).
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); defaults to `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RoPE base frequency.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Epsilon of the RMS norms.
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// Vocabulary size (rows of the embedding and of the LM head).
    pub vocab_size: usize,
    /// Whether the LM head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Whether q/k/v projections have a bias. `None` means the family default: on for Qwen2
    /// and Dream, off for LLaMA.
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// Token id of the mask token used by the diffusion sampler.
    #[serde(default)]
    pub mask_token_id: Option<u32>,
    /// Token id of the end-of-text token (an integer, or the first of a list).
    #[serde(default, deserialize_with = "de_eos")]
    pub eos_token_id: Option<u32>,
    /// Longest sequence the model was trained for.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// RoPE settings in the newer transformers format (`{"rope_theta": ..., "rope_type":
    /// "default"}`); its `rope_theta` is used when the top-level field is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
    /// `architectures` of the checkpoint (e.g. `["DreamModel"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// Whether the logits of position `i` predict the token at `i + 1` (Dream, Dream-Coder,
    /// DiffuCoder: the sampler then reads position `i`'s prediction from the output at
    /// `i - 1`). `None`: decided from `model_type` / `architectures` (see
    /// [`ModelConfig::shifted_logits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_logits: Option<bool>,
}

fn default_model_type() -> String {
    "qwen2".to_string()
}
fn default_rope_theta() -> f64 {
    10000.0
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    32768
}

fn de_eos<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Eos {
        One(u32),
        Many(Vec<u32>),
    }
    Ok(match Option::<Eos>::deserialize(d)? {
        None => None,
        Some(Eos::One(x)) => Some(x),
        Some(Eos::Many(v)) => v.first().copied(),
    })
}

impl ModelConfig {
    /// A small config of the default family, with the given sizes.
    pub fn small(
        vocab_size: usize,
        hidden_size: usize,
        intermediate_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        num_key_value_heads: usize,
    ) -> Self {
        ModelConfig {
            model_type: "qwen2".to_string(),
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads: Some(num_key_value_heads),
            head_dim: None,
            rope_theta: 10000.0,
            rms_norm_eps: 1e-6,
            vocab_size,
            tie_word_embeddings: true,
            attention_bias: Some(true),
            mask_token_id: None,
            eos_token_id: None,
            max_position_embeddings: 1024,
            rope_parameters: None,
            architectures: None,
            shift_logits: None,
        }
    }

    /// Whether the checkpoint's logits are shifted by one (the Dream family: `model_type`
    /// `dream`, or an architecture whose name starts with `Dream`), unless `shift_logits`
    /// says otherwise. LLaDA and Ward's own models are not shifted.
    pub fn shifted_logits(&self) -> bool {
        if let Some(s) = self.shift_logits {
            return s;
        }
        self.model_type.eq_ignore_ascii_case("dream")
            || self
                .architectures
                .iter()
                .flatten()
                .any(|a| a.to_ascii_lowercase().starts_with("dream"))
    }

    /// Parses a config from JSON text. `origin` is used in error messages.
    pub fn from_json_str(text: &str, origin: &Path) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let mut cfg: ModelConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            Error::from(ErrorKind::Config {
                path: origin.to_path_buf(),
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })
        })?;
        let has_theta = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .is_some_and(|v| v.get("rope_theta").is_some());
        if !has_theta {
            if let Some(theta) = cfg
                .rope_parameters
                .as_ref()
                .and_then(|p| p.get("rope_theta"))
                .and_then(|t| t.as_f64())
            {
                cfg.rope_theta = theta;
            }
        }
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Reads and parses `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Writes the config as pretty JSON.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut text = serde_json::to_string_pretty(self).expect("config serializes");
        text.push('\n');
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |field: &str, message: String| -> Result<()> {
            Err(ErrorKind::Config {
                path: origin.to_path_buf(),
                field: field.to_string(),
                message,
            }
            .into())
        };
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("vocab_size", self.vocab_size),
        ] {
            if v == 0 {
                return bad(field, "must be positive".into());
            }
        }
        let kv = self.kv_heads();
        if kv == 0 || self.num_attention_heads % kv != 0 {
            return bad(
                "num_key_value_heads",
                format!(
                    "{kv} does not divide num_attention_heads = {}",
                    self.num_attention_heads
                ),
            );
        }
        if self.head_dim.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            return bad(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size = {}",
                    self.num_attention_heads, self.hidden_size
                ),
            );
        }
        if self.head_dim() % 2 != 0 {
            return bad("head_dim", "must be even for RoPE".into());
        }
        if let Some(m) = self.mask_token_id {
            if m as usize >= self.vocab_size {
                return bad("mask_token_id", format!("{m} is not below vocab_size"));
            }
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return bad("rms_norm_eps", "must be positive".into());
        }
        Ok(())
    }

    /// Number of key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Whether q/k/v projections have a bias (explicit, or the family default).
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias.unwrap_or_else(|| self.is_qwen_family())
    }

    /// Whether the output projection has a bias (LLaMA-style `attention_bias = true` only;
    /// the Qwen2 family never has one).
    pub fn o_bias(&self) -> bool {
        !self.is_qwen_family() && self.attention_bias.unwrap_or(false)
    }

    fn is_qwen_family(&self) -> bool {
        let t = self.model_type.to_ascii_lowercase();
        t.starts_with("qwen") || t == "dream"
    }

    /// Total number of parameters implied by the config.
    pub fn num_params(&self) -> usize {
        let d = self.hidden_size;
        let hd = self.head_dim();
        let q = self.num_attention_heads * hd;
        let kv = self.kv_heads() * hd;
        let mut attn = d * q + 2 * d * kv + q * d;
        if self.qkv_bias() {
            attn += q + 2 * kv;
        }
        if self.o_bias() {
            attn += d;
        }
        let mlp = 3 * d * self.intermediate_size;
        let block = attn + mlp + 2 * d;
        let emb = self.vocab_size * d;
        let head = if self.tie_word_embeddings { 0 } else { emb };
        emb + head + self.num_hidden_layers * block + d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_defaults_and_new_rope_format() {
        let p = Path::new("config.json");
        let c = ModelConfig::from_json_str(
            r#"{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 4, "vocab_size": 100, "eos_token_id": [7, 8],
                "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
                "some_unknown_field": {"x": 1}}"#,
            p,
        )
        .unwrap();
        assert_eq!(c.rope_theta, 500000.0);
        assert_eq!(c.kv_heads(), 4);
        assert_eq!(c.head_dim(), 16);
        assert!(c.qkv_bias() && !c.o_bias());
        assert_eq!(c.eos_token_id, Some(7));
        let llama = ModelConfig::from_json_str(
            r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 3,
                "vocab_size": 100}"#,
            p,
        )
        .unwrap_err();
        assert!(llama.to_string().contains("num_key_value_heads"), "{llama}");
    }
}
