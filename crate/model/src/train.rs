//! The masked-diffusion trainer (MDLM / LLaDA objective) behind `ward train`.
//!
//! Each step samples windows of `seq_len` tokens from the train split, draws `t ~ U(ε, 1)` per
//! sequence, replaces each token by `[MASK]` with probability `t`, and minimises the
//! cross-entropy on the masked positions weighted by `1/t` (summed and divided by the number of
//! tokens). AdamW with linear warm-up and cosine decay, gradient-norm clipping, all randomness
//! seeded per step (so a resumed run draws the same batches as an uninterrupted one).
//!
//! Outputs, under `--run-dir`: `log.csv` (one row per step; evaluation rows carry validation
//! metrics), `checkpoint/` (burn records of the model and optimizer plus `state.json`, used by
//! `--resume`), `latest/` (the model in the Hugging Face layout with its tokenizer),
//! `curves.png`, and `final_metrics.json` / `heldout.json` at the end.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::corpus::{self, Split};
use crate::error::{Error, Result};
use crate::model::Transformer;
use crate::tokenizer;
use crate::{Model, TOKENIZER_FILE};

/// Arguments of `ward train`.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct TrainArgs {
    /// The trained tokenizer (`tokenizer.json`); its vocabulary fixes `vocab_size`.
    #[arg(long, default_value = "models/ward-tiny-code/tokenizer.json")]
    pub tokenizer: PathBuf,
    /// Root of the Python sources (default: the stdlib of `python3`, split by a hash of the
    /// path); a folder with `train/` and `valid/` (build_corpus.py) is split by package.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Folder for the log, checkpoints, curves and the exported model.
    #[arg(long, default_value = "runs/ward-tiny-code")]
    pub run_dir: PathBuf,
    /// Resume from `<run-dir>/checkpoint` if it exists.
    #[arg(long)]
    pub resume: bool,
    /// Warm start from the weights of this model folder (Hugging Face layout, e.g. the shipped
    /// default model); its `config.json` then fixes the shape and the shape flags are ignored.
    /// The optimiser state starts afresh. A checkpoint found with `--resume` takes precedence.
    #[arg(long, value_name = "DIR")]
    pub init: Option<PathBuf>,
    /// Residual width.
    #[arg(long, default_value_t = 256)]
    pub hidden_size: usize,
    /// MLP width.
    #[arg(long, default_value_t = 704)]
    pub intermediate_size: usize,
    /// Number of blocks.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Query heads.
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Key/value heads.
    #[arg(long, default_value_t = 2)]
    pub kv_heads: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Total optimizer steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Final learning rate as a fraction of the peak.
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f32,
    /// Gradient clipping (L2 norm).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f32,
    /// Lower bound ε of the masking rate t ~ U(ε, 1).
    #[arg(long, default_value_t = 1e-3)]
    pub eps: f64,
    /// Seed of all randomness.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate every N steps.
    #[arg(long, default_value_t = 100)]
    pub eval_every: usize,
    /// Validation sequences per evaluation.
    #[arg(long, default_value_t = 64)]
    pub eval_seqs: usize,
    /// Save a checkpoint every N steps.
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Stop (after a checkpoint) once this many minutes have passed in this invocation.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Hide the progress bar (log lines only).
    #[arg(long)]
    pub no_progress: bool,
}

/// Validation metrics at one step.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// The diffusion objective on the validation windows (fixed seeded t and masks).
    pub val_loss: f64,
    /// Mean cross-entropy on masked tokens at 15 % masking.
    pub ce15: f64,
    /// Masked-token accuracy at 15 % masking.
    pub acc15: f64,
    /// Mean cross-entropy on masked tokens at 50 % masking.
    pub ce50: f64,
    /// Masked-token accuracy at 50 % masking.
    pub acc50: f64,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Steps done in total (over all resumed invocations).
    pub steps: usize,
    /// Whether `steps` reached `--steps`.
    pub finished: bool,
    /// Tokens processed by the model (batch × seq_len × steps).
    pub tokens_seen: u64,
    /// Wall time of all invocations, in seconds.
    pub wall_seconds: f64,
    /// Parameters of the model.
    pub params: usize,
    /// Last validation metrics.
    pub last_eval: Option<EvalMetrics>,
    /// Masked-token accuracy at 15 % on the held-out batch written to `heldout.json`.
    pub heldout_acc15: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    step: usize,
    wall_seconds: f64,
    last_eval: Option<EvalMetrics>,
}

/// Seed of the held-out accuracy check (shared with the test of the shipped weights).
pub const HELDOUT_SEED: u64 = 1234;
/// Number of sequences in `heldout.json`.
pub const HELDOUT_SEQS: usize = 16;

/// Cosine schedule with linear warm-up.
pub fn learning_rate(args: &TrainArgs, step: usize) -> f64 {
    if step < args.warmup {
        return args.lr * (step + 1) as f64 / args.warmup as f64;
    }
    let span = args.steps.saturating_sub(args.warmup).max(1) as f64;
    let p = ((step - args.warmup) as f64 / span).min(1.0);
    let min = args.lr * args.min_lr_ratio;
    min + 0.5 * (args.lr - min) * (1.0 + (std::f64::consts::PI * p).cos())
}

/// Tokenizes the files of one split into one stream, with `<|endoftext|>` after each file.
pub fn encode_split(
    tok: &tokenizers::Tokenizer,
    root: &Path,
    split: Split,
    eos: u32,
) -> Result<Vec<u32>> {
    let texts = corpus::split_files(root, split)?
        .iter()
        .map(|f| corpus::read_text(f))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    crate::eval::token_stream(tok, &refs, eos)
}

fn load_or_encode(
    cache: &Path,
    tok: &tokenizers::Tokenizer,
    root: &Path,
    split: Split,
    eos: u32,
) -> Result<Vec<u32>> {
    if let Ok(bytes) = std::fs::read(cache) {
        return Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect());
    }
    let ids = encode_split(tok, root, split, eos)?;
    let bytes: Vec<u8> = ids.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(cache, bytes).map_err(|e| Error::io(cache, e))?;
    Ok(ids)
}

/// Evenly spaced, non-overlapping windows of `seq_len` tokens.
pub fn fixed_windows(stream: &[u32], seq_len: usize, n: usize) -> Vec<Vec<u32>> {
    let total = stream.len() / seq_len;
    let n = n.min(total);
    let stride = total.checked_div(n).unwrap_or(1);
    (0..n)
        .map(|i| stream[i * stride * seq_len..(i * stride + 1) * seq_len].to_vec())
        .collect()
}

fn ids_tensor(batch: &[Vec<u32>], device: &Device) -> Tensor<2, Int> {
    let b = batch.len();
    let s = batch[0].len();
    let flat: Vec<i64> = batch.iter().flatten().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(flat, [b, s]), device)
}

/// A masked batch: inputs with `[MASK]`, the flat indices of masked positions, their targets
/// and their loss weights.
pub(crate) struct Masked {
    inputs: Vec<Vec<u32>>,
    positions: Vec<i64>,
    targets: Vec<i64>,
    weights: Vec<f32>,
}

/// Masks each token of `batch[i]` with probability `rates[i]` (at least one per sequence).
pub(crate) fn mask_batch(
    batch: &[Vec<u32>],
    rates: &[f64],
    mask_id: u32,
    rng: &mut StdRng,
) -> Masked {
    let mut m = Masked {
        inputs: Vec::with_capacity(batch.len()),
        positions: Vec::new(),
        targets: Vec::new(),
        weights: Vec::new(),
    };
    for (i, (seq, &t)) in batch.iter().zip(rates).enumerate() {
        let s = seq.len();
        let mut input = seq.clone();
        let mut any = false;
        for (j, tok) in input.iter_mut().enumerate() {
            if rng.random::<f64>() < t {
                m.positions.push((i * s + j) as i64);
                m.targets.push(*tok as i64);
                m.weights.push((1.0 / t) as f32);
                *tok = mask_id;
                any = true;
            }
        }
        if !any {
            let j = rng.random_range(0..s);
            m.positions.push((i * s + j) as i64);
            m.targets.push(input[j] as i64);
            m.weights.push((1.0 / t) as f32);
            input[j] = mask_id;
        }
        m.inputs.push(input);
    }
    m
}

/// Log-probabilities of the targets at the masked positions, and the logits' argmax there.
/// With `shift` (Dream-family checkpoints), the prediction of position `i` is read at `i − 1`
/// (at 0 for the first position of a sequence).
///
/// # Shapes
/// - output: (`[masked]` log-probabilities, `[masked]` argmax ids)
fn masked_logprobs(
    net: &Transformer,
    m: &Masked,
    shift: bool,
    device: &Device,
) -> (Tensor<1>, Tensor<1, Int>) {
    let b = m.inputs.len();
    let s = m.inputs[0].len();
    let h = net.hidden(ids_tensor(&m.inputs, device));
    let [_, _, d] = h.dims();
    let n = m.positions.len();
    let read_at: Vec<i64> = if shift {
        let s = s as i64;
        m.positions
            .iter()
            .map(|&p| if p % s == 0 { p } else { p - 1 })
            .collect()
    } else {
        m.positions.clone()
    };
    let pos = Tensor::<1, Int>::from_data(TensorData::new(read_at, [n]), device);
    let hm = h.reshape([b * s, d]).select(0, pos);
    let logits = net.head(hm);
    let argmax = logits.clone().argmax(1).reshape([n]);
    let lp = log_softmax(logits, 1);
    let tgt = Tensor::<2, Int>::from_data(TensorData::new(m.targets.clone(), [n, 1]), device);
    (lp.gather(1, tgt).reshape([n]), argmax)
}

/// The diffusion loss of a masked batch: `-Σ log p(x_i) / t / (batch·seq)`.
fn diffusion_loss(net: &Transformer, m: &Masked, device: &Device) -> Tensor<1> {
    let n = m.positions.len();
    let (lp, _) = masked_logprobs(net, m, false, device);
    let w = Tensor::<1>::from_data(TensorData::new(m.weights.clone(), [n]), device);
    let denom = (m.inputs.len() * m.inputs[0].len()) as f64;
    (lp * w).sum().neg() / denom
}

/// Masks every sequence of `part` (all of one length) with probability `ratio` from `rng`
/// and returns the summed cross-entropy of the originals at the masked positions, how many of
/// them are the logits' argmax, and how many were masked. `shift`: see [`masked_logprobs`].
pub(crate) fn masked_counts(
    net: &Transformer,
    part: &[Vec<u32>],
    ratio: f64,
    mask_id: u32,
    rng: &mut StdRng,
    shift: bool,
    device: &Device,
) -> Result<(f64, usize, usize)> {
    let rates = vec![ratio; part.len()];
    let m = mask_batch(part, &rates, mask_id, rng);
    let (lp, am) = masked_logprobs(net, &m, shift, device);
    let lp: Vec<f32> = lp
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .map_err(|e| Error::invalid(format!("reading the log-probabilities: {e:?}")))?;
    let am: Vec<i64> = am
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .map_err(|e| Error::invalid(format!("reading the argmax: {e:?}")))?;
    let ce = -lp.iter().map(|&x| x as f64).sum::<f64>();
    let correct = am.iter().zip(&m.targets).filter(|(a, b)| a == b).count();
    Ok((ce, correct, m.targets.len()))
}

/// Mean cross-entropy and accuracy on the masked tokens when each token of `seqs` is masked
/// with probability `ratio` (seeded), evaluated in chunks of `chunk` sequences.
pub fn masked_token_metrics(
    net: &Transformer,
    seqs: &[Vec<u32>],
    ratio: f64,
    mask_id: u32,
    seed: u64,
    chunk: usize,
    device: &Device,
) -> Result<(f64, f64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut ce, mut correct, mut count) = (0.0f64, 0usize, 0usize);
    for part in seqs.chunks(chunk.max(1)) {
        let (c, k, n) = masked_counts(net, part, ratio, mask_id, &mut rng, false, device)?;
        ce += c;
        correct += k;
        count += n;
    }
    Ok((
        ce / count.max(1) as f64,
        correct as f64 / count.max(1) as f64,
    ))
}

/// Masked-token accuracy at `ratio` of a loaded model on `seqs` (used by the model tests).
pub fn model_masked_accuracy(
    model: &Model,
    seqs: &[Vec<u32>],
    ratio: f64,
    seed: u64,
) -> Result<f64> {
    let mask = model
        .mask_token_id()
        .ok_or_else(|| Error::invalid("the model config has no mask_token_id"))?;
    let (_, acc) = masked_token_metrics(model.net(), seqs, ratio, mask, seed, 8, model.device())?;
    Ok(acc)
}

fn evaluate(
    net: &Transformer,
    val: &[Vec<u32>],
    args: &TrainArgs,
    mask_id: u32,
    device: &Device,
) -> Result<EvalMetrics> {
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5eed_0000_0000_0001);
    let mut loss = 0.0;
    let mut n = 0usize;
    for part in val.chunks(args.batch_size.max(1)) {
        let rates: Vec<f64> = part
            .iter()
            .map(|_| rng.random_range(args.eps..1.0))
            .collect();
        let m = mask_batch(part, &rates, mask_id, &mut rng);
        let l: f64 = diffusion_loss(net, &m, device).into_scalar::<f32>() as f64;
        loss += l * part.len() as f64;
        n += part.len();
    }
    let (ce15, acc15) = masked_token_metrics(
        net,
        val,
        0.15,
        mask_id,
        args.seed + 15,
        args.batch_size,
        device,
    )?;
    let (ce50, acc50) = masked_token_metrics(
        net,
        val,
        0.5,
        mask_id,
        args.seed + 50,
        args.batch_size,
        device,
    )?;
    Ok(EvalMetrics {
        val_loss: loss / n.max(1) as f64,
        ce15,
        acc15,
        ce50,
        acc50,
    })
}

/// Trains (or resumes) a model as described by `args`. See the module docs for the outputs.
pub fn run_train(args: &TrainArgs) -> Result<TrainReport> {
    let started = Instant::now();
    let run = &args.run_dir;
    std::fs::create_dir_all(run).map_err(|e| Error::io(run, e))?;
    let tok = tokenizer::load_tokenizer(&args.tokenizer)?;
    let (eos_id, mask_id) = tokenizer::special_ids(&tok, Some(&args.tokenizer))?;
    let vocab = tok.get_vocab_size(true);
    let mut cfg = match &args.init {
        Some(dir) => ModelConfig::from_file(dir.join(crate::CONFIG_FILE))?,
        None => ModelConfig::small(
            vocab,
            args.hidden_size,
            args.intermediate_size,
            args.layers,
            args.heads,
            args.kv_heads,
        ),
    };
    if cfg.vocab_size != vocab {
        return Err(Error::invalid(format!(
            "--init: the model has vocab_size {} but the tokenizer {} has {vocab} tokens",
            cfg.vocab_size,
            args.tokenizer.display()
        )));
    }
    cfg.mask_token_id = Some(mask_id);
    cfg.eos_token_id = Some(eos_id);
    cfg.max_position_embeddings = cfg.max_position_embeddings.max(args.seq_len);
    let params = cfg.num_params();

    let root = match &args.corpus {
        Some(p) => p.clone(),
        None => corpus::python_stdlib_dir()?,
    };
    let train_ids = load_or_encode(
        &run.join("train_ids.bin"),
        &tok,
        &root,
        Split::Train,
        eos_id,
    )?;
    let val_ids = load_or_encode(
        &run.join("val_ids.bin"),
        &tok,
        &root,
        Split::Validation,
        eos_id,
    )?;
    if train_ids.len() <= args.seq_len || val_ids.len() < args.seq_len {
        return Err(Error::invalid("corpus too small for one sequence"));
    }
    let val = fixed_windows(&val_ids, args.seq_len, args.eval_seqs);
    eprintln!(
        "corpus {}: {} train tokens, {} validation tokens; model {} params; {} eval windows",
        root.display(),
        train_ids.len(),
        val_ids.len(),
        params,
        val.len()
    );

    let device = Device::flex().autodiff();
    let inner = Device::flex();
    let mut optim = AdamWConfig::new()
        .with_weight_decay(args.weight_decay)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(args.clip)))
        .init();
    let mut net = match &args.init {
        Some(dir) => {
            let src = crate::weights::WeightSource::open_dir(dir)?;
            eprintln!("warm start from {}", dir.display());
            crate::weights::build_transformer(&cfg, src, &device)?
        }
        None => Transformer::init(&cfg, &device),
    };
    let ckpt = run.join("checkpoint");
    let mut state = State::default();
    if args.resume && ckpt.join("state.json").exists() {
        let text = std::fs::read_to_string(ckpt.join("state.json"))
            .map_err(|e| Error::io(ckpt.join("state.json"), e))?;
        state = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: {e}", ckpt.join("state.json").display())))?;
        net = net
            .try_load_file(ckpt.join("model.bpk"))
            .map_err(|e| Error::invalid(format!("{}: {e:?}", ckpt.join("model.bpk").display())))?;
        optim = optim
            .load(ckpt.join("optim.bpk"))
            .map_err(|e| Error::invalid(format!("{}: {e:?}", ckpt.join("optim.bpk").display())))?;
        eprintln!("resumed at step {}", state.step);
    }

    let log_path = run.join("log.csv");
    let new_log = !(args.resume && log_path.exists());
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(!new_log)
        .write(true)
        .truncate(new_log)
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, e))?;
    if new_log {
        writeln!(log, "step,tokens,lr,loss,masked_ce,tokens_per_s,elapsed_s,val_loss,val_ce15,val_acc15,val_ce50,val_acc50")
            .map_err(|e| Error::io(&log_path, e))?;
    }
    std::fs::write(
        run.join("args.json"),
        serde_json::to_string_pretty(args).unwrap_or_default(),
    )
    .map_err(|e| Error::io(run.join("args.json"), e))?;

    let bar = if args.no_progress {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(args.steps as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .expect("valid template"),
    );
    bar.set_position(state.step as u64);
    let tokens_per_step = (args.batch_size * args.seq_len) as u64;
    let base_wall = state.wall_seconds;
    let mut window_start = Instant::now();
    let mut window_tokens = 0u64;
    let mut tps = 0.0;
    let mut finished = state.step >= args.steps;

    while state.step < args.steps {
        let step = state.step;
        let mut rng =
            StdRng::seed_from_u64(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step as u64);
        let batch: Vec<Vec<u32>> = (0..args.batch_size)
            .map(|_| {
                let s = rng.random_range(0..train_ids.len() - args.seq_len);
                train_ids[s..s + args.seq_len].to_vec()
            })
            .collect();
        let rates: Vec<f64> = (0..args.batch_size)
            .map(|_| rng.random_range(args.eps..1.0))
            .collect();
        let m = mask_batch(&batch, &rates, mask_id, &mut rng);
        let loss = diffusion_loss(&net, &m, &device);
        let loss_v: f64 = loss.clone().into_scalar::<f32>() as f64;
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let lr = learning_rate(args, step);
        net = optim.step(lr, net, grads);
        state.step += 1;
        window_tokens += tokens_per_step;
        let el = window_start.elapsed().as_secs_f64();
        if el > 5.0 {
            tps = window_tokens as f64 / el;
            window_start = Instant::now();
            window_tokens = 0;
        }
        let masked_ce = loss_v * (args.batch_size * args.seq_len) as f64
            / m.weights.iter().map(|&w| w as f64).sum::<f64>();
        let elapsed = base_wall + started.elapsed().as_secs_f64();
        bar.set_position(state.step as u64);
        bar.set_message(format!("loss {loss_v:.3} lr {lr:.2e} {tps:.0} tok/s"));
        let mut eval_cols = ",,,,,".to_string();
        let last = state.step == args.steps;
        if state.step % args.eval_every == 0 || last {
            let ev = evaluate(&net.valid(), &val, args, mask_id, &inner)?;
            bar.println(format!(
                "step {} val_loss {:.4} acc15 {:.4} acc50 {:.4} ce15 {:.4} ce50 {:.4}",
                state.step, ev.val_loss, ev.acc15, ev.acc50, ev.ce15, ev.ce50
            ));
            if args.no_progress {
                eprintln!(
                    "step {} loss {loss_v:.4} val_loss {:.4} acc15 {:.4} acc50 {:.4} {tps:.0} tok/s",
                    state.step, ev.val_loss, ev.acc15, ev.acc50
                );
            }
            eval_cols = format!(
                "{:.5},{:.5},{:.5},{:.5},{:.5}",
                ev.val_loss, ev.ce15, ev.acc15, ev.ce50, ev.acc50
            );
            state.last_eval = Some(ev);
        }
        writeln!(
            log,
            "{},{},{lr:.6e},{loss_v:.5},{masked_ce:.5},{tps:.1},{elapsed:.1},{eval_cols}",
            state.step,
            state.step as u64 * tokens_per_step
        )
        .map_err(|e| Error::io(&log_path, e))?;
        let out_of_time = args
            .max_minutes
            .is_some_and(|m| started.elapsed().as_secs_f64() > m * 60.0);
        if state.step % args.checkpoint_every == 0 || last || out_of_time {
            state.wall_seconds = elapsed;
            save_checkpoint(&net, &optim, &state, &cfg, args, run)?;
        }
        if last {
            finished = true;
        }
        if out_of_time {
            bar.println(format!("stopping at step {} (--max-minutes)", state.step));
            break;
        }
    }
    bar.finish_and_clear();
    log.flush().map_err(|e| Error::io(&log_path, e))?;
    state.wall_seconds = base_wall + started.elapsed().as_secs_f64();

    let mut heldout_acc15 = None;
    if finished {
        let held = fixed_windows(&val_ids, args.seq_len, HELDOUT_SEQS);
        let held_path = run.join("heldout.json");
        std::fs::write(&held_path, serde_json::to_string(&held).unwrap_or_default())
            .map_err(|e| Error::io(&held_path, e))?;
        let model = Model::load(run.join("latest"), &inner)?;
        heldout_acc15 = Some(model_masked_accuracy(&model, &held, 0.15, HELDOUT_SEED)?);
    }
    if let Err(e) = plot_curves(&log_path, &run.join("curves.png")) {
        eprintln!("warning: could not plot the curves: {e}");
    }
    let report = TrainReport {
        steps: state.step,
        finished,
        tokens_seen: state.step as u64 * tokens_per_step,
        wall_seconds: state.wall_seconds,
        params,
        last_eval: state.last_eval,
        heldout_acc15,
    };
    write_final_metrics(run, &report)?;
    Ok(report)
}

/// Writes `heldout.json` (the first [`HELDOUT_SEQS`] evenly spaced validation windows) and
/// `final_metrics.json` for the last checkpoint of a run, without training. Used by
/// [`run_train`] at the end, and by hand for a run that stopped early (`--max-minutes`).
pub fn finalize_run(run: &Path, seq_len: usize) -> Result<TrainReport> {
    let state_path = run.join("checkpoint").join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: State = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("{}: {e}", state_path.display())))?;
    let args_path = run.join("args.json");
    let args: TrainArgs = serde_json::from_str(
        &std::fs::read_to_string(&args_path).map_err(|e| Error::io(&args_path, e))?,
    )
    .map_err(|e| Error::invalid(format!("{}: {e}", args_path.display())))?;
    let val_path = run.join("val_ids.bin");
    let bytes = std::fs::read(&val_path).map_err(|e| Error::io(&val_path, e))?;
    let val_ids: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let held = fixed_windows(&val_ids, seq_len, HELDOUT_SEQS);
    let held_path = run.join("heldout.json");
    std::fs::write(&held_path, serde_json::to_string(&held).unwrap_or_default())
        .map_err(|e| Error::io(&held_path, e))?;
    let model = Model::load(run.join("latest"), &Device::flex())?;
    let acc = model_masked_accuracy(&model, &held, 0.15, HELDOUT_SEED)?;
    let report = TrainReport {
        steps: state.step,
        finished: state.step >= args.steps,
        tokens_seen: (state.step * args.batch_size * args.seq_len) as u64,
        wall_seconds: state.wall_seconds,
        params: model.config().num_params(),
        last_eval: state.last_eval,
        heldout_acc15: Some(acc),
    };
    write_final_metrics(run, &report)?;
    Ok(report)
}

/// Writes a run's `final_metrics.json`.
fn write_final_metrics(run: &Path, report: &TrainReport) -> Result<()> {
    let rp = run.join("final_metrics.json");
    std::fs::write(
        &rp,
        serde_json::to_string_pretty(report).unwrap_or_default(),
    )
    .map_err(|e| Error::io(&rp, e))
}

fn save_checkpoint(
    net: &Transformer,
    optim: &burn::optim::ModuleOptimizer,
    state: &State,
    cfg: &ModelConfig,
    args: &TrainArgs,
    run: &Path,
) -> Result<()> {
    let tmp = run.join("checkpoint.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    net.clone()
        .save_file(tmp.join("model.bpk"))
        .map_err(|e| Error::invalid(format!("saving the checkpoint: {e:?}")))?;
    optim
        .save(tmp.join("optim.bpk"))
        .map_err(|e| Error::invalid(format!("saving the optimizer: {e:?}")))?;
    std::fs::write(
        tmp.join("state.json"),
        serde_json::to_string_pretty(state).unwrap_or_default(),
    )
    .map_err(|e| Error::io(tmp.join("state.json"), e))?;
    let ckpt = run.join("checkpoint");
    let _ = std::fs::remove_dir_all(&ckpt);
    std::fs::rename(&tmp, &ckpt).map_err(|e| Error::io(&ckpt, e))?;

    // The model in the Hugging Face layout, ready to copy into models/.
    let latest = run.join("latest");
    std::fs::create_dir_all(&latest).map_err(|e| Error::io(&latest, e))?;
    cfg.save(latest.join(crate::CONFIG_FILE))?;
    let mut meta = HashMap::new();
    meta.insert("step".to_string(), state.step.to_string());
    crate::weights::save_safetensors(
        &net.valid(),
        latest.join(crate::weights::WEIGHTS_FILE),
        Some(meta),
    )?;
    std::fs::copy(&args.tokenizer, latest.join(TOKENIZER_FILE))
        .map_err(|e| Error::io(&args.tokenizer, e))?;
    Ok(())
}

/// Draws the training and validation curves of a `log.csv` into a PNG (needs `python3` with
/// matplotlib; the script is `crate/model/scripts/plot_curves.py`, embedded here).
pub fn plot_curves(log_csv: &Path, png: &Path) -> Result<()> {
    let script = include_str!("../scripts/plot_curves.py");
    let status = std::process::Command::new(
        std::env::var("WARD_PYTHON").unwrap_or_else(|_| "python3".to_string()),
    )
    .arg("-c")
    .arg(script)
    .arg(log_csv)
    .arg(png)
    .status()
    .map_err(|e| Error::io("python3", e))?;
    if !status.success() {
        return Err(Error::invalid(
            "the plotting script failed (is matplotlib installed?)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TrainArgs,
    }

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let args = Cli::parse_from(["t", "--steps", "100", "--warmup", "10", "--lr", "1e-3"]).args;
        assert!((learning_rate(&args, 0) - 1e-4).abs() < 1e-12);
        assert!((learning_rate(&args, 9) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(&args, 10) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(&args, 100) - 1e-4).abs() < 1e-12);
        assert!(learning_rate(&args, 50) < learning_rate(&args, 20));
    }

    #[test]
    fn masking_follows_the_rate_and_weights_by_one_over_t() {
        let mut rng = StdRng::seed_from_u64(0);
        let batch = vec![(0..1000).map(|i| (i % 50) as u32 + 2).collect::<Vec<u32>>(); 2];
        let m = mask_batch(&batch, &[0.2, 0.8], 1, &mut rng);
        let n0 = m.positions.iter().filter(|&&p| p < 1000).count();
        let n1 = m.positions.len() - n0;
        assert!((150..250).contains(&n0), "{n0}");
        assert!((750..850).contains(&n1), "{n1}");
        for (k, &p) in m.positions.iter().enumerate() {
            let (i, j) = (p as usize / 1000, p as usize % 1000);
            assert_eq!(m.inputs[i][j], 1);
            assert_eq!(m.targets[k], batch[i][j] as i64);
            let t = if i == 0 { 0.2 } else { 0.8 };
            assert!((m.weights[k] - 1.0 / t as f32).abs() < 1e-6);
        }
        // A sequence that draws no mask still gets one masked position.
        let m = mask_batch(&[vec![5, 6, 7]], &[1e-9], 1, &mut rng);
        assert_eq!(m.positions.len(), 1);
    }
}
