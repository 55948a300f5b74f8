//! `ward bench generate`: what guarded generation costs and keeps, measured with the default
//! model on the default backend.
//!
//! - guard overhead: wall(enforced) / wall(unconstrained) on the same requests, seeds and
//!   steps, interleaved;
//! - per strategy: tokens committed per forward pass, infill exact-token accuracy and mean
//!   log-likelihood of the committed tokens on held-out stdlib snippets (a fixed, seeded set);
//! - tokens per second end to end for 64 / 128 / 256 new tokens;
//! - the median guard time per committed token during real generation;
//! - `end_in_holes` both ways (guard cost and log-likelihood).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde::Serialize;
use ward_model::corpus::{self, Split};
use ward_sampler::model::{infill_snippets, InfillSnippet, LoadedModel};
use ward_sampler::{Engine, GenerateRequest, GenerationResult, Strategy};

/// Arguments of `ward bench generate`.
#[derive(Args, Debug)]
pub struct BenchGenerateArgs {
    /// Model folder (default: models/ward-tiny-code).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Policy pack (default: policies/python).
    #[arg(long = "policy", value_name = "PACK")]
    policy: Vec<PathBuf>,
    /// Backend: flex or wgpu.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Held-out snippets for the quality figures.
    #[arg(long, default_value_t = 8)]
    snippets: usize,
    /// Hole length of the infill snippets, in tokens.
    #[arg(long, default_value_t = 32)]
    hole: usize,
    /// Context on each side of the hole, in tokens.
    #[arg(long, default_value_t = 48)]
    context: usize,
    /// Python files or folders to draw the snippets from (default: the validation split of
    /// the standard library, by a hash of the path). Pass code the model has not trained on,
    /// e.g. the held-out packages of the default model's card (`/var/tmp/ward-corpus/valid`).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    data: Vec<PathBuf>,
    /// Seed of the snippet choice and of every generation.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Skip the 64/128/256-token throughput runs.
    #[arg(long)]
    no_throughput: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Run the guard on the sampler's thread only, after each forward pass (by default it
    /// is built, and brings its sets up to date, on a second thread during the passes:
    /// `Engine::set_guard_thread`), to measure what that overlap saves.
    #[arg(long)]
    no_guard_thread: bool,
}

/// Quality and speed of one decoding configuration.
#[derive(Debug, Serialize, Clone)]
pub struct StrategyFigures {
    /// Strategy name.
    pub strategy: String,
    /// Steps requested (None: adaptive).
    pub steps: Option<usize>,
    /// Tokens committed per forward pass.
    pub tokens_per_forward: f64,
    /// Share of hole tokens equal to the original.
    pub infill_accuracy: f64,
    /// Mean log-probability of the committed tokens.
    pub mean_logprob: f64,
}

/// The report (`--json` keys are documented in crate/sampler/README.md).
#[derive(Debug, Serialize)]
pub struct BenchGenerateReport {
    /// Backend and model.
    pub backend: String,
    /// Model name.
    pub model: String,
    /// wall(enforced) / wall(unconstrained).
    pub overhead_ratio: f64,
    /// Whether the guard worked on a second thread during the forward passes
    /// (`--no-guard-thread`: false).
    pub guard_thread: bool,
    /// Of the guard's time in the overhead runs (its construction included), the share spent
    /// on that second thread, during forward passes.
    pub guard_parallel_share: f64,
    /// Requests in the overhead measurement.
    pub overhead_requests: usize,
    /// Wall time of the enforced warm-up pass over as many other requests (first use of the
    /// lifted rows), milliseconds.
    pub warmup_ms: f64,
    /// Per strategy: tokens per forward pass.
    pub tokens_per_forward: std::collections::BTreeMap<String, f64>,
    /// Every configuration measured, with its quality.
    pub strategies: Vec<StrategyFigures>,
    /// New tokens → tokens per second (enforced, default steps).
    pub tokens_per_second: std::collections::BTreeMap<String, f64>,
    /// Median guard microseconds per committed token (enforced runs; per step, the guard's
    /// time on the sampler's thread and on the second one together).
    pub guard_us_per_token_median: f64,
    /// 90th percentile of the same.
    pub guard_us_per_token_p90: f64,
    /// `end_in_holes` false vs true on continuations: guard µs per token median, mean
    /// log-probability, tokens generated on average.
    pub end_in_holes: serde_json::Value,
}

/// `a.snippets` held-out infill snippets drawn with `seed` (`ward_sampler::model::infill_snippets`
/// over `--data`, or the stdlib's validation split).
fn snippets(
    loaded: &LoadedModel,
    a: &BenchGenerateArgs,
    seed: u64,
) -> Result<Vec<InfillSnippet>, String> {
    let files = if a.data.is_empty() {
        let root = corpus::python_stdlib_dir().map_err(|e| e.to_string())?;
        let f = corpus::split_files(&root, Split::Validation).map_err(|e| e.to_string())?;
        if f.is_empty() {
            return Err(format!("no validation files under {}", root.display()));
        }
        f
    } else {
        ward_model::eval::collect_files(&a.data).map_err(|e| format!("--data: {e}"))?
    };
    infill_snippets(loaded, &files, a.snippets, a.context, a.hole, seed)
}

fn run(
    engine: &Engine,
    loaded: &mut LoadedModel,
    req: &GenerateRequest,
    guard_us: &mut Vec<f64>,
) -> Result<(GenerationResult, Vec<u32>), String> {
    let (mut s, start) = engine
        .start_with_first_pass(req, &loaded.tokenizer, &mut loaded.source)
        .map_err(|e| e.to_string())?;
    while let Some(ev) = s.step(&mut loaded.source).map_err(|e| e.to_string())? {
        let n = ev.committed.iter().filter(|c| !c.end).count();
        if n > 0 && req.enforce {
            guard_us.push((ev.guard_ms + ev.guard_parallel_ms) * 1e3 / n as f64);
        }
    }
    let ids: Vec<u32> = start.holes.iter().map(|&h| s.model_ids()[h]).collect();
    let r = s.result().map_err(|e| e.to_string())?;
    Ok((r, ids))
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Runs the benchmark.
pub fn bench_generate(a: &BenchGenerateArgs) -> Result<BenchGenerateReport, String> {
    let policy = Arc::new(crate::check::compile(&a.policy)?);
    let mut loaded = crate::generate::load_model(a.model.as_ref(), &a.backend)?;
    let mut engine = loaded.engine(Some(policy)).map_err(|e| e.to_string())?;
    engine.set_guard_thread(!a.no_guard_thread);
    let snips = snippets(&loaded, a, a.seed)?;
    // The warm-up runs on other snippets than the measured ones: the guard keeps its token
    // rows and its set tables (memos) between requests, and those must come from other
    // prompts, as in a session, not from the very requests being timed.
    let warm_snips = snippets(&loaded, a, a.seed ^ 0x005E_ED0F_0A7D)?;
    let mut guard_us = Vec::new();

    // Guard overhead: the same infill requests with and without the policy, interleaved,
    // after one warm-up pass over other snippets (the guard builds the token rows of the
    // automaton states it reaches on first use; that one-time cost is reported separately).
    let steps = (a.hole / 4).max(1);
    let (mut on, mut off) = (0.0, 0.0);
    let (mut g_crit, mut g_par) = (0.0, 0.0);
    let mut sink = Vec::new();
    let t_warm = std::time::Instant::now();
    for (i, sn) in warm_snips.iter().enumerate() {
        let req = GenerateRequest {
            steps: Some(steps),
            seed: a.seed + i as u64,
            ..GenerateRequest::new(sn.prompt.clone())
        };
        run(&engine, &mut loaded, &req, &mut sink)?;
    }
    let warmup_ms = t_warm.elapsed().as_secs_f64() * 1e3;
    for (i, sn) in snips.iter().enumerate() {
        for enforce in [i % 2 == 0, i % 2 != 0] {
            let req = GenerateRequest {
                steps: Some(steps),
                seed: a.seed + i as u64,
                enforce,
                ..GenerateRequest::new(sn.prompt.clone())
            };
            let (r, _) = run(&engine, &mut loaded, &req, &mut sink)?;
            if enforce {
                on += r.timings.total_ms;
                g_crit += r.timings.guard_ms;
                g_par += r.timings.guard_parallel_ms;
            } else {
                off += r.timings.total_ms;
            }
        }
    }
    let overhead_ratio = if off > 0.0 { on / off } else { 0.0 };

    // Quality and tokens per forward pass per strategy.
    let mut configs: Vec<(Strategy, Option<usize>)> = vec![(Strategy::LowConfidence, Some(a.hole))];
    for s in Strategy::ALL {
        configs.push((
            s,
            if s == Strategy::Threshold {
                None
            } else {
                Some(steps)
            },
        ));
    }
    let mut strategies = Vec::new();
    for (strategy, st) in configs {
        let (mut hit, mut tot, mut lp, mut committed, mut fwd) =
            (0usize, 0usize, 0.0f64, 0usize, 0usize);
        for (i, sn) in snips.iter().enumerate() {
            let req = GenerateRequest {
                steps: st,
                strategy,
                seed: a.seed + i as u64,
                ..GenerateRequest::new(sn.prompt.clone())
            };
            let (r, ids) = run(&engine, &mut loaded, &req, &mut guard_us)?;
            hit += ids.iter().zip(&sn.target).filter(|(x, y)| x == y).count();
            tot += sn.target.len();
            lp += r.mean_logprob * r.tokens as f64;
            committed += r.tokens;
            fwd += r.forward_passes;
        }
        strategies.push(StrategyFigures {
            strategy: strategy.as_str().to_string(),
            steps: st,
            tokens_per_forward: committed as f64 / fwd.max(1) as f64,
            infill_accuracy: hit as f64 / tot.max(1) as f64,
            mean_logprob: lp / committed.max(1) as f64,
        });
    }
    let tokens_per_forward = strategies
        .iter()
        .skip(1)
        .map(|s| (s.strategy.clone(), s.tokens_per_forward))
        .collect();

    // Throughput, and end_in_holes both ways, on continuations.
    let prefix = snips
        .first()
        .map(|s| s.prompt.split("<|hole:").next().unwrap_or("").to_string())
        .unwrap_or_default();
    let mut tokens_per_second = std::collections::BTreeMap::new();
    if !a.no_throughput {
        for n in [64usize, 128, 256] {
            let req = GenerateRequest {
                max_new: n,
                seed: a.seed,
                ..GenerateRequest::new(prefix.clone())
            };
            let (r, _) = run(&engine, &mut loaded, &req, &mut guard_us)?;
            tokens_per_second.insert(n.to_string(), r.tokens as f64 / (r.timings.total_ms / 1e3));
        }
    }
    let mut eih = serde_json::Map::new();
    for flag in [false, true] {
        let mut us = Vec::new();
        let (mut lp, mut toks, mut runs) = (0.0, 0usize, 0usize);
        for (i, sn) in snips.iter().enumerate() {
            let p = sn.prompt.split("<|hole:").next().unwrap_or("").to_string();
            let req = GenerateRequest {
                max_new: a.hole * 2,
                steps: Some(a.hole / 2),
                strategy: Strategy::Random,
                seed: a.seed + i as u64,
                end_in_holes: flag,
                ..GenerateRequest::new(p)
            };
            let (r, _) = run(&engine, &mut loaded, &req, &mut us)?;
            lp += r.mean_logprob * r.tokens as f64;
            toks += r.tokens;
            runs += 1;
        }
        eih.insert(
            flag.to_string(),
            serde_json::json!({
                "guard_us_per_token_median": pct(&mut us.clone(), 0.5),
                "guard_us_per_token_p90": pct(&mut us, 0.9),
                "mean_logprob": lp / toks.max(1) as f64,
                "mean_tokens": toks as f64 / runs.max(1) as f64,
            }),
        );
    }
    Ok(BenchGenerateReport {
        backend: a.backend.clone(),
        model: loaded.info.name.clone(),
        overhead_ratio,
        guard_thread: engine.guard_thread(),
        guard_parallel_share: if g_crit + g_par > 0.0 {
            g_par / (g_crit + g_par)
        } else {
            0.0
        },
        overhead_requests: snips.len(),
        warmup_ms,
        tokens_per_forward,
        strategies,
        tokens_per_second,
        guard_us_per_token_median: pct(&mut guard_us.clone(), 0.5),
        guard_us_per_token_p90: pct(&mut guard_us, 0.9),
        end_in_holes: serde_json::Value::Object(eih),
    })
}

/// Run `ward bench generate`.
pub fn run_bench_generate(a: &BenchGenerateArgs) -> Result<u8, String> {
    let r = bench_generate(a)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(0);
    }
    println!(
        "ward bench generate — model {}, backend {}",
        r.model, r.backend
    );
    println!(
        "guard overhead (wall enforced / unconstrained, {} infill requests): {:.3}",
        r.overhead_requests, r.overhead_ratio
    );
    println!(
        "guard on a second thread during forward passes: {} ({:.0} % of its time there)",
        if r.guard_thread { "yes" } else { "no" },
        r.guard_parallel_share * 100.0
    );
    println!(
        "enforced warm-up pass over as many other requests: {:.0} ms",
        r.warmup_ms
    );
    println!("| strategy | steps | tokens/forward | infill accuracy | mean log p |");
    println!("|---|---|---|---|---|");
    for s in &r.strategies {
        println!(
            "| {} | {} | {:.2} | {:.3} | {:.3} |",
            s.strategy,
            s.steps
                .map(|x| x.to_string())
                .unwrap_or_else(|| "adaptive".into()),
            s.tokens_per_forward,
            s.infill_accuracy,
            s.mean_logprob
        );
    }
    for (n, t) in &r.tokens_per_second {
        println!("tokens/s for {n} new tokens: {t:.1}");
    }
    println!(
        "guard µs per committed token: median {:.1}, p90 {:.1}",
        r.guard_us_per_token_median, r.guard_us_per_token_p90
    );
    println!("end_in_holes: {}", r.end_in_holes);
    Ok(0)
}
