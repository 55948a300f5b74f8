//! Prints the sizes of a policy lifted to a vocabulary.
//!
//! `cargo run --release -p ward-guard --example lift_stats -- [pack] [vocab size | tokenizer.json]`
//! (env `WARD_LIFT_THREADS`: threads of the row fill, default one per core)
use std::sync::Arc;
use std::time::Instant;

#[path = "../tests/common/synth.rs"]
mod synth;

/// CPU time of this thread so far (Linux: `/proc/thread-self/schedstat`), so that timings
/// on a loaded machine can be compared; `None` elsewhere.
fn cpu() -> Option<std::time::Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(std::time::Duration::from_nanos(ns))
}

/// CPU time since `c0`, printable.
fn cpu_since(c0: Option<std::time::Duration>) -> String {
    match (c0, cpu()) {
        (Some(a), Some(b)) => format!(" (CPU {:?})", b - a),
        _ => String::new(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pack = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "policies/python".into());
    let v = args.get(2).cloned().unwrap_or_else(|| "8192".into());
    let t = Instant::now();
    let (policy, skipped) = synth::compile_pack_lenient(std::path::Path::new(&pack));
    if !skipped.is_empty() {
        println!("rules that do not compile yet (disabled): {skipped:?}");
    }
    println!(
        "compiled {pack} in {:?}: {} rules, {} modules",
        t.elapsed(),
        policy.rules().len(),
        policy.modules().len()
    );
    let vocab = match v.parse::<usize>() {
        Ok(n) => ward_guard::Vocab::from_token_bytes(&synth::synthetic_vocab(n)).expect("vocab"),
        Err(_) => {
            ward_guard::vocab::from_tokenizer_json(&std::fs::read_to_string(&v).expect("read"))
                .expect("tokenizer")
        }
    };
    let (policy, vocab) = (Arc::new(policy), Arc::new(vocab));
    // WARD_LIFT_REPEAT=n: lift n times more and print the fastest full lift (CPU time), to
    // compare versions on a loaded machine.
    let repeat: usize = std::env::var("WARD_LIFT_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut best: Option<std::time::Duration> = None;
    for _ in 0..repeat {
        let c0 = cpu();
        let t = Instant::now();
        let tp = ward_guard::TokenPolicy::new(policy.clone(), vocab.clone());
        tp.lift_reachable();
        let d = match (c0, cpu()) {
            (Some(a), Some(b)) => b - a,
            _ => t.elapsed(),
        };
        best = Some(best.map_or(d, |b| b.min(d)));
    }
    if let Some(b) = best {
        println!("fastest of {repeat} full lifts (TokenPolicy::new + lift_reachable): CPU {b:?}");
    }
    let t = Instant::now();
    let c0 = cpu();
    let tp = ward_guard::TokenPolicy::new(policy, vocab);
    let s = tp.stats();
    println!(
        "lifted (trie + vocabulary mask) in {:?}{}: {:.1} MiB (trie {:.1}, rows {:.1}, memoized walks {:.1}, indexes {:.1}, vocabulary {:.1})",
        t.elapsed(),
        cpu_since(c0),
        s.memory_bytes as f64 / 1048576.0,
        s.trie_bytes as f64 / 1048576.0,
        s.row_bytes as f64 / 1048576.0,
        s.memo_bytes as f64 / 1048576.0,
        s.index_bytes as f64 / 1048576.0,
        s.vocab_bytes as f64 / 1048576.0
    );
    // WARD_LIFT_THREADS=n: fill every module's rows on n threads first
    // (`TokenPolicy::prefill`; default: one per core), timed on its own.
    let threads: usize = std::env::var("WARD_LIFT_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let t = Instant::now();
    tp.prefill(threads);
    println!(
        "filled every module's rows on {threads} thread(s) in {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let c0 = cpu();
    let n = tp.lift_reachable();
    println!(
        "filled {n} reachable state rows in {:?}{}",
        t.elapsed(),
        cpu_since(c0)
    );
    // The lift artefact of these rows: its size, and the time to load it into a new token
    // policy instead of building the rows.
    let t = Instant::now();
    let bytes = tp.rows_artefact();
    println!(
        "lift artefact: {} bytes, written in {:?}",
        bytes.len(),
        t.elapsed()
    );
    let fresh = ward_guard::TokenPolicy::new(tp.policy_arc(), tp.vocab_arc());
    let t = Instant::now();
    let n = fresh
        .load_rows_artefact(&bytes)
        .expect("its own artefact loads");
    println!(
        "loaded the rows of {n} modules from it in {:?}",
        t.elapsed()
    );
    println!("{:#?}", tp.stats());
}
