#!/usr/bin/env bash
# Training throughput of the burn trainer (`ward train`) for a few batch × sequence shapes, and
# of the PyTorch trainer (train_torch.py --bench) for the same shapes. Prints one JSON line per
# measurement. Usage:
#   crate/model/scripts/bench_train.sh TRAIN_BIN [LABEL] [PYTHON]
# TRAIN_BIN: `target/release/ward train` (built with the `model` feature: burn-flex with SIMD
# and rayon) or `target/release/examples/train` (ward-model's default build: one thread, no
# SIMD). PYTHON (optional): a python with torch and tokenizers for the PyTorch rows.
# The model is the default model's shape (hidden 256, 4 layers); the corpus the stdlib.
set -euo pipefail
bin=$1; label=${2:-burn}; py=${3:-}
shapes="16x256 32x128 8x512 32x256"
run=$(mktemp -d /tmp/ward-bench-train.XXXXXX)
for s in $shapes; do
  b=${s%x*}; l=${s#*x}
  rm -f "$run/log.csv"
  $bin --run-dir "$run" --steps 7 --batch-size "$b" --seq-len "$l" --eval-every 1000 \
    --checkpoint-every 1000 --eval-seqs 4 --no-progress >/dev/null 2>&1
  # Steps 2..6 from the elapsed column (the first includes the start-up, the last an evaluation).
  python3 - "$run/log.csv" "$b" "$l" "$label" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))[:-1]
b, l = int(sys.argv[2]), int(sys.argv[3])
t = float(rows[-1]["elapsed_s"]) - float(rows[0]["elapsed_s"])
print(json.dumps({"trainer": sys.argv[4], "batch": b, "seq_len": l,
                  "tokens_per_s": round(b * l * (len(rows) - 1) / t, 1)}))
PY
done
if [ -n "$py" ]; then
  here=$(dirname "$0")
  for s in $shapes; do
    b=${s%x*}; l=${s#*x}
    for th in 1 2; do
      $py "$here/train_torch.py" --bench 5 --batch-size "$b" --seq-len "$l" --threads "$th"
    done
  done
fi
rm -rf "$run"
