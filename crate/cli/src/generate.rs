//! `ward generate`: guarded generation with the default (or a given) model, the certificate
//! as JSON and SARIF; `ward bench generate`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use ward_sampler::model::LoadedModel;
use ward_sampler::{GenerateRequest, LogitsSource, OracleSource, SamplerError, Strategy};

/// Output formats of `ward generate`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum GenFormat {
    /// Exactly the finished text on stdout (progress and a summary on stderr).
    Text,
    /// One JSON object per line: the start event, every step event, then the result with the
    /// certificate.
    Json,
}

/// Arguments of `ward generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Model folder (config.json, model.safetensors, tokenizer.json); default:
    /// models/ward-tiny-code.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Policy pack to enforce (repeat to combine packs); default: policies/python.
    #[arg(long = "policy", value_name = "PACK")]
    policy: Vec<PathBuf>,
    /// Generate without enforcing a policy (the text is still re-scanned with the policy).
    #[arg(long)]
    no_policy: bool,
    /// The prompt; `<|hole:N|>` is a hole of N tokens (an infill hole may end early, see
    /// `--exact-holes`). Without a hole, `--max-new` tokens are generated after it.
    #[arg(long, value_name = "TEXT", conflicts_with = "prompt_file")]
    prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(long, value_name = "FILE")]
    prompt_file: Option<PathBuf>,
    /// Denoising steps (default: one per two hole tokens).
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// low_confidence | entropy | margin | random | threshold.
    #[arg(long, default_value = "low_confidence", value_name = "S")]
    strategy: String,
    /// Confidence threshold of the `threshold` strategy.
    #[arg(long, default_value_t = 0.9, value_name = "X")]
    threshold: f32,
    /// Block length for semi-autoregressive decoding (0: one block).
    #[arg(long, default_value_t = 0, value_name = "N")]
    block: usize,
    /// Seed.
    #[arg(long, default_value_t = 0, value_name = "S")]
    seed: u64,
    /// Sampling temperature (0: most likely allowed token).
    #[arg(long, default_value_t = 0.0, value_name = "T")]
    temperature: f32,
    /// Top-k filtering when sampling (0: off).
    #[arg(long, default_value_t = 0, value_name = "K")]
    top_k: usize,
    /// Top-p (nucleus) filtering when sampling (1: off).
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    top_p: f32,
    /// Tokens to generate after a prompt without holes.
    #[arg(long, default_value_t = 64, value_name = "N")]
    max_new: usize,
    /// Let holes end the text in the guard (`GuardConfig::end_in_holes`; default off, see
    /// crate/sampler/README.md).
    #[arg(long)]
    end_in_holes: bool,
    /// Fill every infill hole `<|hole:N|>` with exactly N tokens (default: a hole followed by
    /// more prompt text may end early, when the model ends it with the end token).
    #[arg(long)]
    exact_holes: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: GenFormat,
    /// Write the certificate (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    certificate: Option<PathBuf>,
    /// Write the certificate as SARIF 2.1.0 to this file.
    #[arg(long, value_name = "FILE")]
    sarif: Option<PathBuf>,
    /// Backend: flex (CPU) or wgpu (build with --features wgpu).
    #[arg(long, default_value = "flex", value_name = "B")]
    backend: String,
    /// Oracle adversary (security evaluation): the logits always prefer the tokens of this
    /// file's text in the holes, in order (then the end token).
    #[arg(long, value_name = "FILE")]
    oracle_file: Option<PathBuf>,
    /// A cache of the policy's token rows for this model (a lift artefact): loaded from FILE
    /// when it fits this policy and tokenizer, otherwise the rows are built and written to
    /// FILE (seconds saved per run for a large vocabulary).
    #[arg(long, value_name = "FILE")]
    lift_rows: Option<PathBuf>,
}

/// The engine, with the token rows from (or written to) the lift-artefact cache `file`.
fn engine_with_rows(
    loaded: &LoadedModel,
    policy: Arc<ward_policy::CompiledPolicy>,
    file: &std::path::Path,
) -> Result<ward_sampler::Engine, String> {
    let tp = ward_guard::TokenPolicy::new(policy, loaded.vocab.clone());
    let why = match std::fs::read(file) {
        Ok(bytes) => match tp.load_rows_artefact(&bytes) {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("not there yet".to_string()),
        Err(e) => return Err(format!("--lift-rows {}: {e}", file.display())),
    };
    if let Some(why) = why {
        tp.prefill(0);
        std::fs::write(file, tp.rows_artefact())
            .map_err(|e| format!("--lift-rows {}: {e}", file.display()))?;
        eprintln!(
            "ward: built the token rows and wrote them to {} ({why})",
            file.display()
        );
    }
    loaded.engine_with(Arc::new(tp)).map_err(|e| e.to_string())
}

/// Loads the model of `dir` (default model when None) on `backend`.
pub(crate) fn load_model(dir: Option<&PathBuf>, backend: &str) -> Result<LoadedModel, String> {
    let device = ward_model::bench::device_for(backend).map_err(|e| e.to_string())?;
    let dir = match dir {
        Some(d) => d.clone(),
        None => ward_model::default_model_dir().map_err(|e| e.to_string())?,
    };
    if !dir.is_dir() {
        return Err(format!("model folder {} does not exist", dir.display()));
    }
    LoadedModel::load(&dir, &device).map_err(|e| format!("model {}: {e}", dir.display()))
}

/// Run `ward generate`. Exit 0 done, 2 bad input, 3 the certificate shows a violation of an
/// enforced rule (a bug).
pub fn run_generate(a: &GenerateArgs) -> Result<u8, String> {
    let prompt = match (&a.prompt, &a.prompt_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).map_err(|e| format!("--prompt-file {}: {e}", f.display()))?
        }
        (None, None) => return Err("give --prompt TEXT or --prompt-file FILE".into()),
    };
    let strategy = Strategy::parse(&a.strategy).ok_or_else(|| {
        format!(
            "--strategy {}: expected one of low_confidence, entropy, margin, random, threshold",
            a.strategy
        )
    })?;
    let req = GenerateRequest {
        prompt,
        max_new: a.max_new,
        steps: a.steps,
        strategy,
        threshold: a.threshold,
        block: a.block,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        seed: a.seed,
        enforce: !a.no_policy,
        end_in_holes: a.end_in_holes,
        early_end: !a.exact_holes,
        ..Default::default()
    };
    req.validate().map_err(|e| e.to_string())?;
    let oracle_text = match &a.oracle_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("--oracle-file {}: {e}", f.display()))?,
        ),
        None => None,
    };
    let policy = Arc::new(crate::check::compile(&a.policy)?);
    let mut loaded = load_model(a.model.as_ref(), &a.backend)?;
    let engine = match &a.lift_rows {
        Some(file) => engine_with_rows(&loaded, policy.clone(), file)?,
        None => loaded
            .engine(Some(policy.clone()))
            .map_err(|e| e.to_string())?,
    };
    // Without an oracle, the first forward pass runs while the guard is built (the oracle's
    // targets come from the start event, so with one the guard is built first).
    let (mut session, start) = match &oracle_text {
        None => engine.start_with_first_pass(&req, &loaded.tokenizer, &mut loaded.source),
        Some(_) => engine.start(&req, &loaded.tokenizer),
    }
    .map_err(|e| e.to_string())?;
    let json = a.format == GenFormat::Json;
    let mut out = std::io::stdout().lock();
    let line = |out: &mut std::io::StdoutLock<'_>, v: &dyn erased::Ser| -> Result<(), String> {
        let s = v.json();
        writeln!(out, "{s}").map_err(|e| format!("writing stdout: {e}"))
    };
    if json {
        line(&mut out, &start)?;
    }
    let mut source: Box<dyn LogitsSource + '_> = match &oracle_text {
        Some(t) => {
            let ids =
                ward_model::tokenizer::encode(&loaded.tokenizer, t).map_err(|e| e.to_string())?;
            let mut target = vec![None; start.canvas.len()];
            let mut it = ids.into_iter();
            for &h in &start.holes {
                target[h] = Some(
                    it.next()
                        .or(engine.special().eos)
                        .unwrap_or(engine.special().mask),
                );
            }
            Box::new(OracleSource::new(&mut loaded.source, target))
        }
        None => Box::new(&mut loaded.source),
    };
    let planned = start.steps.max(1);
    let tty = std::io::stderr().is_terminal() && !json;
    loop {
        let ev = match session.step(source.as_mut()) {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        };
        if json {
            line(&mut out, &ev)?;
        }
        if tty {
            let done = start.holes.len() - ev.open;
            let w = 30;
            let fill = (done * w) / start.holes.len().max(1);
            eprint!(
                "\r[{}{}] step {}/{planned} {done}/{} tokens",
                "#".repeat(fill),
                ".".repeat(w - fill),
                ev.step + 1,
                start.holes.len()
            );
        }
    }
    drop(source);
    if tty {
        eprintln!();
    }
    let result = session.result().map_err(|e| e.to_string())?;
    let cert = &result.certificate;
    if let Some(f) = &a.certificate {
        std::fs::write(
            f,
            serde_json::to_string_pretty(cert).unwrap_or_default() + "\n",
        )
        .map_err(|e| format!("--certificate {}: {e}", f.display()))?;
    }
    if let Some(f) = &a.sarif {
        let s = cert.to_sarif(&policy, &result.bytes, "generated.py");
        std::fs::write(
            f,
            serde_json::to_string_pretty(&s).unwrap_or_default() + "\n",
        )
        .map_err(|e| format!("--sarif {}: {e}", f.display()))?;
    }
    if json {
        line(&mut out, &result)?;
    } else {
        out.write_all(&result.bytes)
            .and_then(|_| out.flush())
            .map_err(|e| format!("writing stdout: {e}"))?;
    }
    let by_rule: Vec<String> = cert
        .policy
        .iter()
        .flat_map(|p| &p.enforced_rules)
        .filter(|r| r.blocked_candidates > 0)
        .map(|r| format!("{} ×{}", r.id, r.blocked_candidates))
        .collect();
    eprintln!(
        "ward: {} tokens, {} steps, {} blocked candidates{}, {} remasks, {} findings ({} enforced), {:.0} ms ({:.0} ms model, {:.1} ms guard){}",
        result.tokens,
        result.steps,
        result.blocked_candidates,
        if by_rule.is_empty() { String::new() } else { format!(" [{}]", by_rule.join(", ")) },
        result.remasks,
        cert.findings.len(),
        cert.enforced_findings,
        result.timings.total_ms,
        result.timings.model_ms,
        result.timings.guard_ms,
        if cert.policy.is_none() { ", policy NOT enforced" } else { "" },
    );
    if cert.is_violated() {
        let e = SamplerError::CertificateViolation(format!("{:?}", cert.findings));
        eprintln!("ward: {e}");
        return Ok(3);
    }
    Ok(0)
}

/// Serialisation without naming the type (for the line writer).
mod erased {
    /// A serialisable value.
    pub trait Ser {
        /// Compact JSON.
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}
