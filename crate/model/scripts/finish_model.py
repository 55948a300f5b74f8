"""Copy a finished training run into models/<name>/ and write its MODEL_CARD.md from the run's
own outputs (no number is typed by hand).

    python3 crate/model/scripts/finish_model.py RUN_DIR models/ward-tiny-code \
        [--bench-flex bench_flex.json] [--bench-wgpu bench_wgpu.json] [--bench-torch bench_torch.json]

RUN_DIR must hold args.json, final_metrics.json, log.csv, curves.png, heldout.json and latest/.
"""
import argparse
import csv
import json
import os
import platform
import shutil
import subprocess

p = argparse.ArgumentParser()
p.add_argument("run")
p.add_argument("out")
p.add_argument("--bench-flex")
p.add_argument("--bench-wgpu")
p.add_argument("--bench-torch")
p.add_argument("--hardware", default=None)
p.add_argument("--history", default=None, help="a note on how the run was invoked (resumes)")
a = p.parse_args()

args = json.load(open(os.path.join(a.run, "args.json")))
final = json.load(open(os.path.join(a.run, "final_metrics.json")))
rows = list(csv.DictReader(open(os.path.join(a.run, "log.csv"))))
evals = [r for r in rows if r["val_loss"]]
cfg = json.load(open(os.path.join(a.run, "latest", "config.json")))

os.makedirs(a.out, exist_ok=True)
for f in ["config.json", "model.safetensors", "tokenizer.json"]:
    shutil.copy(os.path.join(a.run, "latest", f), os.path.join(a.out, f))
shutil.copy(os.path.join(a.run, "curves.png"), os.path.join(a.out, "curves.png"))
shutil.copy(os.path.join(a.run, "heldout.json"), os.path.join(a.out, "heldout.json"))
with open(os.path.join(a.out, "metrics.json"), "w") as f:
    json.dump(final, f, indent=2)
    f.write("\n")
with open(os.path.join(a.out, "log.csv"), "w") as f:
    f.write(open(os.path.join(a.run, "log.csv")).read())

if a.hardware:
    hw = a.hardware
else:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw = f"{os.cpu_count()} CPU cores ({cpu}), no GPU, burn-flex backend; {platform.system()}"

flags = []
defaults_skip = {"no_progress", "resume"}
for k, v in args.items():
    if k in defaults_skip or v is None or v is False:
        continue
    flag = "--" + k.replace("_", "-")
    flags.append(flag if v is True else f"{flag} {v}")
flagstr = " \\\n    ".join(flags)

ev = final["last_eval"] or {}


def bench_line(path, label):
    if not path:
        return None
    b = json.load(open(path))
    return b, f"| {label} | {b['backend']} | {b['batch']}×{b['seq_len']} | {b['median_ms']:.1f} | {b['mean_ms']:.1f} | {b['min_ms']:.1f} |"


bench = [x for x in [bench_line(a.bench_flex, "ward (burn)"), bench_line(a.bench_wgpu, "ward (burn)"), bench_line(a.bench_torch, "PyTorch")] if x]
bench_md = ""
if bench:
    bench_md = "| implementation | backend | batch×tokens | median ms | mean ms | min ms |\n|---|---|---|---|---|---|\n"
    bench_md += "\n".join(line for _, line in bench) + "\n"
    if a.bench_flex and a.bench_torch:
        f_ = json.load(open(a.bench_flex))["median_ms"]
        t_ = json.load(open(a.bench_torch))["median_ms"]
        bench_md += f"\nburn-flex / PyTorch (median): **{f_ / t_:.2f}×** the time of PyTorch on the same weights.\n"

card = f"""# ward-tiny-code

A small bidirectional masked-diffusion code model for Ward (Qwen2 layout, full attention),
trained from scratch with `ward train` on the Python sources of CPython.

| | |
|---|---|
| architecture | Qwen2 layout, bidirectional: {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, MLP {cfg['intermediate_size']} (SwiGLU), {cfg['num_attention_heads']} query / {cfg['num_key_value_heads']} key-value heads, RoPE θ={cfg['rope_theta']}, tied embeddings |
| parameters | {final['params']:,} |
| vocabulary | {cfg['vocab_size']} byte-level BPE tokens (`tokenizer.json`; `<|endoftext|>` = {cfg['eos_token_id']}, `[MASK]` = {cfg['mask_token_id']}) |
| sequence length | {args['seq_len']} tokens |
| objective | masked diffusion (MDLM / LLaDA): t ~ U({args['eps']}, 1), mask each token with probability t, cross-entropy on masked tokens weighted by 1/t |
| optimiser | AdamW (weight decay {args['weight_decay']}), peak lr {args['lr']}, {args['warmup']} warm-up steps, cosine decay to {args['min_lr_ratio']}× peak, gradient-norm clipping {args['clip']}, seed {args['seed']} |
| batch | {args['batch_size']} sequences × {args['seq_len']} tokens = {args['batch_size'] * args['seq_len']} tokens per step |
| steps | {final['steps']} of {args['steps']} ({'finished' if final['finished'] else 'stopped early'}) |
| tokens seen | {final['tokens_seen']:,} |
| wall time | {final['wall_seconds'] / 60:.1f} minutes |
| hardware | {hw} |

## Data

The `.py` files of the CPython {platform.python_version()} standard library on the training machine, without
test suites (`test/`, `tests/`, `idle_test/`, `test_*.py`) and without `site-packages`. Files
are split by a hash of their relative path: ~95 % train, ~5 % validation. The corpus is read at
training time and is not shipped.

## Results (validation split, last evaluation at step {evals[-1]['step'] if evals else '-'})

| metric | value |
|---|---|
| validation loss (diffusion objective, fixed seeded t and masks, {args['eval_seqs']} windows) | {ev.get('val_loss', float('nan')):.4f} |
| masked-token accuracy, 15 % masked | {ev.get('acc15', float('nan')):.4f} (cross-entropy {ev.get('ce15', float('nan')):.3f}) |
| masked-token accuracy, 50 % masked | {ev.get('acc50', float('nan')):.4f} (cross-entropy {ev.get('ce50', float('nan')):.3f}) |
| masked-token accuracy, 15 % masked, on the fixed held-out batch `heldout.json` (seed 1234) | {final['heldout_acc15']:.4f} |

The test `shipped_model_loads_and_keeps_its_accuracy` (crate/model/tests/model.rs) checks the
last figure (from `metrics.json`) with a tolerance of 0.01.

![training curves](curves.png)

Evaluations during training (`log.csv` holds every step):

| step | val loss | acc@15% | acc@50% |
|---|---|---|---|
""" + "\n".join(
    f"| {r['step']} | {float(r['val_loss']):.4f} | {float(r['val_acc15']):.4f} | {float(r['val_acc50']):.4f} |" for r in evals
) + f"""

## Forward-pass benchmark (batch 1, 256 tokens)

{bench_md or 'Not measured yet.'}

Commands: `ward bench model` (or `cargo run -p ward-model --release --example bench -- --backend flex`),
`cargo run -p ward-model --release --features wgpu --example bench -- --backend wgpu`, and
`python3 tests/parity/bench_torch.py models/ward-tiny-code --threads 1` for PyTorch (one
thread on both sides; the default burn-flex build is single-threaded). The wgpu row, where
present, needs `--features wgpu` and a Vulkan adapter (here lavapipe from Debian's
`mesa-vulkan-drivers`, i.e. Vulkan emulated on the CPU, so it says nothing about a real GPU).

## Reproduce

```sh
ward train-tokenizer --out models/ward-tiny-code/tokenizer.json
ward train \\
    {flagstr}
```

Until `ward train` is wired in the CLI, the same flags run as
`cargo run -p ward-model --release --example train -- <flags>` (and
`--example train_tokenizer` for the tokenizer). Then
`python3 crate/model/scripts/finish_model.py <run-dir> models/ward-tiny-code` copies the model
here and writes this card.
{('' if not a.history else chr(10) + '### How this run was actually invoked' + chr(10) + chr(10) + a.history + chr(10))}"""
open(os.path.join(a.out, "MODEL_CARD.md"), "w").write(card)
print("wrote", a.out)
