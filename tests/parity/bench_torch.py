"""Time one forward pass of a ward model folder in PyTorch (run by hand; needs torch and
transformers). The same weights, batch and length as `ward bench model`, for the ratio quoted in
crate/model/README.md:

    python3 tests/parity/bench_torch.py models/ward-tiny-code --threads 2
"""
import argparse
import json
import statistics
import time

import torch
from transformers import Qwen2ForCausalLM

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("--seq-len", type=int, default=256)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--iters", type=int, default=10)
p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
args = p.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)

model = Qwen2ForCausalLM.from_pretrained(args.model, attn_implementation="eager").eval()
vocab = model.config.vocab_size
# The same ids as ward_model::bench::run_bench.
ids = torch.tensor(
    [[((i * 2654435761 + b * 97) % 2**32) % vocab for i in range(args.seq_len)] for b in range(args.batch)]
)
full = torch.ones((args.batch, 1, args.seq_len, args.seq_len), dtype=torch.float32)
times = []
with torch.inference_mode():
    for k in range(args.warmup + args.iters):
        t = time.perf_counter()
        model(input_ids=ids, attention_mask=full).logits.numpy()
        if k >= args.warmup:
            times.append((time.perf_counter() - t) * 1e3)
print(
    json.dumps(
        {
            "backend": f"torch {torch.__version__} cpu, {torch.get_num_threads()} threads",
            "batch": args.batch,
            "seq_len": args.seq_len,
            "iters": len(times),
            "mean_ms": statistics.mean(times),
            "median_ms": statistics.median(times),
            "min_ms": min(times),
        },
        indent=2,
    )
)
