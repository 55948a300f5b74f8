//! Guard benchmarks on the python pack.
//!
//! `cargo bench -p ward-guard --bench guard`
//!
//! - `commit/<vocab>`: mask cost per committed token on a 256-token canvas (a short prompt
//!   and holes), holes filled in random order; each op is the fast path `allows(i, t)` for
//!   the "model's preferred" tokens until one is allowed (a full mask after 8 refusals),
//!   then `commit(i, t)` with its incremental update of the state sets.
//! - `full_mask/<vocab>`: the exact mask of one hole of a half-filled canvas.
//! - one-shot timings (printed, not criterion): pack compile, `TokenPolicy::new` (class
//!   tries + vocabulary mask), filling every reachable state row, memory of the tables.
//!
//! Vocabularies: `models/*/tokenizer.json` (8k) when present, else a synthetic 8192-token
//! byte-level vocabulary; a synthetic 152 000-token byte-level vocabulary (deterministic);
//! and a real Qwen2-shaped byte-level BPE of 151 665 ids when `WARD_BENCH_152K` names its
//! `tokenizer.json` (trained on Python source by `tools/train_bpe`, see the README).
//! `WARD_BENCH_ONLY=152k` runs the 152k vocabularies only.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

#[path = "../tests/common/synth.rs"]
mod synth;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ward_guard::{Canvas, Guard, TokenPolicy, Vocab};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn real_tokenizer() -> Option<(Vocab, String)> {
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for e in std::fs::read_dir(models).ok()?.flatten() {
        let p = e.path().join("tokenizer.json");
        if let Ok(s) = std::fs::read_to_string(&p) {
            if let Ok(v) = ward_guard::vocab::from_tokenizer_json(&s) {
                return Some((v, p.display().to_string()));
            }
        }
    }
    None
}

const PROMPT: &str =
    "import subprocess\nimport pickle\n\ndef handler(request):\n    cmd = request.args['cmd']\n";
const CANVAS: usize = 256;

fn setup(
    policy: &Arc<ward_policy::CompiledPolicy>,
    vocab: Vocab,
    label: &str,
) -> (Arc<TokenPolicy>, Vec<u32>) {
    let n = vocab.len();
    let vocab = Arc::new(vocab);
    let t = Instant::now();
    let tp = Arc::new(TokenPolicy::new(policy.clone(), vocab));
    println!(
        "[{label}] vocab size {n}: TokenPolicy::new (token trie + vocabulary mask) {:?}, {:.1} MiB (TokenPolicy::stats)",
        t.elapsed(),
        tp.stats().memory_bytes as f64 / 1048576.0
    );
    let t = Instant::now();
    let rows = tp.lift_reachable();
    println!(
        "[{label}] filled {rows} reachable state rows in {:?}",
        t.elapsed()
    );
    let s = tp.stats();
    let mib = |b: usize| b as f64 / 1048576.0;
    println!(
        "[{label}] memory of the token policy (TokenPolicy::stats): {:.1} MiB (tries {:.1}, rows {:.1}, memoized walks {:.1}, indexes {:.1}, vocabulary {:.1}); states per module {:?}; vocabulary-mask forbidden tokens: {}",
        mib(s.memory_bytes),
        mib(s.trie_bytes),
        mib(s.row_bytes),
        mib(s.memo_bytes),
        mib(s.index_bytes),
        mib(s.vocab_bytes),
        s.states,
        s.vocab_forbidden
    );
    let prefix = tp
        .vocab()
        .tokenize_greedy(PROMPT.as_bytes())
        .expect("prompt tokenizes");
    (tp, prefix)
}

/// One commit op: preferred tokens by the fast path, then commit.
fn commit_op(g: &mut Guard, h: usize, rng: &mut Rng, vlen: usize) {
    for _ in 0..8 {
        let t = rng.below(vlen) as u32;
        if g.allows(h, t) {
            g.commit(h, t).expect("allowed token commits");
            return;
        }
    }
    let m = g.mask(h).expect("no conflict");
    let allowed: Vec<u32> = m.iter_allowed().collect();
    g.commit(h, allowed[rng.below(allowed.len())])
        .expect("commit");
}

/// The open holes of `g` in a random order.
fn shuffled_holes(g: &Guard, rng: &mut Rng) -> Vec<usize> {
    let mut hs = g.holes();
    for k in (1..hs.len()).rev() {
        hs.swap(k, rng.below(k + 1));
    }
    hs
}

/// Back to `start`, then commit half the holes in a random order.
fn half_filled(g: &mut Guard, start: &ward_guard::Snapshot, rng: &mut Rng, vlen: usize) {
    g.restore(start).unwrap();
    let hs = shuffled_holes(g, rng);
    for &h in &hs[..hs.len() / 2] {
        commit_op(g, h, rng, vlen);
    }
}

/// Median, p90, p99 and max of per-commit times.
struct Dist(Duration, Duration, Duration, Duration);

impl Dist {
    /// The distribution of `samples` (at least one).
    fn of(mut samples: Vec<Duration>) -> Dist {
        samples.sort();
        let n = samples.len();
        Dist(
            samples[n / 2],
            samples[n * 9 / 10],
            samples[n * 99 / 100],
            samples[n - 1],
        )
    }
}

impl std::fmt::Display for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {:?}, p90 {:?}, p99 {:?}, max {:?}",
            self.0, self.1, self.2, self.3
        )
    }
}

/// Times per committed token over `gens` generations from `start`, each filling every hole
/// in a random order.
fn commit_distribution(
    g: &mut Guard,
    start: &ward_guard::Snapshot,
    rng: &mut Rng,
    vlen: usize,
    gens: usize,
) -> Dist {
    let mut samples = Vec::new();
    for _ in 0..gens {
        g.restore(start).unwrap();
        for h in shuffled_holes(g, rng) {
            let t = Instant::now();
            commit_op(g, h, rng, vlen);
            samples.push(t.elapsed());
        }
    }
    Dist::of(samples)
}

/// Per committed token as the sampler's critical path sees it: `per_step` holes (a random
/// set) committed per step, left to right as the sampler commits them, then `Guard::settle`
/// between steps *off the clock* (the sampler runs it on a second thread during the model's
/// forward pass, natively). Returns that distribution and
/// the settle times per step, which are real work, only elsewhere.
fn settled_distribution(
    g: &mut Guard,
    start: &ward_guard::Snapshot,
    rng: &mut Rng,
    vlen: usize,
    gens: usize,
    per_step: usize,
) -> (Dist, Dist) {
    let (mut samples, mut settles) = (Vec::new(), Vec::new());
    for _ in 0..gens {
        g.restore(start).unwrap();
        for step in shuffled_holes(g, rng).chunks(per_step) {
            let t = Instant::now();
            g.settle();
            settles.push(t.elapsed());
            // Left to right within the step, as the sampler commits a step's tokens.
            let mut step = step.to_vec();
            step.sort_unstable();
            for &h in &step {
                let t = Instant::now();
                commit_op(g, h, rng, vlen);
                samples.push(t.elapsed());
            }
        }
    }
    (Dist::of(samples), Dist::of(settles))
}

fn bench_vocab(
    c: &mut Criterion,
    policy: &Arc<ward_policy::CompiledPolicy>,
    vocab: Vocab,
    label: &str,
) {
    let (tp, prefix) = setup(policy, vocab, label);
    let vlen = tp.vocab().len();
    let holes = CANVAS - prefix.len();
    let canvas = Canvas::infill(&prefix, holes, &[]);
    let t = Instant::now();
    let mut g = Guard::new(tp.clone(), &canvas).expect("guard");
    println!(
        "[{label}] Guard::new on a {CANVAS}-token canvas: {:?}",
        t.elapsed()
    );
    let start = g.snapshot();
    let mid = g.holes()[g.holes().len() / 2];
    println!(
        "[{label}] |F|,|G| per module at a middle hole of the empty canvas: {:?}",
        g.set_sizes(mid)
    );
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let mut order: Vec<usize> = Vec::new();

    // Per-commit distribution over full generations (printed: median and p90), then criterion.
    let d = commit_distribution(&mut g, &start, &mut rng, vlen, 5);
    println!("[{label}] per committed token over 5 random-order generations: {d}");
    let (d, settle) = settled_distribution(&mut g, &start, &mut rng, vlen, 5, 4);
    println!(
        "[{label}] the same, 4 commits per step left to right with Guard::settle between steps off the clock (the sampler's critical path): {d}; settle per step: {settle}"
    );

    // The same distribution with end tokens refused at holes (`end_in_holes: false`, what a
    // sampler that never ends the text inside a hole uses): no hole can be skipped by ending
    // the text earlier, so every query does the real work. (Only for a vocabulary with an end
    // token; without one the two settings are the same.)
    let mut no_end = (!tp
        .vocab()
        .tokens_of_kind(ward_guard::TokenKind::End)
        .is_empty())
    .then(|| {
        let cfg = ward_guard::GuardConfig {
            end_in_holes: false,
            ..Default::default()
        };
        let g2 = Guard::with_config(tp.clone(), &canvas, &cfg).expect("guard");
        let start2 = g2.snapshot();
        (g2, start2)
    });
    if let Some((g2, start2)) = no_end.as_mut() {
        let d = commit_distribution(g2, start2, &mut rng, vlen, 5);
        println!(
            "[{label}] per committed token, end_in_holes: false, over 5 random-order generations: {d}"
        );
    }

    c.bench_function(&format!("commit/{label}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if order.is_empty() {
                    g.restore(&start).unwrap();
                    order = shuffled_holes(&g, &mut rng);
                }
                let h = order.pop().unwrap();
                let t = Instant::now();
                commit_op(&mut g, h, &mut rng, vlen);
                total += t.elapsed();
            }
            total
        })
    });

    // Full mask at a hole of a half-filled canvas.
    half_filled(&mut g, &start, &mut rng, vlen);
    // The first open hole: every position before it is fixed or committed, so the text
    // cannot have ended before it (with an end-of-text token in the vocabulary, a hole after
    // another open hole allows every token: the text may end earlier).
    let probe = g.holes()[0];
    println!(
        "[{label}] full-mask probe at hole {probe}: {} tokens allowed",
        g.mask_unchecked(probe).unwrap().count_allowed()
    );
    c.bench_function(&format!("full_mask/{label}"), |b| {
        b.iter(|| g.mask_unchecked(probe).unwrap())
    });
    // A hole between open holes (large state sets; with an end-of-text token in the
    // vocabulary every token is allowed there, so this is the costly case only without one).
    let open = g.holes();
    let mid = open[open.len() / 2];
    println!(
        "[{label}] full-mask probe at middle hole {mid}: {} tokens allowed, |G| per module {:?}",
        g.mask_unchecked(mid).unwrap().count_allowed(),
        g.set_sizes(mid).iter().map(|s| s.1).collect::<Vec<_>>()
    );
    c.bench_function(&format!("full_mask_mid/{label}"), |b| {
        b.iter(|| g.mask_unchecked(mid).unwrap())
    });
    // The same with end tokens refused at holes (GuardConfig::end_in_holes = false): the
    // costly middle-hole case for a vocabulary with an end token.
    if let Some((g2, start2)) = no_end.as_mut() {
        half_filled(g2, start2, &mut rng, vlen);
        let open = g2.holes();
        let mid = open[open.len() / 2];
        println!(
            "[{label}] no-end-in-holes full-mask probe at middle hole {mid}: {} tokens allowed",
            g2.mask_unchecked(mid).unwrap().count_allowed()
        );
        c.bench_function(&format!("full_mask_mid_no_end/{label}"), |b| {
            b.iter(|| g2.mask_unchecked(mid).unwrap())
        });
    }
    let mut logits = vec![0.5f32; vlen];
    let m = g.mask_unchecked(probe).unwrap();
    c.bench_function(&format!("apply_to/{label}"), |b| {
        b.iter(|| m.apply_to(&mut logits))
    });
}

fn benches(c: &mut Criterion) {
    let t = Instant::now();
    let (policy, skipped) = synth::compile_pack_lenient(&synth::policies_dir().join("python"));
    println!(
        "python pack: {} rules, {} modules, compiled in {:?}; rules left out (do not compile yet): {skipped:?}",
        policy.rules().len(),
        policy.modules().len(),
        t.elapsed()
    );
    let policy = Arc::new(policy);
    let (v8, src) = match real_tokenizer() {
        Some(v) => v,
        None => (
            Vocab::from_token_bytes(&synth::synthetic_vocab(8192)).unwrap(),
            "synthetic".into(),
        ),
    };
    let only_152k = std::env::var("WARD_BENCH_ONLY").is_ok_and(|s| s == "152k");
    if !only_152k {
        println!("8k vocabulary: {src}");
        bench_vocab(c, &policy, v8, "8k");
    }
    if std::env::var("WARD_BENCH_SKIP_152K").is_err() {
        match std::env::var("WARD_BENCH_152K") {
            Ok(path) => {
                let json = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("WARD_BENCH_152K={path}: {e}"));
                let v = ward_guard::vocab::from_tokenizer_json(&json)
                    .unwrap_or_else(|e| panic!("WARD_BENCH_152K={path}: {e}"));
                println!("152k real vocabulary: {path} ({} ids)", v.len());
                cold_generation(&policy, v.clone(), "152k-bpe");
                bench_vocab(c, &policy, v, "152k-bpe");
            }
            Err(_) => println!(
                "152k real vocabulary: skipped (set WARD_BENCH_152K to a tokenizer.json made by tools/train_bpe)"
            ),
        }
        let v152 = Vocab::from_token_bytes(&synth::synthetic_vocab(152_000)).unwrap();
        cold_generation(&policy, v152.clone(), "152k-synthetic");
        bench_vocab(c, &policy, v152, "152k-synthetic");
    }
}

/// One generation on a fresh token policy whose rows are filled on demand (what the first
/// generation of a session pays), per committed token.
fn cold_generation(policy: &Arc<ward_policy::CompiledPolicy>, vocab: Vocab, label: &str) {
    let tp = Arc::new(TokenPolicy::new(policy.clone(), Arc::new(vocab)));
    let prefix = tp
        .vocab()
        .tokenize_greedy(PROMPT.as_bytes())
        .expect("prompt tokenizes");
    let vlen = tp.vocab().len();
    let canvas = Canvas::infill(&prefix, CANVAS - prefix.len(), &[]);
    let t = Instant::now();
    let mut g = Guard::new(tp.clone(), &canvas).expect("guard");
    let new = t.elapsed();
    let start = g.snapshot();
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let d = commit_distribution(&mut g, &start, &mut rng, vlen, 1);
    println!(
        "[{label}] cold: Guard::new {new:?}, then one generation with rows filled on demand, per committed token: {d}; rows filled {:?}",
        tp.stats().lifted_states.iter().sum::<usize>()
    );
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
}

criterion_group! { name = guard; config = config(); targets = benches }
criterion_main!(guard);
