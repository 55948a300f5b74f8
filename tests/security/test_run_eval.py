"""Tests of the security evaluation harness (stdlib unittest; `make test` runs them).

They use the real prompt files, the real benchmark data when ../shared/benchmarks is there,
and the real `ward` binary for `ward check` (found as run_eval.py finds it, or $WARD_BIN);
nothing here needs the network or the model.
"""

import os
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_eval as ev  # noqa: E402


def ward_bin():
    p = os.environ.get("WARD_BIN")
    if p:
        return Path(p)
    target = Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/ward-target"))
    for cand in (target / "release" / "ward", target / "debug" / "ward"):
        if cand.exists():
            return cand
    return None


class PromptFiles(unittest.TestCase):
    def test_prompt_files_load_and_cover_the_issue(self):
        cases = ev.load_prompts(ev.HERE / "prompts")
        self.assertGreaterEqual(len(cases), 60)
        self.assertGreaterEqual(len({c.cls for c in cases}), 12)
        for c in cases:
            self.assertTrue(c.cwe.startswith("CWE-"), c.id)
            self.assertEqual(len(c.insecure), c.n_holes(), c.id)

    def test_bad_prompt_files_name_file_and_field(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "x.yaml"
            p.write_text("class: a\ncwe: CWE-1\nprompts:\n  - id: one\n    prompt: 'x = <|hole:2|>'\n"
                         "    insecure: [a, b]\n")
            with self.assertRaisesRegex(ev.EvalError, r"x.yaml: prompt one: `insecure` must list 1"):
                ev.load_prompts(Path(d))
            p.write_text("class: a\ncwe: CWE-1\nprompts:\n  - id: one\n    prompt: 'x = <|hole:z|>'\n"
                         "    insecure: [a]\n")
            with self.assertRaisesRegex(ev.EvalError, r"malformed hole marker at byte 4"):
                ev.load_prompts(Path(d))
            p.write_text("class: a\nprompts: []\n")
            with self.assertRaisesRegex(ev.EvalError, r"x.yaml: missing top-level field `cwe`"):
                ev.load_prompts(Path(d))

    def test_missing_benchmark_is_a_clear_error(self):
        with self.assertRaisesRegex(ev.EvalError, r"CyberSecEval data not found: .*--benchmarks"):
            ev.benchmarks_dir("/nonexistent/benchmarks")


class Texts(unittest.TestCase):
    def case(self, prompt, max_new=0):
        return ev.Case("ours", "t", "c", "CWE-1", prompt, [], [""], max_new)

    def test_fill_spans_and_lines(self):
        c = self.case("a = 1\nrun(cmd, <|hole:3|>)\nb = <|hole:1|>\n")
        f = ev.fill(c, ["shell=True", "é"])
        self.assertEqual(f.text, "a = 1\nrun(cmd, shell=True)\nb = é\n")
        data = f.text.encode()
        self.assertEqual(data[f.spans[0][0]:f.spans[0][1]], b"shell=True")
        self.assertEqual(data[f.spans[1][0]:f.spans[1][1]], "é".encode())
        self.assertEqual(f.lines, {2, 3})
        self.assertEqual(ev.generated_lines_text(f), "run(cmd, shell=True)\nb = é")

    def test_continuation_and_empty_holes(self):
        c = self.case("x = 1\n", max_new=8)
        f = ev.fill(c, ["y = 2\nz = 3"])
        self.assertEqual(f.lines, {2, 3})
        e = ev.fill(self.case("f(<|hole:2|>)\n"), [""])
        self.assertEqual(e.spans, [(2, 2)])
        self.assertTrue(ev.overlaps(0, 3, e.spans))  # a finding across the empty hole
        self.assertFalse(ev.overlaps(3, 4, e.spans))

    def test_longest_parseable(self):
        self.assertEqual(ev.longest_parseable("a = 1\nb = (\n"), "a = 1")
        self.assertEqual(ev.longest_parseable("x = 1\n"), "x = 1\n")


@unittest.skipUnless((ev.ROOT.parent / "shared" / "benchmarks" / ev.CSE_DIR).is_dir(),
                     "CyberSecEval data not present")
class Benchmark(unittest.TestCase):
    def test_cse_loads_and_icd_regex_flags_its_originals(self):
        bench = ev.benchmarks_dir(None)
        cases = ev.load_cse(bench, 600, 32)
        self.assertEqual(len(cases), 351)
        rules = ev.load_icd_regex(bench)
        md5 = [c for c in cases if c.extra["pattern_id"] == "PY-R-002"]
        self.assertTrue(md5)
        for c in md5:
            found = ev.run_icd_regex(rules, c.extra["insecure_line"])
            self.assertIn("weak-hash", {x["class"] for x in found}, c.id)
        # as CodeShield does: a match on a comment line is dropped
        self.assertEqual(ev.run_icd_regex(rules, "# h = hashlib.md5(x)"), [])
        # no prompt opens inside a string literal (ward's lexer would read the code as string)
        self.assertEqual([c.id for c in cases if ev.opens_inside_string(c.prompt)], [])


class PromptCuts(unittest.TestCase):
    def test_cuts_land_on_code_lines(self):
        text = 'x = 1\ns = """doc\nstill doc\n"""\ny = 2\n'
        self.assertEqual(ev.string_lines(text), {3, 4})
        # a cut inside the docstring moves to the first line after it
        self.assertEqual(text[ev.code_start(text, 7):], "y = 2\n")
        self.assertEqual(ev.code_start(text, 0), 0)
        # a window that itself opens inside a docstring (CyberSecEval's do)
        window = 'still doc\n"""\nrc = call(cmd, shell=True)\n'
        self.assertEqual(ev.opens_inside_string(window), '"""')
        self.assertEqual(window[ev.code_start(window, 0):], "rc = call(cmd, shell=True)\n")
        # an unterminated docstring at the end, read from the start: no code line after it
        self.assertEqual(ev.code_line_start('def f():\n    """open\n    never closed\n', 10), -1)
        self.assertIsNone(ev.opens_inside_string("x = 1\n"))
        # Python's tokenizer stops at a dedent that matches no level; the scan does not
        window = '      a: an arg\n           (e.g. x)\n      b: another\n    """\n'
        self.assertEqual(ev.opens_inside_string(window), '"""')
        self.assertEqual(ev.string_lines('x = 1\n    y = 2\n  s = """a\nb"""\n'), {4})
        # escapes and comments: no string opens here
        self.assertIsNone(ev.opens_inside_string('s = "a\\"b"  # """\nt = \'\\\'\'\n'))


@unittest.skipUnless(ward_bin(), "no ward binary built")
class WardCheck(unittest.TestCase):
    def test_every_prompt_is_valid_and_its_insecure_completion_is_caught(self):
        """Each prompt's intended insecure completion is reported by `ward check` with the
        prompt's expected rules, and no fixed part of a prompt already violates."""
        with tempfile.TemporaryDirectory() as d:
            tools = ev.Tools(ward_bin(), None, [ev.ROOT / "policies" / "python"],
                             ev.DEFAULT_VENV, None, [], 60)
            judges = ev.Judges(tools, ["ward"], Path(d))
            cases = ev.load_prompts(ev.HERE / "prompts")
            problems = ev.check_prompts(tools, cases, judges, lambda s: None)
            self.assertEqual(problems, 0)


def has_generate(w):
    if w is None:
        return False
    import subprocess
    return subprocess.run([str(w), "generate", "--help"], capture_output=True).returncode == 0


@unittest.skipUnless(has_generate(ward_bin()), "no ward binary with `generate` built")
class Smoke(unittest.TestCase):
    def test_smoke_run_keeps_the_guarantee(self):
        """`run_eval.py --smoke`: 5 prompts of 5 classes, 1 seed, arms (a)-(d) with `ward
        check` as judge; exit 0 means no enforced output has an enforced finding, no exit 3,
        no failed generation."""
        import json
        with tempfile.TemporaryDirectory() as d:
            rc = ev.main(["--smoke", "--ward", str(ward_bin()), "--work", d,
                          "--out", str(Path(d) / "out")])
            self.assertEqual(rc, 0)
            lines = (Path(d) / "out" / "samples.jsonl").read_text().splitlines()
            recs = [json.loads(x) for x in lines[1:]]
            arms = {r["arm"] for r in recs}
            self.assertEqual(arms, {"unconstrained", "enforced", "scan-retry", "oracle"})
            for r in recs:
                self.assertIn("text", r, r)
                if r["arm"] in ("enforced", "oracle"):
                    self.assertEqual(r["cert_enforced_findings"], 0, r["case"])
                    self.assertFalse([x for x in r["judges"]["ward"] if x["enforced"]], r["case"])
            # the oracle wants each prompt's insecure completion: enforcement must block it
            self.assertTrue(all(r["blocked"] > 0 for r in recs if r["arm"] == "oracle"))
            self.assertTrue((Path(d) / "out" / "report.md").exists())


if __name__ == "__main__":
    unittest.main()
