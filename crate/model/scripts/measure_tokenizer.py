"""Would retraining the tokenizer on the new corpus help? Bytes per token on the held-out
packages for the shipped tokenizer and for one retrained with the settings of
`ward train-tokenizer` (byte-level BPE, 8192 tokens, min frequency 2) on a seeded sample of
3000 train files. Needs `tokenizers` >= 0.21 (reads the shipped tokenizer.json).

    RAYON_NUM_THREADS=1 python3 crate/model/scripts/measure_tokenizer.py /var/tmp/ward-corpus
"""
import json, sys, random
from pathlib import Path
from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders
root = Path(sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/ward-corpus")
train = sorted((root / "train").rglob("*.py"))
valid = sorted((root / "valid").rglob("*.py"))
old = Tokenizer.from_file(str(Path(__file__).resolve().parents[3] / "models/ward-tiny-code/tokenizer.json"))
def bpt(tok, files):
    b = t = 0
    for f in files:
        s = f.read_text()
        b += len(s.encode()); t += len(tok.encode(s, add_special_tokens=False).ids)
    return b / t
print("current tokenizer, bytes/token on held-out:", round(bpt(old, valid), 4))
# Same settings as ward train-tokenizer: byte-level BPE, 8192 tokens, specials first.
random.seed(0)
sample = random.sample(train, min(len(train), 3000))
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tr = trainers.BpeTrainer(vocab_size=8192, special_tokens=["<|endoftext|>", "[MASK]"],
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
tok.train([str(p) for p in sample], tr)
print("retrained on", len(sample), "train files, bytes/token on held-out:", round(bpt(tok, valid), 4))
print("current tokenizer, bytes/token on train sample:", round(bpt(old, sample[:500]), 4))
