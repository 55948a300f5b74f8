//! `early_end`: the end token in an infill hole empties the rest of that hole (the text goes
//! on after it), only at the hole's tail, past its first position and not right after blank
//! text alone, and never with
//! `early_end: false`; enforced and
//! unconstrained alike, on the real python pack and tokenizer.

mod common;

use common::*;
use ward_sampler::{GenerateRequest, LogitsSource, SamplerError, Strategy};

/// A source whose row at each position is `-20` everywhere but what `fill(position, row)`
/// sets.
struct Rows<F: FnMut(usize, &mut [f32])> {
    vocab: usize,
    fill: F,
}

impl<F: FnMut(usize, &mut [f32])> LogitsSource for Rows<F> {
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn logits(&mut self, _ids: &[u32], positions: &[usize]) -> Result<Vec<f32>, SamplerError> {
        let v = self.vocab;
        let mut out = vec![-20.0f32; positions.len() * v];
        for (k, &p) in positions.iter().enumerate() {
            (self.fill)(p, &mut out[k * v..(k + 1) * v]);
        }
        Ok(out)
    }
}

fn token(text: &str) -> u32 {
    let ids = fixture().encode(text);
    assert_eq!(ids.len(), 1, "{text:?} is one token");
    ids[0]
}

fn run(prompt: &str, early_end: bool, enforce: bool, not_at: Vec<usize>) -> (String, Vec<String>) {
    let f = fixture();
    let engine = f.engine();
    let req = GenerateRequest {
        early_end,
        enforce,
        strategy: Strategy::LowConfidence,
        steps: Some(4),
        ..GenerateRequest::new(prompt)
    };
    // The end token preferred everywhere, then " x", then "1" (all else far below); at the
    // positions `not_at`, " x" instead, more surely than the end token elsewhere (so those
    // positions are committed first).
    let (eos, second, third) = (f.special.eos.unwrap(), token(" x"), token("1"));
    let mut src = Rows {
        vocab: f.vocab.len(),
        fill: |p: usize, row: &mut [f32]| {
            row[second as usize] = if not_at.contains(&p) { 20.0 } else { 5.0 };
            row[third as usize] = 4.0;
            row[eos as usize] = 10.0;
        },
    };
    let r = engine
        .generate(&req, &f.tokenizer, &mut src, |_| true)
        .unwrap();
    assert_eq!(r.certificate.enforced_findings, 0);
    (r.text, r.holes)
}

const PROMPT: &str = "def f():\n    y =<|hole:8|>\n    return y\n";

#[test]
fn an_infill_hole_ends_early_and_keeps_the_text_after_it() {
    for enforce in [true, false] {
        // The end token is preferred everywhere; a hole keeps its first token.
        let (text, holes) = run(PROMPT, true, enforce, Vec::new());
        assert_eq!(
            text, "def f():\n    y = x\n    return y\n",
            "enforce {enforce}"
        );
        assert_eq!(holes, vec![" x".to_string()]);
    }
}

#[test]
fn without_early_end_a_hole_is_all_its_tokens() {
    for enforce in [true, false] {
        let (text, holes) = run(PROMPT, false, enforce, Vec::new());
        assert_eq!(holes, vec![" x".repeat(8)], "enforce {enforce}");
        assert_eq!(
            text,
            format!("def f():\n    y ={}\n    return y\n", " x".repeat(8))
        );
    }
}

#[test]
fn the_hole_ends_only_after_its_last_text_token() {
    // The prompt's tokens come first: find where the hole starts on the canvas.
    let f = fixture();
    let start = f.encode("def f():\n    y =").len();
    // Text is surest at the hole's last two positions, so it is committed there first; the
    // end token preferred before them must then be refused (a hole may only end at its
    // tail), and the hole fills with text.
    let (text, holes) = run(PROMPT, true, true, vec![start + 6, start + 7]);
    assert_eq!(holes, vec![" x".repeat(8)], "{text:?}");
    // With the end token preferred everywhere but the first two positions, the hole keeps
    // two text tokens and ends after them.
    let (text, holes) = run(PROMPT, true, true, vec![start, start + 1]);
    assert_eq!(holes, vec![" x x".to_string()], "{text:?}");
    assert_eq!(text, "def f():\n    y = x x\n    return y\n");
}

#[test]
fn a_tail_hole_still_ends_the_text() {
    let (text, holes) = run("y =<|hole:8|>", true, true, Vec::new());
    assert_eq!(text, "y =");
    assert_eq!(holes, vec![String::new()]);
}

#[test]
fn a_hole_never_ends_on_blank_text_alone() {
    let f = fixture();
    let engine = f.engine();
    let start = f.encode("def f():\n    y =").len();
    for blank in ["\n", " "] {
        for enforce in [true, false] {
            // The blank token is committed first at the hole's first position; the end token
            // preferred everywhere after it is refused until some text is committed before
            // it, so the hole is never blank alone.
            let req = GenerateRequest {
                enforce,
                strategy: Strategy::LowConfidence,
                steps: Some(8),
                ..GenerateRequest::new(PROMPT)
            };
            // `blank` at the hole's first position (surest there, so committed first), the
            // end token everywhere else, then " x".
            let (eos, b, x) = (f.special.eos.unwrap(), token(blank), token(" x"));
            let mut src = Rows {
                vocab: f.vocab.len(),
                fill: |p: usize, row: &mut [f32]| {
                    if p == start {
                        row[b as usize] = 20.0;
                    } else {
                        row[eos as usize] = 10.0;
                        row[x as usize] = 5.0;
                    }
                },
            };
            let r = engine
                .generate(&req, &f.tokenizer, &mut src, |_| true)
                .unwrap();
            assert_eq!(r.holes, vec![format!("{blank} x")], "enforce {enforce}");
            assert_eq!(r.certificate.enforced_findings, 0);
        }
    }
}
