//! Safetensors loading and saving with the Hugging Face tensor names.
//!
//! A model folder holds either `model.safetensors` or shards listed in
//! `model.safetensors.index.json`. Tensors may be f32, f16 or bf16; they are converted to f32.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, Metadata, TensorView};
use safetensors::SafeTensors;

use crate::config::ModelConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{param, Attention, Block, Linear, Mlp, RmsNorm, Transformer};

/// Name of the single-file weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Name of the index of sharded weights.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

struct Shard {
    path: PathBuf,
    bytes: Vec<u8>,
    header_len: usize,
    meta: Metadata,
}

/// The tensors of one checkpoint (one file or several shards), read but not yet converted.
///
/// Each call to [`WeightSource::take`] converts one tensor and marks it as used; at the end,
/// [`WeightSource::finish`] reports any tensor that the model did not use.
pub struct WeightSource {
    shards: Vec<Shard>,
    /// name -> shard index
    names: BTreeMap<String, usize>,
    used: HashSet<String>,
}

impl WeightSource {
    /// Reads `model.safetensors`, or the shards listed in `model.safetensors.index.json`, from
    /// a model folder.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let single = dir.join(WEIGHTS_FILE);
        if single.exists() {
            return Self::open_files(&[single]);
        }
        let index = dir.join(INDEX_FILE);
        if !index.exists() {
            return Err(Error::invalid(format!(
                "{}: no {WEIGHTS_FILE} or {INDEX_FILE}",
                dir.display()
            )));
        }
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::from(ErrorKind::Safetensors {
                path: index.clone(),
                message: format!("invalid index JSON: {e}"),
            })
        })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                Error::from(ErrorKind::Safetensors {
                    path: index.clone(),
                    message: "no `weight_map` object".into(),
                })
            })?;
        let mut files: Vec<PathBuf> = Vec::new();
        for (name, file) in map {
            let file = file.as_str().ok_or_else(|| {
                Error::from(ErrorKind::Safetensors {
                    path: index.clone(),
                    message: format!("`weight_map.{name}` is not a file name"),
                })
            })?;
            let p = dir.join(file);
            if !files.contains(&p) {
                files.push(p);
            }
        }
        files.sort();
        let src = Self::open_files(&files)?;
        for name in map.keys() {
            if !src.names.contains_key(name) {
                return Err(ErrorKind::MissingTensor { name: name.clone() }.into());
            }
        }
        Ok(src)
    }

    /// Reads the given safetensors files (the shards of one checkpoint).
    pub fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::new();
        let mut names = BTreeMap::new();
        for path in paths {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let shard = Self::parse(path.clone(), bytes)?;
            for name in shard.meta.tensors().keys() {
                if names.insert(name.clone(), shards.len()).is_some() {
                    return Err(ErrorKind::Safetensors {
                        path: path.clone(),
                        message: format!("tensor `{name}` appears in more than one shard"),
                    }
                    .into());
                }
            }
            shards.push(shard);
        }
        Ok(WeightSource {
            shards,
            names,
            used: HashSet::new(),
        })
    }

    /// Parses one safetensors file held in memory.
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<Self> {
        let shard = Self::parse(path, bytes)?;
        let names = shard
            .meta
            .tensors()
            .keys()
            .map(|n| (n.clone(), 0))
            .collect();
        Ok(WeightSource {
            shards: vec![shard],
            names,
            used: HashSet::new(),
        })
    }

    fn parse(path: PathBuf, bytes: Vec<u8>) -> Result<Shard> {
        let (header_len, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            Error::from(ErrorKind::Safetensors {
                path: path.clone(),
                message: e.to_string(),
            })
        })?;
        Ok(Shard {
            path,
            bytes,
            header_len,
            meta,
        })
    }

    /// The free-form metadata of the first file, if any.
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.shards.first().and_then(|s| s.meta.metadata().as_ref())
    }

    /// Whether the checkpoint holds a tensor of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Converts one tensor to f32 and checks its shape.
    pub fn take_data(&mut self, name: &str, shape: &[usize]) -> Result<TensorData> {
        let &idx = self.names.get(name).ok_or_else(|| {
            Error::from(ErrorKind::MissingTensor {
                name: name.to_string(),
            })
        })?;
        let shard = &self.shards[idx];
        let info = shard.meta.info(name).expect("name is indexed");
        if info.shape != shape {
            return Err(ErrorKind::ShapeMismatch {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: info.shape.clone(),
            }
            .into());
        }
        let start = 8 + shard.header_len + info.data_offsets.0;
        let end = 8 + shard.header_len + info.data_offsets.1;
        let raw = &shard.bytes[start..end];
        let values: Vec<f32> = match info.dtype {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(ErrorKind::UnsupportedDtype {
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                }
                .into())
            }
        };
        self.used.insert(name.to_string());
        Ok(TensorData::new(values, shape.to_vec()))
    }

    /// Converts one tensor to f32, checks its shape and uploads it to `device` as a parameter.
    pub fn take<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Param<Tensor<D>>> {
        let data = self.take_data(name, &shape)?;
        Ok(param(Tensor::from_data(data, device)))
    }

    /// Marks a tensor as knowingly ignored (e.g. a tied `lm_head.weight`).
    pub fn ignore(&mut self, name: &str) {
        if self.names.contains_key(name) {
            self.used.insert(name.to_string());
        }
    }

    /// Errors if any tensor was not used, naming it and its file.
    pub fn finish(self) -> Result<()> {
        for (name, &idx) in &self.names {
            if !self.used.contains(name) && !name.ends_with("rotary_emb.inv_freq") {
                return Err(ErrorKind::UnexpectedTensor {
                    name: name.clone(),
                    path: self.shards[idx].path.clone(),
                }
                .into());
            }
        }
        Ok(())
    }
}

fn linear(
    src: &mut WeightSource,
    prefix: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    device: &Device,
) -> Result<Linear> {
    Ok(Linear {
        weight: src.take(&format!("{prefix}.weight"), [d_out, d_in], device)?,
        bias: if bias {
            Some(src.take(&format!("{prefix}.bias"), [d_out], device)?)
        } else {
            None
        },
    })
}

fn norm(src: &mut WeightSource, name: &str, cfg: &ModelConfig, device: &Device) -> Result<RmsNorm> {
    Ok(RmsNorm {
        weight: src.take(name, [cfg.hidden_size], device)?,
        eps: cfg.rms_norm_eps,
    })
}

/// Builds a [`Transformer`] from the tensors of a checkpoint, checking every name and shape
/// against the config. Missing, extra or misshapen tensors are errors naming the tensor.
pub fn build_transformer(
    cfg: &ModelConfig,
    mut src: WeightSource,
    device: &Device,
) -> Result<Transformer> {
    let d = cfg.hidden_size;
    let hd = cfg.head_dim();
    let q = cfg.num_attention_heads * hd;
    let kv = cfg.kv_heads() * hd;
    let ff = cfg.intermediate_size;
    let embed_tokens = src.take("model.embed_tokens.weight", [cfg.vocab_size, d], device)?;
    let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let qb = cfg.qkv_bias();
        layers.push(Block {
            input_layernorm: norm(
                &mut src,
                &format!("{p}.input_layernorm.weight"),
                cfg,
                device,
            )?,
            self_attn: Attention {
                q_proj: linear(&mut src, &format!("{p}.self_attn.q_proj"), d, q, qb, device)?,
                k_proj: linear(
                    &mut src,
                    &format!("{p}.self_attn.k_proj"),
                    d,
                    kv,
                    qb,
                    device,
                )?,
                v_proj: linear(
                    &mut src,
                    &format!("{p}.self_attn.v_proj"),
                    d,
                    kv,
                    qb,
                    device,
                )?,
                o_proj: linear(
                    &mut src,
                    &format!("{p}.self_attn.o_proj"),
                    q,
                    d,
                    cfg.o_bias(),
                    device,
                )?,
                n_heads: cfg.num_attention_heads,
                n_kv_heads: cfg.kv_heads(),
                head_dim: hd,
            },
            post_attention_layernorm: norm(
                &mut src,
                &format!("{p}.post_attention_layernorm.weight"),
                cfg,
                device,
            )?,
            mlp: Mlp {
                gate_proj: linear(
                    &mut src,
                    &format!("{p}.mlp.gate_proj"),
                    d,
                    ff,
                    false,
                    device,
                )?,
                up_proj: linear(&mut src, &format!("{p}.mlp.up_proj"), d, ff, false, device)?,
                down_proj: linear(
                    &mut src,
                    &format!("{p}.mlp.down_proj"),
                    ff,
                    d,
                    false,
                    device,
                )?,
            },
        });
    }
    let final_norm = norm(&mut src, "model.norm.weight", cfg, device)?;
    let lm_head = if cfg.tie_word_embeddings {
        // Some tied checkpoints still carry a copy of the embedding as the head.
        src.ignore("lm_head.weight");
        None
    } else {
        Some(src.take("lm_head.weight", [cfg.vocab_size, d], device)?)
    };
    src.finish()?;
    Ok(Transformer {
        embed_tokens,
        layers,
        norm: final_norm,
        lm_head,
        head_dim: hd,
        rope_theta: cfg.rope_theta,
    })
}

/// The parameters of a model under their Hugging Face names, as f32 data.
pub fn named_tensors(model: &Transformer) -> Vec<(String, TensorData)> {
    let mut v: Vec<(String, TensorData)> = Vec::new();
    let lin = |v: &mut Vec<(String, TensorData)>, prefix: String, l: &Linear| {
        v.push((format!("{prefix}.weight"), l.weight.val().into_data()));
        if let Some(b) = &l.bias {
            v.push((format!("{prefix}.bias"), b.val().into_data()));
        }
    };
    v.push((
        "model.embed_tokens.weight".into(),
        model.embed_tokens.val().into_data(),
    ));
    for (i, b) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        v.push((
            format!("{p}.input_layernorm.weight"),
            b.input_layernorm.weight.val().into_data(),
        ));
        v.push((
            format!("{p}.post_attention_layernorm.weight"),
            b.post_attention_layernorm.weight.val().into_data(),
        ));
        lin(&mut v, format!("{p}.self_attn.q_proj"), &b.self_attn.q_proj);
        lin(&mut v, format!("{p}.self_attn.k_proj"), &b.self_attn.k_proj);
        lin(&mut v, format!("{p}.self_attn.v_proj"), &b.self_attn.v_proj);
        lin(&mut v, format!("{p}.self_attn.o_proj"), &b.self_attn.o_proj);
        lin(&mut v, format!("{p}.mlp.gate_proj"), &b.mlp.gate_proj);
        lin(&mut v, format!("{p}.mlp.up_proj"), &b.mlp.up_proj);
        lin(&mut v, format!("{p}.mlp.down_proj"), &b.mlp.down_proj);
    }
    v.push((
        "model.norm.weight".into(),
        model.norm.weight.val().into_data(),
    ));
    if let Some(h) = &model.lm_head {
        v.push(("lm_head.weight".into(), h.val().into_data()));
    }
    v
}

/// Saves the parameters as one f32 safetensors file with the Hugging Face names.
pub fn save_safetensors(
    model: &Transformer,
    path: impl AsRef<Path>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let tensors = named_tensors(model);
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, data) in tensors {
        let shape = data.shape().to_vec();
        let values: Vec<f32> = data
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| Error::invalid(format!("tensor `{name}`: {e:?}")))?;
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        bufs.push((name, shape, bytes));
    }
    let views: Vec<(String, TensorView<'_>)> = bufs
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("consistent view"),
            )
        })
        .collect();
    // transformers refuses safetensors files without `format = pt`.
    let mut metadata = metadata.unwrap_or_default();
    metadata.insert("format".to_string(), "pt".to_string());
    safetensors::serialize_to_file(views, Some(metadata), path).map_err(|e| {
        Error::from(ErrorKind::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    })
}
