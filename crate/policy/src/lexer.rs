//! The Python lexical automaton: which scope (code, string, comment) each byte is in.
//!
//! It tracks comments, single- and triple-quoted strings with escapes, string prefixes,
//! f-strings and their `{...}` replacement fields (code, with braces nested up to a small
//! depth, and simple strings inside them). It is a finite automaton so that it can be taken
//! in product with a rule's DFA. The scope of a byte is the scope of the state *before* the
//! byte is read (an opening quote is code, the bytes after it are string), except that the
//! `{` opening an f-string replacement field is code, like the field itself.
//!
//! # Example
//! ```
//! use ward_policy::{scope_of_bytes, Scope};
//! let s = scope_of_bytes(b"x = 'a' # c");
//! assert_eq!(s[0], Scope::Code);
//! assert_eq!(s[4], Scope::Code);   // the opening quote
//! assert_eq!(s[5], Scope::String); // a
//! assert_eq!(s[10], Scope::Comment);
//! ```

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::nfa::is_word_byte;

/// A lexical scope of Python source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Code, including the replacement fields of f-strings.
    Code,
    /// The inside of a string literal.
    String,
    /// A `#` comment.
    Comment,
}

/// The deepest bracket nesting tracked inside an f-string replacement field.
const MAX_FIELD_DEPTH: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Fs {
    q: u8,
    triple: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::enum_variant_names)] // `Ident::Ident`: inside some other identifier
enum Ident {
    /// Not inside an identifier.
    Other,
    /// Inside an identifier that cannot be a string prefix of interest.
    Ident,
    /// The identifier so far is `r`/`R`.
    R,
    /// The identifier so far is `f`/`F`.
    F1,
    /// The identifier so far is `rf`/`fr` in any case.
    F2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum L {
    Code {
        id: Ident,
        field: Option<(Fs, u8)>,
        /// What the code view saw last where it differs from the raw byte before this
        /// state (see [`View`]); `Post::None` everywhere else.
        post: Post,
    },
    Comment,
    /// After a backslash in code (a line continuation; `cr`: its `\r` has been read).
    Cont {
        cr: bool,
    },
    Str {
        q: u8,
        triple: bool,
        fstr: bool,
        fresh: bool,
        esc: bool,
        close: u8,
        outer: Option<(Fs, u8)>,
    },
    Empty {
        q: u8,
        fstr: bool,
    },
    FBrace {
        fs: Fs,
    },
}

const START: L = L::Code {
    id: Ident::Other,
    field: None,
    post: Post::None,
};

/// The view's previous byte where it differs from the raw previous byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Post {
    /// The same as the raw previous byte.
    None,
    /// A space (the view of a line continuation).
    Space,
    /// A line end (the view of a lone `\r`).
    Newline,
}

/// How the code view (what `scope: code` rules read) differs from the raw text at one
/// byte: the byte it reads instead (`Raw`: the byte itself) and the look-behind it reads it
/// after, packed as `byte + 3 * behind`. CPython reads a comment as the end of a line, a
/// backslash-newline as a token separator, a lone `\r` as a line end and a form feed as
/// white space; the view reads each of these as spaces or `\n` (one byte for one byte, so
/// positions are the same in the view and in the text).
pub(crate) mod view {
    /// The byte is read as itself.
    pub(crate) const RAW: u8 = 0;
    /// The byte is read as a space.
    pub(crate) const SPACE: u8 = 1;
    /// The byte is read as `\n`.
    pub(crate) const NEWLINE: u8 = 2;
    /// Look-behind: that of the raw previous byte.
    pub(crate) const BEHIND_RAW: u8 = 0;
    /// Look-behind: the previous byte was a space.
    pub(crate) const BEHIND_SPACE: u8 = 1;
    /// Look-behind: the previous byte was `\n`.
    pub(crate) const BEHIND_NEWLINE: u8 = 2;
    /// The byte part of a packed view.
    pub(crate) fn byte(v: u8) -> u8 {
        v % 3
    }
    /// The look-behind part of a packed view.
    pub(crate) fn behind(v: u8) -> u8 {
        v / 3
    }
    /// The byte the view reads for raw byte `b` under packed view `v`.
    pub(crate) fn apply(v: u8, b: u8) -> u8 {
        match byte(v) {
            SPACE => b' ',
            NEWLINE => b'\n',
            _ => b,
        }
    }
}

/// The look-behind part of the view in state `l` (see [`view`]).
fn view_behind(l: L) -> u8 {
    match l {
        L::Comment | L::Cont { .. } => view::BEHIND_SPACE,
        L::Code {
            post: Post::Space, ..
        } => view::BEHIND_SPACE,
        L::Code {
            post: Post::Newline,
            ..
        } => view::BEHIND_NEWLINE,
        _ => view::BEHIND_RAW,
    }
}

/// The packed view of byte `b` read in state `l`.
fn view_of(l: L, b: u8) -> u8 {
    let byte = match l {
        L::Code { field: None, .. } | L::Empty { .. } => match b {
            b'#' | b'\\' | 0x0c => view::SPACE,
            b'\r' => view::NEWLINE,
            _ => view::RAW,
        },
        L::Comment => match b {
            b'\n' => view::RAW,
            b'\r' => view::NEWLINE,
            _ => view::SPACE,
        },
        L::Cont { cr } => match b {
            b'\r' if cr => view::NEWLINE,
            b'\n' | b'\r' => view::SPACE,
            b'#' | b'\\' | 0x0c => view::SPACE,
            _ => view::RAW,
        },
        _ => view::RAW,
    };
    byte + 3 * view_behind(l)
}

fn scope(l: L) -> Scope {
    match l {
        L::Code { .. } | L::Empty { .. } | L::FBrace { .. } | L::Cont { .. } => Scope::Code,
        L::Comment => Scope::Comment,
        L::Str { .. } => Scope::String,
    }
}

/// The scope of byte `b` read in state `l`: the scope of the state, except that the `{`
/// opening an f-string replacement field is code (the field's first byte), and the second
/// `{` of an escaped `{{` is string.
fn byte_scope(l: L, b: u8) -> Scope {
    match l {
        L::Str {
            fstr: true,
            esc: false,
            ..
        } if b == b'{' => Scope::Code,
        // `{{` is an escaped brace: the second `{` is literal text
        L::FBrace { .. } if b == b'{' => Scope::String,
        _ => scope(l),
    }
}

/// The literal-text state of f-string `fs` (after a field or an escaped brace).
fn fstring_text(fs: Fs) -> L {
    L::Str {
        q: fs.q,
        triple: fs.triple,
        fstr: true,
        fresh: false,
        esc: false,
        close: 0,
        outer: None,
    }
}

fn step(l: L, b: u8) -> L {
    let code = L::Code {
        id: Ident::Other,
        field: None,
        post: Post::None,
    };
    // CPython ends a line (and a comment, and a single-quoted string) at a lone `\r` too.
    let after_cr = L::Code {
        id: Ident::Other,
        field: None,
        post: Post::Newline,
    };
    let after_cont = L::Code {
        id: Ident::Other,
        field: None,
        post: Post::Space,
    };
    match l {
        L::Code {
            field: Some((fs, d)),
            ..
        } => {
            let field = |d| L::Code {
                id: Ident::Other,
                field: Some((fs, d)),
                post: Post::None,
            };
            match b {
                b'}' => {
                    if d <= 1 {
                        fstring_text(fs)
                    } else {
                        field(d - 1)
                    }
                }
                b'{' => field((d + 1).min(MAX_FIELD_DEPTH)),
                b'\'' | b'"' => {
                    if b == fs.q && !fs.triple {
                        code
                    } else {
                        L::Str {
                            q: b,
                            triple: false,
                            fstr: false,
                            fresh: false,
                            esc: false,
                            close: 0,
                            outer: Some((fs, d)),
                        }
                    }
                }
                b'\n' | b'\r' if !fs.triple => code,
                _ => field(d),
            }
        }
        L::Code {
            id, field: None, ..
        } => match b {
            b'#' => L::Comment,
            b'\\' => L::Cont { cr: false },
            b'\r' => after_cr,
            b'\'' | b'"' => L::Str {
                q: b,
                triple: false,
                fstr: matches!(id, Ident::F1 | Ident::F2),
                fresh: true,
                esc: false,
                close: 0,
                outer: None,
            },
            _ if is_word_byte(b) => {
                let f = b == b'f' || b == b'F';
                let r = b == b'r' || b == b'R';
                let id = match id {
                    Ident::Other if f => Ident::F1,
                    Ident::Other if r => Ident::R,
                    Ident::R if f => Ident::F2,
                    Ident::F1 if r => Ident::F2,
                    _ => Ident::Ident,
                };
                L::Code {
                    id,
                    field: None,
                    post: Post::None,
                }
            }
            _ => code,
        },
        L::Comment => match b {
            b'\n' => code,
            b'\r' => after_cr,
            _ => L::Comment,
        },
        // A backslash continues the line when a line end follows (CPython rejects anything
        // else); the view reads the backslash and its line end as spaces.
        L::Cont { cr } => match b {
            b'\n' => after_cont,
            b'\r' if !cr => L::Cont { cr: true },
            _ => step(after_cont, b),
        },
        L::Str {
            q,
            triple,
            fstr,
            fresh,
            esc,
            close,
            outer,
        } => {
            let plain = L::Str {
                q,
                triple,
                fstr,
                fresh: false,
                esc: false,
                close: 0,
                outer,
            };
            if esc {
                return plain;
            }
            if b == b'\\' {
                return L::Str {
                    q,
                    triple,
                    fstr,
                    fresh: false,
                    esc: true,
                    close: 0,
                    outer,
                };
            }
            if b == q {
                if !triple {
                    return match outer {
                        Some(o) => L::Code {
                            id: Ident::Other,
                            field: Some(o),
                            post: Post::None,
                        },
                        None if fresh => L::Empty { q, fstr },
                        None => code,
                    };
                }
                if close + 1 == 3 {
                    return code;
                }
                return L::Str {
                    q,
                    triple,
                    fstr,
                    fresh: false,
                    esc: false,
                    close: close + 1,
                    outer,
                };
            }
            if fstr && b == b'{' {
                return L::FBrace {
                    fs: Fs { q, triple },
                };
            }
            if (b == b'\n' || b == b'\r') && !triple {
                return match outer {
                    Some((fs, d)) if fs.triple => L::Code {
                        id: Ident::Other,
                        field: Some((fs, d)),
                        post: Post::None,
                    },
                    _ if b == b'\r' => after_cr,
                    _ => code,
                };
            }
            plain
        }
        L::Empty { q, fstr } => {
            if b == q {
                L::Str {
                    q,
                    triple: true,
                    fstr,
                    fresh: false,
                    esc: false,
                    close: 0,
                    outer: None,
                }
            } else {
                step(code, b)
            }
        }
        L::FBrace { fs } => {
            if b == b'{' {
                fstring_text(fs)
            } else {
                step(
                    L::Code {
                        id: Ident::Other,
                        field: Some((fs, 1)),
                        post: Post::None,
                    },
                    b,
                )
            }
        }
    }
}

/// The lexer as a table-driven DFA.
#[derive(Debug)]
pub(crate) struct LexTable {
    /// `trans[state * 256 + byte]`.
    pub(crate) trans: Vec<u16>,
    /// Scope of each state.
    pub(crate) scopes: Vec<Scope>,
    /// `byte_scopes[state * 256 + byte]`: the scope of `byte` read in `state`.
    pub(crate) byte_scopes: Vec<Scope>,
    /// Byte-class boundaries the lexer needs (`split[b]`: a boundary between b and b+1).
    pub(crate) split: [bool; 256],
    /// Per state: the scopes some next byte can have, as bits `1 << scope`.
    pub(crate) next_scopes: Vec<u8>,
    /// `views[state * 256 + byte]`: how the code view reads `byte` in `state` (packed, see
    /// [`view`]); its look-behind part is the same for every byte of a state.
    pub(crate) views: Vec<u8>,
}

impl LexTable {
    /// Number of lexer states.
    #[allow(dead_code)]
    pub(crate) fn len(&self) -> usize {
        self.scopes.len()
    }

    /// The scope of `b` read in state `s`.
    #[inline]
    pub(crate) fn scope_at(&self, s: u16, b: u8) -> Scope {
        self.byte_scopes[s as usize * 256 + b as usize]
    }

    /// Next lexer state.
    #[inline]
    pub(crate) fn next(&self, s: u16, b: u8) -> u16 {
        self.trans[s as usize * 256 + b as usize]
    }

    /// How the code view reads `b` in state `s` (packed, see [`view`]).
    #[inline]
    pub(crate) fn view_at(&self, s: u16, b: u8) -> u8 {
        self.views[s as usize * 256 + b as usize]
    }

    /// The code view's look-behind in state `s` (at the end of the text, say).
    #[inline]
    pub(crate) fn behind(&self, s: u16) -> u8 {
        view::behind(self.views[s as usize * 256])
    }
}

/// The lexer table, built once. State 0 is the start (code).
pub(crate) fn table() -> &'static LexTable {
    static T: OnceLock<LexTable> = OnceLock::new();
    T.get_or_init(|| {
        let mut ids: HashMap<L, u16> = HashMap::new();
        let mut states = vec![START];
        ids.insert(START, 0);
        let mut trans = Vec::new();
        let mut i = 0;
        while i < states.len() {
            let l = states[i];
            for b in 0..=255u8 {
                let n = step(l, b);
                let id = *ids.entry(n).or_insert_with(|| {
                    states.push(n);
                    (states.len() - 1) as u16
                });
                trans.push(id);
            }
            i += 1;
        }
        let scopes = states.iter().map(|&l| scope(l)).collect::<Vec<_>>();
        let byte_scopes: Vec<Scope> = states
            .iter()
            .flat_map(|&l| (0..=255u8).map(move |b| byte_scope(l, b)))
            .collect();
        let views: Vec<u8> = states
            .iter()
            .flat_map(|&l| (0..=255u8).map(move |b| view_of(l, b)))
            .collect();
        let (trans, scopes, byte_scopes, views) = minimise(&trans, &scopes, &byte_scopes, &views);
        let n = scopes.len();
        let mut split = [false; 256];
        for b in 0..255usize {
            if (0..n).any(|s| {
                trans[s * 256 + b] != trans[s * 256 + b + 1]
                    || byte_scopes[s * 256 + b] != byte_scopes[s * 256 + b + 1]
                    || views[s * 256 + b] != views[s * 256 + b + 1]
            }) {
                split[b] = true;
            }
        }
        split[255] = true;
        let next_scopes = byte_scopes
            .chunks(256)
            .map(|row| row.iter().fold(0u8, |m, &sc| m | 1 << sc as u8))
            .collect();
        LexTable {
            trans,
            scopes,
            byte_scopes,
            split,
            next_scopes,
            views,
        }
    })
}

/// Moore minimisation of the lexer: states that emit the same scopes for every input merge.
#[allow(clippy::type_complexity)]
fn minimise(
    trans: &[u16],
    scopes: &[Scope],
    byte_scopes: &[Scope],
    views: &[u8],
) -> (Vec<u16>, Vec<Scope>, Vec<Scope>, Vec<u8>) {
    let n = scopes.len();
    let mut block: Vec<usize> = {
        let mut ids: rustc_hash::FxHashMap<(Scope, &[Scope], &[u8]), usize> = Default::default();
        (0..n)
            .map(|s| {
                let k = ids.len();
                *ids.entry((
                    scopes[s],
                    &byte_scopes[s * 256..s * 256 + 256],
                    &views[s * 256..s * 256 + 256],
                ))
                .or_insert(k)
            })
            .collect()
    };
    loop {
        let mut ids: rustc_hash::FxHashMap<(usize, Vec<usize>), usize> = Default::default();
        // keep the start state in block 0
        let mut nb = vec![0; n];
        for s in 0..n {
            let row: Vec<usize> = (0..256)
                .map(|b| block[trans[s * 256 + b] as usize])
                .collect();
            let k = ids.len();
            nb[s] = *ids.entry((block[s], row)).or_insert(k);
        }
        let before = block
            .iter()
            .copied()
            .collect::<std::collections::HashSet<_>>()
            .len();
        let after = ids.len();
        block = nb;
        if after == before {
            break;
        }
    }
    let m = block.iter().copied().max().unwrap_or(0) + 1;
    let mut out_t = vec![0u16; m * 256];
    let mut out_s = vec![Scope::Code; m];
    let mut out_b = vec![Scope::Code; m * 256];
    let mut out_v = vec![0u8; m * 256];
    for s in 0..n {
        out_s[block[s]] = scopes[s];
        for b in 0..256 {
            out_t[block[s] * 256 + b] = block[trans[s * 256 + b] as usize] as u16;
            out_b[block[s] * 256 + b] = byte_scopes[s * 256 + b];
            out_v[block[s] * 256 + b] = views[s * 256 + b];
        }
    }
    (out_t, out_s, out_b, out_v)
}

/// The scope of every byte of `text` (the scope before the byte is read).
pub fn scope_of_bytes(text: &[u8]) -> Vec<Scope> {
    let t = table();
    let mut s = 0u16;
    let mut out = Vec::with_capacity(text.len());
    for &b in text {
        out.push(t.scope_at(s, b));
        s = t.next(s, b);
    }
    out
}

/// The scope of every byte of `text` and the code view: the text as `scope: code` rules
/// read it, byte for byte (a comment, a backslash line continuation and a form feed read as
/// spaces, a lone `\r` as `\n`), so that positions in the view are positions in the text.
///
/// # Example
/// ```
/// let (_, view) = ward_policy::scan(b"f(eval # c\n('1'))");
/// assert_eq!(view, b"f(eval    \n('1'))");
/// let (_, view) = ward_policy::scan(b"eval\\\n('1')");
/// assert_eq!(view, b"eval  ('1')");
/// ```
pub fn scan(text: &[u8]) -> (Vec<Scope>, Vec<u8>) {
    let t = table();
    let mut s = 0u16;
    let mut scopes = Vec::with_capacity(text.len());
    let mut out = Vec::with_capacity(text.len());
    for &b in text {
        scopes.push(t.scope_at(s, b));
        out.push(view::apply(t.view_at(s, b), b));
        s = t.next(s, b);
    }
    (scopes, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str) -> String {
        scope_of_bytes(text.as_bytes())
            .iter()
            .map(|s| match s {
                Scope::Code => 'c',
                Scope::String => 's',
                Scope::Comment => '#',
            })
            .collect()
    }

    #[test]
    fn basic_scopes() {
        assert_eq!(show("a'b'c"), "ccssc");
        assert_eq!(show("a # b\nc"), "ccc###c");
        assert_eq!(show(r#"'\''x"#), "csssc");
        assert_eq!(show("'''a'b'''c"), "cscssssssc");
        assert_eq!(show("''c"), "csc");
        assert_eq!(show("\"#\"c"), "cssc");
    }

    #[test]
    fn fstrings() {
        // f"a{x}b" : the field x is code, the braces' insides too
        assert_eq!(show("f\"a{x}b\"c"), "ccscccssc");
        // escaped braces stay string (the second brace is classed code, see module docs)
        assert_eq!(show("f'{{x'c"), "cccsssc");
        // rf prefix and nested string in a field
        assert_eq!(show("rf'{d[\"k\"]}'"), "ccccccc ssccs".replace(' ', ""));
        // plain string: braces are text
        assert_eq!(show("'{x}'"), "cssss");
    }

    #[test]
    fn table_is_small() {
        assert!(table().len() < 200, "{}", table().len());
    }
}
#[cfg(test)]
mod size_probe {
    #[test]
    fn print_size() {
        eprintln!("LEXER STATES {}", super::table().len());
    }
}
