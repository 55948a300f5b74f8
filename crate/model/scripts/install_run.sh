#!/usr/bin/env bash
# Installs the weights of a train_torch.py run as the default model and re-measures them:
#   crate/model/scripts/install_run.sh RUN_DIR [CORPUS] [WARD_BIN] [PLOT_PYTHON]
# RUN_DIR/latest must hold the same config.json and tokenizer.json as models/ward-tiny-code
# (a warm-started run). Copies model.safetensors, writes log.csv (one row per step, the last
# one kept where a resumed run repeated a step), curves.png (PLOT_PYTHON needs matplotlib),
# corpus.json (the corpus manifest), heldout.json (32 held-out windows; its accuracy is the
# shipped-model test's `heldout_acc15`), and prints `ward eval-model` on the held-out packages
# as JSON (/tmp/eval_new.json). metrics.json, MODEL_CARD.md and
# crate/web/tests/data/expected_cpu.json (make_expected.sh) are then updated by hand.
set -euo pipefail
cd "$(dirname "$0")/../../.."
run=$1; corpus=${2:-/var/tmp/ward-corpus}; ward=${3:-target/release/ward}; plot=${4:-python3}
m=models/ward-tiny-code
cmp "$run/latest/tokenizer.json" "$m/tokenizer.json"
python3 -c "import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); assert a==b, 'config differs'" \
  "$run/latest/config.json" "$m/config.json"
cp "$run/latest/model.safetensors" "$m/model.safetensors"
python3 - "$run/log.csv" "$m/log.csv" <<'PY'
import csv, sys
rows = {}
with open(sys.argv[1]) as f:
    r = csv.DictReader(f)
    fields = r.fieldnames
    for row in r:
        rows[int(row["step"])] = row
with open(sys.argv[2], "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    for s in sorted(rows):
        w.writerow(rows[s])
PY
"$plot" crate/model/scripts/plot_curves.py "$m/log.csv" "$m/curves.png"
cp "$corpus/manifest.json" "$m/corpus.json"
cargo run -q -p ward-model --release --example heldout -- "$m" "$corpus/valid" 32
"$ward" eval-model --data "$corpus/valid" --format json | tee /tmp/eval_new.json
