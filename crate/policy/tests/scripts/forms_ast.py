"""Checks policy cases and Ward's code view against CPython's own parser.

Reads JSON lines on stdin, one {"rule", "expect", "input", "view"} per case (`view`: the
text as Ward's `scope: code` rules read it, from `ward_policy::scan`) or one {"file", "view"}
per source file. For a case: a `violation` of python.eval must call the builtin `eval`, one
of python.subprocess-shell-true must pass `shell=True`, one of python.non-ascii-code must use
a non-ASCII identifier that NFKC folds to ASCII and call eval or pass shell=True; one of an
attribute rule (pickle, os.system, yaml.load, marshal, xml.etree; hashlib md5/sha1, any
arguments; a `random.` call assigned to a secret name) must reference that
attribute however the dot is spaced; a `clean` case must do none of that. For a case and a file: where the text parses, its view must parse
to the same AST (so the view is the same program), except where a form feed starts a line
(CPython resets the indentation count there, the view's space does not). Prints one JSON
line per input: {"i", "cpython", "same_ast", "why"}; exits 0."""
import ast
import json
import sys
import unicodedata


def facts(src):
    try:
        tree = ast.parse(src)
    except SyntaxError as e:
        return None, f"syntax error: {e.msg}"
    calls_eval = any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "eval"
        for n in ast.walk(tree)
    )
    shell_true = any(
        isinstance(n, ast.keyword)
        and n.arg == "shell"
        and isinstance(n.value, ast.Constant)
        and n.value.value is True
        for n in ast.walk(tree)
    )
    used = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute):
            name = dotted(n)
            if name:
                used.add(name)
    return {"eval": calls_eval, "shell": shell_true, "attrs": used, "tree": tree}, ""


def dotted(n):
    """`a.b.c` for an attribute chain on a plain name, else None."""
    parts = []
    while isinstance(n, ast.Attribute):
        parts.append(n.attr)
        n = n.value
    if not isinstance(n, ast.Name):
        return None
    parts.append(n.id)
    return ".".join(reversed(parts))


# Rules whose violation is a reference to one of these dotted names (however it is spaced):
# the case must use one, a clean case none.
ATTRIBUTE_RULES = {
    "python.pickle-load": {"pickle.loads", "pickle.load"},
    "python.os-system": {"os.system", "os.popen"},
    "python.yaml-load": {"yaml.load"},
    "python.marshal-load": {"marshal.loads", "marshal.load"},
    "python.xml-unsafe-parse": {"xml.etree.ElementTree.fromstring", "xml.etree.ElementTree.parse"},
}


def weak_hash(tree):
    """A call of hashlib.md5/sha1 (with any arguments: `usedforsecurity=False` is no exemption)."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and dotted(n.func) in ("hashlib.md5", "hashlib.sha1"):
            return True
    return False


def random_secret(tree):
    """A secret-named assignment target whose value calls a lower-case `random.` function."""
    secret = ("token", "password", "secret", "api_key", "salt", "nonce", "otp")
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign):
            names = [dotted(t) or (t.id if isinstance(t, ast.Name) else "") for t in n.targets]
            if any(any(s in (x or "").split(".")[-1].lower() for s in secret) for x in names):
                for m in ast.walk(n.value):
                    if isinstance(m, ast.Call) and (dotted(m.func) or "").startswith("random.") and dotted(m.func).split(".")[1][:1].islower():
                        return True
    return False


def folded_identifier(src):
    """Some identifier of `src` written with non-ASCII characters folds to ASCII."""
    import io
    import tokenize

    try:
        toks = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    for t in toks:
        if t.type == tokenize.NAME and not t.string.isascii():
            if unicodedata.normalize("NFKC", t.string).isascii():
                return True
    return False


def same_ast(raw, view):
    """True/False: raw and view parse to the same AST; None: not comparable (raw does not
    parse, or a form feed starts a line)."""
    if b"\n\x0c" in raw or raw.startswith(b"\x0c") or b"\r\x0c" in raw:
        return None
    try:
        a = ast.dump(ast.parse(raw))
    except (SyntaxError, ValueError):
        return None
    try:
        b = ast.dump(ast.parse(view))
    except (SyntaxError, ValueError):
        return False
    return a == b


def main():
    cases = [json.loads(line) for line in sys.stdin if line.strip()]
    for i, c in enumerate(cases):
        if "file" in c:
            with open(c["file"], "rb") as fh:
                raw = fh.read()
            print(json.dumps({"i": i, "cpython": None, "same_ast": same_ast(raw, c["view"].encode("utf-8", "surrogateescape")), "why": ""}))
            continue
        src = c["input"]
        f, why = facts(src)
        rule = c.get("rule")
        if f is None:
            got = False
        elif rule == "python.eval":
            got = f["eval"]
        elif rule == "python.subprocess-shell-true":
            got = f["shell"]
        elif rule == "python.non-ascii-code":
            got = folded_identifier(src) and (f["eval"] or f["shell"])
        elif rule in ATTRIBUTE_RULES:
            got = bool(f["attrs"] & ATTRIBUTE_RULES[rule])
        elif rule == "python.weak-hash":
            got = weak_hash(f["tree"])
        elif rule == "python.insecure-random-secret":
            got = random_secret(f["tree"])
        else:
            got, why = None, "no CPython oracle for this rule"
        print(json.dumps({"i": i, "cpython": got, "same_ast": same_ast(src.encode(), c["view"].encode()), "why": why}))


main()
