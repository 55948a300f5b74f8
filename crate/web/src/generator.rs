//! The generator (feature `model`), free of JavaScript types: the model, its tokenizer and
//! the sampler, loaded from bytes; step-wise generation; the certificate.
//!
//! On the CPU (burn-flex) a step is the sampler's own step with the model as its logits
//! source, exactly as `ward generate` runs natively. On WebGPU the logits must be read back
//! asynchronously (a browser cannot block on the GPU), so a step is split in two: the logits
//! of every open hole are computed and read with `await` ([`forward_async`]), then the
//! sampler's step runs over those precomputed rows ([`Precomputed`]).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use ward_model::{Device, Model};
use ward_policy::CompiledPolicy;
use ward_sampler::certificate::sha256_hex;
use ward_sampler::model::{special_tokens, LoadedModel, ModelSource};
use ward_sampler::{
    Engine, GenerateRequest, GenerationResult, LogitsSource, ModelInfo, OracleSource, SamplerError,
    Session, StartEvent, StepEvent,
};

use crate::clock;
use crate::error::{Kind, Result, WebError};

/// The backend a generator runs on, as reported to JavaScript.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BackendReport {
    /// `"webgpu"` or `"cpu"`.
    pub backend: String,
    /// The WebGPU adapter's name (None on the CPU).
    pub adapter: Option<String>,
    /// Why `auto` fell back to the CPU, when it did.
    pub reason: Option<String>,
}

/// SamplerError → WebError with the kind and location fields.
pub fn sampler_error(e: SamplerError) -> WebError {
    let message = e.to_string();
    match e {
        SamplerError::Prompt { offset, .. } => WebError {
            span: Some((offset, offset)),
            ..WebError::new(Kind::Prompt, message)
        },
        SamplerError::Request { .. } => WebError::new(Kind::Request, message),
        SamplerError::PromptViolates {
            rule_id,
            start,
            end,
            ..
        } => WebError {
            rule: Some(rule_id.clone()),
            rule_ids: vec![rule_id],
            span: Some((start, end)),
            ..WebError::new(Kind::PromptViolates, message)
        },
        SamplerError::Guard(_) => WebError::new(Kind::Guard, message),
        SamplerError::Source(_) => WebError::new(Kind::Model, message),
        SamplerError::Tokens(_) => WebError::new(Kind::Tokenizer, message),
        SamplerError::Stuck { rule_ids, .. } => WebError {
            rule_ids,
            ..WebError::new(Kind::Conflict, message)
        },
        SamplerError::Cancelled => WebError::new(Kind::Cancelled, message),
        SamplerError::CertificateViolation(_) => WebError::new(Kind::Certificate, message),
        _ => WebError::new(Kind::Model, message),
    }
}

fn model_error(e: ward_model::Error) -> WebError {
    WebError::new(Kind::Model, format!("model: {e}"))
}

/// Loads `config.json`, `model.safetensors` and `tokenizer.json` from bytes onto `device`
/// and checks that they fit together (the in-memory twin of `LoadedModel::load`). `name`
/// goes into the certificate, with `digest` (`sha256_hex(&[config, weights])`) when the caller
/// has it already (the browser's SubtleCrypto computes it ten times faster than wasm on a
/// cold page), else it is computed here.
pub fn load_model(
    config: &[u8],
    weights: Vec<u8>,
    tokenizer: &[u8],
    name: &str,
    device: &Device,
    digest: Option<String>,
) -> Result<LoadedModel> {
    let cfg_text = std::str::from_utf8(config)
        .map_err(|e| WebError::new(Kind::Model, format!("config.json: not UTF-8: {e}")))?;
    let cfg = ward_model::ModelConfig::from_json_str(cfg_text, std::path::Path::new("config.json"))
        .map_err(model_error)?;
    let tok_text = std::str::from_utf8(tokenizer)
        .map_err(|e| WebError::new(Kind::Tokenizer, format!("tokenizer.json: not UTF-8: {e}")))?;
    let tok: tokenizers::Tokenizer = tok_text
        .parse()
        .map_err(|e| WebError::new(Kind::Tokenizer, format!("tokenizer.json: {e}")))?;
    let n = tok.get_vocab_size(true);
    if n != cfg.vocab_size {
        return Err(WebError::new(
            Kind::Tokenizer,
            format!(
                "tokenizer.json: the tokenizer has {n} tokens but config.json says vocab_size = {}",
                cfg.vocab_size
            ),
        ));
    }
    let vocab = ward_guard::vocab::from_tokenizer_json(tok_text)
        .map_err(|e| WebError::new(Kind::Tokenizer, format!("tokenizer.json: {e}")))?;
    let special = special_tokens(&cfg, &vocab, std::path::Path::new("tokenizer.json"))
        .map_err(sampler_error)?;
    let digest = digest.unwrap_or_else(|| sha256_hex(&[config, &weights]));
    let src =
        ward_model::weights::WeightSource::from_bytes(PathBuf::from("model.safetensors"), weights)
            .map_err(model_error)?;
    let net = ward_model::weights::build_transformer(&cfg, src, device).map_err(model_error)?;
    let info = ModelInfo {
        name: name.to_string(),
        digest,
        vocab_size: cfg.vocab_size,
    };
    let model = Model::new(cfg, net, device.clone());
    Ok(LoadedModel {
        source: ModelSource::new(model),
        tokenizer: tok,
        vocab: Arc::new(vocab),
        special,
        info,
    })
}

/// Logits computed ahead of a step (WebGPU), served to the sampler's step.
pub struct Precomputed {
    ids: Vec<u32>,
    positions: Vec<usize>,
    rows: Vec<f32>,
    vocab: usize,
}

impl LogitsSource for Precomputed {
    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn logits(&mut self, ids: &[u32], positions: &[usize]) -> ward_sampler::Result<Vec<f32>> {
        if ids != self.ids.as_slice() {
            return Err(SamplerError::Source(
                "the canvas changed between the forward pass and the step (a bug)".into(),
            ));
        }
        let mut out = Vec::with_capacity(positions.len() * self.vocab);
        for p in positions {
            let r = self.positions.iter().position(|q| q == p).ok_or_else(|| {
                SamplerError::Source(format!("no precomputed logits for position {p} (a bug)"))
            })?;
            out.extend_from_slice(&self.rows[r * self.vocab..(r + 1) * self.vocab]);
        }
        Ok(out)
    }
}

/// The logits of `positions` over the canvas `ids`, read back asynchronously (for WebGPU;
/// the same computation as the sampler's `ModelSource` for a canvas that fits the model's
/// window).
pub async fn forward_async(model: &Model, ids: &[u32], positions: &[usize]) -> Result<Vec<f32>> {
    let window = model.config().max_position_embeddings.max(2);
    if ids.len() > window {
        return Err(WebError::new(
            Kind::Request,
            format!(
                "the canvas has {} tokens, more than the model's window of {window}; on WebGPU \
                 longer canvases are not supported yet (use the CPU backend or a smaller max_new)",
                ids.len()
            ),
        ));
    }
    let shift = model.config().shifted_logits();
    let net = model.net();
    let t = model.ids_tensor(&[ids.to_vec()]).map_err(model_error)?;
    // The LM head runs over every position, not just the open ones: the number of open
    // positions shrinks each step, and on WebGPU each new tensor shape compiles new shader
    // pipelines (seconds each on SwiftShader), while the canvas length stays fixed for the
    // whole generation. The rows wanted are picked after the read-back.
    let out = net.head(net.hidden(t));
    let vocab = model.config().vocab_size;
    let data = out
        .into_data_async()
        .await
        .map_err(|e| WebError::new(Kind::Model, format!("reading logits from the GPU: {e:?}")))?;
    let all = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| WebError::new(Kind::Model, format!("reading logits: {e:?}")))?;
    if all.len() != ids.len() * vocab {
        return Err(WebError::new(
            Kind::Model,
            format!(
                "the model gave {} logits for {} positions of {vocab}",
                all.len(),
                ids.len()
            ),
        ));
    }
    let mut rows = Vec::with_capacity(positions.len() * vocab);
    for &p in positions {
        let r = if shift { p.saturating_sub(1) } else { p };
        rows.extend_from_slice(&all[r * vocab..(r + 1) * vocab]);
    }
    Ok(rows)
}

/// A loaded model with its generation state.
pub struct GeneratorCore {
    /// The model, tokenizer and vocabulary.
    pub loaded: LoadedModel,
    /// Where it runs.
    pub backend: BackendReport,
    engine: Option<(Option<Arc<CompiledPolicy>>, Engine)>,
    session: Option<Session>,
    /// The oracle adversary's preferred token per canvas position, when one was given.
    oracle: Option<Vec<Option<u32>>>,
    cancelled: bool,
    policy: Option<Arc<CompiledPolicy>>,
    result: Option<GenerationResult>,
}

impl GeneratorCore {
    /// Wraps a loaded model.
    pub fn new(loaded: LoadedModel, backend: BackendReport) -> GeneratorCore {
        GeneratorCore {
            loaded,
            backend,
            engine: None,
            session: None,
            oracle: None,
            cancelled: false,
            policy: None,
            result: None,
        }
    }

    /// The engine for `policy` (lifted once per policy and kept).
    fn engine(&mut self, policy: Option<Arc<CompiledPolicy>>) -> Result<&Engine> {
        let same = match (&self.engine, &policy) {
            (Some((Some(a), _)), Some(b)) => Arc::ptr_eq(a, b),
            (Some((None, _)), None) => true,
            _ => false,
        };
        if !same {
            let mut e = self.loaded.engine(policy.clone()).map_err(sampler_error)?;
            e.set_clock(clock::now_ms);
            self.engine = Some((policy, e));
        }
        Ok(&self.engine.as_ref().expect("set above").1)
    }

    /// Builds the engine for `policy` and fills every module's token rows now (the work the
    /// first `start` with this policy would do: the lift), so that the first generation
    /// starts quickly. Returns the milliseconds it took.
    pub fn prepare(&mut self, policy: Option<Arc<CompiledPolicy>>) -> Result<f64> {
        let t0 = clock::now_ms();
        if let Some(tp) = self.engine(policy)?.token_policy() {
            tp.lift_reachable();
        }
        Ok(clock::now_ms() - t0)
    }

    /// Like [`GeneratorCore::prepare`], but the token rows come from a lift artefact
    /// (`ward compile-policy --lift-tokenizer … --lift-out …`) instead of being built. A lift
    /// artefact of another policy, compiler version or tokenizer, of another format version,
    /// or corrupt, is refused (`Kind::Artefact`, with the reason) and nothing is installed:
    /// the generator stays usable, and `prepare` or `start` still build the rows.
    pub fn prepare_with_rows(&mut self, policy: Arc<CompiledPolicy>, rows: &[u8]) -> Result<f64> {
        let t0 = clock::now_ms();
        if let Some(tp) = self.engine(Some(policy))?.token_policy() {
            tp.load_rows_artefact(rows)
                .map_err(|e| WebError::new(Kind::Artefact, e.to_string()))?;
        }
        Ok(clock::now_ms() - t0)
    }

    /// Starts a generation (a previous one is dropped). Enforcing needs a policy. `oracle`:
    /// hole-fill text whose tokens the model is made to prefer at the hole positions in
    /// order, then the end token (the oracle adversary, as `ward generate --oracle-file`).
    pub fn start(
        &mut self,
        policy: Option<Arc<CompiledPolicy>>,
        request: &GenerateRequest,
        oracle: Option<&str>,
    ) -> Result<StartEvent> {
        request.validate().map_err(sampler_error)?;
        if request.enforce && policy.is_none() {
            return Err(WebError::new(
                Kind::Request,
                "request.enforce is true but no policy was given (pass a Policy, or set enforce: false)",
            ));
        }
        self.session = None;
        self.cancelled = false;
        self.result = None;
        self.policy = policy.clone();
        let engine = self.engine(policy)?.clone();
        let (session, start) = engine
            .start(request, &self.loaded.tokenizer)
            .map_err(sampler_error)?;
        self.oracle = match oracle {
            None => None,
            Some(text) => {
                let ids = ward_model::tokenizer::encode(&self.loaded.tokenizer, text)
                    .map_err(|e| WebError::new(Kind::Tokenizer, format!("oracle: {e}")))?;
                let special = engine.special();
                let mut target = vec![None; start.canvas.len()];
                let mut it = ids.into_iter();
                for &h in &start.holes {
                    target[h] = Some(it.next().or(special.eos).unwrap_or(special.mask));
                }
                Some(target)
            }
        };
        self.session = Some(session);
        Ok(start)
    }

    fn session(&mut self) -> Result<&mut Session> {
        self.session
            .as_mut()
            .ok_or_else(|| WebError::new(Kind::Request, "no generation started (call start first)"))
    }

    /// What the next step's forward pass needs (WebGPU): the canvas and its open holes, or
    /// None when the generation is finished.
    pub fn plan(&mut self) -> Result<Option<(Vec<u32>, Vec<usize>)>> {
        let mask = self.loaded.special.mask;
        if self.cancelled {
            return Ok(None);
        }
        let s = self.session()?;
        if s.is_done() {
            return Ok(None);
        }
        let ids = s.model_ids().to_vec();
        let holes: Vec<usize> = (0..ids.len()).filter(|&p| ids[p] == mask).collect();
        Ok(Some((ids, holes)))
    }

    /// One step with logits computed ahead (`plan` then [`forward_async`]).
    /// `forward_ms`: the time the forward pass and read-back took (counted as model time).
    pub fn step_precomputed(
        &mut self,
        ids: Vec<u32>,
        positions: Vec<usize>,
        rows: Vec<f32>,
        forward_ms: f64,
    ) -> Result<Option<StepEvent>> {
        if self.cancelled {
            return Ok(None);
        }
        let vocab = self.loaded.info.vocab_size;
        let mut src = Precomputed {
            ids,
            positions,
            rows,
            vocab,
        };
        let oracle = self.oracle.clone();
        let s = self.session()?;
        s.add_model_ms(forward_ms);
        let mut ev = match oracle {
            Some(t) => s.step(&mut OracleSource::new(&mut src, t)),
            None => s.step(&mut src),
        }
        .map_err(sampler_error)?;
        if let Some(ev) = &mut ev {
            ev.model_ms += forward_ms;
        }
        self.finish_if_done(ev)
    }

    /// One step with the model as the sampler's logits source (the CPU backend; the same
    /// computation as `ward generate`).
    pub fn step_sync(&mut self) -> Result<Option<StepEvent>> {
        if self.cancelled {
            return Ok(None);
        }
        let s = self.session.as_mut().ok_or_else(|| {
            WebError::new(Kind::Request, "no generation started (call start first)")
        })?;
        let ev = match &self.oracle {
            Some(t) => s.step(&mut OracleSource::new(&mut self.loaded.source, t.clone())),
            None => s.step(&mut self.loaded.source),
        }
        .map_err(sampler_error)?;
        self.finish_if_done(ev)
    }

    fn finish_if_done(&mut self, ev: Option<StepEvent>) -> Result<Option<StepEvent>> {
        if ev.is_none() && self.result.is_none() {
            let r = self.session()?.result().map_err(sampler_error)?;
            self.result = Some(r);
        }
        Ok(ev)
    }

    /// Makes the result of a finished generation (nothing when it is not finished, was
    /// cancelled, or the result exists).
    pub fn finish(&mut self) -> Result<()> {
        if self.cancelled || self.result.is_some() {
            return Ok(());
        }
        if self.session.as_ref().is_some_and(|s| s.is_done()) {
            self.finish_if_done(None)?;
        }
        Ok(())
    }

    /// Cancels the generation in progress (later steps return None).
    pub fn cancel(&mut self) {
        if self.session.is_some() && self.result.is_none() {
            self.session = None;
            self.cancelled = true;
        }
    }

    /// The finished generation's result (text, timings, certificate).
    pub fn result(&self) -> Result<&GenerationResult> {
        self.result.as_ref().ok_or_else(|| {
            WebError::new(
                Kind::Request,
                "no finished generation (step until it returns undefined)",
            )
        })
    }

    /// The certificate as SARIF 2.1.0.
    pub fn sarif(&self) -> Result<Value> {
        let r = self.result()?;
        let policy = self.policy.as_ref().ok_or_else(|| {
            WebError::new(
                Kind::Request,
                "SARIF needs the policy the text was checked with",
            )
        })?;
        Ok(r.certificate.to_sarif(policy, &r.bytes, "generated.py"))
    }

    /// True when a generation is in progress.
    pub fn is_running(&self) -> bool {
        self.session.as_ref().is_some_and(|s| !s.is_done())
    }
}
