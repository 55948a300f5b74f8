//! Deterministic synthetic vocabularies and a tiny byte-level BPE trainer (test and bench
//! helpers; the real tokenizer is used when `models/*/tokenizer.json` exists).
#![allow(dead_code)]

use std::collections::HashMap;

/// A byte-level vocabulary of exactly `n` distinct tokens (`n ≥ 256`): the 256 single
/// bytes, then Python-like pieces (keywords, identifiers, operators with and without a
/// leading space), then pseudo-random identifier-like strings, all from a fixed seed.
pub fn synthetic_vocab(n: usize) -> Vec<Vec<u8>> {
    const WORDS: &[&str] = &[
        "def",
        "class",
        "return",
        "import",
        "from",
        "as",
        "if",
        "elif",
        "else",
        "for",
        "while",
        "in",
        "not",
        "and",
        "or",
        "is",
        "None",
        "True",
        "False",
        "self",
        "eval",
        "exec",
        "compile",
        "os",
        "system",
        "popen",
        "subprocess",
        "run",
        "call",
        "check_output",
        "Popen",
        "shell",
        "pickle",
        "loads",
        "load",
        "dumps",
        "yaml",
        "safe_load",
        "Loader",
        "hashlib",
        "md5",
        "sha1",
        "sha256",
        "new",
        "usedforsecurity",
        "requests",
        "get",
        "post",
        "verify",
        "timeout",
        "ssl",
        "context",
        "random",
        "secrets",
        "token",
        "password",
        "secret",
        "key",
        "api",
        "input",
        "open",
        "read",
        "write",
        "path",
        "join",
        "sql",
        "execute",
        "cursor",
        "query",
        "format",
        "print",
        "len",
        "range",
        "list",
        "dict",
        "str",
        "int",
        "xml",
        "etree",
        "parse",
        "marshal",
        "shelve",
        "tempfile",
        "mktemp",
        "chmod",
        "debug",
        "app",
        "flask",
        "render_template_string",
        "jinja2",
        "Environment",
        "autoescape",
        "tarfile",
        "extractall",
        "value",
        "data",
        "result",
        "name",
        "args",
        "kwargs",
        "url",
        "cmd",
        "user",
        "config",
        "x",
        "y",
        "i",
    ];
    const PUNCT: &[&str] = &[
        "(", ")", "[", "]", "{", "}", ":", ",", ".", "=", "==", "+", "-", "*", "/", "%", "'", "\"",
        "\"\"\"", "#", "\n", "\n\n", "    ", "        ", "(\"", "\")", "('", "')", "()", "):",
        "):\n", "=\"", "=True", "=False", "=None", ", ", ".\n", "\\n", "f\"", "f'", "b'", "r\"",
        "{}", "[]", "->", "!=", "<=", ">=",
    ];
    let mut seen: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut push = |t: Vec<u8>, out: &mut Vec<Vec<u8>>| {
        if out.len() < n && !t.is_empty() && seen.insert(t.clone()) {
            out.push(t);
        }
    };
    for b in 0..=255u8 {
        push(vec![b], &mut out);
    }
    for w in WORDS.iter().chain(PUNCT) {
        for pre in ["", " ", ".", "_", "(", "\n", "    "] {
            for suf in ["", "(", ")", ".", "_", ":", "=", ",", "s", "_id"] {
                push(format!("{pre}{w}{suf}").into_bytes(), &mut out);
            }
        }
    }
    let mut state: u64 = 0x243F6A8885A308D3;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const ALNUM: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzabcdeeeiioonrstl_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    while out.len() < n {
        let r = rnd();
        let len = 2 + (r % 9) as usize;
        let mut t = Vec::with_capacity(len + 1);
        match (r >> 8) % 6 {
            0 | 1 => t.push(b' '),
            2 => t.push(b'.'),
            _ => {}
        }
        for k in 0..len {
            t.push(ALNUM[((r >> (16 + 4 * (k % 10))) as usize ^ (rnd() as usize)) % ALNUM.len()]);
        }
        if (r >> 60) % 5 == 0 {
            t.push(b"():,=.\n"[((r >> 56) % 7) as usize]);
        }
        push(t, &mut out);
    }
    out
}

fn piece_class(b: u8) -> u8 {
    if b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 {
        0
    } else if b == b' ' {
        1
    } else if b == b'\n' {
        2
    } else {
        3
    }
}

/// Trains a byte-level BPE with `merges` merges on `corpus` (pre-split into words: a run
/// of word bytes with at most one leading space, runs of punctuation, newlines). Returns
/// the 256 byte tokens followed by the merged tokens.
pub fn train_bpe(corpus: &[u8], merges: usize) -> Vec<Vec<u8>> {
    let mut words: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut i = 0;
    while i < corpus.len() {
        let start = i;
        let mut c = piece_class(corpus[i]);
        if c == 1 && i + 1 < corpus.len() && piece_class(corpus[i + 1]) == 0 {
            i += 1;
            c = 0;
        }
        i += 1;
        while i < corpus.len() && piece_class(corpus[i]) == c {
            i += 1;
        }
        *words.entry(corpus[start..i].to_vec()).or_default() += 1;
    }
    let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let mut seqs: Vec<(Vec<u32>, usize)> = words
        .into_iter()
        .map(|(w, c)| (w.iter().map(|&b| b as u32).collect(), c))
        .collect();
    seqs.sort();
    for _ in 0..merges {
        let mut pairs: HashMap<(u32, u32), usize> = HashMap::new();
        for (s, c) in &seqs {
            for w in s.windows(2) {
                *pairs.entry((w[0], w[1])).or_default() += c;
            }
        }
        let Some((&(a, b), _)) = pairs.iter().max_by(|x, y| x.1.cmp(y.1).then(y.0.cmp(x.0))) else {
            break;
        };
        let id = vocab.len() as u32;
        let mut t = vocab[a as usize].clone();
        t.extend_from_slice(&vocab[b as usize]);
        vocab.push(t);
        for (s, _) in &mut seqs {
            let mut out = Vec::with_capacity(s.len());
            let mut k = 0;
            while k < s.len() {
                if k + 1 < s.len() && s[k] == a && s[k + 1] == b {
                    out.push(id);
                    k += 2;
                } else {
                    out.push(s[k]);
                    k += 1;
                }
            }
            *s = out;
        }
    }
    vocab
}

/// The Python snippets of `policies/cases/*.yaml` (violating and clean ones) as a corpus.
pub fn cases_corpus(policies_dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(policies_dir.join("cases")) else {
        return out;
    };
    let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        if let Ok(s) = std::fs::read(&f) {
            out.extend_from_slice(&s);
            out.push(b'\n');
        }
    }
    out
}

/// The repository's `policies/` folder.
pub fn policies_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// Compiles the pack at `path`; rules that fail to compile alone (size or time limits)
/// are disabled and named in the returned list, so the guard can be tested while the pack
/// is being written.
pub fn compile_pack_lenient(path: &std::path::Path) -> (ward_policy::CompiledPolicy, Vec<String>) {
    let mut eff = ward_policy::EffectivePolicy::load(path).expect("pack loads");
    let mut skipped = Vec::new();
    loop {
        match ward_policy::PolicyBuilder::new().compile(&eff) {
            Ok(p) => return (p, skipped),
            Err(e) => {
                let id = e
                    .rule()
                    .map(str::to_string)
                    .unwrap_or_else(|| panic!("pack does not compile: {e}"));
                let r = eff
                    .rules
                    .iter_mut()
                    .find(|r| r.id == id && r.enabled)
                    .unwrap_or_else(|| panic!("{e}"));
                r.enabled = false;
                skipped.push(id);
            }
        }
    }
}
