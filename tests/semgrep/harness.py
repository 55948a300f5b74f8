#!/usr/bin/env python3
"""Semgrep fidelity of `ward check` on semgrep-rules' own tests (issue 14).

Selects the regex-family rules of a semgrep-rules checkout (rules whose pattern keys are only
`pattern-regex`, `pattern-either`, `patterns` and `pattern-not-regex`: no AST patterns, no
metavariables, no taint mode), runs `ward check` with each rule alone on the rule's own test
files (same stem, another extension, next to the rule file) and compares the findings with
the files' Semgrep test annotations, the way `semgrep --test` does:

- `ruleid: ID` / `ok: ID` / `todoruleid: ID` / `todook: ID` in a comment (`#`, `//`, `<!--`,
  `(*`, `/*`, `{/*`) alone on its line mark the next line that is not an annotation
  (Semgrep itself uses the very next line; they differ only for stacked annotations);
- a rule's test agrees when the lines where Ward's findings start, less the todo lines, are
  exactly the `ruleid:` lines (todo lines are left out on both sides, as `semgrep --test`
  does; how Ward fares on them is listed apart).

    python3 tests/semgrep/harness.py --rules /work/.mirror/semgrep+semgrep-rules/repo \
        --ward /var/tmp/ward-target-semgrep/release/ward --out tests/semgrep/results

`--rules` is an extracted folder or a bare git repository (read with `git show REV:path`,
`--rev`, default HEAD). Writes OUT/report.md and OUT/summary.json. Fetches nothing; the
rules and test files are copied into a scratch folder (`--work`, default a temporary one)
and never into the project (semgrep-rules is under the Commons Clause).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

# Pattern keys that keep a rule in the regex family, and the rule keys that are formulas of
# other kinds (a rule with one of them is not regex-family).
REGEX_KEYS = {"pattern-regex", "pattern-not-regex", "pattern-either", "patterns"}
OTHER_FORMULA_KEYS = {
    "pattern", "pattern-not", "pattern-inside", "pattern-not-inside", "match", "mode",
    "pattern-sources", "pattern-sinks", "pattern-sanitizers", "pattern-propagators", "join",
    "metavariable-regex", "metavariable-pattern", "metavariable-comparison", "focus-metavariable",
    "pattern-where-python", "extract", "r2c-internal-project-depends-on", "taint",
}
COMMENTS = [("{/*", "*/}"), ("#", None), ("//", None), ("<!--", "-->"), ("(*", "*)"), ("/*", "*/")]
KINDS = ("todoruleid", "todook", "ruleid", "ok")
ANNOT = re.compile(r"^(?:(pro|deep))?(ruleid|ok|todoruleid|todook):\s*(.*)$")


# --- reading the rules: a folder or a bare git repository -------------------------------

class Source:
    """The files of a semgrep-rules checkout: an extracted folder, or a bare git directory
    read with `git show`."""

    def __init__(self, path: Path, rev: str = "HEAD"):
        self.path = path
        self.rev = rev
        self.git = not (path / ".git").exists() and (path / "HEAD").is_file() and (path / "objects").is_dir()
        if self.git:
            out = subprocess.run(["git", "-C", str(path), "ls-tree", "-r", "--name-only", "-z", rev],
                                 check=True, capture_output=True).stdout
            self.names = sorted(n.decode() for n in out.split(b"\0") if n)
            self.commit = subprocess.run(["git", "-C", str(path), "rev-parse", rev], check=True,
                                         capture_output=True, text=True).stdout.strip()
        else:
            self.names = sorted(
                str(p.relative_to(path)).replace(os.sep, "/") for p in path.rglob("*")
                if p.is_file() and ".git" not in p.relative_to(path).parts)
            self.commit = None

    def read(self, name: str) -> bytes:
        if self.git:
            return subprocess.run(["git", "-C", str(self.path), "show", f"{self.rev}:{name}"],
                                  check=True, capture_output=True).stdout
        return (self.path / name).read_bytes()


def is_rule_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    if not (base.endswith(".yaml") or base.endswith(".yml")):
        return False
    if base.endswith(".test.yaml") or base.endswith(".test.yml") or ".fixed." in base:
        return False
    return not any(part.startswith(".") for part in name.split("/"))


def test_files(name: str, names_in_dir) -> list:
    """The rule file's test files: same folder and stem, another extension (`.test.yaml`
    included, autofix `.fixed.` files not)."""
    folder, base = name.rsplit("/", 1) if "/" in name else ("", name)
    stem = base.rsplit(".", 1)[0]
    out = []
    for other in names_in_dir.get(folder, []):
        if other == base or ".fixed." in other:
            continue
        if other.split(".", 1)[0] != stem or "." not in other:
            continue
        ext = other[len(stem):]
        if ext in (".yaml", ".yml"):
            continue
        out.append(f"{folder}/{other}" if folder else other)
    return out


def formula_keys(node, acc: set):
    """Every key used in a rule's pattern formula, recursively."""
    if isinstance(node, dict):
        for k, v in node.items():
            acc.add(k)
            if k in ("pattern-either", "patterns") and isinstance(v, list):
                for item in v:
                    formula_keys(item, acc)
    return acc


def is_regex_family(rule: dict) -> bool:
    """Only pattern-regex, pattern-either, patterns and pattern-not-regex in the formula."""
    if not isinstance(rule, dict) or not isinstance(rule.get("id"), str):
        return False
    top = {k for k in rule if k in REGEX_KEYS | OTHER_FORMULA_KEYS}
    if not top or top & OTHER_FORMULA_KEYS:
        return False
    keys = set()
    for k in top:
        formula_keys({k: rule[k]}, keys)
    return keys <= REGEX_KEYS and "pattern-regex" in keys


def select(source: Source):
    """(rule file, rule index, rule dict, test files) of every regex-family rule."""
    by_dir = {}
    for n in source.names:
        folder, base = n.rsplit("/", 1) if "/" in n else ("", n)
        by_dir.setdefault(folder, []).append(base)
    out = []
    for name in source.names:
        if not is_rule_file(name):
            continue
        try:
            doc = yaml.safe_load(source.read(name))
        except yaml.YAMLError:
            continue
        rules = doc.get("rules") if isinstance(doc, dict) else None
        if not isinstance(rules, list):
            continue
        for i, rule in enumerate(rules):
            if is_regex_family(rule):
                out.append((name, i, rule, test_files(name, by_dir)))
    return out


# --- annotations --------------------------------------------------------------------------

def annotation_of(line: str):
    """[(kind, id)] of an annotation line (a comment alone on its line), or None."""
    s = line.strip()
    for prefix, suffix in COMMENTS:
        if s.startswith(prefix):
            s = s[len(prefix):]
            if suffix and s.endswith(suffix):
                s = s[: -len(suffix)]
            break
    else:
        return None
    s = s.strip()
    m = ANNOT.match(s)
    if not m:
        return None
    engine, kind, rest = m.groups()
    # `ruleid: prook: x`: further kind prefixes concern other engines.
    while True:
        m2 = ANNOT.match(rest.strip())
        if not m2:
            break
        rest = m2.group(3)
    if engine:  # proruleid:, deepok: ...: annotations for Semgrep Pro only
        return []
    ids = [x.strip() for x in rest.split(",") if x.strip()]
    return [(kind, i) for i in ids]


def annotations(text: str):
    """{rule id: {kind: set of 1-based lines}}: each annotation marks the next line that is
    not itself an annotation."""
    lines = text.split("\n")
    out = {}
    pending = []
    for no, line in enumerate(lines, start=1):
        a = annotation_of(line)
        if a is not None:
            pending.extend(a)
            continue
        for kind, rid in pending:
            out.setdefault(rid, {}).setdefault(kind, set()).add(no)
        pending = []
    return out


def compare(annots: dict, reported: set) -> dict:
    """Semgrep's test verdict for one rule on one file: the lines reported, less the todo
    lines, must equal the `ruleid:` lines, less the todo lines."""
    todo = annots.get("todoruleid", set()) | annots.get("todook", set())
    expected = annots.get("ruleid", set()) - todo
    got = set(reported) - todo
    ok_lines = annots.get("ok", set())
    return {
        "agree": expected == got,
        "missed": sorted(expected - got),
        "extra": sorted(got - expected),
        "extra_on_ok": sorted((got - expected) & ok_lines),
        "todoruleid_reported": sorted(annots.get("todoruleid", set()) & set(reported)),
        "todook_reported": sorted(annots.get("todook", set()) & set(reported)),
        "annotated": sum(len(v) for v in annots.values()),
    }


# --- running ward -------------------------------------------------------------------------

def run_rule(ward: str, work: Path, key: str, rule: dict, tests: list, source: Source):
    """Run `ward check` with `rule` alone on its test files; the rule's record."""
    packs = work / "packs"
    files = work / "files"
    packs.mkdir(parents=True, exist_ok=True)
    pack = packs / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".yaml")
    pack.write_text(yaml.safe_dump({"rules": [rule]}, sort_keys=False, allow_unicode=True))
    rec = {"id": rule["id"], "file": key.rsplit("#", 1)[0], "tests": tests}
    for t in tests:
        dest = files / t
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            dest.write_bytes(source.read(t))
    cmd = [ward, "check", "--policy", str(pack), "--format", "json"]
    if not tests:
        # Compile only: explain reports every error check would.
        cmd = [ward, "explain", "--policy", str(pack), "--json"]
    p = subprocess.run(cmd + list(tests), cwd=files, capture_output=True, text=True)
    # Messages name the scratch pack; the rule id and file are in the record already.
    clean = lambda m: re.sub(r"^rule `[^`]*` \([^)]*\): ", "", m.replace(str(pack), "PACK"))
    warnings = [clean(l[len("ward: warning: "):]) for l in p.stderr.splitlines()
                if l.startswith("ward: warning: ")]
    if warnings:
        rec["warnings"] = warnings
    if p.returncode not in (0, 1):
        err = p.stderr.strip().splitlines()
        msg = next((l for l in err if l.startswith("ward: error: ")), err[-1] if err else "")
        msg = clean(msg[len("ward: error: "):] if msg.startswith("ward: error: ") else msg)
        rec["status"] = "disabled" if "no enabled rules" in msg else "rejected"
        if rec["status"] == "disabled":
            rec["reason"] = f"languages {rule.get('languages')} do not include python, generic or regex"
        else:
            rec["reason"] = msg
        return rec
    if not tests:
        rec["status"] = "no-test-file"
        return rec
    findings = json.loads(p.stdout or "[]")
    rec["status"] = "agree"
    rec["per_file"] = {}
    for t in tests:
        text = (files / t).read_bytes().decode("utf-8", "replace")
        ann = annotations(text).get(rule["id"], {})
        lines = {f["line"] for f in findings if f["path"] == t and f["rule_id"] == rule["id"]}
        c = compare(ann, lines)
        rec["per_file"][t] = c
        if not c["agree"]:
            rec["status"] = "disagree"
    if rec["status"] == "agree" and not any(c["annotated"] for c in rec["per_file"].values()):
        rec["status"] = "no-annotations"
    return rec


def summarize(records: list, source_desc: str) -> dict:
    count = lambda s: sum(1 for r in records if r["status"] == s)
    accepted = [r for r in records if r["status"] not in ("rejected", "disabled")]
    return {
        "source": source_desc,
        "rules_seen": len(records),
        "rules_accepted": len(accepted),
        "rules_rejected": count("rejected"),
        "rules_disabled_by_languages": count("disabled"),
        "rules_without_test_file": count("no-test-file"),
        "rules_without_annotations": count("no-annotations"),
        "rules_agreeing": count("agree"),
        "rules_disagreeing": count("disagree"),
        "rules_with_warnings": sum(1 for r in records if r.get("warnings")),
        "rules": records,
    }


def report_md(summary: dict, command: str) -> str:
    s = summary
    out = [
        "# Ward on semgrep-rules' own tests",
        "",
        f"Source: {s['source']}. Command:",
        "",
        f"    {command}",
        "",
        "| | rules |",
        "|---|---:|",
        f"| regex-family rules seen | {s['rules_seen']} |",
        f"| accepted by `ward check` | {s['rules_accepted']} |",
        f"| all annotations agree | {s['rules_agreeing']} |",
        f"| some line disagrees | {s['rules_disagreeing']} |",
        f"| accepted, no test file | {s['rules_without_test_file']} |",
        f"| accepted, no annotation for the rule | {s['rules_without_annotations']} |",
        f"| rejected (compile error) | {s['rules_rejected']} |",
        f"| disabled (languages without python/generic/regex) | {s['rules_disabled_by_languages']} |",
        f"| with a load warning | {s['rules_with_warnings']} |",
        "",
    ]
    def section(title, status, fmt):
        rs = [r for r in s["rules"] if r["status"] == status]
        if not rs:
            return
        out.extend([f"## {title} ({len(rs)})", ""])
        for r in rs:
            out.append(fmt(r))
        out.append("")
    def disagree(r):
        parts = []
        for t, c in r["per_file"].items():
            if c["agree"]:
                continue
            bits = []
            if c["missed"]:
                bits.append(f"missed `ruleid:` lines {c['missed']}")
            if c["extra"]:
                on_ok = f" ({len(c['extra_on_ok'])} on `ok:` lines)" if c["extra_on_ok"] else ""
                bits.append(f"extra findings on lines {c['extra']}{on_ok}")
            parts.append(f"`{t}`: " + "; ".join(bits))
        w = f" — warning: {r['warnings'][0]}" if r.get("warnings") else ""
        return f"- `{r['id']}` ({r['file']}): " + " / ".join(parts) + w
    section("Rejected", "rejected", lambda r: f"- `{r['id']}` ({r['file']}): {r['reason']}")
    section("Disagreeing", "disagree", disagree)
    section("Disabled by `languages:`", "disabled", lambda r: f"- `{r['id']}` ({r['file']}): {r['reason']}")
    section("Accepted, no test file", "no-test-file", lambda r: f"- `{r['id']}` ({r['file']})")
    section("Accepted, no annotation for the rule in its test file", "no-annotations",
            lambda r: f"- `{r['id']}` ({r['file']}): {', '.join(r['tests'])}")
    todo = [(r, t, c) for r in s["rules"] for t, c in r.get("per_file", {}).items()
            if c["todoruleid_reported"] or c["todook_reported"]]
    if todo:
        out.extend(["## Todo lines (not counted above)", ""])
        for r, t, c in todo:
            if c["todoruleid_reported"]:
                out.append(f"- `{r['id']}` `{t}`: Ward reports `todoruleid:` lines {c['todoruleid_reported']} (Semgrep misses them)")
            if c["todook_reported"]:
                out.append(f"- `{r['id']}` `{t}`: Ward reports `todook:` lines {c['todook_reported']} (as Semgrep does)")
        out.append("")
    warned = [r for r in s["rules"] if r.get("warnings")]
    if warned:
        out.extend(["## Load warnings", ""])
        for r in warned:
            for w in r["warnings"]:
                out.append(f"- `{r['id']}` ({r['status']}): {w}")
        out.append("")
    return "\n".join(out)


def run(rules: Path, ward: str, out: Path, work: Path, rev: str, command: str) -> dict:
    source = Source(rules, rev)
    desc = f"semgrep-rules at {source.commit[:9]}" if source.commit else f"the folder {rules.name}"
    records = []
    seen = {}
    for name, i, rule, tests in select(source):
        seen[name] = seen.get(name, 0) + 1
        records.append(run_rule(ward, work, f"{name}#{i}", rule, tests, source))
    summary = summarize(records, desc)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=False) + "\n")
    (out / "report.md").write_text(report_md(summary, command) + "\n")
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", required=True, type=Path,
                    help="semgrep-rules: an extracted folder or a bare git repository")
    ap.add_argument("--rev", default="HEAD", help="revision to read from a git repository")
    ap.add_argument("--ward", default=os.environ.get("WARD_BIN", "ward"), help="the ward binary")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    a = ap.parse_args(argv)
    command = "python3 tests/semgrep/harness.py " + " ".join(
        x for x in (argv if argv is not None else sys.argv[1:]))
    if a.work:
        if a.work.exists():
            shutil.rmtree(a.work)
        s = run(a.rules, a.ward, a.out, a.work, a.rev, command)
    else:
        with tempfile.TemporaryDirectory(prefix="ward-semgrep-") as tmp:
            s = run(a.rules, a.ward, a.out, Path(tmp), a.rev, command)
    print(f"{s['rules_seen']} seen, {s['rules_accepted']} accepted, {s['rules_agreeing']} agree, "
          f"{s['rules_disagreeing']} disagree, {s['rules_rejected']} rejected, "
          f"{s['rules_disabled_by_languages']} disabled; {a.out}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
