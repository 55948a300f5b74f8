//! The burn model as a [`LogitsSource`], the Hugging Face tokenizer as the prompt encoder,
//! and loading a model folder (config.json, safetensors, tokenizer.json) into an [`Engine`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ward_model::{Device, Int, Model, Tensor, TensorData};
use ward_policy::CompiledPolicy;

use crate::certificate::{sha256_hex, ModelInfo};
use crate::error::{Result, SamplerError};
use crate::session::{Engine, SpecialTokens, TextEncoder};
use crate::source::LogitsSource;

/// The model as a logits source. Positions past the model's trained length are served from
/// a window of `max_position_embeddings` tokens around them; Dream-family checkpoints
/// (shifted logits) read position `i`'s prediction from the output at `i − 1`.
#[derive(Debug)]
pub struct ModelSource {
    model: Model,
    shift: bool,
    window: usize,
}

impl ModelSource {
    /// Wraps a loaded model (the shift convention from its config).
    pub fn new(model: Model) -> Self {
        let shift = model.config().shifted_logits();
        let window = model.config().max_position_embeddings.max(2);
        ModelSource {
            model,
            shift,
            window,
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Whether logits are read shifted by one (Dream family).
    pub fn shifted(&self) -> bool {
        self.shift
    }

    /// Overrides the context window (tests).
    pub fn set_window(&mut self, window: usize) {
        self.window = window.max(2);
    }

    /// Logits at `positions` (absolute) from one pass over `ids[start..start + len]`.
    fn pass(&self, ids: &[u32], start: usize, positions: &[usize]) -> Result<Vec<f32>> {
        let net = self.model.net();
        let t = self
            .model
            .ids_tensor(&[ids.to_vec()])
            .map_err(|e| SamplerError::Source(e.to_string()))?;
        let h = net.hidden(t);
        let idx: Vec<i64> = positions
            .iter()
            .map(|&p| {
                let q = if self.shift { p.saturating_sub(1) } else { p };
                (q - start) as i64
            })
            .collect();
        let sel = Tensor::<1, Int>::from_data(
            TensorData::new(idx, [positions.len()]),
            self.model.device(),
        );
        let out = net.head(h.select(1, sel));
        out.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| SamplerError::Source(format!("reading logits: {e:?}")))
    }
}

impl LogitsSource for ModelSource {
    fn vocab_size(&self) -> usize {
        self.model.config().vocab_size
    }

    fn logits(&mut self, ids: &[u32], positions: &[usize]) -> Result<Vec<f32>> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(&p) = positions.iter().find(|&&p| p >= ids.len()) {
            return Err(SamplerError::Source(format!(
                "position {p} is outside the canvas of {} tokens",
                ids.len()
            )));
        }
        let n = ids.len();
        let w = self.window;
        if n <= w {
            return self.pass(ids, 0, positions);
        }
        // Windows of w tokens, each serving a run of positions that fits in it.
        let v = self.vocab_size();
        let mut out = vec![0.0f32; positions.len() * v];
        let mut order: Vec<usize> = (0..positions.len()).collect();
        order.sort_by_key(|&k| positions[k]);
        let mut k = 0;
        while k < order.len() {
            let first = positions[order[k]].saturating_sub(self.shift as usize);
            let mut j = k;
            while j + 1 < order.len() && positions[order[j + 1]] - first < w / 2 {
                j += 1;
            }
            let last = positions[order[j]];
            let span = last + 1 - first;
            let start = first.saturating_sub((w - span) / 2).min(n - w);
            let chunk: Vec<usize> = order[k..=j].iter().map(|&o| positions[o]).collect();
            let part = self.pass(&ids[start..start + w], start, &chunk)?;
            for (r, &o) in order[k..=j].iter().enumerate() {
                out[o * v..(o + 1) * v].copy_from_slice(&part[r * v..(r + 1) * v]);
            }
            k = j + 1;
        }
        Ok(out)
    }
}

/// The Hugging Face tokenizer as a prompt encoder.
impl TextEncoder for tokenizers::Tokenizer {
    fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        ward_model::tokenizer::encode(self, text).map_err(|e| e.to_string())
    }
}

/// A model folder loaded for generation.
pub struct LoadedModel {
    /// The logits source.
    pub source: ModelSource,
    /// The tokenizer (prompt encoder).
    pub tokenizer: tokenizers::Tokenizer,
    /// The vocabulary as the guard sees it (bytes of every token).
    pub vocab: Arc<ward_guard::Vocab>,
    /// Mask and end ids.
    pub special: SpecialTokens,
    /// Name, digest, vocabulary size.
    pub info: ModelInfo,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("info", &self.info)
            .finish()
    }
}

impl LoadedModel {
    /// Loads `config.json`, the safetensors weights and `tokenizer.json` of `dir` onto
    /// `device`, checks that they fit together, and finds the mask and end ids (config first,
    /// then the tokenizer's `[MASK]` / `<|mask|>` and `<|endoftext|>` / `</s>`).
    pub fn load(dir: &Path, device: &Device) -> Result<LoadedModel> {
        let err = |e: ward_model::Error| SamplerError::Source(e.to_string());
        let cfg_path = dir.join(ward_model::CONFIG_FILE);
        let cfg_bytes = std::fs::read(&cfg_path)
            .map_err(|e| SamplerError::Source(format!("{}: {e}", cfg_path.display())))?;
        let model = Model::load(dir, device).map_err(err)?;
        let tok_path = dir.join(ward_model::TOKENIZER_FILE);
        let tokenizer =
            ward_model::tokenizer::load_tokenizer_for(&tok_path, model.config()).map_err(err)?;
        let json = std::fs::read_to_string(&tok_path)
            .map_err(|e| SamplerError::Tokens(format!("{}: {e}", tok_path.display())))?;
        let weights = weight_files(dir);
        let mut parts: Vec<Vec<u8>> = vec![cfg_bytes];
        for w in &weights {
            parts.push(
                std::fs::read(w)
                    .map_err(|e| SamplerError::Source(format!("{}: {e}", w.display())))?,
            );
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Self::assemble(model, tokenizer, &json, &tok_path, name, sha256_hex(&refs))
    }

    /// The guard's vocabulary and the special ids from `tokenizer.json`, and the whole.
    fn assemble(
        model: Model,
        tokenizer: tokenizers::Tokenizer,
        json: &str,
        tok_path: &Path,
        name: String,
        digest: String,
    ) -> Result<LoadedModel> {
        let vocab = ward_guard::vocab::from_tokenizer_json(json)
            .map_err(|e| SamplerError::Tokens(format!("{}: {e}", tok_path.display())))?;
        let special = special_tokens(model.config(), &vocab, tok_path)?;
        let info = ModelInfo {
            name,
            digest,
            vocab_size: model.config().vocab_size,
        };
        Ok(LoadedModel {
            source: ModelSource::new(model),
            tokenizer,
            vocab: Arc::new(vocab),
            special,
            info,
        })
    }

    /// Builds a model from bytes that the caller read (the browser passes them in; nothing is
    /// read from disk): `config.json`, one `model.safetensors`, `tokenizer.json`. `name`
    /// names the model in errors and in the certificate.
    pub fn from_bytes(
        name: &str,
        config: &[u8],
        weights: Vec<u8>,
        tokenizer_json: &[u8],
        device: &Device,
    ) -> Result<LoadedModel> {
        let err = |e: ward_model::Error| SamplerError::Source(e.to_string());
        let cfg_path = Path::new(name).join(ward_model::CONFIG_FILE);
        let text = std::str::from_utf8(config)
            .map_err(|e| SamplerError::Source(format!("{}: not UTF-8: {e}", cfg_path.display())))?;
        let cfg = ward_model::ModelConfig::from_json_str(text, &cfg_path).map_err(err)?;
        let digest = sha256_hex(&[config, &weights]);
        let wpath = Path::new(name).join("model.safetensors");
        let src = ward_model::weights::WeightSource::from_bytes(wpath, weights).map_err(err)?;
        let net = ward_model::weights::build_transformer(&cfg, src, device).map_err(err)?;
        let model = Model::new(cfg, net, device.clone());
        let tok_path = Path::new(name).join(ward_model::TOKENIZER_FILE);
        let tokenizer = tokenizers::Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| SamplerError::Tokens(format!("{}: {e}", tok_path.display())))?;
        let n = tokenizer.get_vocab_size(true);
        if n != model.config().vocab_size {
            return Err(SamplerError::Tokens(format!(
                "{}: the tokenizer has {n} tokens but config.json says vocab_size = {}",
                tok_path.display(),
                model.config().vocab_size
            )));
        }
        let json = std::str::from_utf8(tokenizer_json)
            .map_err(|e| SamplerError::Tokens(format!("{}: not UTF-8: {e}", tok_path.display())))?;
        Self::assemble(model, tokenizer, json, &tok_path, name.to_string(), digest)
    }

    /// An engine for this model enforcing `policy` (None: unconstrained).
    pub fn engine(&self, policy: Option<Arc<CompiledPolicy>>) -> Result<Engine> {
        Engine::new(self.vocab.clone(), policy, self.special, self.info.clone())
    }

    /// An engine for this model enforcing `tp` (a policy already lifted to this model's
    /// vocabulary, e.g. with its rows loaded from a lift artefact).
    pub fn engine_with(&self, tp: Arc<ward_guard::TokenPolicy>) -> Result<Engine> {
        Engine::with_token_policy(
            self.vocab.clone(),
            Some(tp.policy_arc()),
            Some(tp),
            self.special,
            self.info.clone(),
        )
    }
}

/// The safetensors files of a model folder, sorted.
fn weight_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Mask and end ids from the config, else from the tokenizer's special tokens.
pub fn special_tokens(
    cfg: &ward_model::ModelConfig,
    vocab: &ward_guard::Vocab,
    tok_path: &Path,
) -> Result<SpecialTokens> {
    let find = |names: &[&str]| names.iter().find_map(|n| vocab.special_token(n));
    let mask = cfg
        .mask_token_id
        .or_else(|| find(&["[MASK]", "<|mask|>", "<mask>", "<|mdm_mask|>"]))
        .ok_or_else(|| {
            SamplerError::Tokens(format!(
                "{}: no mask token (set mask_token_id in config.json or add a `[MASK]` token)",
                tok_path.display()
            ))
        })?;
    let eos = cfg
        .eos_token_id
        .or_else(|| find(&["<|endoftext|>", "</s>", "<|eot_id|>", "<eos>"]));
    let eos =
        eos.filter(|&e| vocab.kind(e) == ward_guard::TokenKind::End || (e as usize) >= vocab.len());
    if let Some(e) = eos {
        if e as usize >= vocab.len() {
            return Err(SamplerError::Tokens(format!(
                "{}: eos_token_id {e} is outside the tokenizer's {} tokens",
                tok_path.display(),
                vocab.len()
            )));
        }
    }
    if mask as usize >= vocab.len() {
        return Err(SamplerError::Tokens(format!(
            "{}: mask_token_id {mask} is outside the tokenizer's {} tokens",
            tok_path.display(),
            vocab.len()
        )));
    }
    Ok(SpecialTokens { mask, eos })
}

/// A held-out infill request: `context` tokens of a file, a hole, `context` tokens.
#[derive(Clone, Debug)]
pub struct InfillSnippet {
    /// The prompt, with the hole written `<|hole:N|>`.
    pub prompt: String,
    /// The hole's original tokens.
    pub target: Vec<u32>,
}

/// `n` seeded infill snippets from `files` (sorted first, so the set depends only on the
/// files and `seed`): a random file, a random window of `2 · context + hole` tokens in it,
/// its middle `hole` tokens as the hole. Files shorter than the window (plus 8) and windows
/// whose text already holds `<|hole:` are skipped; at most `50 · n` draws, so fewer than `n`
/// come back when the files are too short. Errors name the file that cannot be read or
/// encoded.
pub fn infill_snippets(
    loaded: &LoadedModel,
    files: &[PathBuf],
    n: usize,
    context: usize,
    hole: usize,
    seed: u64,
) -> std::result::Result<Vec<InfillSnippet>, String> {
    if files.is_empty() {
        return Err("no files to draw infill snippets from".into());
    }
    let mut files = files.to_vec();
    files.sort();
    let mut rng = crate::Rng::new(seed);
    let need = 2 * context + hole;
    let mut out = Vec::new();
    let mut tries = 0;
    while out.len() < n && tries < 50 * n {
        tries += 1;
        let f = &files[rng.below(files.len())];
        let text = ward_model::corpus::read_text(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let ids = ward_model::tokenizer::encode(&loaded.tokenizer, &text)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        if ids.len() < need + 8 {
            continue;
        }
        let s = rng.below(ids.len() - need);
        let dec = |t: &[u32]| String::from_utf8_lossy(&loaded.vocab.decode(t)).into_owned();
        let (p, x) = (
            dec(&ids[s..s + context]),
            dec(&ids[s + context + hole..s + need]),
        );
        if p.contains("<|hole:") || x.contains("<|hole:") {
            continue;
        }
        out.push(InfillSnippet {
            prompt: format!("{p}<|hole:{hole}|>{x}"),
            target: ids[s + context..s + context + hole].to_vec(),
        });
    }
    Ok(out)
}
