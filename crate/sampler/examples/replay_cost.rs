//! What enforcement costs the sampler, without the model's noise: each infill request is
//! generated once with the default model (enforced and unconstrained), the logits of every
//! forward pass are recorded, and the same sessions are then replayed many times from the
//! recordings (the sampler is deterministic given the seed and the logits, so a replay takes
//! the same path). The replay's wall time is the sampler's and the guard's own; the model's
//! recorded time gives the ratio the benchmark measures, free of its run-to-run noise.
//!
//! The replays find the guard's sets and rows memoised from the recording run, so their
//! minima are the warm cost of a repeated request; the recording run's guard time (printed
//! too) is the cold cost of a new one.
//!
//! `cargo run --release -p ward-sampler --features ward-model/fast-cpu --example replay_cost -- [FILES_OR_DIRS...]`
//! (`fast-cpu`: the model as `ward` runs it)
//! (default: the held-out packages at /var/tmp/ward-corpus/valid, else the stdlib's
//! validation split). Env: `REQUESTS` (12), `REPLAYS` (20), `HOLE` (32), `CONTEXT` (48).
use std::time::Instant;

use ward_model::corpus;
use ward_sampler::model::{infill_snippets, LoadedModel};
use ward_sampler::{Engine, GenerateRequest, LogitsSource, Result};

/// Records the model's logits per forward pass.
struct Recording<'a> {
    inner: &'a mut dyn LogitsSource,
    passes: Vec<Vec<f32>>,
    ms: f64,
}

impl LogitsSource for Recording<'_> {
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }
    fn logits(&mut self, ids: &[u32], positions: &[usize]) -> Result<Vec<f32>> {
        let t = Instant::now();
        let out = self.inner.logits(ids, positions)?;
        self.ms += t.elapsed().as_secs_f64() * 1e3;
        self.passes.push(out.clone());
        Ok(out)
    }
}

/// Gives back recorded logits in order.
struct Replay<'a> {
    vocab: usize,
    passes: &'a [Vec<f32>],
    next: usize,
}

impl LogitsSource for Replay<'_> {
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn logits(&mut self, _ids: &[u32], _positions: &[usize]) -> Result<Vec<f32>> {
        let out = self.passes[self.next].clone();
        self.next += 1;
        Ok(out)
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One session from start to result: wall time of the whole, and of its parts (start,
/// steps, the guard's share of the steps, result).
fn run(
    engine: &Engine,
    tok: &tokenizers::Tokenizer,
    req: &GenerateRequest,
    src: &mut dyn LogitsSource,
) -> [f64; 5] {
    let t = Instant::now();
    let (mut s, _) = engine.start(req, tok).expect("start");
    let start = t.elapsed().as_secs_f64() * 1e3;
    let mut guard = 0.0;
    while let Some(ev) = s.step(src).expect("step") {
        guard += ev.guard_ms;
    }
    let steps = t.elapsed().as_secs_f64() * 1e3 - start;
    let t2 = Instant::now();
    std::hint::black_box(s.result().expect("result"));
    let result = t2.elapsed().as_secs_f64() * 1e3;
    [t.elapsed().as_secs_f64() * 1e3, start, steps, guard, result]
}

fn main() {
    let (requests, replays) = (env("REQUESTS", 12), env("REPLAYS", 20));
    let (hole, context) = (env("HOLE", 32), env("CONTEXT", 48));
    let args: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let files = if !args.is_empty() {
        ward_model::eval::collect_files(&args).expect("files")
    } else if std::path::Path::new("/var/tmp/ward-corpus/valid").is_dir() {
        ward_model::eval::collect_files(&["/var/tmp/ward-corpus/valid".into()]).expect("files")
    } else {
        let root = corpus::python_stdlib_dir().expect("stdlib");
        corpus::split_files(&root, corpus::Split::Validation).expect("split")
    };
    let dir = ward_model::default_model_dir().expect("the default model");
    let mut l = LoadedModel::load(&dir, &ward_model::Device::flex()).expect("loads");
    let policy = ward_policy::PolicyBuilder::new()
        .compile_path(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../policies/python"
        ))
        .expect("compiles");
    let engine = l.engine(Some(std::sync::Arc::new(policy))).expect("engine");
    // Seeded snippets: `context` tokens, a hole, `context` tokens.
    let prompts: Vec<String> = infill_snippets(&l, &files, requests, context, hole, 7)
        .expect("snippets")
        .into_iter()
        .map(|s| s.prompt)
        .collect();
    let vocab = l.source.vocab_size();
    let (mut model_on, mut model_off, mut rep_on, mut rep_off) = (0.0, 0.0, 0.0, 0.0);
    // The recording run of each enforced request is its first (cold) run: the guard meets
    // its sets and rows there for the first time (the replays find them memoised).
    let mut cold_guard = 0.0;
    for (i, p) in prompts.iter().enumerate() {
        // Record both arms, then replay them alternately (so both see the same machine)
        // and keep each part's minimum over the replays.
        let mut recs = Vec::new();
        for enforce in [true, false] {
            let req = GenerateRequest {
                steps: Some((hole / 4).max(1)),
                seed: 1 + i as u64,
                enforce,
                ..GenerateRequest::new(p.clone())
            };
            let mut rec = Recording {
                inner: &mut l.source,
                passes: Vec::new(),
                ms: 0.0,
            };
            let cold = run(&engine, &l.tokenizer, &req, &mut rec);
            if enforce {
                cold_guard += cold[1] + cold[3];
                println!(
                    "request {i}: first run, guard (start + steps) {:.2} ms",
                    cold[1] + cold[3]
                );
            }
            recs.push((req, rec.passes, rec.ms));
        }
        let mut best = [[f64::INFINITY; 5]; 2];
        for _ in 0..replays {
            for (k, (req, passes, _)) in recs.iter().enumerate() {
                let mut src = Replay {
                    vocab,
                    passes,
                    next: 0,
                };
                let t = run(&engine, &l.tokenizer, req, &mut src);
                for j in 0..5 {
                    best[k][j] = best[k][j].min(t[j]);
                }
            }
        }
        model_on += recs[0].2;
        model_off += recs[1].2;
        rep_on += best[0][0];
        rep_off += best[1][0];
        println!(
            "request {i}: replay minima (ms) enforced {:.2} [start {:.2}, steps {:.2} of which guard {:.2}, result {:.2}], unconstrained {:.2} [start {:.2}, steps {:.2}, result {:.2}]",
            best[0][0], best[0][1], best[0][2], best[0][3], best[0][4], best[1][0], best[1][1], best[1][2], best[1][4]
        );
    }
    let n = prompts.len() as f64;
    println!(
        "mean per request: model {:.1} ms (enforced canvases) / {:.1} ms (unconstrained); \
         replay (sampler + guard, no model) enforced {:.2} ms, unconstrained {:.2} ms",
        model_on / n,
        model_off / n,
        rep_on / n,
        rep_off / n
    );
    println!(
        "first (recording) run of each enforced request: guard.start + guard in steps {:.2} ms per request (the replays' minima are warm)",
        cold_guard / n
    );
    // The two arms run the same number of forward passes of the same shapes: their mean
    // stands for the model's time in both.
    let model = (model_on + model_off) / (2.0 * n);
    println!(
        "overhead ratio from these parts: (model + replay enforced) / (model + replay unconstrained) = {:.4}",
        (model + rep_on / n) / (model + rep_off / n)
    );
}
