//! Prints the sizes of a policy lifted to a vocabulary.
//!
//! `cargo run --release -p ward-guard --example lift_stats -- [pack] [vocab size | tokenizer.json]`
use std::sync::Arc;
use std::time::Instant;

#[path = "../tests/common/synth.rs"]
mod synth;

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
    let t = Instant::now();
    let tp = ward_guard::TokenPolicy::new(Arc::new(policy), Arc::new(vocab));
    let s = tp.stats();
    println!(
        "lifted (trie + vocabulary mask) in {:?}: {:.1} MiB (trie {:.1}, rows {:.1}, memoized walks {:.1}, indexes {:.1}, vocabulary {:.1})",
        t.elapsed(),
        s.memory_bytes as f64 / 1048576.0,
        s.trie_bytes as f64 / 1048576.0,
        s.row_bytes as f64 / 1048576.0,
        s.memo_bytes as f64 / 1048576.0,
        s.index_bytes as f64 / 1048576.0,
        s.vocab_bytes as f64 / 1048576.0
    );
    let t = Instant::now();
    let n = tp.lift_reachable();
    println!("filled {n} reachable state rows in {:?}", t.elapsed());
    println!("{:#?}", tp.stats());
}
