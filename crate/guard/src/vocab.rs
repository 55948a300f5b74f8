//! Vocabularies: token id → bytes, and the adapter from a Hugging Face `tokenizer.json`.
//!
//! The guard only needs, for every token id, the bytes it contributes to the text and
//! whether it is text-free ([`TokenKind::Empty`], e.g. `[MASK]`) or ends the text
//! ([`TokenKind::End`], e.g. `<|endoftext|>` or a pad token: everything after the first
//! one is empty text). [`from_tokenizer_json`] reads those from a `tokenizer.json` with
//! `serde_json` alone; the guard never depends on the `tokenizers` crate.
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

use std::collections::HashMap;
use std::fmt;

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

/// A vocabulary: for every token id, its bytes and its [`TokenKind`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    data: Vec<u8>,
    offsets: Vec<u32>,
    kinds: Vec<TokenKind>,
    names: HashMap<String, u32>,
}

/// Error while building a vocabulary or reading a `tokenizer.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VocabError {
    /// The file is not valid JSON.
    Json(String),
    /// A required field is missing or has the wrong type.
    Missing(&'static str),
    /// The tokenizer uses a model or decoder this adapter cannot turn into bytes.
    Unsupported(String),
    /// Two different tokens claim the same id.
    DuplicateId {
        /// The id.
        id: u32,
    },
    /// A token id is too large (more than 16 M ids).
    IdTooLarge {
        /// The id.
        id: u64,
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
            VocabError::IdTooLarge { id } => {
                write!(f, "tokenizer.json: token id {id} is too large")
            }
            VocabError::EmptyVocabulary => write!(f, "the vocabulary has no tokens"),
            VocabError::Inconsistent(what) => write!(f, "inconsistent vocabulary: {what}"),
        }
    }
}

impl std::error::Error for VocabError {}

const MAX_TOKENS: u64 = 1 << 24;

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
    /// are ignored).
    pub fn from_parts<B: AsRef<[u8]>>(
        tokens: &[B],
        kinds: Vec<TokenKind>,
    ) -> Result<Vocab, VocabError> {
        if tokens.is_empty() {
            return Err(VocabError::EmptyVocabulary);
        }
        if tokens.len() != kinds.len() {
            return Err(VocabError::Inconsistent(format!(
                "{} tokens but {} kinds",
                tokens.len(),
                kinds.len()
            )));
        }
        if tokens.len() as u64 > MAX_TOKENS {
            return Err(VocabError::IdTooLarge {
                id: tokens.len() as u64,
            });
        }
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(tokens.len() + 1);
        offsets.push(0u32);
        let mut kinds = kinds;
        for (i, t) in tokens.iter().enumerate() {
            if kinds[i] == TokenKind::Text {
                if t.as_ref().is_empty() {
                    kinds[i] = TokenKind::Empty;
                } else {
                    data.extend_from_slice(t.as_ref());
                }
            }
            if data.len() > u32::MAX as usize {
                return Err(VocabError::Inconsistent("token bytes exceed 4 GiB".into()));
            }
            offsets.push(data.len() as u32);
        }
        Ok(Vocab {
            data,
            offsets,
            kinds,
            names: HashMap::new(),
        })
    }

    /// Number of token ids.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Always false: a vocabulary has at least one token.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The bytes token `t` contributes (empty for `Empty`/`End` and out-of-range ids).
    #[inline]
    pub fn bytes(&self, t: u32) -> &[u8] {
        let t = t as usize;
        if t + 1 >= self.offsets.len() {
            return &[];
        }
        &self.data[self.offsets[t] as usize..self.offsets[t + 1] as usize]
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

    /// The text of a token sequence: bytes up to (not including) the first `End` token.
    pub fn decode(&self, tokens: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &t in tokens {
            match self.kind(t) {
                TokenKind::End => break,
                TokenKind::Empty => {}
                TokenKind::Text => out.extend_from_slice(self.bytes(t)),
            }
        }
        out
    }

    /// Total bytes of all token strings (memory of the vocabulary, roughly).
    pub fn memory_bytes(&self) -> usize {
        self.data.len() + self.offsets.len() * 4 + self.kinds.len()
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

/// Contents of special tokens that end the text (EOS and padding).
const END_NAMES: &[&str] = &[
    "<|endoftext|>",
    "<|end_of_text|>",
    "</s>",
    "<eos>",
    "<|eos|>",
    "[EOS]",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<pad>",
    "[PAD]",
    "<|pad|>",
    "<|padding|>",
    "<|endofmask|>",
];

/// The GPT-2 byte-level alphabet: byte → char.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut printable = [false; 256];
    for b in (b'!'..=b'~').chain(0xA1..=0xAC).chain(0xAE..=0xFF) {
        printable[b as usize] = true;
    }
    let mut n = 0u32;
    for b in 0..256usize {
        if printable[b] {
            table[b] = char::from_u32(b as u32).unwrap_or('\0');
        } else {
            table[b] = char::from_u32(256 + n).unwrap_or('\0');
            n += 1;
        }
    }
    table
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Decoding {
    /// GPT-2 byte-level: every char maps to one byte.
    ByteLevel,
    /// SentencePiece style: `▁` is a space, `<0xAB>` is a byte.
    Metaspace,
    /// The token string's UTF-8 bytes.
    Raw,
}

fn type_of(v: &serde_json::Value) -> Option<&str> {
    v.get("type").and_then(|t| t.as_str())
}

/// Finds the decoding from the decoder (or, without one, the pre-tokenizer).
fn decoding_of(root: &serde_json::Value) -> Result<Decoding, VocabError> {
    fn scan(v: &serde_json::Value, found: &mut Vec<String>) {
        if let Some(t) = type_of(v) {
            found.push(t.to_string());
        }
        for key in ["decoders", "pretokenizers"] {
            if let Some(arr) = v.get(key).and_then(|a| a.as_array()) {
                for d in arr {
                    scan(d, found);
                }
            }
        }
    }
    let mut types = Vec::new();
    match root.get("decoder") {
        Some(d) if !d.is_null() => scan(d, &mut types),
        _ => {
            if let Some(p) = root.get("pre_tokenizer").filter(|p| !p.is_null()) {
                scan(p, &mut types);
            }
        }
    }
    if types.iter().any(|t| t == "ByteLevel") {
        return Ok(Decoding::ByteLevel);
    }
    if types
        .iter()
        .any(|t| t == "WordPiece" || t == "CTC" || t == "BPEDecoder")
    {
        return Err(VocabError::Unsupported(format!(
            "decoder {types:?}: token bytes depend on their neighbours"
        )));
    }
    if types
        .iter()
        .any(|t| t == "Metaspace" || t == "Replace" || t == "ByteFallback")
    {
        return Ok(Decoding::Metaspace);
    }
    Ok(Decoding::Raw)
}

fn decode_token(s: &str, mode: Decoding, inverse: &HashMap<char, u8>) -> Vec<u8> {
    match mode {
        Decoding::ByteLevel => {
            let mut out = Vec::with_capacity(s.len());
            for c in s.chars() {
                match inverse.get(&c) {
                    Some(&b) => out.push(b),
                    // Same as the Hugging Face decoder: a token with a char outside the
                    // byte alphabet is emitted as its raw UTF-8.
                    None => return s.as_bytes().to_vec(),
                }
            }
            out
        }
        Decoding::Metaspace => {
            if s.len() == 6 && s.starts_with("<0x") && s.ends_with('>') {
                if let Ok(b) = u8::from_str_radix(&s[3..5], 16) {
                    return vec![b];
                }
            }
            s.replace('\u{2581}', " ").into_bytes()
        }
        Decoding::Raw => s.as_bytes().to_vec(),
    }
}

/// Reads a Hugging Face `tokenizer.json` (as text) into a [`Vocab`].
///
/// Supported: `BPE`, `WordLevel` and `Unigram` models with a `ByteLevel` decoder (GPT-2
/// byte↔unicode mapping), a SentencePiece-style decoder (`Metaspace`, `Replace ▁`,
/// `ByteFallback` `<0xNN>` tokens) or none (raw UTF-8). Special added tokens are text-free
/// ([`TokenKind::Empty`]), except EOS/pad-like ones (`<|endoftext|>`, `</s>`, `[PAD]`, …)
/// which are [`TokenKind::End`]. Non-special added tokens contribute their content. Ids
/// missing from the file (gaps) become text-free tokens.
pub fn from_tokenizer_json(json: &str) -> Result<Vocab, VocabError> {
    let root: serde_json::Value =
        serde_json::from_str(json).map_err(|e| VocabError::Json(e.to_string()))?;
    if !root.is_object() {
        return Err(VocabError::Missing("top-level object"));
    }
    let model = root
        .get("model")
        .filter(|m| m.is_object())
        .ok_or(VocabError::Missing("model"))?;
    let model_type = type_of(model).unwrap_or(if model.get("merges").is_some() {
        "BPE"
    } else {
        ""
    });
    let mode = decoding_of(&root)?;
    let inverse: HashMap<char, u8> = byte_to_char()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();

    // id → (bytes, kind)
    let mut entries: HashMap<u32, (Vec<u8>, TokenKind, String)> = HashMap::new();
    type Entries = HashMap<u32, (Vec<u8>, TokenKind, String)>;
    fn put(
        entries: &mut Entries,
        id: u64,
        bytes: Vec<u8>,
        kind: TokenKind,
        name: String,
    ) -> Result<(), VocabError> {
        if id >= MAX_TOKENS {
            return Err(VocabError::IdTooLarge { id });
        }
        let id = id as u32;
        match entries.get(&id) {
            Some((b, k, _)) if (b, *k) != (&bytes, kind) => Err(VocabError::DuplicateId { id }),
            _ => {
                entries.insert(id, (bytes, kind, name));
                Ok(())
            }
        }
    }
    match model_type {
        "BPE" | "WordLevel" => {
            let vocab = model
                .get("vocab")
                .and_then(|v| v.as_object())
                .ok_or(VocabError::Missing("model.vocab (an object of token → id)"))?;
            for (tok, id) in vocab {
                let id = id
                    .as_u64()
                    .ok_or(VocabError::Missing("model.vocab ids (integers)"))?;
                put(
                    &mut entries,
                    id,
                    decode_token(tok, mode, &inverse),
                    TokenKind::Text,
                    tok.clone(),
                )?;
            }
        }
        "Unigram" => {
            let vocab =
                model
                    .get("vocab")
                    .and_then(|v| v.as_array())
                    .ok_or(VocabError::Missing(
                        "model.vocab (a list of [token, score])",
                    ))?;
            for (id, pair) in vocab.iter().enumerate() {
                let tok = pair
                    .get(0)
                    .and_then(|t| t.as_str())
                    .ok_or(VocabError::Missing("model.vocab entries ([token, score])"))?;
                put(
                    &mut entries,
                    id as u64,
                    decode_token(tok, mode, &inverse),
                    TokenKind::Text,
                    tok.to_string(),
                )?;
            }
        }
        other => {
            return Err(VocabError::Unsupported(format!(
                "model type {other:?} (expected BPE, WordLevel or Unigram)"
            )))
        }
    }
    // The model's unknown token is text-free.
    let unk = model
        .get("unk_token")
        .and_then(|s| s.as_str())
        .map(str::to_string);
    if let Some(added) = root.get("added_tokens").filter(|a| !a.is_null()) {
        let added = added
            .as_array()
            .ok_or(VocabError::Missing("added_tokens (a list)"))?;
        for a in added {
            let id = a
                .get("id")
                .and_then(|i| i.as_u64())
                .ok_or(VocabError::Missing("added_tokens[].id"))?;
            let content = a
                .get("content")
                .and_then(|c| c.as_str())
                .ok_or(VocabError::Missing("added_tokens[].content"))?;
            let special = a.get("special").and_then(|s| s.as_bool()).unwrap_or(false);
            let (bytes, kind) = if END_NAMES.contains(&content) {
                (Vec::new(), TokenKind::End)
            } else if special {
                (Vec::new(), TokenKind::Empty)
            } else {
                (content.as_bytes().to_vec(), TokenKind::Text)
            };
            // An added token overrides the model's entry for the same id.
            entries.remove(&(id as u32));
            put(&mut entries, id, bytes, kind, content.to_string())?;
        }
    }
    if entries.is_empty() {
        return Err(VocabError::EmptyVocabulary);
    }
    let n = entries.keys().max().copied().unwrap_or(0) as usize + 1;
    let mut tokens = vec![Vec::new(); n];
    let mut kinds = vec![TokenKind::Empty; n];
    let mut names = HashMap::new();
    for (id, (bytes, kind, name)) in entries {
        let is_unk = kind == TokenKind::Text && unk.as_deref() == Some(name.as_str());
        if kind != TokenKind::Text || is_unk || (name.starts_with('<') && name.ends_with('>')) {
            names.insert(name, id);
        }
        if !is_unk {
            tokens[id as usize] = bytes;
            kinds[id as usize] = kind;
        }
    }
    let mut v = Vocab::from_parts(&tokens, kinds)?;
    v.names = names;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_alphabet_roundtrip() {
        let t = byte_to_char();
        let set: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
    }

    #[test]
    fn malformed_files_give_clear_errors() {
        assert!(matches!(from_tokenizer_json("{"), Err(VocabError::Json(_))));
        assert!(matches!(
            from_tokenizer_json("[]"),
            Err(VocabError::Missing(_))
        ));
        assert!(matches!(
            from_tokenizer_json("{}"),
            Err(VocabError::Missing("model"))
        ));
        let bad = r#"{"model": {"type": "BPE", "vocab": {"a": "x"}}}"#;
        assert!(matches!(
            from_tokenizer_json(bad),
            Err(VocabError::Missing(_))
        ));
        let dup = r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}}}"#;
        assert!(matches!(
            from_tokenizer_json(dup),
            Err(VocabError::DuplicateId { id: 0 })
        ));
        let wp = r#"{"decoder": {"type": "WordPiece"}, "model": {"type": "WordPiece", "vocab": {"a": 0}}}"#;
        assert!(matches!(
            from_tokenizer_json(wp),
            Err(VocabError::Unsupported(_))
        ));
        let big = r#"{"model": {"type": "BPE", "vocab": {"a": 99999999999}}}"#;
        assert!(matches!(
            from_tokenizer_json(big),
            Err(VocabError::IdTooLarge { .. })
        ));
        let empty = r#"{"model": {"type": "BPE", "vocab": {}}}"#;
        assert!(matches!(
            from_tokenizer_json(empty),
            Err(VocabError::EmptyVocabulary)
        ));
    }

    #[test]
    fn metaspace_and_byte_fallback() {
        let json = r#"{"decoder": {"type": "Sequence", "decoders": [{"type": "Replace"}, {"type": "ByteFallback"}]},
            "model": {"type": "BPE", "vocab": {"<unk>": 0, "<0x0A>": 1, "▁def": 2}, "unk_token": "<unk>"}}"#;
        let v = from_tokenizer_json(json).unwrap();
        assert_eq!(v.bytes(1), b"\n");
        assert_eq!(v.bytes(2), b" def");
        assert_eq!(v.kind(0), TokenKind::Empty);
    }

    #[test]
    fn gaps_are_text_free_and_pad_ends() {
        let json = r#"{"added_tokens": [{"id": 5, "content": "[PAD]", "special": true},
                                          {"id": 6, "content": "<fim>", "special": false}],
            "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"x": 0}}}"#;
        let v = from_tokenizer_json(json).unwrap();
        assert_eq!(v.len(), 7);
        assert_eq!(v.kind(2), TokenKind::Empty);
        assert_eq!(v.kind(5), TokenKind::End);
        assert_eq!(v.bytes(6), b"<fim>");
        assert_eq!(v.special_token("[PAD]"), Some(5));
    }
}
