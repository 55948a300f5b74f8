#!/usr/bin/env python3
"""Seed the guard's fuzz corpora with the project's own inputs (run from anywhere):
- tokenizer: the shipped models' tokenizer.json, the Hugging Face fixtures of
  crate/guard/tests/hf/, and the minimised findings in crate/guard/tests/fuzz/tokenizer/;
- guard: every python snippet of policies/cases (violating and clean), as prompt, as
  suffix and as commits into holes (the input format is in crate/guard/tests/fuzz/guard.rs),
  and the findings in crate/guard/tests/fuzz/guard/.
Writes crate/guard/fuzz/corpus/<target>/ (git-ignored); existing entries are kept."""
import hashlib
import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
CORPUS = ROOT / "crate/guard/fuzz/corpus"


def put(target: str, data: bytes) -> None:
    out = CORPUS / target
    out.mkdir(parents=True, exist_ok=True)
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main() -> None:
    for f in sorted((ROOT / "models").glob("*/tokenizer.json")):
        put("tokenizer", f.read_bytes())
    for f in sorted((ROOT / "crate/guard/tests/hf").glob("*.json")):
        put("tokenizer", f.read_bytes())
    for f in sorted((ROOT / "crate/guard/tests/fuzz/tokenizer").iterdir()):
        put("tokenizer", f.read_bytes())
    for f in sorted((ROOT / "policies/cases").glob("*.yaml")):
        for case in yaml.safe_load(f.read_text()).get("cases", []):
            text = case["input"].encode()
            if b"\0" in text:
                continue
            cut = len(text) // 2
            # Everything committed into 32 holes from position 0.
            put("guard", b"\0\x1f\0\x00\x00" + text)
            # The first half as prompt, 8 holes, the second half as suffix, then picks.
            put("guard", text[:cut] + b"\0\x07" + text[cut:] + b"\0\x02\x00\0\x02\x03\0\x05")
            # The snippet as prompt (a violating one is refused), then picks and a restore.
            put("guard", text + b"\0\x03\0\x05\0\x02\x01\0\x02\x02\0\x85")
    for f in sorted((ROOT / "crate/guard/tests/fuzz/guard").iterdir()):
        put("guard", f.read_bytes())
    for t in ("tokenizer", "guard"):
        print(f"{CORPUS / t}: {len(list((CORPUS / t).iterdir()))} entries")


if __name__ == "__main__":
    main()
