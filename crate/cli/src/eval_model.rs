//! `ward eval-model`: how well a model predicts a user's Python files.
//!
//! - masked-token accuracy and cross-entropy at each `--mask` rate, over windows of the model's
//!   sequence length (fixed seeded masks; see `ward_model::eval`);
//! - the share of short function-body infills that parse: bodies of 1 to `--infill-lines`
//!   non-blank lines (at most `--infill-max-tokens` tokens) are drawn with `--seed` from the
//!   files that parse, replaced by a hole of their own token length (which the model may end
//!   early unless `--infill-exact`), filled by the model with
//!   the sampler (no policy; `--infill-strategy`, `--infill-tokens-per-step`, `--infill-block`;
//!   greedy), and the file with the filled body is given to Python's
//!   `ast.parse` (`python3`, or `$WARD_PYTHON`).
//!
//! JSON keys (`--format json`): `model`, `model_digest`, `backend`, `seed`, `data` (`paths`,
//! `files`, `tokens`, `window`, `windows`), `masked` (one object per rate: `rate`, `accuracy`,
//! `cross_entropy`, `masked_tokens`), `infill` (`requested`, `candidates`, `measured`,
//! `parsed`, `parse_rate`, `exact`, `mean_hole_tokens`, `max_lines`, `max_tokens`, `strategy`,
//! `tokens_per_step`, `block`, `early_end`;
//! `null` with
//! `--infills 0`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::Args;
use serde::Serialize;
use ward_model::eval::{self, MaskedFigures};
use ward_sampler::{GenerateRequest, Rng};

/// Arguments of `ward eval-model`.
#[derive(Args, Debug)]
pub struct EvalModelArgs {
    /// Model folder (default: models/ward-tiny-code).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Python files, or folders searched for `*.py` (several allowed).
    #[arg(long, value_name = "PATH", num_args = 1.., required = true)]
    data: Vec<PathBuf>,
    /// Masking rates, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.15,0.5")]
    mask: Vec<f64>,
    /// Seed of the masks and of the infill choice and generation.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// At most this many windows (evenly spaced over the token stream).
    #[arg(long, default_value_t = 512)]
    max_windows: usize,
    /// Short function-body infills to measure (0: skip the parse check).
    #[arg(long, default_value_t = 64)]
    infills: usize,
    /// Most non-blank lines of an infilled body.
    #[arg(long, default_value_t = 4)]
    infill_lines: usize,
    /// Most tokens of an infilled body.
    #[arg(long, default_value_t = 48)]
    infill_max_tokens: usize,
    /// How the infills are decoded: low_confidence, entropy, margin, random or threshold.
    #[arg(long, default_value = "low_confidence")]
    infill_strategy: String,
    /// Hole tokens committed per denoising step in the infills (the sampler's default is 2;
    /// 1: one forward pass per token).
    #[arg(long, default_value_t = 2)]
    infill_tokens_per_step: usize,
    /// Block length of semi-autoregressive decoding in the infills (0: one block).
    #[arg(long, default_value_t = 0)]
    infill_block: usize,
    /// Fill each infill hole with exactly the original body's token count (default: the
    /// hole may end early, as `ward generate` lets it; see `--exact-holes` there).
    #[arg(long)]
    infill_exact: bool,
    /// Write each infill (file, original body, generated body, whether the file parses) to
    /// this file, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    infill_out: Option<PathBuf>,
    /// Backend: flex or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Output: text or json.
    #[arg(long, default_value = "text")]
    format: String,
}

/// The data measured.
#[derive(Debug, Serialize)]
pub struct DataFigures {
    /// The `--data` paths.
    pub paths: Vec<String>,
    /// Files read.
    pub files: usize,
    /// Tokens in the stream (with one end token per file).
    pub tokens: usize,
    /// Window length (the model's sequence length).
    pub window: usize,
    /// Windows measured.
    pub windows: usize,
}

/// The infill parse check.
#[derive(Debug, Serialize)]
pub struct InfillFigures {
    /// `--infills`.
    pub requested: usize,
    /// Short bodies found in the files that parse.
    pub candidates: usize,
    /// Infills generated.
    pub measured: usize,
    /// Of those, files that parse with the generated body.
    pub parsed: usize,
    /// `parsed / measured`.
    pub parse_rate: f64,
    /// Share of infills equal to the original body, byte for byte.
    pub exact: f64,
    /// Mean hole length in tokens.
    pub mean_hole_tokens: f64,
    /// `--infill-lines`.
    pub max_lines: usize,
    /// `--infill-max-tokens`.
    pub max_tokens: usize,
    /// `--infill-strategy`.
    pub strategy: String,
    /// `--infill-tokens-per-step`.
    pub tokens_per_step: usize,
    /// `--infill-block`.
    pub block: usize,
    /// False with `--infill-exact`: the holes may end early.
    pub early_end: bool,
}

/// The report of `ward eval-model`.
#[derive(Debug, Serialize)]
pub struct EvalModelReport {
    /// Model name (its folder).
    pub model: String,
    /// `sha256:` of its config and weights.
    pub model_digest: String,
    /// Backend.
    pub backend: String,
    /// `--seed`.
    pub seed: u64,
    /// What was measured.
    pub data: DataFigures,
    /// One entry per masking rate.
    pub masked: Vec<MaskedFigures>,
    /// The infill parse check (None with `--infills 0`).
    pub infill: Option<InfillFigures>,
}

const PARSE_SCRIPT: &str = r#"
import ast, json, sys, warnings
warnings.simplefilter("ignore")
out = []
for src in json.load(sys.stdin):
    try:
        ast.parse(src)
        out.append(True)
    except Exception:
        out.append(False)
json.dump(out, sys.stdout)
"#;

/// Whether each source parses with Python's `ast.parse`, in one `python3` process.
fn python_parses(sources: &[String]) -> Result<Vec<bool>, String> {
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let py = std::env::var("WARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let hint =
        "the infill parse check runs Python's ast.parse; set WARD_PYTHON or pass --infills 0";
    let mut child = Command::new(&py)
        .args(["-c", PARSE_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {py}: {e} ({hint})"))?;
    let input = serde_json::to_vec(sources).map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take().ok_or("python3: no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| format!("{py}: {e}"))?;
    writer
        .join()
        .map_err(|_| format!("{py}: writing the sources failed"))?
        .map_err(|e| format!("{py}: writing the sources: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{py} failed ({}): {} ({hint})",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: Vec<bool> =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{py}: unexpected output: {e}"))?;
    if v.len() != sources.len() {
        return Err(format!(
            "{py}: {} answers for {} sources",
            v.len(),
            sources.len()
        ));
    }
    Ok(v)
}

/// Keeps the last lines of `text` (whole lines) within `budget` tokens, or the first ones when
/// `from_end` is false.
fn trim_lines(
    tok: &ward_model::Tokenizer,
    text: &str,
    budget: usize,
    from_end: bool,
) -> Result<String, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut used = 0;
    let mut keep = 0;
    let order: Box<dyn Iterator<Item = &&str>> = if from_end {
        Box::new(lines.iter().rev())
    } else {
        Box::new(lines.iter())
    };
    for l in order {
        let n = ward_model::tokenizer::encode(tok, l)
            .map_err(|e| e.to_string())?
            .len();
        if used + n > budget {
            break;
        }
        used += n;
        keep += 1;
    }
    Ok(if from_end {
        lines[lines.len() - keep..].concat()
    } else {
        lines[..keep].concat()
    })
}

struct Candidate {
    file: usize,
    start: usize,
    end: usize,
    tokens: usize,
}

/// Runs the measurement.
pub fn eval_model(a: &EvalModelArgs) -> Result<EvalModelReport, String> {
    if !matches!(a.format.as_str(), "text" | "json") {
        return Err(format!("--format {}: expected text or json", a.format));
    }
    for &r in &a.mask {
        if !(r > 0.0 && r <= 1.0) {
            return Err(format!("--mask {r}: a masking rate is a number in (0, 1]"));
        }
    }
    infill_strategy(a)?;
    let files = eval::collect_files(&a.data).map_err(|e| format!("--data: {e}"))?;
    let texts = eval::read_files(&files).map_err(|e| format!("--data: {e}"))?;
    let mut loaded = crate::generate::load_model(a.model.as_ref(), &a.backend)?;
    let model = loaded.source.model();
    let window = model.config().max_position_embeddings.max(2);
    let eos = loaded
        .special
        .eos
        .ok_or("the model has no end-of-text token (eos_token_id), which separates the files")?;
    let refs: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    let stream = eval::token_stream(&loaded.tokenizer, &refs, eos).map_err(|e| e.to_string())?;
    let wins = eval::windows(&stream, window, a.max_windows);
    if wins.is_empty() || stream.len() <= texts.len() {
        return Err(format!(
            "--data {}: the files hold no text to measure",
            a.data
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut masked = Vec::new();
    for &r in &a.mask {
        masked.push(eval::masked_figures(model, &wins, r, a.seed, 8).map_err(|e| e.to_string())?);
    }

    let infill = if a.infills == 0 {
        None
    } else {
        Some(infills(a, &texts, &mut loaded, window)?)
    };
    Ok(EvalModelReport {
        model: loaded.info.name.clone(),
        model_digest: loaded.info.digest.clone(),
        backend: a.backend.clone(),
        seed: a.seed,
        data: DataFigures {
            paths: a.data.iter().map(|p| p.display().to_string()).collect(),
            files: texts.len(),
            tokens: stream.len(),
            window,
            windows: wins.len(),
        },
        masked,
        infill,
    })
}

/// The infills' strategy, with `--infill-tokens-per-step` checked.
fn infill_strategy(a: &EvalModelArgs) -> Result<ward_sampler::Strategy, String> {
    if a.infill_tokens_per_step == 0 {
        return Err("--infill-tokens-per-step 0: at least one token per step".into());
    }
    ward_sampler::Strategy::parse(&a.infill_strategy).ok_or_else(|| {
        format!(
            "--infill-strategy {}: expected one of low_confidence, entropy, margin, random, threshold",
            a.infill_strategy
        )
    })
}

fn infills(
    a: &EvalModelArgs,
    texts: &[(PathBuf, String)],
    loaded: &mut ward_sampler::model::LoadedModel,
    window: usize,
) -> Result<InfillFigures, String> {
    let parses = python_parses(&texts.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>())?;
    let mut cands = Vec::new();
    for (i, (_, text)) in texts.iter().enumerate() {
        if !parses[i] || text.contains("<|hole:") {
            continue;
        }
        for b in eval::short_function_bodies(text, a.infill_lines) {
            let n = ward_model::tokenizer::encode(&loaded.tokenizer, &text[b.start..b.end])
                .map_err(|e| e.to_string())?
                .len();
            if n >= 2 && n <= a.infill_max_tokens && n + 16 < window {
                cands.push(Candidate {
                    file: i,
                    start: b.start,
                    end: b.end,
                    tokens: n,
                });
            }
        }
    }
    // A seeded partial Fisher–Yates shuffle picks the measured bodies.
    let mut rng = Rng::new(a.seed);
    let take = a.infills.min(cands.len());
    for k in 0..take {
        let j = k + rng.below(cands.len() - k);
        cands.swap(k, j);
    }
    let strategy = infill_strategy(a)?;
    let engine = loaded.engine(None).map_err(|e| e.to_string())?;
    let (mut filled, mut exact, mut hole_tokens) = (Vec::new(), 0usize, 0usize);
    let mut fills = Vec::new();
    for (k, c) in cands.iter().take(take).enumerate() {
        let text = &texts[c.file].1;
        let room = window - c.tokens - 8;
        let prefix = trim_lines(&loaded.tokenizer, &text[..c.start], room * 2 / 3, true)?;
        let suffix = trim_lines(
            &loaded.tokenizer,
            &text[c.end..],
            room - room * 2 / 3,
            false,
        )?;
        let req = GenerateRequest {
            seed: a.seed.wrapping_add(k as u64),
            enforce: false,
            strategy,
            block: a.infill_block,
            early_end: !a.infill_exact,
            steps: Some(c.tokens.div_ceil(a.infill_tokens_per_step).max(1)),
            ..GenerateRequest::new(format!("{prefix}<|hole:{}|>{suffix}", c.tokens))
        };
        let (mut s, _) = engine
            .start(&req, &loaded.tokenizer)
            .map_err(|e| format!("infill {k} ({}): {e}", texts[c.file].0.display()))?;
        while s
            .step(&mut loaded.source)
            .map_err(|e| e.to_string())?
            .is_some()
        {}
        let r = s.result().map_err(|e| e.to_string())?;
        let fill = r.holes.first().cloned().unwrap_or_default();
        if fill == text[c.start..c.end] {
            exact += 1;
        }
        hole_tokens += c.tokens;
        filled.push(format!("{}{}{}", &text[..c.start], fill, &text[c.end..]));
        fills.push(fill);
    }
    let ok = python_parses(&filled)?;
    if let Some(out) = &a.infill_out {
        let mut lines = String::new();
        for (k, c) in cands.iter().take(take).enumerate() {
            let v = serde_json::json!({
                "file": texts[c.file].0.display().to_string(),
                "hole_tokens": c.tokens,
                "original": &texts[c.file].1[c.start..c.end],
                "generated": &fills[k],
                "parses": ok[k],
            });
            lines.push_str(&v.to_string());
            lines.push('\n');
        }
        std::fs::write(out, lines).map_err(|e| format!("--infill-out {}: {e}", out.display()))?;
    }
    let parsed = ok.iter().filter(|&&x| x).count();
    let n = filled.len();
    Ok(InfillFigures {
        requested: a.infills,
        candidates: cands.len(),
        measured: n,
        parsed,
        parse_rate: parsed as f64 / n.max(1) as f64,
        exact: exact as f64 / n.max(1) as f64,
        mean_hole_tokens: hole_tokens as f64 / n.max(1) as f64,
        max_lines: a.infill_lines,
        max_tokens: a.infill_max_tokens,
        strategy: strategy.as_str().to_string(),
        tokens_per_step: a.infill_tokens_per_step,
        block: a.infill_block,
        early_end: !a.infill_exact,
    })
}

/// Run `ward eval-model` (exit 0; bad input exits 2 through the caller).
pub fn run_eval_model(a: &EvalModelArgs) -> Result<u8, String> {
    let r = eval_model(a)?;
    if a.format == "json" {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(0);
    }
    println!(
        "ward eval-model — model {} ({}), backend {}",
        r.model, r.model_digest, r.backend
    );
    println!(
        "data: {} files, {} tokens, {} windows of {} tokens (seed {})",
        r.data.files, r.data.tokens, r.data.windows, r.data.window, r.seed
    );
    println!("| masked | accuracy | cross-entropy | masked tokens |");
    println!("|---|---|---|---|");
    for m in &r.masked {
        println!(
            "| {:.0} % | {:.4} | {:.4} | {} |",
            m.rate * 100.0,
            m.accuracy,
            m.cross_entropy,
            m.masked_tokens
        );
    }
    match &r.infill {
        Some(i) => println!(
            "short function-body infills that parse: {}/{} = {:.3} (exact {:.3}, mean hole {:.1} tokens, {} candidates, bodies of ≤ {} lines and ≤ {} tokens; {}, {} tokens per step, block {}, {})",
            i.parsed, i.measured, i.parse_rate, i.exact, i.mean_hole_tokens, i.candidates, i.max_lines, i.max_tokens, i.strategy, i.tokens_per_step, i.block,
            if i.early_end { "holes may end early" } else { "exact hole lengths" }
        ),
        None => println!("infill parse check skipped (--infills 0)"),
    }
    Ok(0)
}
