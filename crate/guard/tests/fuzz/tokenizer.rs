//! The check of the `tokenizer` fuzz target (`crate/guard/fuzz`), shared with the regression
//! test that replays its findings (`tests/fuzz_findings.rs`): any `tokenizer.json` gives a
//! vocabulary within the documented limits, or a clean error; never a panic.

use ward_guard::vocab::{self, MAX_TOKENS, MAX_TOKEN_BYTES, MAX_TOTAL_BYTES};

/// One fuzz input: the text of a `tokenizer.json`.
pub fn run(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let v = match vocab::from_tokenizer_json(json) {
        Ok(v) => v,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "{e:?}");
            return;
        }
    };
    assert!(!v.is_empty() && v.len() <= MAX_TOKENS, "{} tokens", v.len());
    let mut total = 0usize;
    for t in 0..v.len() as u32 {
        let b = v.bytes(t);
        assert!(b.len() <= MAX_TOKEN_BYTES, "token {t}: {} bytes", b.len());
        assert!(v.first_bytes(t).len() <= MAX_TOKEN_BYTES, "token {t}");
        total += b.len();
        let _ = v.kind(t);
    }
    assert!(total <= MAX_TOTAL_BYTES, "{total} bytes of tokens");
    let ids: Vec<u32> = (0..v.len().min(300) as u32).collect();
    let _ = v.decode(&ids);
    let _ = v.decode_text(&ids);
    let _ = v.memory_bytes();
    // Greedy tokenization decodes back to its text when it succeeds on a text without
    // leading spaces (decoders may strip or re-add a leading space).
    let text = b"x=1\ndef f(a):\n\treturn a\n";
    if let Some(toks) = v.tokenize_greedy(text) {
        assert!(toks.iter().all(|&t| (t as usize) < v.len()));
    }
}
