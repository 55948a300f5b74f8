"""Print the byte spans of string and comment tokens of Python files, per CPython's own
tokenizer, as JSON lines: {"file": ..., "strings": [[start, end, prefix_len, quote_len]], "comments": [[start, end]]}.
f-strings are reported with prefix_len = -1 (their fields are code; the test skips them)."""
import io
import json
import sys
import tokenize


def offsets(src: bytes):
    lines = src.split(b"\n")
    starts = [0]
    for l in lines:
        starts.append(starts[-1] + len(l) + 1)
    return starts


def spans(path):
    src = open(path, "rb").read()
    starts = offsets(src)
    text = src.decode("utf-8")

    def off(row, col):
        # tokenize columns are in characters; convert to bytes
        line = text.split("\n")[row - 1] if row - 1 < len(text.split("\n")) else ""
        return starts[row - 1] + len(line[:col].encode("utf-8"))

    strings, comments = [], []
    for tok in tokenize.tokenize(io.BytesIO(src).readline):
        if tok.type == tokenize.STRING:
            s = tok.string
            i = 0
            while s[i] not in "'\"":
                i += 1
            prefix = s[:i].lower()
            q = 3 if s[i : i + 3] in ("'''", '"""') else 1
            a, b = off(*tok.start), off(*tok.end)
            strings.append([a, b, -1 if "f" in prefix else len(s[:i].encode()), q])
        elif tok.type == tokenize.COMMENT:
            comments.append([off(*tok.start), off(*tok.end)])
    return {"file": path, "strings": strings, "comments": comments}


for p in sys.argv[1:]:
    try:
        print(json.dumps(spans(p)))
    except (SyntaxError, UnicodeDecodeError, tokenize.TokenError, IndexError):
        pass
