//! Vocabularies: token id → bytes, their limits, and the text a token sequence decodes to.
//! The adapter from a Hugging Face `tokenizer.json` is in `hf.rs` ([`from_tokenizer_json`]).
//!
//! The guard only needs, for every token id, the bytes it contributes to the text and
//! whether it is text-free ([`TokenKind::Empty`], e.g. `[MASK]`) or ends the text
//! ([`TokenKind::End`], e.g. `<|endoftext|>` or a pad token: everything after the first
//! one is empty text). Some tokenizers decode the *first* token of a text differently from
//! the same token later on (SentencePiece drops its leading space, WordPiece keeps `##`,
//! a tokenizer without a decoder joins tokens with spaces); such a vocabulary also holds the
//! first-token form of every token ([`Vocab::first_bytes`]).
//!
//! # Limits
//! A vocabulary has at most [`MAX_TOKENS`] ids, dense from 0; a token has at most
//! [`MAX_TOKEN_BYTES`] bytes and all tokens together at most [`MAX_TOTAL_BYTES`]. Larger
//! inputs are refused with a [`VocabError`] before anything is allocated for them.
//!
//! # Example
//! ```
//! use ward_guard::{TokenKind, Vocab};
//! let json = r#"{
//!   "added_tokens": [{"id": 3, "content": "<|endoftext|>", "special": true},
//!                    {"id": 4, "content": "[MASK]", "special": true}],
//!   "decoder": {"type": "ByteLevel"},
//!   "model": {"type": "BPE", "vocab": {"a": 0, "Ġb": 1, "Ċ": 2}, "merges": []}
//! }"#;
//! let vocab = ward_guard::vocab::from_tokenizer_json(json).unwrap();
//! assert_eq!(vocab.bytes(1), b" b");
//! assert_eq!(vocab.bytes(2), b"\n");
//! assert_eq!(vocab.kind(3), TokenKind::End);
//! assert_eq!(vocab.kind(4), TokenKind::Empty);
//! assert_eq!(vocab.decode(&[0, 1, 3, 0]), b"a b");
//! ```

mod hf;

use std::collections::HashMap;
use std::fmt;

pub use hf::from_tokenizer_json;

/// Most token ids a vocabulary may have (2^19 = 524 288; the largest published vocabularies
/// have about 256 000). Ids must be dense: `0..len`.
pub const MAX_TOKENS: usize = 1 << 19;

/// Most bytes one token may contribute to the text.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// Most bytes all tokens together may contribute (16 MiB; a 152k byte-level BPE has about
/// 1 MiB).
pub const MAX_TOTAL_BYTES: usize = 1 << 24;

/// How a token contributes to the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Ordinary token: contributes its bytes (non-empty).
    Text,
    /// Text-free token (a special token such as `[MASK]`, or an empty string).
    Empty,
    /// End of text (EOS, pad): this token and everything after it is empty text.
    End,
}

/// Token strings stored back to back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Strings {
    data: Vec<u8>,
    offsets: Vec<u32>,
}

impl Strings {
    #[inline]
    fn get(&self, t: usize) -> &[u8] {
        if t + 1 >= self.offsets.len() {
            return &[];
        }
        &self.data[self.offsets[t] as usize..self.offsets[t + 1] as usize]
    }

    fn memory_bytes(&self) -> usize {
        self.data.capacity() + self.offsets.capacity() * 4
    }
}

/// How the decoded bytes become a string where they are not valid UTF-8 (as Hugging Face's
/// decoders do it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Lossy {
    /// `String::from_utf8_lossy` of the whole text (byte-level decoders; other decoders only
    /// ever produce valid UTF-8).
    #[default]
    Whole,
    /// SentencePiece byte fallback: runs of consecutive byte tokens (`<0xNN>`, the marked
    /// ids) are decoded together; a run that is not valid UTF-8 becomes one U+FFFD per
    /// byte token. `strip_after` : one leading space of the whole text is stripped
    /// afterwards (a `Strip` decoder after `Fuse`).
    ByteRuns {
        /// Bitset of the byte tokens.
        byte_tokens: Vec<u64>,
        /// A leading space of the text is stripped after the runs are decoded.
        strip_after: bool,
    },
}

/// A vocabulary: for every token id, its bytes and its [`TokenKind`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    rest: Strings,
    /// The bytes of each token when it is the first text token of the text, for tokenizers
    /// that decode it differently (`None`: the same as everywhere else).
    first: Option<Strings>,
    kinds: Vec<TokenKind>,
    names: HashMap<String, u32>,
    lossy: Lossy,
}

/// Error while building a vocabulary or reading a `tokenizer.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VocabError {
    /// The file is not valid JSON.
    Json(String),
    /// A required field is missing or has the wrong type.
    Missing(&'static str),
    /// The tokenizer uses a model or decoder this adapter cannot turn into bytes exactly as
    /// Hugging Face decodes them; the message says why.
    Unsupported(String),
    /// Two different tokens claim the same id.
    DuplicateId {
        /// The id.
        id: u32,
    },
    /// A token id is [`MAX_TOKENS`] or more.
    IdTooLarge {
        /// The id.
        id: u64,
    },
    /// More than [`MAX_TOKENS`] tokens.
    TooManyTokens {
        /// Number of tokens.
        count: usize,
    },
    /// The ids are not dense: some id below the largest one has no token.
    SparseIds {
        /// The smallest id without a token.
        missing: u32,
        /// The largest id.
        max_id: u32,
    },
    /// A token decodes to more than [`MAX_TOKEN_BYTES`] bytes.
    TokenTooLong {
        /// The token id.
        id: u32,
        /// Its length in bytes.
        len: usize,
    },
    /// All tokens together decode to more than [`MAX_TOTAL_BYTES`] bytes.
    TooManyBytes {
        /// Total bytes (at least; counting stops at the limit).
        bytes: usize,
    },
    /// The vocabulary has no token at all.
    EmptyVocabulary,
    /// Kinds and tokens have different lengths, or a Text token has no bytes.
    Inconsistent(String),
}

impl fmt::Display for VocabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VocabError::Json(e) => write!(f, "tokenizer.json is not valid JSON: {e}"),
            VocabError::Missing(what) => write!(f, "tokenizer.json: missing or malformed {what}"),
            VocabError::Unsupported(what) => write!(f, "tokenizer.json: unsupported {what}"),
            VocabError::DuplicateId { id } => {
                write!(f, "tokenizer.json: two different tokens have id {id}")
            }
            VocabError::IdTooLarge { id } => write!(
                f,
                "token id {id} is too large (a vocabulary has at most {MAX_TOKENS} ids, 0..{MAX_TOKENS})"
            ),
            VocabError::TooManyTokens { count } => write!(
                f,
                "the vocabulary has {count} tokens, more than the limit of {MAX_TOKENS}"
            ),
            VocabError::SparseIds { missing, max_id } => write!(
                f,
                "token ids must be dense: id {missing} has no token but the largest id is {max_id}"
            ),
            VocabError::TokenTooLong { id, len } => write!(
                f,
                "token {id} is {len} bytes long, more than the limit of {MAX_TOKEN_BYTES}"
            ),
            VocabError::TooManyBytes { bytes } => write!(
                f,
                "the tokens have {bytes} bytes in all, more than the limit of {MAX_TOTAL_BYTES}"
            ),
            VocabError::EmptyVocabulary => write!(f, "the vocabulary has no tokens"),
            VocabError::Inconsistent(what) => write!(f, "inconsistent vocabulary: {what}"),
        }
    }
}

impl std::error::Error for VocabError {}

/// Packs token strings, checking the per-token and total limits.
fn pack<B: AsRef<[u8]>>(tokens: &[B], keep: impl Fn(usize) -> bool) -> Result<Strings, VocabError> {
    let mut total = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        let len = if keep(i) { t.as_ref().len() } else { 0 };
        if len > MAX_TOKEN_BYTES {
            return Err(VocabError::TokenTooLong { id: i as u32, len });
        }
        total += len;
        if total > MAX_TOTAL_BYTES {
            return Err(VocabError::TooManyBytes { bytes: total });
        }
    }
    let mut data = Vec::with_capacity(total);
    let mut offsets = Vec::with_capacity(tokens.len() + 1);
    offsets.push(0u32);
    for (i, t) in tokens.iter().enumerate() {
        if keep(i) {
            data.extend_from_slice(t.as_ref());
        }
        offsets.push(data.len() as u32);
    }
    Ok(Strings { data, offsets })
}

impl Vocab {
    /// A vocabulary of text tokens (an empty byte string becomes [`TokenKind::Empty`]).
    pub fn from_token_bytes<B: AsRef<[u8]>>(tokens: &[B]) -> Result<Vocab, VocabError> {
        let kinds = tokens
            .iter()
            .map(|t| {
                if t.as_ref().is_empty() {
                    TokenKind::Empty
                } else {
                    TokenKind::Text
                }
            })
            .collect::<Vec<_>>();
        Vocab::from_parts(tokens, kinds)
    }

    /// A vocabulary from token bytes and their kinds (the bytes of `Empty`/`End` tokens
    /// are ignored). Refused beyond the [limits](self#limits).
    pub fn from_parts<B: AsRef<[u8]>>(
        tokens: &[B],
        kinds: Vec<TokenKind>,
    ) -> Result<Vocab, VocabError> {
        if tokens.is_empty() {
            return Err(VocabError::EmptyVocabulary);
        }
        if tokens.len() > MAX_TOKENS {
            return Err(VocabError::TooManyTokens {
                count: tokens.len(),
            });
        }
        if tokens.len() != kinds.len() {
            return Err(VocabError::Inconsistent(format!(
                "{} tokens but {} kinds",
                tokens.len(),
                kinds.len()
            )));
        }
        let mut kinds = kinds;
        for (k, t) in kinds.iter_mut().zip(tokens) {
            if *k == TokenKind::Text && t.as_ref().is_empty() {
                *k = TokenKind::Empty;
            }
        }
        let rest = pack(tokens, |i| kinds[i] == TokenKind::Text)?;
        Ok(Vocab {
            rest,
            first: None,
            kinds,
            names: HashMap::new(),
            lossy: Lossy::Whole,
        })
    }

    /// The same vocabulary where token `t` contributes `first[t]` instead of its bytes when
    /// it is the first text token of the text (for tokenizers whose decoder treats the
    /// first token differently). `first` has one entry per token; entries of `Empty`/`End`
    /// tokens are ignored.
    pub fn with_first_forms<B: AsRef<[u8]>>(mut self, first: &[B]) -> Result<Vocab, VocabError> {
        if first.len() != self.len() {
            return Err(VocabError::Inconsistent(format!(
                "{} first-token forms for {} tokens",
                first.len(),
                self.len()
            )));
        }
        let forms = pack(first, |i| self.kinds[i] == TokenKind::Text)?;
        let differs = (0..self.len()).any(|t| forms.get(t) != self.rest.get(t));
        self.first = differs.then_some(forms);
        Ok(self)
    }

    /// Number of token ids.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Always false: a vocabulary has at least one token.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The bytes token `t` contributes (empty for `Empty`/`End` and out-of-range ids),
    /// anywhere but as the first text token of the text (see [`Vocab::first_bytes`]).
    #[inline]
    pub fn bytes(&self, t: u32) -> &[u8] {
        self.rest.get(t as usize)
    }

    /// The bytes token `t` contributes as the first text token of the text. The same as
    /// [`Vocab::bytes`] unless [`Vocab::has_first_forms`].
    #[inline]
    pub fn first_bytes(&self, t: u32) -> &[u8] {
        match &self.first {
            Some(f) => f.get(t as usize),
            None => self.bytes(t),
        }
    }

    /// True when some token decodes differently as the first text token of the text (e.g.
    /// SentencePiece `▁def` is `def` there and ` def` elsewhere).
    pub fn has_first_forms(&self) -> bool {
        self.first.is_some()
    }

    /// The kind of token `t` (out-of-range ids are reported as `Empty`).
    #[inline]
    pub fn kind(&self, t: u32) -> TokenKind {
        self.kinds
            .get(t as usize)
            .copied()
            .unwrap_or(TokenKind::Empty)
    }

    /// Changes the kind of token `t` (e.g. to declare an end-of-text token).
    /// Setting `Text` on a token without bytes keeps it `Empty`.
    pub fn set_kind(&mut self, t: u32, kind: TokenKind) {
        let no_bytes = self.bytes(t).is_empty();
        if let Some(k) = self.kinds.get_mut(t as usize) {
            *k = if kind == TokenKind::Text && no_bytes {
                TokenKind::Empty
            } else {
                kind
            };
        }
    }

    /// The id of a special or added token by its content, e.g. `"[MASK]"`.
    pub fn special_token(&self, content: &str) -> Option<u32> {
        self.names.get(content).copied()
    }

    /// All token ids of the given kind.
    pub fn tokens_of_kind(&self, kind: TokenKind) -> Vec<u32> {
        (0..self.len() as u32)
            .filter(|&t| self.kind(t) == kind)
            .collect()
    }

    /// The text of a token sequence as bytes: up to (not including) the first `End` token,
    /// text-free tokens skipped, the first text token in its first-token form. For a
    /// vocabulary read by [`from_tokenizer_json`] this is the UTF-8 of what Hugging Face's
    /// `decode(ids, skip_special_tokens=True)` returns for the ids before the first end token,
    /// whenever those bytes are valid UTF-8 (see [`Vocab::decode_text`] otherwise).
    pub fn decode(&self, tokens: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut first = true;
        for &t in tokens {
            match self.kind(t) {
                TokenKind::End => break,
                TokenKind::Empty => {}
                TokenKind::Text => {
                    out.extend_from_slice(if first {
                        self.first_bytes(t)
                    } else {
                        self.bytes(t)
                    });
                    first = false;
                }
            }
        }
        out
    }

    /// The text of a token sequence as the string Hugging Face's decoder returns for the
    /// ids before the first end token (`skip_special_tokens=True`), including its
    /// replacement of invalid UTF-8 by U+FFFD. Equal to [`Vocab::decode`] when that is valid
    /// UTF-8; the guard checks the bytes of [`Vocab::decode`].
    pub fn decode_text(&self, tokens: &[u32]) -> String {
        let Lossy::ByteRuns {
            byte_tokens,
            strip_after,
        } = &self.lossy
        else {
            return String::from_utf8_lossy(&self.decode(tokens)).into_owned();
        };
        let is_byte = |t: u32| {
            byte_tokens
                .get(t as usize / 64)
                .is_some_and(|w| w >> (t % 64) & 1 == 1)
        };
        let mut out = String::new();
        let mut run: Vec<u8> = Vec::new();
        let flush = |run: &mut Vec<u8>, out: &mut String| {
            match std::str::from_utf8(run) {
                Ok(s) => out.push_str(s),
                Err(_) => out.extend(std::iter::repeat_n('\u{FFFD}', run.len())),
            }
            run.clear();
        };
        let mut first = true;
        for &t in tokens {
            match self.kind(t) {
                TokenKind::End => break,
                TokenKind::Empty => {}
                TokenKind::Text => {
                    let b = if first && !strip_after {
                        self.first_bytes(t)
                    } else {
                        self.bytes(t)
                    };
                    first = false;
                    if is_byte(t) {
                        run.extend_from_slice(b);
                    } else {
                        flush(&mut run, &mut out);
                        out.push_str(&String::from_utf8_lossy(b));
                    }
                }
            }
        }
        flush(&mut run, &mut out);
        if *strip_after && out.starts_with(' ') {
            out.remove(0);
        }
        out
    }

    /// A 64-bit fingerprint of what the guard's token rows depend on: every token's bytes,
    /// first-token form and kind. Binds precomputed rows (`TokenPolicy::rows_artefact`) to
    /// exactly this vocabulary. Not cryptographic.
    pub fn fingerprint(&self) -> u64 {
        let mut h = ward_policy::digest::Fingerprint::new();
        for s in std::iter::once(&self.rest).chain(self.first.as_ref()) {
            h.word(s.offsets.len() as u64);
            s.offsets.iter().for_each(|&o| h.word(o as u64));
            h.word(s.data.len() as u64);
            h.bytes(&s.data);
        }
        h.word(self.kinds.len() as u64);
        self.kinds.iter().for_each(|k| {
            h.word(match k {
                TokenKind::Text => 1,
                TokenKind::Empty => 2,
                TokenKind::End => 3,
            })
        });
        h.finish()
    }

    /// Heap bytes of the vocabulary (token strings, offsets, kinds, names).
    pub fn memory_bytes(&self) -> usize {
        self.rest.memory_bytes()
            + self.first.as_ref().map_or(0, Strings::memory_bytes)
            + self.kinds.capacity()
            + self
                .names
                .keys()
                .map(|k| k.capacity() + 4 + 16)
                .sum::<usize>()
            + match &self.lossy {
                Lossy::Whole => 0,
                Lossy::ByteRuns { byte_tokens, .. } => byte_tokens.capacity() * 8,
            }
    }

    /// Greedy longest-match tokenization of `text` (for prompts in tests and tools; the
    /// model's own tokenizer may split differently, which the guard does not care about).
    /// Returns `None` when some byte is covered by no text token.
    pub fn tokenize_greedy(&self, text: &[u8]) -> Option<Vec<u32>> {
        let mut by_first: HashMap<u8, Vec<u32>> = HashMap::new();
        for t in 0..self.len() as u32 {
            if self.kind(t) == TokenKind::Text {
                by_first.entry(self.bytes(t)[0]).or_default().push(t);
            }
        }
        for v in by_first.values_mut() {
            v.sort_by_key(|&t| std::cmp::Reverse(self.bytes(t).len()));
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let cands = by_first.get(&text[i])?;
            let t = *cands
                .iter()
                .find(|&&t| text[i..].starts_with(self.bytes(t)))?;
            out.push(t);
            i += self.bytes(t).len();
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_refused_with_the_cause() {
        let long = vec![b'a'; MAX_TOKEN_BYTES + 1];
        assert_eq!(
            Vocab::from_token_bytes(&[b"x".to_vec(), long]),
            Err(VocabError::TokenTooLong {
                id: 1,
                len: MAX_TOKEN_BYTES + 1
            })
        );
        let ok = vec![b'a'; MAX_TOKEN_BYTES];
        assert!(Vocab::from_token_bytes(&[ok]).is_ok());
        // Text-free tokens' bytes are ignored, so they do not count.
        let v = Vocab::from_parts(
            &[vec![b'a'; MAX_TOKEN_BYTES + 1], b"x".to_vec()],
            vec![TokenKind::Empty, TokenKind::Text],
        )
        .unwrap();
        assert_eq!(v.bytes(0), b"");
        let many: Vec<&[u8]> = vec![b"a"; MAX_TOKENS + 1];
        assert_eq!(
            Vocab::from_token_bytes(&many),
            Err(VocabError::TooManyTokens {
                count: MAX_TOKENS + 1
            })
        );
        let total: Vec<Vec<u8>> =
            vec![vec![b'z'; MAX_TOKEN_BYTES]; MAX_TOTAL_BYTES / MAX_TOKEN_BYTES + 1];
        assert!(matches!(
            Vocab::from_token_bytes(&total),
            Err(VocabError::TooManyBytes { .. })
        ));
        let msg = VocabError::TokenTooLong { id: 7, len: 2000 }.to_string();
        assert!(
            msg.contains("token 7") && msg.contains("2000") && msg.contains("1024"),
            "{msg}"
        );
    }

    #[test]
    fn first_forms_apply_to_the_first_text_token_only() {
        let v = Vocab::from_parts(
            &[b" def".as_slice(), b" f", b"", b"x"],
            vec![
                TokenKind::Text,
                TokenKind::Text,
                TokenKind::Empty,
                TokenKind::Text,
            ],
        )
        .unwrap()
        .with_first_forms(&[b"def".as_slice(), b"f", b"", b"x"])
        .unwrap();
        assert!(v.has_first_forms());
        assert_eq!(v.first_bytes(0), b"def");
        assert_eq!(v.decode(&[2, 0, 1, 0]), b"def f def");
        assert_eq!(v.decode_text(&[2, 1, 3]), "fx");
        let same = Vocab::from_token_bytes(&[b"a"])
            .unwrap()
            .with_first_forms(&[b"a"])
            .unwrap();
        assert!(!same.has_first_forms());
    }
}
