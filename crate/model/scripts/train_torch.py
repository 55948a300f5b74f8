"""The masked-diffusion trainer of `ward train`, in PyTorch: the same model, objective and tensor
names, for machines where PyTorch trains faster than burn (a GPU, or a CPU with OpenBLAS; see
the default model's card for the measured throughput of both).

    python3 crate/model/scripts/train_torch.py --corpus /var/tmp/ward-corpus \
        --init models/ward-tiny-code --run-dir /var/tmp/ward-runs/torch --steps 3200
    python3 crate/model/scripts/train_torch.py --bench 8      # tokens/s only

Model: the Qwen2 layout of crate/model (bidirectional attention, q/k/v biases, RoPE, RMSNorm,
SwiGLU, tied embeddings), with the Hugging Face tensor names, so `ward` loads the result as it
is. Objective (as crate/model/src/train.rs): per sequence t ~ U(eps, 1), each token replaced by
[MASK] with probability t (at least one per sequence), loss = -sum(log p(x_i) / t) / (batch *
seq_len) over the masked positions. AdamW (betas 0.9/0.999, eps 1e-8 as burn's), linear warm-up
and cosine decay to `--min-lr-ratio` of the peak, gradient-norm clipping. With `--hole-frac F`,
a share F of the sequences are variable-length infills instead (`hole_rows`: a span of text
followed by end-token pads, masked only there), so the model learns to end a hole early; the
sampler's `early_end` reads an end token in an infill hole that way.

Corpus: `<corpus>/train` and `<corpus>/valid` (crate/model/scripts/build_corpus.py); every
`.py` file in sorted path order is tokenized (no special tokens) and followed by
`<|endoftext|>`, as `ward train` does; the streams are cached as little-endian u32 in the run
folder. Batches are random windows of the train stream (seeded per step).

Outputs in `--run-dir`: `log.csv` (the columns of `ward train`'s log), `latest/` (config.json,
model.safetensors, tokenizer.json) after every evaluation and at the end, `checkpoint.pt`
(model and optimiser, for `--resume`), `state.json`.
"""
import argparse
import csv
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, nh, kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.nh, self.kv, self.hd = nh, kv, c.get("head_dim") or h // nh
        self.q_proj = nn.Linear(h, nh * self.hd, bias=True)
        self.k_proj = nn.Linear(h, kv * self.hd, bias=True)
        self.v_proj = nn.Linear(h, kv * self.hd, bias=True)
        self.o_proj = nn.Linear(nh * self.hd, h, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = self.nh // self.kv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.hd), -1)
        return self.o_proj((att @ v).transpose(1, 2).reshape(b, t, -1))


def rope(z, cos, sin):
    half = z.shape[-1] // 2
    return z * cos + torch.cat([-z[..., half:], z[..., :half]], -1) * sin


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class Model(nn.Module):
    """Parameter names match the Hugging Face Qwen2 checkpoint (`model.…`; tied head)."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Body(c)
        hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
        self.register_buffer("inv_freq", inv, persistent=False)

    def hidden(self, ids):
        t = ids.shape[1]
        f = torch.outer(torch.arange(t, dtype=torch.float32), self.inv_freq)
        e = torch.cat([f, f], -1)
        cos, sin = e.cos(), e.sin()
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.model.norm(x)

    def masked_logits(self, ids, flat_pos):
        """Logits at the flat positions `flat_pos` of the (batch, seq) ids."""
        h = self.hidden(ids)
        hm = h.reshape(-1, h.shape[-1])[flat_pos]
        return hm @ self.model.embed_tokens.weight.t()


def init_weights(m: Model, seed: int):
    torch.manual_seed(seed)
    for name, p in m.named_parameters():
        if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
            nn.init.ones_(p)
        elif name.endswith(".bias"):
            nn.init.zeros_(p)
        else:
            nn.init.normal_(p, std=0.02)


def load_safetensors(m: Model, folder: Path):
    from safetensors.torch import load_file

    sd = load_file(str(folder / "model.safetensors"))
    sd = {k: v.float() for k, v in sd.items() if k != "lm_head.weight"}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    if missing or unexpected:
        sys.exit(f"{folder}/model.safetensors: missing {missing}, unexpected {unexpected}")


def save_model(m: Model, folder: Path, tokenizer: Path, step: int):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous().clone() for k, v in m.state_dict().items()}
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt", "step": str(step)})
    (folder / "config.json").write_text(json.dumps(m.c, indent=2) + "\n")
    shutil.copy(tokenizer, folder / "tokenizer.json")


def encode_folder(tok, root: Path, eos: int, cache: Path):
    if cache.exists():
        return np.fromfile(cache, dtype="<u4")
    files = sorted(p for p in root.rglob("*.py") if p.is_file())
    texts = [p.read_text(encoding="utf-8") for p in files]
    ids = []
    for i in range(0, len(texts), 256):
        for enc in tok.encode_batch(texts[i : i + 256], add_special_tokens=False):
            ids.extend(enc.ids)
            ids.append(eos)
    arr = np.asarray(ids, dtype="<u4")
    arr.tofile(cache)
    return arr


def mask_batch(batch, t, mask_id, gen, holes=None):
    """Masks each token with probability t (per sequence), at least one per sequence. A row
    with a hole (`holes[i]` = (start, end), see hole_rows) is masked only inside its hole, at
    its rate t (at least one position); its weight is scaled by seq_len / hole length, so an
    infill row counts as much as a plain one."""
    b, s = batch.shape
    r = torch.rand(b, s, generator=gen)
    m = r < t[:, None]
    scale = torch.ones(b)
    for i, h in enumerate(holes or []):
        if h is None:
            continue
        a, e = h
        inside = torch.zeros(s, dtype=torch.bool)
        inside[a:e] = True
        m[i] &= inside
        if not m[i].any():
            m[i, a + int(torch.randint(0, e - a, (1,), generator=gen))] = True
        scale[i] = s / (e - a)
    none = ~m.any(1)
    if none.any():
        j = torch.randint(0, s, (b,), generator=gen)
        m[none, j[none]] = True
    inputs = batch.masked_fill(m, mask_id)
    pos = m.reshape(-1).nonzero().squeeze(1)
    w = (scale / t)[:, None].expand(b, s).reshape(-1)[pos]
    return inputs, pos, batch.reshape(-1)[pos], w


def windows(stream, seq, n):
    total = len(stream) // seq
    n = min(n, total)
    stride = max(total // max(n, 1), 1)
    return torch.from_numpy(
        np.stack([stream[i * stride * seq : (i * stride + 1) * seq].astype("int64") for i in range(n)])
    )


@torch.no_grad()
def evaluate(m, val, args, mask_id):
    m.eval()
    out = {}
    gen = torch.Generator().manual_seed(args.seed ^ 0x5EED)
    loss, n = 0.0, 0
    for part in val.split(args.batch_size):
        t = torch.rand(part.shape[0], generator=gen) * (1 - args.eps) + args.eps
        inp, pos, tgt, w = mask_batch(part, t, mask_id, gen)
        lp = F.log_softmax(m.masked_logits(inp, pos), -1).gather(1, tgt[:, None]).squeeze(1)
        loss += float(-(lp * w).sum() / part.numel()) * part.shape[0]
        n += part.shape[0]
    out["val_loss"] = loss / max(n, 1)
    for rate in (0.15, 0.5):
        gen = torch.Generator().manual_seed(args.seed + int(rate * 100))
        ce, correct, count = 0.0, 0, 0
        for part in val.split(args.batch_size):
            t = torch.full((part.shape[0],), rate)
            inp, pos, tgt, _ = mask_batch(part, t, mask_id, gen)
            lg = m.masked_logits(inp, pos)
            ce += float(F.cross_entropy(lg, tgt, reduction="sum"))
            correct += int((lg.argmax(-1) == tgt).sum())
            count += int(tgt.numel())
        key = int(rate * 100)
        out[f"ce{key}"] = ce / max(count, 1)
        out[f"acc{key}"] = correct / max(count, 1)
    m.train()
    return out


def lr_at(args, step):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = min((step - args.warmup) / max(args.steps - args.warmup, 1), 1.0)
    lo = args.lr * args.min_lr_ratio
    return lo + 0.5 * (args.lr - lo) * (1 + math.cos(math.pi * p))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--tokenizer", type=Path, default=Path("models/ward-tiny-code/tokenizer.json"))
    ap.add_argument("--init", type=Path, help="warm start from this model folder (config and weights)")
    ap.add_argument("--config", type=Path, help="config.json of a new model (when not --init)")
    ap.add_argument("--run-dir", type=Path, default=Path("/var/tmp/ward-runs/torch"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--eps", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--eval-seqs", type=int, default=64)
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1 was fastest on 2 cores)")
    ap.add_argument("--bench", type=int, default=0, help="time N steps on random tokens and exit")
    ap.add_argument("--hole-frac", type=float, default=0.0,
                    help="share of the sequences trained as variable-length infills (see hole_rows)")
    ap.add_argument("--hole-max-span", type=int, default=48, help="most text tokens of an infill hole")
    ap.add_argument("--hole-max-pad", type=int, default=24, help="most end-token pads after an infill's text")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.init:
        cfg = json.loads((args.init / "config.json").read_text())
    elif args.config:
        cfg = json.loads(args.config.read_text())
    else:
        cfg = json.loads(Path("models/ward-tiny-code/config.json").read_text())
    cfg["max_position_embeddings"] = max(cfg.get("max_position_embeddings", 0), args.seq_len)
    model = Model(cfg)
    if args.init:
        load_safetensors(model, args.init)
    else:
        init_weights(model, args.seed)
    mask_id, eos = cfg["mask_token_id"], cfg["eos_token_id"]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
    )

    if args.bench:
        gen = torch.Generator().manual_seed(0)
        times = []
        for _ in range(args.bench + 2):
            batch = torch.randint(2, cfg["vocab_size"], (args.batch_size, args.seq_len), generator=gen)
            t0 = time.perf_counter()
            step_once(model, opt, batch, args, mask_id, gen, 1e-4)
            times.append(time.perf_counter() - t0)
        times = sorted(times[2:])
        tps = args.batch_size * args.seq_len / times[len(times) // 2]
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch_size,
                          "seq_len": args.seq_len, "tokens_per_s_median": round(tps, 1)}))
        return

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(args.tokenizer))
    run = args.run_dir
    run.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train = encode_folder(tok, args.corpus / "train", eos, run / "train_ids.bin")
    valid = encode_folder(tok, args.corpus / "valid", eos, run / "valid_ids.bin")
    print(f"corpus: {len(train)} train tokens, {len(valid)} validation tokens ({time.time() - t0:.0f} s)", flush=True)
    val = windows(valid, args.seq_len, args.eval_seqs)

    state = {"step": 0, "wall_seconds": 0.0, "last_eval": None}
    if args.resume and (run / "checkpoint.pt").exists():
        ck = torch.load(run / "checkpoint.pt")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = json.loads((run / "state.json").read_text())
        print(f"resumed at step {state['step']}", flush=True)
    log_path = run / "log.csv"
    new_log = not (args.resume and log_path.exists())
    log = open(log_path, "w" if new_log else "a", newline="")
    w = csv.writer(log)
    if new_log:
        w.writerow(["step", "tokens", "lr", "loss", "masked_ce", "tokens_per_s", "elapsed_s",
                    "val_loss", "val_ce15", "val_acc15", "val_ce50", "val_acc50"])

    started = time.time()
    base_wall = state["wall_seconds"]
    n_windows = len(train) - args.seq_len - 1
    step = state["step"]
    recent = []
    while step < args.steps:
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        rs = random.Random(args.seed * 1_000_003 + step)
        starts = [rs.randrange(0, n_windows) for _ in range(args.batch_size)]
        batch = torch.from_numpy(np.stack([train[s : s + args.seq_len].astype("int64") for s in starts]))
        holes = hole_rows(batch, args, rs, eos) if args.hole_frac > 0 else None
        lr = lr_at(args, step)
        ts = time.perf_counter()
        loss, ce = step_once(model, opt, batch, args, mask_id, gen, lr, holes)
        recent.append(args.batch_size * args.seq_len / (time.perf_counter() - ts))
        recent = recent[-20:]
        step += 1
        elapsed = base_wall + time.time() - started
        row = [step, step * args.batch_size * args.seq_len, f"{lr:.6e}", f"{loss:.5f}", f"{ce:.5f}",
               f"{sum(recent) / len(recent):.1f}", f"{elapsed:.1f}"]
        timeout = args.max_minutes is not None and (time.time() - started) / 60 >= args.max_minutes
        if step % args.eval_every == 0 or step == args.steps or timeout:
            ev = evaluate(model, val, args, mask_id)
            state["last_eval"] = ev
            row += [f"{ev['val_loss']:.5f}", f"{ev['ce15']:.5f}", f"{ev['acc15']:.5f}", f"{ev['ce50']:.5f}", f"{ev['acc50']:.5f}"]
            save_model(model, run / "latest", args.tokenizer, step)
            print(f"step {step}: {json.dumps({k: round(v, 4) for k, v in ev.items()})} "
                  f"{row[5]} tok/s, {elapsed / 60:.1f} min", flush=True)
        else:
            row += [""] * 5
        w.writerow(row)
        log.flush()
        if step % args.checkpoint_every == 0 or step == args.steps or timeout:
            state["step"], state["wall_seconds"] = step, elapsed
            torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, run / "checkpoint.tmp")
            os.replace(run / "checkpoint.tmp", run / "checkpoint.pt")
            (run / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        if timeout:
            print(f"stopped after {args.max_minutes} minutes at step {step}", flush=True)
            break
    state["step"], state["wall_seconds"] = step, base_wall + time.time() - started
    state["finished"] = step >= args.steps
    state["tokens_seen"] = step * args.batch_size * args.seq_len
    state["train_tokens"], state["valid_tokens"] = int(len(train)), int(len(valid))
    (run / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    save_model(model, run / "latest", args.tokenizer, step)


def hole_rows(batch, args, rs, eos):
    """Turns a share (`--hole-frac`) of the rows, in place, into variable-length infills, the
    way the sampler fills `<|hole:N|>` between fixed text: a span of 1..`--hole-max-span` text
    tokens at a random place is followed by 0..`--hole-max-pad` end tokens (the row's tail is
    cut to keep its length). Returns, per row, the hole [start, end) (text and pads) or None.
    Only hole positions are masked in those rows (mask_batch), so the model learns to write a
    hole's text from both sides and to end the hole early with end tokens, which the sampler
    reads as "the rest of this hole is empty"."""
    b, s = batch.shape
    out = []
    for r in range(b):
        if rs.random() >= args.hole_frac:
            out.append(None)
            continue
        span = rs.randint(1, args.hole_max_span)
        pad = rs.randint(0, args.hole_max_pad)
        a = rs.randrange(8, s - span - pad - 8)
        row = batch[r].clone()
        cut = a + span
        row[cut + pad :] = batch[r, cut : s - pad]
        row[cut : cut + pad] = eos
        batch[r] = row
        out.append((a, cut + pad))
    return out


def step_once(model, opt, batch, args, mask_id, gen, lr, holes=None):
    t = torch.rand(batch.shape[0], generator=gen) * (1 - args.eps) + args.eps
    inp, pos, tgt, w = mask_batch(batch, t, mask_id, gen, holes)
    lp = F.log_softmax(model.masked_logits(inp, pos), -1).gather(1, tgt[:, None]).squeeze(1)
    loss = -(lp * w).sum() / batch.numel()
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
    opt.step()
    return float(loss), float(-lp.mean())


if __name__ == "__main__":
    main()
