"""Tests of the Semgrep-fidelity harness (tests/semgrep/harness.py): annotation parsing, rule
selection and the comparison, and a run on the fixtures (rules written for Ward, not taken
from semgrep-rules) from a folder and from a bare git repository, with the `ward` that
`cargo test` built ($WARD_BIN). Python 3 + PyYAML, no network."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import harness as h  # noqa: E402

FIXTURES = HERE / "fixtures"


def ward_bin():
    p = os.environ.get("WARD_BIN")
    return p if p and Path(p).is_file() else None


class Annotations(unittest.TestCase):
    def test_comment_forms_and_several_ids(self):
        self.assertEqual(h.annotation_of("  # ruleid: a.b"), [("ruleid", "a.b")])
        self.assertEqual(h.annotation_of("// ok:x, y"), [("ok", "x"), ("ok", "y")])
        self.assertEqual(h.annotation_of("<!-- todook: z -->"), [("todook", "z")])
        self.assertEqual(h.annotation_of("{/* todoruleid: q */}"), [("todoruleid", "q")])
        self.assertEqual(h.annotation_of("# ruleid: prook: r"), [("ruleid", "r")])
        self.assertEqual(h.annotation_of("# proruleid: r"), [])  # Semgrep Pro only

    def test_code_is_not_an_annotation(self):
        self.assertIsNone(h.annotation_of("return res.send({ok: true})"))
        self.assertIsNone(h.annotation_of("x = 1  # ruleid: a"))
        self.assertIsNone(h.annotation_of("# a comment"))

    def test_an_annotation_marks_the_next_line_that_is_not_one(self):
        text = "# ruleid: a\ncode\n# ok: a\n# ruleid: b\nmore\n"
        self.assertEqual(h.annotations(text), {"a": {"ruleid": {2}, "ok": {5}}, "b": {"ruleid": {5}}})

    def test_compare_leaves_todo_lines_out(self):
        ann = {"ruleid": {2, 4}, "ok": {6}, "todoruleid": {8}, "todook": {10}}
        c = h.compare(ann, {2, 4, 10})
        self.assertTrue(c["agree"])
        self.assertEqual(c["todook_reported"], [10])
        c = h.compare(ann, {2, 6, 8})
        self.assertFalse(c["agree"])
        self.assertEqual((c["missed"], c["extra"], c["extra_on_ok"]), ([4], [6], [6]))
        self.assertEqual(c["todoruleid_reported"], [8])


class Selection(unittest.TestCase):
    def test_regex_family_only(self):
        self.assertTrue(h.is_regex_family({"id": "a", "pattern-regex": "x"}))
        self.assertTrue(h.is_regex_family({"id": "a", "patterns": [
            {"pattern-either": [{"pattern-regex": "x"}]}, {"pattern-not-regex": "y"}]}))
        self.assertFalse(h.is_regex_family({"id": "a", "pattern": "f(...)"}))
        self.assertFalse(h.is_regex_family({"id": "a", "patterns": [
            {"pattern-regex": "x"}, {"pattern-inside": "def f(): ..."}]}))
        self.assertFalse(h.is_regex_family({"id": "a", "patterns": [
            {"pattern-regex": "x"}, {"metavariable-analysis": {}}]}))

    def test_test_files_share_the_stem(self):
        by_dir = {"d": ["r.yaml", "r.py", "r.fixed.py", "r.test.yaml", "rx.py", "s.py"]}
        self.assertEqual(sorted(h.test_files("d/r.yaml", by_dir)), ["d/r.py", "d/r.test.yaml"])

    def test_fixtures_selection(self):
        sel = h.select(h.Source(FIXTURES))
        ids = sorted(r[2]["id"] for r in sel)
        self.assertEqual(ids, ["demo-apex", "demo-bot-key", "demo-lookahead", "demo-md5",
                               "demo-token", "demo-untested"])


@unittest.skipUnless(ward_bin(), "no ward binary built")
class OnTheFixtures(unittest.TestCase):
    def check(self, summary):
        self.assertEqual(
            (summary["rules_seen"], summary["rules_accepted"], summary["rules_agreeing"],
             summary["rules_disagreeing"], summary["rules_rejected"],
             summary["rules_disabled_by_languages"], summary["rules_without_test_file"],
             summary["rules_with_warnings"]),
            (6, 4, 2, 1, 1, 1, 1, 1))
        by = {r["id"]: r for r in summary["rules"]}
        self.assertEqual(by["demo-token"]["status"], "agree")
        self.assertEqual(by["demo-md5"]["status"], "agree")
        self.assertEqual(by["demo-md5"]["per_file"]["python/demo-md5.py"]["todook_reported"], [10])
        bot = by["demo-bot-key"]
        self.assertEqual(bot["status"], "disagree")
        self.assertEqual(bot["per_file"]["generic/secrets/demo-bot-key.txt"]["extra_on_ok"], [4])
        self.assertIn("inside a longer match", bot["warnings"][0])
        look = by["demo-lookahead"]
        self.assertEqual(look["status"], "rejected")
        self.assertIn("rule `demo-lookahead`", look["reason"])
        self.assertIn("`(?!` at column 7", look["reason"])
        self.assertEqual(by["demo-apex"]["status"], "disabled")
        self.assertEqual(by["demo-untested"]["status"], "no-test-file")

    def test_from_a_folder(self):
        with tempfile.TemporaryDirectory() as tmp:
            s = h.run(FIXTURES, ward_bin(), Path(tmp) / "out", Path(tmp) / "work", "HEAD", "cmd")
            self.check(s)
            self.check(json.loads((Path(tmp) / "out" / "summary.json").read_text()))
            md = (Path(tmp) / "out" / "report.md").read_text()
            self.assertIn("| all annotations agree | 2 |", md)
            self.assertIn("`demo-bot-key`", md)

    def test_from_a_bare_git_repository(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "src"
            shutil.copytree(FIXTURES, src)
            git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
            subprocess.run(git + ["init", "-q", str(src)], check=True)
            subprocess.run(git + ["-C", str(src), "add", "-A"], check=True)
            subprocess.run(git + ["-C", str(src), "commit", "-q", "-m", "f"], check=True)
            bare = Path(tmp) / "bare.git"
            subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)
            s = h.run(bare, ward_bin(), Path(tmp) / "out", Path(tmp) / "work", "HEAD", "cmd")
            self.assertTrue(s["source"].startswith("semgrep-rules at "))
            self.check(s)


if __name__ == "__main__":
    unittest.main()
