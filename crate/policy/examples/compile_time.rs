//! Compile a pack repeatedly and print the fastest and median wall time, per thread count
//! (`cargo run --release -p ward-policy --example compile_time -- policies/python 20 1 2`).
use std::time::Instant;
use ward_policy::{EffectivePolicy, PolicyBuilder, PolicyConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "policies/python".into());
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let threads: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    let threads = if threads.is_empty() {
        vec![1, 0]
    } else {
        threads
    };
    let eff = EffectivePolicy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    for &t in &threads {
        let builder = PolicyBuilder::new().config(PolicyConfig {
            threads: t,
            ..PolicyConfig::default()
        });
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                let p = builder.compile(&eff).unwrap_or_else(|e| panic!("{e}"));
                let ms = start.elapsed().as_secs_f64() * 1e3;
                std::hint::black_box(p);
                ms
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "threads {t} (0 = one per core): min {:.1} ms, median {:.1} ms over {runs} runs",
            times[0],
            times[runs / 2]
        );
    }
}
