//! Compile every rule of a pack alone and print its DFA size and compile time
//! (`cargo run --release -p ward-policy --example rule_sizes -- policies/python`).
use std::time::{Duration, Instant};
use ward_policy::{EffectivePolicy, PolicyBuilder};

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "policies/python".into());
    let eff = EffectivePolicy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    for r in eff.rules.iter().filter(|r| r.enabled) {
        let mut one = eff.clone();
        one.rules = vec![r.clone()];
        let t = Instant::now();
        let res = PolicyBuilder::new()
            .max_states(100_000)
            .max_compile_time(Duration::from_secs(20))
            .compile(&one);
        match res {
            Ok(p) => println!(
                "{:>7} states (enforced {:>7}) {:>8.1} ms  {}",
                p.reporting_states()[0],
                p.stats().modules.first().map(|m| m.states).unwrap_or(0),
                t.elapsed().as_secs_f64() * 1e3,
                r.id
            ),
            Err(e) => println!(
                "  ERROR {:>8.1} ms  {}: {e}",
                t.elapsed().as_secs_f64() * 1e3,
                r.id
            ),
        }
    }
}
