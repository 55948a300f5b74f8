#!/usr/bin/env python3
"""Seed the `loader` fuzz corpus with the project's own inputs (run from anywhere): the
parity fixture of crate/model/tests/fixtures (config.json and its safetensors, f32), small
LLaMA- and Qwen-style models written here in f32, f16 and bf16, mismatched pairs (the shipped
model's config with the fixture's weights), and the minimised findings in
crate/model/tests/fuzz/loader/. Input format: config.json, a NUL byte, the safetensors bytes.
Writes crate/model/fuzz/corpus/loader/ (git-ignored); existing entries are kept."""
import hashlib
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parents[3]
OUT = ROOT / "crate/model/fuzz/corpus/loader"
SIZES = {"F32": 4, "F16": 2, "BF16": 2}


def put(config: bytes, weights: bytes) -> None:
    data = config + b"\0" + weights
    (OUT / hashlib.sha1(data).hexdigest()).write_bytes(data)


def safetensors(tensors: dict, dtype: str) -> bytes:
    """A safetensors file of zero-filled tensors {name: shape} of one dtype."""
    header, offset = {}, 0
    for name, shape in tensors.items():
        n = SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    # small nonzero values so conversions see real numbers
    body = bytes((i * 37) % 251 for i in range(offset))
    return struct.pack("<Q", len(head)) + head + body


def tensors_of(cfg: dict) -> dict:
    d, ff, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    hd = cfg.get("head_dim") or d // heads
    qwen = cfg["model_type"].startswith("qwen")
    qkv_bias = cfg.get("attention_bias", qwen)
    t = {"model.embed_tokens.weight": [v, d]}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        t[f"{p}.input_layernorm.weight"] = [d]
        for name, rows in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
            t[f"{p}.self_attn.{name}_proj.weight"] = [rows, d]
            if qkv_bias:
                t[f"{p}.self_attn.{name}_proj.bias"] = [rows]
        t[f"{p}.self_attn.o_proj.weight"] = [d, heads * hd]
        if not qwen and cfg.get("attention_bias"):
            t[f"{p}.self_attn.o_proj.bias"] = [d]
        t[f"{p}.post_attention_layernorm.weight"] = [d]
        t[f"{p}.mlp.gate_proj.weight"] = [ff, d]
        t[f"{p}.mlp.up_proj.weight"] = [ff, d]
        t[f"{p}.mlp.down_proj.weight"] = [d, ff]
    t["model.norm.weight"] = [d]
    if not cfg.get("tie_word_embeddings"):
        t["lm_head.weight"] = [v, d]
    return t


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    parity = ROOT / "crate/model/tests/fixtures/parity"
    fixture = (parity / "model.safetensors").read_bytes()
    put((parity / "config.json").read_bytes(), fixture)
    put((ROOT / "models/ward-tiny-code/config.json").read_bytes(), fixture)
    for f in sorted((parity / "shards").glob("*.safetensors")):
        put((parity / "config.json").read_bytes(), f.read_bytes())
    for model_type, tie, bias in (("qwen2", True, None), ("llama", False, True), ("llama", True, False)):
        cfg = {
            "model_type": model_type,
            "hidden_size": 8,
            "intermediate_size": 12,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "vocab_size": 16,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "tie_word_embeddings": tie,
            "mask_token_id": 1,
            "max_position_embeddings": 32,
        }
        if bias is not None:
            cfg["attention_bias"] = bias
        text = json.dumps(cfg, indent=1).encode()
        for dtype in SIZES:
            put(text, safetensors(tensors_of(cfg), dtype))
    for f in sorted((ROOT / "crate/model/tests/fuzz/loader").iterdir()):
        data = f.read_bytes()
        (OUT / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{OUT}: {len(list(OUT.iterdir()))} entries")


if __name__ == "__main__":
    main()
