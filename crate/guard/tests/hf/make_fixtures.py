#!/usr/bin/env python3
"""Writes the Hugging Face decoding fixtures of `tests/hf_decode.rs`.

Each fixture is a small tokenizer of one published family's shape (GPT-2, Qwen2, LLaMA 3 /
LLaDA byte-level; LLaMA 2 SentencePiece; a Metaspace decoder; BERT WordPiece; no decoder)
trained or written here with the Python `tokenizers` package, plus token id sequences and
what `Tokenizer.decode(ids, skip_special_tokens=True)` returns for them. The Rust test checks
that `ward_guard::vocab::from_tokenizer_json` decodes every case to exactly that text, or
refuses the tokenizer (fixtures with "refuse").

The guard's text stops at the first end token (EOS / pad: content in END_NAMES, as in
`src/vocab/hf.rs`), so "text" is the decode of the ids before it; "full" is what Hugging
Face gives for all the ids (text after the end token included), for reference.

Run by hand (commit the output; the WordPiece trainer breaks ties differently from run to
run, so `bert_wordpiece.json` changes each time, the others do not):

    python3 -m venv /var/tmp/ward-tok-venv && /var/tmp/ward-tok-venv/bin/pip install tokenizers
    /var/tmp/ward-tok-venv/bin/python crate/guard/tests/hf/make_fixtures.py
"""

import json
import os

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

OUT = os.path.dirname(os.path.abspath(__file__))

END_NAMES = [
    "<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eos|>", "[EOS]", "<|im_end|>",
    "<|eot_id|>", "<|end|>", "<pad>", "[PAD]", "<|pad|>", "<|padding|>", "<|endofmask|>",
]

# Qwen2's pre-tokenizer regex (tokenizer.json of Qwen2 / Qwen2.5 / Dream / DiffuCoder).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CORPUS = [
    "import os\nimport subprocess\n\n\ndef handler(request):\n    cmd = request.args['cmd']\n",
    "    return subprocess.run(cmd, shell=False, check=True)\n",
    "x = lambda data: eval(data)\nprint(x('1 + 2'))\n",
    "def area(r):\n    \"\"\"Area of a circle.\"\"\"\n    return 3.14159 * r ** 2\n",
    "# Größe, naïve café: ünïcödé — 日本語のテキスト\n",
    "class Config:\n    secret = os.environ.get('SECRET_KEY', '')\n    debug = False\n",
    "for i in range(10):\n\tif i % 2 == 0:\n\t\tcontinue\n\tprint(i, end=' ')\n",
    "Hello, world! It's a test. Don't panic? We're fine, aren't we .\n",
] * 8

SAMPLES = [
    "def handler(request):\n    return eval(data)\n",
    " leading space and  two spaces",
    "x = lambda data: eval(data)",
    "Größe — 日本語\n",
    "Hello , world . It 's fine !",
]


def end_ids(tok):
    return {i for i, a in tok.get_added_tokens_decoder().items() if a.content in END_NAMES}


def case(tok, ids, note, lossy=False):
    ends = end_ids(tok)
    cut = next((k for k, t in enumerate(ids) if t in ends), len(ids))
    return {
        "note": note,
        "ids": ids,
        "text": tok.decode(ids[:cut], skip_special_tokens=True),
        "full": tok.decode(ids, skip_special_tokens=True),
        "lossy": lossy,
    }


def encoded(tok, text):
    return tok.encode(text, add_special_tokens=False).ids


def write(name, family, tok, cases, refuse=None):
    fx = {
        "name": name,
        "family": family,
        "tokenizers_version": tokenizers.__version__,
        "tokenizer": json.loads(tok.to_str()),
        "cases": cases,
        "refuse": refuse,
    }
    with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(fx, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


def sample_cases(tok, prefix=()):
    return [case(tok, list(prefix) + encoded(tok, s), "encoded %r" % s) for s in SAMPLES]


def byte_level(name, family, split, specials, extra_added=(), bos=None):
    tok = Tokenizer(models.BPE())
    if split:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    for content, special in extra_added:
        tok.add_tokens([tokenizers.AddedToken(content, special=special, normalized=False)])
    vocab = tok.get_vocab()
    eot = tok.token_to_id(specials[0])
    cases = sample_cases(tok, [tok.token_to_id(bos)] if bos else [])
    # Invalid UTF-8: the first byte of "é" (0xC3) alone, then text.
    c3, a9 = vocab["Ã"], vocab["©"]
    hello = encoded(tok, "hello")
    cases.append(case(tok, [c3] + hello, "a lone lead byte: replaced by U+FFFD", lossy=True))
    cases.append(case(tok, hello + [c3, a9] + hello, "a two-byte char from two byte tokens"))
    cases.append(case(tok, encoded(tok, "x = 1") + [eot] + encoded(tok, "eval(data)"),
                      "text after the end token"))
    for content, special in extra_added:
        t = tok.token_to_id(content)
        cases.append(case(tok, encoded(tok, "ev") + [t] + encoded(tok, "al(x)"),
                          "added token %r (special=%s) between text" % (content, special)))
    write(name, family, tok, cases)


def sentencepiece_bpe(byte_fallback_tokens=True):
    """A SentencePiece-style BPE: ▁ for spaces, <0xNN> byte tokens, <unk> <s> </s>."""
    base = Tokenizer(models.BPE())
    base.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    base.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=400, show_progress=False)
    base.train_from_iterator(CORPUS, trainer)
    model = json.loads(base.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    if byte_fallback_tokens:
        for b in range(256):
            vocab["<0x%02X>" % b] = len(vocab)
    for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    merges = [m for m in merges if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>",
                               byte_fallback=byte_fallback_tokens, fuse_unk=True))
    tok.add_special_tokens([tokenizers.AddedToken(s, special=True, normalized=False)
                            for s in ["<unk>", "<s>", "</s>"]])
    tok.normalizer = base.normalizer
    tok.pre_tokenizer = base.pre_tokenizer
    return tok


def sentencepiece_cases(tok, byte_tokens):
    vocab = tok.get_vocab()
    bos, eos = vocab["<s>"], vocab["</s>"]
    cases = sample_cases(tok) + sample_cases(tok, [bos])
    def_ = [vocab[t] for t in ("▁def",) if t in vocab]
    cases.append(case(tok, def_ + encoded(tok, " f(x)") + [eos] + encoded(tok, " eval(y)"),
                      "text after </s>"))
    spaces = [vocab[t] for t in ("▁▁", "▁") if t in vocab]
    if spaces:
        cases.append(case(tok, spaces + encoded(tok, " x"), "a first token of spaces only"))
    if byte_tokens:
        nl, e2 = vocab["<0x0A>"], vocab["<0xE2>"]
        cases.append(case(tok, encoded(tok, " a") + [nl] + encoded(tok, " b"), "a byte token <0x0A>"))
        cases.append(case(tok, [nl] + encoded(tok, " b"), "a byte token first"))
        em = [vocab["<0x%02X>" % b] for b in "—".encode()]
        cases.append(case(tok, encoded(tok, " a") + em + [bos] + em, "byte runs across a special token"))
        cases.append(case(tok, encoded(tok, " a") + [e2] + encoded(tok, " b"),
                          "an invalid byte run: one U+FFFD per byte token", lossy=True))
        cases.append(case(tok, [vocab["<0x20>"]] + encoded(tok, " b"), "a space byte token first"))
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    byte_level("gpt2_byte_level", "GPT-2 (ByteLevel BPE)", False, ["<|endoftext|>"])
    byte_level("qwen2_byte_level", "Qwen2 / Dream / DiffuCoder (ByteLevel BPE, Qwen2 split regex)",
               True, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
               extra_added=[("<|fim_prefix|>", False), ("<|fim_middle|>", True)])
    byte_level("llama3_byte_level", "LLaMA 3 / LLaDA (ByteLevel BPE, special tokens with text content)",
               True, ["<|end_of_text|>", "<|begin_of_text|>", "<|eot_id|>", "<|mdm_mask|>"],
               extra_added=[("import os\n", True), ("    ", False)], bos="<|begin_of_text|>")

    tok = sentencepiece_bpe()
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
        decoders.Strip(content=" ", left=1, right=0)])
    write("llama2_sentencepiece", "LLaMA 2 / Mistral / CodeLlama (SentencePiece BPE, byte fallback)",
          tok, sentencepiece_cases(tok, True))

    tok = sentencepiece_bpe(byte_fallback_tokens=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    write("metaspace_first", "Metaspace decoder, prepend_scheme first (leading ▁ dropped)",
          tok, sentencepiece_cases(tok, False))

    tok = sentencepiece_bpe(byte_fallback_tokens=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    write("metaspace_never", "Metaspace decoder, prepend_scheme never", tok, sentencepiece_cases(tok, False))

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False))
    v = tok.get_vocab()
    cases = sample_cases(tok, [v["[CLS]"]])
    cont = sorted(t for t in v if t.startswith("##"))[:2]
    cases.append(case(tok, [v[c] for c in cont] + encoded(tok, "hello"), "a ## token first"))
    cases.append(case(tok, encoded(tok, "a") + [v["[PAD]"]] + encoded(tok, "b"), "text after [PAD]"))
    write("bert_wordpiece", "BERT (WordPiece, cleanup)", tok, cases)

    tok = Tokenizer(models.WordLevel(
        vocab={"x": 0, "=": 1, "lambda": 2, "eval(data)": 3, "[UNK]": 4, "<|endoftext|>": 5},
        unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["<|endoftext|>"])
    write("no_decoder", "no decoder (tokens joined with spaces), unknown token not special", tok, [
        case(tok, [0, 1, 2, 3], "x = lambda + eval(data): joined with spaces"),
        case(tok, [3, 4, 0], "the unknown token decodes to its text"),
        case(tok, [0, 5, 3], "text after the end token"),
        case(tok, [5, 3], "the end token first"),
    ])

    for name, dec, why in [
        ("refuse_bpe_decoder", decoders.BPEDecoder(suffix="</w>"), "depends on what follows"),
        ("refuse_ctc", decoders.CTC(), "neighbour"),
        ("refuse_regex_replace", decoders.Replace(Regex(r"\s+"), " "), "string pattern"),
        ("refuse_fallback_then_metaspace",
         decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()]), "after Fuse, ByteLevel or ByteFallback"),
        ("refuse_strip_end", decoders.Sequence([decoders.Fuse(), decoders.Strip(content=" ", left=0, right=1)]),
         "end of the whole text"),
    ]:
        tok = Tokenizer(models.BPE(vocab={"a": 0, "▁b": 1, "<0x41>": 2}, merges=[]))
        tok.decoder = dec
        write(name, "refused: " + name[len("refuse_"):], tok, [], refuse=why)


if __name__ == "__main__":
    main()
