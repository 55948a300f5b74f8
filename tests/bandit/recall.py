#!/usr/bin/env python3
"""Recall of Ward's python pack against Bandit on real code (issue 14). Not part of `make test`.

Downloads pinned sdists with pip (PyPI), installs a pinned bandit into a venv, runs bandit
and `ward check` on every .py file of the packages, and writes a comparison: per Bandit id
the pack claims to cover, how many Bandit findings Ward also reports on the same line (by a
rule mapped to that id), the misses with their code line, and Ward-only findings per rule.

    python3 tests/bandit/recall.py --ward target/release/ward --work /var/tmp/ward-bandit \
        --out tests/bandit/results

Writes OUT/report.md and OUT/summary.json. Needs network access to PyPI (pip only).
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGES = [
    "ansible-core==2.17.7",
    "Django==5.1.4",
    "Flask==3.1.0",
    "Jinja2==3.1.4",
    "paramiko==3.5.0",
    "requests==2.32.3",
    "SQLAlchemy==2.0.36",
    "Werkzeug==3.1.3",
]
BANDIT = "bandit==1.8.0"

# Bandit id -> the Ward rules that cover it (a Ward finding of one of them on the same line).
COVER = {
    "B102": ["python.exec"],
    "B103": ["python.chmod-world-writable"],
    "B104": ["python.bind-all-interfaces"],
    "B105": ["base.hardcoded-password", "python.hardcoded-credentials"],
    "B106": ["base.hardcoded-password", "python.hardcoded-credentials"],
    "B107": ["base.hardcoded-password", "python.hardcoded-credentials"],
    "B201": ["python.debug-enabled"],
    "B202": ["python.archive-extract-no-filter"],
    "B301": ["python.pickle-load", "python.shelve-open", "python.import-by-name", "python.module-alias"],
    "B302": ["python.marshal-load", "python.import-by-name"],
    "B303": ["python.weak-hash", "python.import-by-name", "python.eval-alias", "python.unsafe-call-by-name"],
    "B306": ["python.tempfile-mktemp"],
    "B307": ["python.eval", "python.eval-alias"],
    "B323": ["python.ssl-unverified-context"],
    "B324": ["python.weak-hash", "python.import-by-name", "python.eval-alias", "python.unsafe-call-by-name"],
    "B501": ["python.tls-verify-disabled"],
    "B506": ["python.yaml-load", "python.yaml-unsafe-load"],
    "B602": ["python.subprocess-shell-true"],
    "B605": ["python.os-system", "python.os-system-alias", "python.import-by-name"],
    "B608": ["python.sql-injection", "python.sql-string-formatting"],
    "B701": ["python.jinja2-autoescape-off", "python.jinja2-environment-default"],
    "B321": ["python.cleartext-ftp"],
}
for i in range(313, 321):
    COVER[f"B{i}"] = ["python.xml-unsafe-parse", "python.lxml-parse", "python.xml-alias", "python.import-by-name", "python.module-alias",
                        "python.unsafe-call-by-name"]


def run(cmd, **kw):
    print("+", " ".join(map(str, cmd)), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


def setup(work: Path):
    venv = work / "venv"
    if not (venv / "bin" / "bandit").exists():
        run([sys.executable, "-m", "venv", str(venv)])
        run([venv / "bin" / "pip", "install", "-q", BANDIT])
    dl = work / "sdists"
    dl.mkdir(parents=True, exist_ok=True)
    src = work / "src"
    src.mkdir(exist_ok=True)
    for spec in PACKAGES:
        name = spec.split("==")[0].lower().replace("-", "_")
        if any(p.name.lower().replace("-", "_").startswith(name) for p in src.iterdir()):
            continue
        run([venv / "bin" / "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", str(dl), spec])
    for f in sorted(dl.iterdir()):
        stem = f.name
        for ext in (".tar.gz", ".zip"):
            stem = stem[: -len(ext)] if stem.endswith(ext) else stem
        if (src / stem).exists():
            continue
        if f.name.endswith(".tar.gz"):
            with tarfile.open(f) as t:
                t.extractall(src, filter="data")
        elif f.name.endswith(".zip"):
            with zipfile.ZipFile(f) as z:
                z.extractall(src)
    return venv / "bin" / "bandit", src


def bandit_findings(bandit, src: Path, cache: Path):
    """Bandit's findings of the covered ids, cached in `cache` (keyed by Bandit's version and
    the ids; delete the file to re-run Bandit)."""
    ids = ",".join(sorted(COVER))
    key = f"{BANDIT} {ids}"
    if cache.exists() and json.loads(cache.read_text()).get("key") == key:
        data = json.loads(cache.read_text())["data"]
    else:
        p = subprocess.run([bandit, "-r", "-q", "-f", "json", "-t", ids, str(src)], capture_output=True, text=True)
        data = json.loads(p.stdout)
        cache.write_text(json.dumps({"key": key, "data": data}))
    out = []
    for r in data["results"]:
        out.append({
            "file": os.path.relpath(r["filename"], src), "line": r["line_number"],
            "lines": r.get("line_range") or [r["line_number"]],
            "id": r["test_id"], "severity": r["issue_severity"], "code": r["code"].strip().splitlines()[:1],
        })
    return out


def ward_findings(ward, src: Path):
    files = sorted(str(p) for p in src.rglob("*.py"))
    out = []
    for i in range(0, len(files), 200):
        p = subprocess.run([ward, "check", "--format", "json", *files[i:i + 200]], capture_output=True, text=True)
        if p.returncode not in (0, 1):
            raise SystemExit(f"ward check failed: {p.stderr}")
        for x in json.loads(p.stdout):
            out.append({"file": os.path.relpath(x["path"], src), "rule": x["rule_id"],
                        "line": x["line"], "end_line": x["end_line"]})
    return out


def code_line(src: Path, w):
    """The first line of a Ward finding's code, stripped."""
    try:
        text = (src / w["file"]).read_text(errors="replace").split("\n")
        return text[w["line"] - 1].strip()
    except (OSError, IndexError):
        return ""


def compare(bfs, wfs):
    by_file = collections.defaultdict(list)
    for w in wfs:
        by_file[w["file"]].append(w)
    per_id = collections.defaultdict(lambda: [0, 0, 0, 0])  # hits, total, hits M/H, total M/H
    misses, covered_ward = [], set()
    for b in bfs:
        rules = COVER.get(b["id"], [])
        lo, hi = min(b["lines"]), max(b["lines"])
        hit = None
        for k, w in enumerate(by_file[b["file"]]):
            if w["rule"] in rules and w["line"] <= hi and (w["end_line"] or w["line"]) >= lo:
                hit = k
                covered_ward.add((b["file"], k))
                break
        mh = b["severity"] in ("MEDIUM", "HIGH")
        s = per_id[b["id"]]
        s[1] += 1
        s[3] += mh
        if hit is not None:
            s[0] += 1
            s[2] += mh
        else:
            misses.append(b)
    ward_only = [w for f, ws in by_file.items() for k, w in enumerate(ws) if (f, k) not in covered_ward]
    return per_id, misses, ward_only


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ward", required=True)
    ap.add_argument("--work", default="/var/tmp/ward-bandit")
    ap.add_argument("--out", default="tests/bandit/results")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    bandit, src = setup(work)
    bfs = bandit_findings(bandit, src, work / "bandit.json")
    wfs = ward_findings(a.ward, src)
    per_id, misses, ward_only = compare(bfs, wfs)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tot = [sum(v[i] for v in per_id.values()) for i in range(4)]
    summary = {"packages": PACKAGES, "bandit": BANDIT, "per_id": per_id, "total": tot,
               "misses": misses, "ward_only": collections.Counter(w["rule"] for w in ward_only),
               "ward_only_findings": ward_only}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = ["# Ward against Bandit (tests/bandit/recall.py)", "",
             f"Packages: {', '.join(PACKAGES)}; {BANDIT}.", "",
             f"Recall: {tot[0]} of {tot[1]} ({100 * tot[0] / max(tot[1], 1):.0f} %); "
             f"MEDIUM/HIGH {tot[2]} of {tot[3]} ({100 * tot[2] / max(tot[3], 1):.0f} %).", "",
             "| Bandit id | found by Ward | Bandit findings | MEDIUM/HIGH found | MEDIUM/HIGH |", "|---|---|---|---|---|"]
    for k in sorted(per_id):
        v = per_id[k]
        lines.append(f"| {k} | {v[0]} | {v[1]} | {v[2]} | {v[3]} |")
    lines += ["", "## Misses", ""]
    for m in misses:
        lines.append(f"- {m['id']} {m['severity']} `{m['file']}:{m['line']}`: `{(m['code'] or [''])[0][:120]}`")
    lines += ["", "## Ward-only findings (no Bandit finding of a mapped id on the line)", ""]
    lines += ["Per rule: the count, then up to five of them with their code line (all of them are in",
              "`summary.json`, `ward_only_findings`).", ""]
    by_rule = collections.defaultdict(list)
    for w in ward_only:
        by_rule[w["rule"]].append(w)
    for r, ws in sorted(by_rule.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"- {r}: {len(ws)}")
        for w in ws[:5]:
            lines.append(f"  - `{w['file']}:{w['line']}`: `{code_line(src, w)[:120]}`")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:8 + len(per_id)]))


if __name__ == "__main__":
    main()
