"""Build the parity fixture for crate/model (run by hand; needs torch and transformers).

    python3 tests/parity/make_fixture.py [--out crate/model/tests/fixtures/parity]

Creates a tiny random Qwen2 checkpoint with transformers, runs it with full (non-causal)
attention on fixed input ids, and writes config.json, model.safetensors, a sharded copy
(shards/), ids and logits (expected.json). The Rust test `parity` loads the checkpoint with
ward-model and compares the logits (tolerance 1e-4).
"""
import argparse
import json
import os

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--out", default="crate/model/tests/fixtures/parity")
args = p.parse_args()

torch.manual_seed(0)
cfg = Qwen2Config(
    vocab_size=96,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    initializer_range=0.2,
    attn_implementation="eager",
)
cfg.mask_token_id = 95
model = Qwen2ForCausalLM(cfg).eval()
with torch.no_grad():
    # Exercise every parameter: random biases and norm gains, not only the defaults.
    for name, param in model.named_parameters():
        if name.endswith("bias") or "norm" in name:
            param.copy_(torch.randn_like(param) * 0.3 + (1.0 if "norm" in name else 0.0))

ids = torch.randint(0, cfg.vocab_size, (2, 17), generator=torch.Generator().manual_seed(1))
b, s = ids.shape
# A 4-D mask of ones: every position attends to every position (no causal mask). transformers
# takes a 4-D mask as given instead of building its causal one.
full = torch.ones((b, 1, s, s), dtype=torch.float32)
with torch.no_grad():
    logits = model(input_ids=ids, attention_mask=full).logits
    causal = model(input_ids=ids).logits
assert not torch.allclose(logits, causal), "the full mask was ignored"
with torch.no_grad():
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % cfg.vocab_size
    first = model(input_ids=changed, attention_mask=full).logits[:, 0]
assert not torch.allclose(first, logits[:, 0]), "attention is not bidirectional"

os.makedirs(args.out, exist_ok=True)
model.save_pretrained(args.out, safe_serialization=True)
model.save_pretrained(os.path.join(args.out, "shards"), safe_serialization=True, max_shard_size="40KB")
for extra in ["generation_config.json"]:
    for d in [args.out, os.path.join(args.out, "shards")]:
        f = os.path.join(d, extra)
        if os.path.exists(f):
            os.remove(f)
with open(os.path.join(args.out, "expected.json"), "w") as f:
    json.dump(
        {
            "ids": ids.tolist(),
            "shape": list(logits.shape),
            "logits": [round(x, 7) for x in logits.flatten().tolist()],
            "torch": torch.__version__,
        },
        f,
    )
print("wrote", args.out, "logits", tuple(logits.shape))
