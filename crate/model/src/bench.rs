//! A benchmark of one forward pass (behind `ward bench model`).

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{Device, Model};

/// Arguments of `ward bench model`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Model folder (default: the shipped default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Backend: `flex` (CPU) or `wgpu` (needs the `wgpu` feature and an adapter).
    #[arg(long, default_value = "flex")]
    pub backend: String,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Untimed warm-up passes.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed passes.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
}

/// Timings of [`run_bench`], in milliseconds per forward pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    /// Backend used.
    pub backend: String,
    /// Batch size.
    pub batch: usize,
    /// Sequence length.
    pub seq_len: usize,
    /// Timed passes.
    pub iters: usize,
    /// Mean time per pass.
    pub mean_ms: f64,
    /// Median time per pass.
    pub median_ms: f64,
    /// Fastest pass.
    pub min_ms: f64,
}

/// The device of a backend name (`flex`, or `wgpu` with the `wgpu` feature).
pub fn device_for(backend: &str) -> Result<Device> {
    match backend {
        "flex" | "cpu" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        other => Err(Error::invalid(format!(
            "unknown or disabled backend `{other}` (flex{})",
            if cfg!(feature = "wgpu") {
                ", wgpu"
            } else {
                "; build with --features wgpu for wgpu"
            }
        ))),
    }
}

/// Loads the model and times `iters` forward passes of `batch × seq_len` fixed token ids
/// (the logits are read back to the host, so each pass includes the synchronisation).
pub fn run_bench(args: &BenchArgs) -> Result<BenchReport> {
    let device = device_for(&args.backend)?;
    let model = match &args.model {
        Some(d) => Model::load(d, &device)?,
        None => Model::load_default(&device)?,
    };
    let vocab = model.config().vocab_size as u32;
    let batch: Vec<Vec<u32>> = (0..args.batch)
        .map(|b| {
            (0..args.seq_len)
                .map(|i| ((i as u32 * 2654435761u32).wrapping_add(b as u32 * 97)) % vocab)
                .collect()
        })
        .collect();
    let run = || -> Result<f64> {
        let t = Instant::now();
        let logits = model.forward_batch(&batch)?;
        let _ = logits
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| Error::invalid(format!("{e:?}")))?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..args.warmup {
        run()?;
    }
    let mut times = Vec::with_capacity(args.iters);
    for _ in 0..args.iters.max(1) {
        times.push(run()?);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let backend = match args.backend.as_str() {
        "flex" | "cpu" => format!(
            "burn-flex 0.22.1 ({})",
            if cfg!(feature = "fast-cpu") {
                "simd + rayon"
            } else {
                "default build: 1 thread, no simd"
            }
        ),
        other => format!("burn {other}"),
    };
    Ok(BenchReport {
        backend,
        batch: args.batch,
        seq_len: args.seq_len,
        iters: times.len(),
        mean_ms: mean,
        median_ms: sorted[sorted.len() / 2],
        min_ms: sorted[0],
    })
}
