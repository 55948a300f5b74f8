//! Policy benchmarks: compile time of the default python pack, and check throughput (MB/s)
//! of the DFA checker on a large Python file (the CPython stdlib's Python files
//! concatenated up to 4 MiB; found with `python3 -c 'import sysconfig; ...'`).
//!
//! `cargo bench -p ward-policy --bench policy`
#![allow(missing_docs)] // criterion's generated entry points

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ward_policy::{EffectivePolicy, PolicyBuilder, PolicyConfig};

#[path = "../tests/common/stdlib.rs"]
mod stdlib;

fn python_pack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/python")
}

/// A large Python text: stdlib files concatenated, in sorted order, up to `limit` bytes.
fn large_python(limit: usize) -> Vec<u8> {
    let files = stdlib::stdlib_py_files().expect("python3 is needed to find the CPython stdlib");
    let mut text = Vec::new();
    for f in files {
        if text.len() >= limit {
            break;
        }
        text.extend(std::fs::read(f).unwrap());
        text.push(b'\n');
    }
    text.truncate(limit);
    text
}

fn bench(c: &mut Criterion) {
    let eff = EffectivePolicy::load(python_pack()).unwrap();
    let mut g = c.benchmark_group("policy");
    g.measurement_time(Duration::from_secs(10)).sample_size(20);
    g.bench_function("compile_python_pack", |b| {
        b.iter(|| PolicyBuilder::new().compile(&eff).unwrap())
    });
    // One worker thread: what a browser without wasm threads gets.
    let one = PolicyBuilder::new().config(PolicyConfig {
        threads: 1,
        ..PolicyConfig::default()
    });
    g.bench_function("compile_python_pack_1_thread", |b| {
        b.iter(|| one.compile(&eff).unwrap())
    });
    let policy = PolicyBuilder::new().compile(&eff).unwrap();
    let text = large_python(4 << 20);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("check_4MiB_stdlib", |b| b.iter(|| policy.check(&text)));
    // A clean file (tests/samples/clean.py repeated to 1 MiB): the common case in a repository.
    let clean_one =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/samples/clean.py"))
            .unwrap();
    let mut clean = Vec::new();
    while clean.len() < 1 << 20 {
        clean.extend_from_slice(&clean_one);
    }
    assert!(policy.check(&clean).iter().all(|f| !f.enforced));
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("check_1MiB_clean", |b| b.iter(|| policy.check(&clean)));
    g.throughput(Throughput::Bytes(text.len() as u64));
    // Every enforced module over the whole text (the violated state is absorbing, the scan goes on).
    g.bench_function("modules_scan_4MiB_stdlib", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for m in policy.modules() {
                let mut s = m.start();
                for &byte in &text {
                    s = m.next(s, byte);
                }
                acc ^= s.0;
            }
            acc
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
