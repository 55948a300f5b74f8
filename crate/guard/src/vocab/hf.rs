//! The adapter from a Hugging Face `tokenizer.json`: the model's vocabulary and added tokens,
//! and the decoder chain interpreted into per-token byte forms, so that a token sequence
//! decodes exactly as Hugging Face decodes it, or the tokenizer is refused with the reason.
//!
//! Hugging Face's `decode(ids, skip_special_tokens=True)` drops special added tokens, maps
//! every other id to its string, and runs the decoder over the list (without a decoder it
//! joins the strings with spaces). Each supported decoder step either maps every token on
//! its own, or treats only the first token of the text differently (SentencePiece drops
//! its leading `▁`, WordPiece keeps `##`, joining puts no space before it, a `Strip` after
//! `Fuse` removes one leading space of the text); both forms are kept per token. Steps whose
//! result depends on a neighbouring or the last token are refused.

use std::collections::HashMap;

use super::{Lossy, TokenKind, Vocab, VocabError, MAX_TOKENS, MAX_TOKEN_BYTES, MAX_TOTAL_BYTES};

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

/// One decoder step.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    /// GPT-2 byte-level: every char maps to one byte (a token with another char is its raw
    /// UTF-8); the result is one lossily decoded string.
    ByteLevel,
    /// `<0xNN>` tokens are the byte `NN`.
    ByteFallback,
    /// Every occurrence of a string is replaced.
    Replace(String, String),
    /// The tokens are joined into one string.
    Fuse,
    /// Up to `start` leading and `stop` trailing `content` chars are removed (per token, or
    /// of the whole text after `Fuse`).
    Strip {
        content: char,
        start: usize,
        stop: usize,
    },
    /// SentencePiece: `replacement` is a space; in the first token it is dropped when
    /// `strip_first`.
    Metaspace {
        replacement: char,
        strip_first: bool,
    },
    /// Continuation prefix: later tokens without it get a space before them.
    WordPiece { prefix: String, cleanup: bool },
    /// No decoder: the tokens are joined with spaces.
    JoinSpaces,
}

/// What a token string becomes: elsewhere and as the first text token, and whether it is a
/// byte-fallback token.
struct Forms {
    rest: Vec<u8>,
    first: Vec<u8>,
    byte: bool,
}

/// The decoder chain, checked: every step is one this adapter reproduces exactly.
#[derive(Debug)]
struct Plan {
    ops: Vec<Op>,
    /// Some step treats the first token differently.
    positional: bool,
    /// A `ByteFallback` step.
    fallback: bool,
    /// The only first-token effect is a `Strip` of one leading space after `Fuse`.
    strip_after: bool,
}

fn type_of(v: &serde_json::Value) -> Option<&str> {
    v.get("type").and_then(|t| t.as_str())
}

fn unsupported(why: impl Into<String>) -> VocabError {
    VocabError::Unsupported(why.into())
}

fn one_char(v: &serde_json::Value, field: &'static str) -> Result<char, VocabError> {
    let s = v
        .get(field)
        .and_then(|s| s.as_str())
        .ok_or(VocabError::Missing(field))?;
    let mut cs = s.chars();
    match (cs.next(), cs.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(unsupported(format!(
            "decoder field {field} = {s:?} (expected one character)"
        ))),
    }
}

fn parse_decoder(v: &serde_json::Value, ops: &mut Vec<Op>) -> Result<(), VocabError> {
    let ty = type_of(v).ok_or(VocabError::Missing("decoder.type"))?;
    match ty {
        "Sequence" => {
            let ds = v
                .get("decoders")
                .and_then(|d| d.as_array())
                .ok_or(VocabError::Missing("decoder.decoders (a list)"))?;
            for d in ds {
                parse_decoder(d, ops)?;
            }
        }
        "ByteLevel" => ops.push(Op::ByteLevel),
        "ByteFallback" => ops.push(Op::ByteFallback),
        "Fuse" => ops.push(Op::Fuse),
        "Strip" => {
            let num = |f: &'static str| v.get(f).and_then(|x| x.as_u64()).unwrap_or(0) as usize;
            ops.push(Op::Strip {
                content: one_char(v, "content")?,
                start: num("start"),
                stop: num("stop"),
            })
        }
        "Replace" => {
            let pattern = v.get("pattern").ok_or(VocabError::Missing("decoder.pattern"))?;
            let from = match pattern.get("String").and_then(|s| s.as_str()) {
                Some(s) if !s.is_empty() => s.to_string(),
                _ => {
                    return Err(unsupported(format!(
                        "decoder Replace with pattern {pattern}: only a non-empty string pattern is reproduced exactly"
                    )))
                }
            };
            let to = v
                .get("content")
                .and_then(|c| c.as_str())
                .ok_or(VocabError::Missing("decoder.content"))?;
            ops.push(Op::Replace(from, to.to_string()))
        }
        "Metaspace" => {
            let replacement = one_char(v, "replacement")?;
            let scheme = v
                .get("prepend_scheme")
                .and_then(|s| s.as_str())
                .unwrap_or("always");
            let legacy_off = v.get("add_prefix_space").and_then(|b| b.as_bool()) == Some(false);
            let strip_first = match scheme {
                _ if legacy_off => false,
                "always" | "first" => true,
                "never" => false,
                other => {
                    return Err(unsupported(format!(
                        "Metaspace prepend_scheme {other:?}"
                    )))
                }
            };
            ops.push(Op::Metaspace {
                replacement,
                strip_first,
            })
        }
        "WordPiece" => ops.push(Op::WordPiece {
            prefix: v
                .get("prefix")
                .and_then(|p| p.as_str())
                .unwrap_or("##")
                .to_string(),
            cleanup: v.get("cleanup").and_then(|c| c.as_bool()).unwrap_or(true),
        }),
        "BPEDecoder" => {
            return Err(unsupported(
                "decoder BPEDecoder: a token's suffix becomes a space except on the last token, so a token's text depends on what follows it",
            ))
        }
        "CTC" => {
            return Err(unsupported(
                "decoder CTC: repeated tokens are merged, so a token's text depends on its neighbour",
            ))
        }
        other => return Err(unsupported(format!("decoder {other:?}"))),
    }
    Ok(())
}

impl Plan {
    /// Reads and checks the decoder chain of `root`.
    fn of(root: &serde_json::Value) -> Result<Plan, VocabError> {
        let mut ops = Vec::new();
        match root.get("decoder") {
            Some(d) if !d.is_null() => parse_decoder(d, &mut ops)?,
            _ => ops.push(Op::JoinSpaces),
        }
        let (mut fused, mut fallback, mut byte_level) = (false, false, false);
        let mut positional_before_fuse = false;
        let mut strip_after = false;
        for op in &ops {
            // After a byte-level or byte-fallback step, characters may span tokens (several
            // byte tokens make one char), so only byte-wise steps on ASCII stay per token.
            let bytes_seen = byte_level || fallback;
            match op {
                Op::ByteLevel => {
                    if byte_level || fallback || fused {
                        return Err(unsupported(
                            "decoder chain: ByteLevel after ByteLevel, ByteFallback or Fuse",
                        ));
                    }
                    byte_level = true;
                    fused = true;
                }
                Op::ByteFallback => {
                    if fused || fallback {
                        return Err(unsupported(
                            "decoder chain: ByteFallback after Fuse, ByteLevel or ByteFallback (its byte runs would span the whole text)",
                        ));
                    }
                    fallback = true;
                }
                Op::Replace(from, _) => {
                    if fallback {
                        return Err(unsupported(
                            "decoder chain: Replace after ByteFallback (byte tokens can spell the pattern across tokens)",
                        ));
                    }
                    if (fused || bytes_seen) && !(from.len() == 1 && from.is_ascii()) {
                        return Err(unsupported(format!(
                            "decoder chain: Replace of {from:?} after Fuse or ByteLevel (a match can span tokens)"
                        )));
                    }
                }
                Op::Fuse => fused = true,
                Op::Strip {
                    content,
                    start,
                    stop,
                } => {
                    if bytes_seen && !content.is_ascii() {
                        return Err(unsupported(
                            "decoder chain: Strip of a non-ASCII char after ByteLevel or ByteFallback",
                        ));
                    }
                    if fused {
                        if *stop > 0 {
                            return Err(unsupported(
                                "decoder Strip with stop > 0 after Fuse: it removes the end of the whole text, which depends on the last token",
                            ));
                        }
                        if *start > 1 {
                            return Err(unsupported(
                                "decoder Strip with start > 1 after Fuse: it can remove chars of several tokens",
                            ));
                        }
                        if *start == 1 {
                            if positional_before_fuse {
                                return Err(unsupported(
                                    "decoder chain: two different first-token rules",
                                ));
                            }
                            strip_after = true;
                        }
                    } else if fallback {
                        return Err(unsupported(
                            "decoder Strip per token after ByteFallback (runs of byte tokens are stripped as one)",
                        ));
                    }
                }
                Op::Metaspace { .. } | Op::WordPiece { .. } | Op::JoinSpaces => {
                    if fused || bytes_seen {
                        return Err(unsupported(format!(
                            "decoder chain: {op:?} after Fuse, ByteLevel or ByteFallback (the first token of the text is no longer one token)"
                        )));
                    }
                    if matches!(
                        op,
                        Op::Metaspace {
                            strip_first: true,
                            ..
                        }
                    ) || matches!(op, Op::WordPiece { .. } | Op::JoinSpaces)
                    {
                        positional_before_fuse = true;
                    }
                }
            }
        }
        if fallback && positional_before_fuse {
            return Err(unsupported(
                "decoder chain: ByteFallback together with a per-token first-token rule (Metaspace, WordPiece or no decoder)",
            ));
        }
        Ok(Plan {
            ops,
            positional: positional_before_fuse || strip_after,
            fallback,
            strip_after,
        })
    }

    /// The forms of one token string.
    fn forms(&self, s: &str, inverse: &HashMap<char, u8>) -> Forms {
        let mut rest = s.as_bytes().to_vec();
        let mut first = rest.clone();
        let mut byte = false;
        for op in &self.ops {
            match op {
                Op::ByteLevel => {
                    for f in [&mut rest, &mut first] {
                        let text = String::from_utf8_lossy(f).into_owned();
                        let mapped: Option<Vec<u8>> =
                            text.chars().map(|c| inverse.get(&c).copied()).collect();
                        if let Some(m) = mapped {
                            *f = m;
                        }
                    }
                }
                Op::ByteFallback => {
                    let parse = |f: &[u8]| -> Option<u8> {
                        if f.len() == 6 && f.starts_with(b"<0x") && f[5] == b'>' {
                            std::str::from_utf8(&f[3..5])
                                .ok()
                                .and_then(|h| u8::from_str_radix(h, 16).ok())
                        } else {
                            None
                        }
                    };
                    if let Some(b) = parse(&rest) {
                        rest = vec![b];
                        byte = true;
                    }
                    if let Some(b) = parse(&first) {
                        first = vec![b];
                    }
                }
                Op::Replace(from, to) => {
                    for f in [&mut rest, &mut first] {
                        *f = replace(f, from.as_bytes(), to.as_bytes());
                    }
                }
                Op::Fuse => {}
                Op::Strip {
                    content,
                    start,
                    stop,
                } => {
                    if self.strip_after
                        && *start == 1
                        && *stop == 0
                        && op_is_after_fuse(&self.ops, op)
                    {
                        let mut buf = [0u8; 4];
                        let c = content.encode_utf8(&mut buf).as_bytes();
                        if first.starts_with(c) {
                            first.drain(..c.len());
                        }
                    } else if !op_is_after_fuse(&self.ops, op) {
                        for f in [&mut rest, &mut first] {
                            *f = strip_chars(f, *content, *start, *stop);
                        }
                    }
                }
                Op::Metaspace {
                    replacement,
                    strip_first,
                } => {
                    let mut buf = [0u8; 4];
                    let r = replacement.encode_utf8(&mut buf).as_bytes().to_vec();
                    rest = replace(&rest, &r, b" ");
                    first = if *strip_first {
                        replace(&first, &r, b"")
                    } else {
                        replace(&first, &r, b" ")
                    };
                }
                Op::WordPiece { prefix, cleanup } => {
                    rest = match rest.strip_prefix(prefix.as_bytes()) {
                        Some(r) => r.to_vec(),
                        None => [b" ".as_slice(), &rest].concat(),
                    };
                    if *cleanup {
                        rest = wordpiece_cleanup(&rest);
                        first = wordpiece_cleanup(&first);
                    }
                }
                Op::JoinSpaces => rest = [b" ".as_slice(), &rest].concat(),
            }
        }
        Forms { rest, first, byte }
    }
}

/// True when `op` (compared by address) comes after a step that fuses the tokens.
fn op_is_after_fuse(ops: &[Op], op: &Op) -> bool {
    for o in ops {
        if std::ptr::eq(o, op) {
            return false;
        }
        if matches!(o, Op::Fuse | Op::ByteLevel) {
            return true;
        }
    }
    false
}

/// Every occurrence of `from` in `s` replaced by `to` (left to right, not overlapping).
fn replace(s: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() || s.len() < from.len() {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Removes up to `start` leading and `stop` trailing `c` chars (Hugging Face's `Strip`).
fn strip_chars(s: &[u8], c: char, start: usize, stop: usize) -> Vec<u8> {
    let text = String::from_utf8_lossy(s);
    let chars: Vec<char> = text.chars().collect();
    let mut a = 0;
    while a < start.min(chars.len()) && chars[a] == c {
        a += 1;
    }
    let mut b = chars.len();
    let mut k = 0;
    while k < stop && b > a && chars[b - 1] == c {
        b -= 1;
        k += 1;
    }
    chars[a..b].iter().collect::<String>().into_bytes()
}

/// Hugging Face's WordPiece `cleanup` (spaces before punctuation and contractions).
fn wordpiece_cleanup(s: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(s)
        .replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" do not", " don't")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re");
    text.into_bytes()
}

/// One id of the file: its forms, kind and name.
struct Entry {
    forms: Forms,
    kind: TokenKind,
    name: String,
    /// A token of the model's vocabulary (not an added token).
    model: bool,
}

/// The entries by id, with the limits checked as they are added.
struct Entries {
    map: HashMap<u32, Entry>,
    bytes: usize,
}

impl Entries {
    fn put(&mut self, id: u64, e: Entry) -> Result<(), VocabError> {
        if id >= MAX_TOKENS as u64 {
            return Err(VocabError::IdTooLarge { id });
        }
        let id = id as u32;
        for len in [e.forms.rest.len(), e.forms.first.len()] {
            if len > MAX_TOKEN_BYTES && e.kind == TokenKind::Text {
                return Err(VocabError::TokenTooLong { id, len });
            }
        }
        if let Some(old) = self.map.get(&id) {
            if (&old.forms.rest, old.kind) != (&e.forms.rest, e.kind) {
                return Err(VocabError::DuplicateId { id });
            }
        }
        if e.kind == TokenKind::Text {
            self.bytes += e.forms.rest.len();
            if self.bytes > MAX_TOTAL_BYTES {
                return Err(VocabError::TooManyBytes { bytes: self.bytes });
            }
        }
        self.map.insert(id, e);
        if self.map.len() > MAX_TOKENS {
            return Err(VocabError::TooManyTokens {
                count: self.map.len(),
            });
        }
        Ok(())
    }
}

/// Reads a Hugging Face `tokenizer.json` (as text) into a [`Vocab`].
///
/// The vocabulary decodes exactly as Hugging Face's `decode(ids, skip_special_tokens=True)`
/// does for the ids before the first end token ([`Vocab::decode`]; [`Vocab::decode_text`]
/// also reproduces the replacement of invalid UTF-8), or the file is refused with
/// [`VocabError::Unsupported`] saying why.
///
/// Models: `BPE`, `WordLevel`, `WordPiece` and `Unigram`. Decoders: `ByteLevel` (GPT-2,
/// Qwen2, LLaMA 3), SentencePiece chains (`Metaspace`, or `Replace ▁`, `ByteFallback`,
/// `Fuse`, `Strip`, as in LLaMA 2), `WordPiece`, and none (tokens joined with spaces);
/// `BPEDecoder`, `CTC`, regex `Replace` and chains whose steps depend on neighbouring tokens
/// are refused. Special added tokens are text-free ([`TokenKind::Empty`]), except EOS/pad-like
/// ones (`<|endoftext|>`, `</s>`, `[PAD]`, …) which are [`TokenKind::End`]. Every other token,
/// non-special added tokens and the unknown token included, contributes its decoded text.
/// Ids must be dense and the vocabulary within the [limits](super#limits).
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
    let plan = Plan::of(&root)?;
    let inverse: HashMap<char, u8> = byte_to_char()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();
    let mut entries = Entries {
        map: HashMap::new(),
        bytes: 0,
    };
    let text = |s: &str, model: bool| Entry {
        forms: plan.forms(s, &inverse),
        kind: TokenKind::Text,
        name: s.to_string(),
        model,
    };
    match model_type {
        "BPE" | "WordLevel" | "WordPiece" => {
            let vocab = model
                .get("vocab")
                .and_then(|v| v.as_object())
                .ok_or(VocabError::Missing("model.vocab (an object of token → id)"))?;
            for (tok, id) in vocab {
                let id = id
                    .as_u64()
                    .ok_or(VocabError::Missing("model.vocab ids (integers)"))?;
                entries.put(id, text(tok, true))?;
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
            if vocab.len() > MAX_TOKENS {
                return Err(VocabError::TooManyTokens { count: vocab.len() });
            }
            for (id, pair) in vocab.iter().enumerate() {
                let tok = pair
                    .get(0)
                    .and_then(|t| t.as_str())
                    .ok_or(VocabError::Missing("model.vocab entries ([token, score])"))?;
                entries.put(id as u64, text(tok, true))?;
            }
        }
        other => {
            return Err(VocabError::Unsupported(format!(
                "model type {other:?} (expected BPE, WordLevel, WordPiece or Unigram)"
            )))
        }
    }
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
            let e = if END_NAMES.contains(&content) {
                Entry {
                    forms: Forms {
                        rest: Vec::new(),
                        first: Vec::new(),
                        byte: false,
                    },
                    kind: TokenKind::End,
                    name: content.to_string(),
                    model: false,
                }
            } else if special {
                Entry {
                    forms: Forms {
                        rest: Vec::new(),
                        first: Vec::new(),
                        byte: false,
                    },
                    kind: TokenKind::Empty,
                    name: content.to_string(),
                    model: false,
                }
            } else {
                // Hugging Face runs non-special added tokens through the decoder too.
                text(content, false)
            };
            // An added token overrides the model's entry for the same id.
            if id < MAX_TOKENS as u64 {
                if let Some(old) = entries.map.remove(&(id as u32)) {
                    if old.kind == TokenKind::Text {
                        entries.bytes -= old.forms.rest.len();
                    }
                }
            }
            entries.put(id, e)?;
        }
    }
    if entries.map.is_empty() {
        return Err(VocabError::EmptyVocabulary);
    }
    let max_id = entries.map.keys().max().copied().unwrap_or(0);
    if entries.map.len() != max_id as usize + 1 {
        let mut ids: Vec<u32> = entries.map.keys().copied().collect();
        ids.sort_unstable();
        let missing = ids
            .iter()
            .enumerate()
            .find(|&(i, &id)| i as u32 != id)
            .map_or(ids.len() as u32, |(i, _)| i as u32);
        return Err(VocabError::SparseIds { missing, max_id });
    }
    let n = max_id as usize + 1;
    let mut rest = vec![Vec::new(); n];
    let mut first = vec![Vec::new(); n];
    let mut kinds = vec![TokenKind::Empty; n];
    let mut names = HashMap::new();
    let mut byte_tokens = vec![0u64; n.div_ceil(64)];
    for (id, e) in entries.map {
        let is_unk = e.model && unk.as_deref() == Some(e.name.as_str());
        if e.kind != TokenKind::Text || is_unk || (e.name.starts_with('<') && e.name.ends_with('>'))
        {
            names.insert(e.name.clone(), id);
        }
        let mut kind = e.kind;
        if kind == TokenKind::Text && e.forms.rest.is_empty() {
            if plan.positional {
                return Err(unsupported(format!(
                    "token {id} ({:?}) decodes to no text but still counts as the first token of the text for this decoder",
                    e.name
                )));
            }
            kind = TokenKind::Empty;
        }
        if e.forms.byte {
            byte_tokens[id as usize / 64] |= 1 << (id % 64);
        }
        rest[id as usize] = e.forms.rest;
        first[id as usize] = e.forms.first;
        kinds[id as usize] = kind;
    }
    let mut v = Vocab::from_parts(&rest, kinds)?;
    if plan.positional {
        v = v.with_first_forms(&first)?;
    }
    v.names = names;
    if plan.fallback {
        v.lossy = Lossy::ByteRuns {
            byte_tokens,
            strip_after: plan.strip_after,
        };
    }
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
        let ctc = r#"{"decoder": {"type": "CTC"}, "model": {"type": "BPE", "vocab": {"a": 0}}}"#;
        assert!(matches!(
            from_tokenizer_json(ctc),
            Err(VocabError::Unsupported(m)) if m.contains("neighbour")
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
    fn a_huge_id_is_refused_before_any_allocation() {
        // 59 bytes that used to become a 16 M-token vocabulary (0.6 s, 456 MiB).
        let json = r#"{"model":{"type":"BPE","vocab":{"a":16777215},"merges":[]}}"#;
        assert_eq!(
            from_tokenizer_json(json),
            Err(VocabError::IdTooLarge { id: 16_777_215 })
        );
        let last = format!(
            r#"{{"model":{{"type":"BPE","vocab":{{"a":{}}}}}}}"#,
            MAX_TOKENS - 1
        );
        assert_eq!(
            from_tokenizer_json(&last),
            Err(VocabError::SparseIds {
                missing: 0,
                max_id: MAX_TOKENS as u32 - 1
            })
        );
    }

    #[test]
    fn sparse_ids_and_long_tokens_are_refused() {
        let json = r#"{"added_tokens": [{"id": 5, "content": "[PAD]", "special": true}],
            "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"x": 0, "y": 1}}}"#;
        let e = from_tokenizer_json(json).unwrap_err();
        assert_eq!(
            e,
            VocabError::SparseIds {
                missing: 2,
                max_id: 5
            }
        );
        assert!(e.to_string().contains("id 2 has no token"), "{e}");
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        let json = format!(
            r#"{{"decoder": {{"type": "ByteLevel"}}, "model": {{"type": "BPE", "vocab": {{"x": 0, "{long}": 1}}}}}}"#
        );
        assert_eq!(
            from_tokenizer_json(&json),
            Err(VocabError::TokenTooLong {
                id: 1,
                len: MAX_TOKEN_BYTES + 1
            })
        );
    }

    #[test]
    fn metaspace_and_byte_fallback() {
        let json = r#"{"decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
            "added_tokens": [{"id": 0, "content": "<unk>", "special": true}],
            "model": {"type": "BPE", "vocab": {"<unk>": 0, "<0x0A>": 1, "▁def": 2}, "unk_token": "<unk>"}}"#;
        let v = from_tokenizer_json(json).unwrap();
        assert_eq!(v.bytes(1), b"\n");
        assert_eq!(v.bytes(2), b" def");
        assert_eq!(v.first_bytes(2), b"def");
        assert_eq!(v.kind(0), TokenKind::Empty);
        assert_eq!(v.decode(&[0, 2, 1, 2]), b"def\n def");
    }

    #[test]
    fn no_decoder_joins_with_spaces() {
        let json = r#"{"decoder": null, "model": {"type": "WordLevel",
            "vocab": {"x = lambda": 0, "eval(data)": 1}, "unk_token": "x"}}"#;
        let v = from_tokenizer_json(json).unwrap();
        assert_eq!(v.decode(&[0, 1]), b"x = lambda eval(data)");
        assert_eq!(v.decode(&[1]), b"eval(data)");
    }

    #[test]
    fn gaps_are_refused_and_pad_ends() {
        let json = r#"{"added_tokens": [{"id": 1, "content": "[PAD]", "special": true},
                                          {"id": 2, "content": "<fim>", "special": false}],
            "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"x": 0}}}"#;
        let v = from_tokenizer_json(json).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v.kind(1), TokenKind::End);
        assert_eq!(v.bytes(2), b"<fim>");
        assert_eq!(v.special_token("[PAD]"), Some(1));
    }
}
