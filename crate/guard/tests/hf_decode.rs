//! `vocab::from_tokenizer_json` decodes exactly as Hugging Face's `tokenizers` does.
//!
//! The fixtures in `tests/hf/` (one small tokenizer per family and decoder kind, with token
//! id sequences and what `Tokenizer.decode(ids, skip_special_tokens=True)` returned for them)
//! are written by `tests/hf/make_fixtures.py` with the Python `tokenizers` package; this test
//! needs neither Python nor the package. Also here: the guard on a SentencePiece-style
//! vocabulary, whose first token decodes differently.

use std::sync::Arc;

use ward_guard::vocab::from_tokenizer_json;
use ward_guard::{Canvas, Guard, GuardError, TokenPolicy};

fn fixture(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hf")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks every case of fixture `name`; returns the number of cases.
fn check(name: &str) -> usize {
    let fx = fixture(name);
    let tok = fx["tokenizer"].to_string();
    let result = from_tokenizer_json(&tok);
    if let Some(why) = fx["refuse"].as_str() {
        let e = result.expect_err(&format!("{name}: must be refused"));
        assert!(
            e.to_string().contains(why),
            "{name}: refused, but the message does not say why ({why:?}): {e}"
        );
        return 0;
    }
    let vocab = result.unwrap_or_else(|e| panic!("{name}: {e}"));
    let cases = fx["cases"].as_array().expect("cases");
    assert!(!cases.is_empty(), "{name}: no cases");
    for c in cases {
        let note = c["note"].as_str().unwrap_or("");
        let ids: Vec<u32> = c["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|i| i.as_u64().expect("id") as u32)
            .collect();
        let want = c["text"].as_str().expect("text");
        assert_eq!(
            vocab.decode_text(&ids),
            want,
            "{name}: {note}: decode_text({ids:?})"
        );
        if c["lossy"].as_bool() == Some(true) {
            // Hugging Face replaced invalid UTF-8; the guard's bytes are the raw ones.
            assert!(
                want.contains('\u{FFFD}'),
                "{name}: {note}: expected a replacement"
            );
            assert!(
                std::str::from_utf8(&vocab.decode(&ids)).is_err(),
                "{name}: {note}"
            );
        } else {
            assert_eq!(
                String::from_utf8_lossy(&vocab.decode(&ids)),
                want,
                "{name}: {note}: decode({ids:?})"
            );
        }
    }
    cases.len()
}

#[test]
fn gpt2_byte_level() {
    assert!(check("gpt2_byte_level") > 0);
}

#[test]
fn qwen2_byte_level_with_a_non_special_added_token() {
    assert!(check("qwen2_byte_level") > 0);
}

#[test]
fn llama3_byte_level_with_special_tokens_of_text_content() {
    assert!(check("llama3_byte_level") > 0);
}

#[test]
fn llama2_sentencepiece_strips_the_leading_space_and_decodes_byte_runs() {
    assert!(check("llama2_sentencepiece") > 0);
}

#[test]
fn metaspace_prepend_first_drops_the_first_tokens_marker() {
    assert!(check("metaspace_first") > 0);
}

#[test]
fn metaspace_prepend_never_keeps_it() {
    assert!(check("metaspace_never") > 0);
}

#[test]
fn bert_wordpiece_with_cleanup() {
    assert!(check("bert_wordpiece") > 0);
}

#[test]
fn no_decoder_joins_tokens_with_spaces() {
    assert!(check("no_decoder") > 0);
}

#[test]
fn decoders_that_depend_on_neighbours_are_refused() {
    for name in [
        "refuse_bpe_decoder",
        "refuse_ctc",
        "refuse_regex_replace",
        "refuse_fallback_then_metaspace",
        "refuse_strip_end",
    ] {
        check(name);
    }
}

/// A LLaMA-2-style tokenizer: `▁eval` is `eval` as the first token, ` eval` elsewhere.
const SENTENCEPIECE: &str = r#"{
  "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                   {"id": 1, "content": "<s>", "special": true},
                   {"id": 2, "content": "</s>", "special": true}],
  "decoder": {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "merges": [],
            "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "▁eval": 3, "(": 4, "▁x": 5, ")": 6}}
}"#;

#[test]
fn the_guard_sees_the_first_token_as_hugging_face_decodes_it() {
    // Only at the start of the text: `eval(` there is a violation, ` eval(` is not.
    let yaml = "pack: t\nrules:\n  - id: t.start-eval\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: '^eval\\('\n";
    let policy = ward_policy::PolicyBuilder::new()
        .compile_str(yaml, "t.yaml")
        .expect("pack compiles");
    let vocab = from_tokenizer_json(SENTENCEPIECE).unwrap();
    assert!(vocab.has_first_forms());
    assert_eq!(vocab.decode(&[1, 3, 4, 5, 6]), b"eval( x)");
    let tp = Arc::new(TokenPolicy::new(Arc::new(policy), Arc::new(vocab)));

    // "▁eval" first (after the text-free <s>): "(" would complete `^eval\(`.
    for prompt in [&[3u32][..], &[1, 3]] {
        let g = Guard::new(tp.clone(), &Canvas::infill(prompt, 2, &[])).unwrap();
        let h = prompt.len();
        assert_eq!(
            g.base(),
            h,
            "the prompt up to its first text token is retired"
        );
        assert!(
            !g.allows(h, 4),
            "prompt {prompt:?}: `eval(` at the start of the text"
        );
        assert!(g.allows(h, 6));
        let blame = g.why_forbidden(h, 4);
        assert_eq!(blame[0].rule_id, "t.start-eval");
        assert_eq!(
            g.tokens()[..h],
            prompt.iter().map(|&t| Some(t)).collect::<Vec<_>>()[..]
        );
    }
    // "▁x▁eval": the text is "x eval", and "(" is fine.
    let mut g = Guard::new(tp.clone(), &Canvas::infill(&[5, 3], 1, &[])).unwrap();
    assert!(g.allows(2, 4));
    g.commit(2, 4).unwrap();
    assert_eq!(g.text(), b"x eval(");

    // A fixed violating start is refused with its span in the decoded text.
    match Guard::new(tp.clone(), &Canvas::infill(&[1, 3, 4, 5], 1, &[])) {
        Err(GuardError::CanvasViolates { rule_id, span, .. }) => {
            assert_eq!((rule_id.as_str(), span), ("t.start-eval", 0..5))
        }
        other => panic!("expected CanvasViolates, got {other:?}"),
    }
    // Positions in errors are canvas positions (not shifted by the retired start).
    match Guard::new(tp.clone(), &Canvas::infill(&[1, 3, 4], 1, &[])) {
        Err(GuardError::NoSafeCompletion { position, .. }) => assert_eq!(position, Some(2)),
        other => panic!("expected NoSafeCompletion, got {other:?}"),
    }
    // A canvas of fixed tokens only, the first text token last.
    let g = Guard::new(tp.clone(), &Canvas::infill(&[1, 5], 0, &[])).unwrap();
    assert!(g.is_complete());
    assert_eq!(g.text(), b"x");

    // A hole before the first text token: which form it takes is unknown, so refused.
    match Guard::new(tp.clone(), &Canvas::infill(&[1], 3, &[])) {
        Err(e @ GuardError::OpenTextStart { position: 1 }) => {
            assert!(e.to_string().contains("first text token"), "{e}")
        }
        other => panic!("expected OpenTextStart, got {other:?}"),
    }
    // An end token first: the text is empty, nothing to fold.
    assert!(Guard::new(tp, &Canvas::infill(&[2], 2, &[])).is_ok());
}
