#!/usr/bin/env bash
# Writes expected_cpu.json: the text `ward generate` gives natively (burn-flex) for the
# request the browser test runs on the CPU backend (tests/model.rs compares them).
#   crate/web/tests/data/make_expected.sh [path/to/ward]
set -euo pipefail
cd "$(dirname "$0")/../../../.."
ward="${1:-${CARGO_TARGET_DIR:-target}/release/ward}"
prompt=$'import subprocess\n\ndef run(cmd):\n    return subprocess.run(cmd, <|hole:16|>)\n'
"$ward" generate --backend flex --policy policies/python --prompt "$prompt" --seed 7 --format json \
  | tail -n 1 \
  | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
prompt = sys.argv[1]
out = {"request": {"prompt": prompt, "seed": 7}, "text": r["text"],
       "enforced_findings": r["certificate"]["enforced_findings"]}
json.dump(out, open("crate/web/tests/data/expected_cpu.json", "w"), indent=1)
print(json.dumps(out))
' "$prompt"
