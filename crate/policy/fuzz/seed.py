#!/usr/bin/env python3
"""Seed the `compile` fuzz corpus with the project's own inputs (run from anywhere):
every regex of the shipped packs followed by the test cases of its rule, the packs and test
packs themselves, and the minimised findings in crate/policy/tests/fuzz/compile/.
Writes crate/policy/fuzz/corpus/compile/ (git-ignored); existing entries are kept."""
import hashlib
import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
OUT = ROOT / "crate/policy/fuzz/corpus/compile"


def put(data: bytes) -> None:
    (OUT / hashlib.sha1(data).hexdigest()).write_bytes(data)


def regexes(rule: dict):
    if "pattern-regex" in rule:
        yield rule["pattern-regex"]
    for alt in rule.get("pattern-either", []) or []:
        yield from regexes(alt)
    for part in rule.get("patterns", []) or []:
        for key in ("pattern-regex", "pattern-not-regex"):
            if key in part:
                yield part[key]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cases: dict[str, list[str]] = {}
    for f in sorted((ROOT / "policies/cases").glob("*.yaml")):
        for case in yaml.safe_load(f.read_text()).get("cases", []):
            cases.setdefault(case["rule"], []).append(case["input"])
    packs = sorted((ROOT / "policies").glob("*/pack.yaml"))
    packs += sorted((ROOT / "crate/policy/tests/data").glob("*.yaml"))
    n = 0
    for f in packs:
        text = f.read_text()
        put(text.encode())
        n += 1
        for rule in yaml.safe_load(text).get("rules", []) or []:
            inputs = cases.get(rule.get("id"), []) or ["x = 1\n"]
            for regex in regexes(rule):
                for body in inputs[:4]:
                    put(f"{regex}\n{body}".encode())
                    n += 1
    for f in sorted((ROOT / "crate/policy/tests/fuzz/compile").iterdir()):
        put(f.read_bytes())
        n += 1
    print(f"{OUT}: {n} seeds written, {len(list(OUT.iterdir()))} entries")


if __name__ == "__main__":
    main()
