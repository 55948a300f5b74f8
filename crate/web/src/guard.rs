//! The guard side of the bindings (no JavaScript types): a policy lifted to a tokenizer's
//! vocabulary, and guarded canvases, for callers that bring their own model.

use std::sync::Arc;

use serde_json::{json, Value};
use ward_guard::{BlameKind, Canvas, Guard, TokenPolicy, Vocab};
use ward_policy::CompiledPolicy;

use crate::clock;
use crate::error::{Kind, Result, WebError};

/// A policy lifted to a vocabulary (the token-level tables the guard reads).
#[derive(Clone, Debug)]
pub struct TokenGuardCore {
    /// The lifted policy.
    pub tp: Arc<TokenPolicy>,
    /// Milliseconds spent parsing the tokenizer and lifting the policy.
    pub lift_ms: f64,
}

impl TokenGuardCore {
    /// Parses a Hugging Face `tokenizer.json` and lifts `policy` to its vocabulary.
    pub fn new(policy: Arc<CompiledPolicy>, tokenizer_json: &str) -> Result<TokenGuardCore> {
        let t0 = clock::now_ms();
        let vocab = ward_guard::vocab::from_tokenizer_json(tokenizer_json)
            .map_err(|e| WebError::new(Kind::Tokenizer, format!("tokenizer.json: {e}")))?;
        Ok(Self::from_vocab(policy, vocab, t0))
    }

    /// Lifts `policy` to `vocab`; `t0` is when the work started (for `lift_ms`).
    pub fn from_vocab(policy: Arc<CompiledPolicy>, vocab: Vocab, t0: f64) -> TokenGuardCore {
        let tp = Arc::new(TokenPolicy::new(policy, Arc::new(vocab)));
        TokenGuardCore {
            tp,
            lift_ms: clock::now_ms() - t0,
        }
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tp.vocab().len()
    }

    /// Greedy longest-match tokenization of `text` on the vocabulary (not the model's BPE
    /// merges: the same text, possibly other token boundaries).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tp
            .vocab()
            .tokenize_greedy(text.as_bytes())
            .ok_or_else(|| {
                WebError::new(
                    Kind::Tokenizer,
                    "the text has bytes that no token of the vocabulary covers",
                )
            })
    }

    /// The text of `ids` (invalid UTF-8 replaced by U+FFFD); ids outside the vocabulary
    /// are an error.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let n = self.vocab_size();
        if let Some(&t) = ids.iter().find(|&&t| t as usize >= n) {
            return Err(WebError::argument(format!(
                "token {t} is outside the vocabulary of {n} tokens"
            )));
        }
        Ok(String::from_utf8_lossy(&self.tp.vocab().decode(ids)).into_owned())
    }

    /// A guarded canvas: `prefix`, `holes` holes, `suffix`. A prompt that already violates
    /// an enforced rule is an error naming the rule and the byte span.
    pub fn canvas(&self, prefix: &[u32], holes: usize, suffix: &[u32]) -> Result<CanvasCore> {
        let guard = Guard::new(self.tp.clone(), &Canvas::infill(prefix, holes, suffix))?;
        Ok(CanvasCore { guard })
    }
}

/// One guarded canvas.
#[derive(Debug)]
pub struct CanvasCore {
    /// The guard over the canvas.
    pub guard: Guard,
}

impl CanvasCore {
    /// Positions that are still holes.
    pub fn holes(&self) -> Vec<u32> {
        self.guard.holes().into_iter().map(|p| p as u32).collect()
    }

    /// Whether `token` may be committed at hole `position` (false outside the canvas, at a
    /// position that is not a hole, or for a token outside the vocabulary).
    pub fn allows(&self, position: usize, token: u32) -> bool {
        self.guard.allows(position, token)
    }

    /// Every token allowed at hole `position` (exact, across all modules); a conflict
    /// (no token allowed by every module) is an error naming the rules.
    pub fn allowed(&self, position: usize) -> Result<Vec<u32>> {
        Ok(self.guard.mask(position)?.iter_allowed().collect())
    }

    /// Commits `token` at hole `position`; a forbidden token is refused with the rules.
    pub fn commit(&mut self, position: usize, token: u32) -> Result<()> {
        Ok(self.guard.commit(position, token)?)
    }

    /// Reopens a committed position.
    pub fn uncommit(&mut self, position: usize) -> Result<()> {
        Ok(self.guard.uncommit(position)?)
    }

    /// Why `token` is forbidden at `position`: `[{rule_id, module, kind}]`, `kind` being
    /// `"completes"` or `"unavoidable"`; empty when it is allowed.
    pub fn why_forbidden(&self, position: usize, token: u32) -> Value {
        let kind = |k: BlameKind| match k {
            BlameKind::Completes => "completes",
            BlameKind::Unavoidable => "unavoidable",
        };
        Value::Array(
            self.guard
                .why_forbidden(position, token)
                .iter()
                .map(|b| json!({"rule_id": b.rule_id, "module": b.module, "kind": kind(b.kind)}))
                .collect(),
        )
    }

    /// The text of the committed and fixed tokens (holes contribute nothing).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.guard.text()).into_owned()
    }

    /// True when no hole is left.
    pub fn is_complete(&self) -> bool {
        self.guard.is_complete()
    }
}
