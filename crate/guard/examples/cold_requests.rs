//! The guard's cost per *new* request, without the sampler or a model: what `ward bench
//! generate` pays per request once the rows are lifted, with the guard meeting a prompt's
//! sets for the first time.
//!
//! Each request is a snippet of held-out Python (greedy longest-match tokens of the given
//! tokenizer): `CONTEXT` fixed tokens, a `HOLE`-token hole, `CONTEXT` fixed tokens, as the
//! sampler's infill bench builds it (`end_in_holes: false`, the sampler's default). The hole's
//! true tokens are committed in a random order, `PER_STEP` per step, the way the sampler's
//! loop calls the guard: per step `allows` on each chosen candidate, then per commit `allows`
//! on `ALTS` other likely tokens (the blocked-candidate report; here tokens of the same
//! snippet), then `commit`; a refused token gets the exact `mask` and the first allowed
//! alternative. Requests run one after the other in one process, so each new guard inherits
//! the set tables the previous one left (`TokenPolicy::table_pool`), as in the sampler.
//! Each request is then run a second time (same calls: every memo warm).
//!
//! `cargo run --release -p ward-guard --example cold_requests -- [pack] [tokenizer.json] [dir]`
//! (defaults: `policies/python`, `models/ward-tiny-code/tokenizer.json`,
//! `/var/tmp/ward-corpus/valid`). Env: `REQUESTS` (24), `WARMUP` (4: requests run first and
//! not counted, like the bench's warm-up pass), `HOLE` (32), `CONTEXT` (48), `PER_STEP` (4),
//! `ALTS` (6), `SEED` (7).
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ward_guard::{Canvas, Guard, GuardConfig, Slot, TokenKind, TokenPolicy};

/// Small deterministic RNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn python_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            python_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "py") {
            out.push(p);
        }
    }
}

/// One request: fixed prefix, hole, fixed suffix, and the hole's true tokens.
struct Request {
    prefix: Vec<u32>,
    hole: Vec<u32>,
    suffix: Vec<u32>,
}

/// Time spent per kind of guard call in one request (ms).
#[derive(Default, Clone, Copy)]
struct Cost {
    new: f64,
    allows: f64,
    commit: f64,
    mask: f64,
    /// CPU time of the whole request (this thread).
    cpu: f64,
}

impl Cost {
    fn total(&self) -> f64 {
        self.new + self.allows + self.commit + self.mask
    }
}

/// CPU time of this thread so far, ms (Linux: `/proc/thread-self/schedstat`; 0 elsewhere).
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e6)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Runs one request through a fresh guard, the calls drawn from `seed`.
fn run(tp: &Arc<TokenPolicy>, r: &Request, seed: u64, per_step: usize, alts: usize) -> Cost {
    let mut c = Cost::default();
    let c0 = cpu_ms();
    let mut rng = Rng(seed | 1);
    let canvas = Canvas::from_slots(
        r.prefix
            .iter()
            .map(|&t| Slot::Fixed(t))
            .chain(r.hole.iter().map(|_| Slot::Hole))
            .chain(r.suffix.iter().map(|&t| Slot::Fixed(t))),
    );
    let cfg = GuardConfig {
        end_in_holes: false,
        ..GuardConfig::default()
    };
    let t = Instant::now();
    let mut g = match Guard::with_config(tp.clone(), &canvas, &cfg) {
        Ok(g) => g,
        Err(_) => return c,
    };
    c.new += ms(t);
    let base = r.prefix.len();
    let mut open: Vec<usize> = (0..r.hole.len()).collect();
    while !open.is_empty() {
        let mut chosen = Vec::new();
        for _ in 0..per_step.min(open.len()) {
            chosen.push(open.swap_remove(rng.below(open.len())));
        }
        for &k in &chosen {
            let t = Instant::now();
            std::hint::black_box(g.allows(base + k, r.hole[k]));
            c.allows += ms(t);
        }
        for &k in &chosen {
            let pos = base + k;
            let t = Instant::now();
            for _ in 0..alts {
                let a = r.hole[rng.below(r.hole.len())];
                std::hint::black_box(g.allows(pos, a));
            }
            c.allows += ms(t);
            let t = Instant::now();
            let ok = g.commit(pos, r.hole[k]).is_ok();
            c.commit += ms(t);
            if !ok {
                let t = Instant::now();
                let m = g.mask(pos);
                c.mask += ms(t);
                if let Ok(m) = m {
                    let pick = r
                        .hole
                        .iter()
                        .copied()
                        .find(|&a| m.contains(a))
                        .or_else(|| m.iter_allowed().next());
                    if let Some(a) = pick {
                        let t = Instant::now();
                        let _ = g.commit(pos, a);
                        c.commit += ms(t);
                    }
                }
            }
        }
    }
    drop(g);
    c.cpu = cpu_ms() - c0;
    c
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pack = args.get(1).map_or("policies/python", |s| s.as_str());
    let tok = args
        .get(2)
        .map_or("models/ward-tiny-code/tokenizer.json", |s| s.as_str());
    let dir = args
        .get(3)
        .map_or("/var/tmp/ward-corpus/valid", |s| s.as_str());
    let (requests, warmup) = (env("REQUESTS", 24), env("WARMUP", 4));
    let (hole, context) = (env("HOLE", 32), env("CONTEXT", 48));
    let (per_step, alts) = (env("PER_STEP", 4), env("ALTS", 6));
    // No compile-time limit: the same modules under valgrind as natively.
    let policy = ward_policy::PolicyBuilder::new()
        .max_compile_time(std::time::Duration::from_secs(3600))
        .compile_path(pack)
        .expect("the pack compiles");
    let vocab =
        ward_guard::vocab::from_tokenizer_json(&std::fs::read_to_string(tok).expect("read"))
            .expect("tokenizer");
    let tp = Arc::new(TokenPolicy::new(Arc::new(policy), Arc::new(vocab)));
    let t = Instant::now();
    let rows = tp.lift_reachable();
    println!(
        "{} modules; lifted {rows} rows in {:.0} ms",
        tp.num_modules(),
        ms(t)
    );
    let mut files = Vec::new();
    python_files(Path::new(dir), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no .py files under {dir}");
    let mut rng = Rng(env("SEED", 7) as u64 * 0x9e37_79b9 + 1);
    let need = 2 * context + hole;
    let mut reqs = Vec::new();
    while reqs.len() < warmup + requests {
        let Ok(text) = std::fs::read(&files[rng.below(files.len())]) else {
            continue;
        };
        if text.len() < 4096 {
            continue;
        }
        // A window starting at a line start, tokenized greedily.
        let mut s = rng.below(text.len() - 3000);
        while s > 0 && text[s - 1] != b'\n' {
            s -= 1;
        }
        let Some(ids) = tp.vocab().tokenize_greedy(&text[s..s + 2500]) else {
            continue;
        };
        if ids.len() < need || ids.iter().any(|&t| tp.vocab().kind(t) != TokenKind::Text) {
            continue;
        }
        reqs.push(Request {
            prefix: ids[..context].to_vec(),
            hole: ids[context..context + hole].to_vec(),
            suffix: ids[context + hole..need].to_vec(),
        });
    }
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for (i, r) in reqs.iter().enumerate() {
        let seed = 1 + i as u64;
        let c = run(&tp, r, seed, per_step, alts);
        let w = run(&tp, r, seed, per_step, alts);
        if i < warmup {
            continue;
        }
        println!(
            "request {}: cold {:.2} ms (CPU {:.2}; new {:.2}, allows {:.2}, commit {:.2}, mask {:.2}); warm {:.2} ms",
            i - warmup,
            c.total(),
            c.cpu,
            c.new,
            c.allows,
            c.commit,
            c.mask,
            w.total()
        );
        cold.push(c);
        warm.push(w);
    }
    let n = cold.len() as f64;
    let mean = |f: &dyn Fn(&Cost) -> f64, v: &[Cost]| v.iter().map(f).sum::<f64>() / n;
    let mut tot: Vec<f64> = cold.iter().map(Cost::total).collect();
    tot.sort_by(f64::total_cmp);
    println!(
        "cold per request: mean {:.2} ms (CPU {:.2}; new {:.2}, allows {:.2}, commit {:.2}, mask {:.2}), median {:.2}, max {:.2}; warm mean {:.2} ms (CPU {:.2})",
        mean(&Cost::total, &cold),
        mean(&|c| c.cpu, &cold),
        mean(&|c| c.new, &cold),
        mean(&|c| c.allows, &cold),
        mean(&|c| c.commit, &cold),
        mean(&|c| c.mask, &cold),
        tot[tot.len() / 2],
        tot[tot.len() - 1],
        mean(&Cost::total, &warm),
        mean(&|c| c.cpu, &warm)
    );
}
