//! Semgrep's regexes are PCRE; the compiler's parser is `regex-syntax`. [`translate`] rewrites
//! a PCRE pattern into `regex-syntax` syntax with the same meaning, or rejects the construct
//! (with its column) where the two read it differently and no rewrite is exact:
//!
//! - a `{` that does not start a valid counted repetition (`{n}`, `{n,}`, `{n,m}`) is a
//!   literal in PCRE (`{%\s+autoescape`); it becomes `\{` (and its `}` stays a literal);
//!   `{,n}` means `{0,n}` in recent PCRE2 and a literal in older ones: rejected;
//! - `\<` and `\>` are the literal `<` and `>` in PCRE but word-boundary assertions in
//!   `regex-syntax`: they become `<` and `>`;
//! - `\A` and `\z` mean the same in both; `\Z` (the end, or before a final line end) becomes
//!   `(?:\n?\z)` when it ends the pattern (the same texts match; a finding then includes that
//!   final line end) and is rejected elsewhere;
//! - PCRE-only constructs with no regular or no equal meaning here are rejected: `\Q…\E`,
//!   `\K`, `\G`, `\R`, `\h`/`\H`, `\v`/`\V` (PCRE: vertical space class, here a single byte),
//!   `\e`… are left to `regex-syntax`, which rejects the ones it does not know; possessive
//!   quantifiers (`*+`, `++`, `?+`) and atomic groups (`(?>`) are rejected here, since
//!   `regex-syntax` would read `a++` as a nested repetition.
//!
//! Inside a class `[…]`, `{` and `}` are literals in both, and `\<` `\>` become `<` `>`.

/// A construct rejected by [`translate`]: its byte offset in the pattern and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    /// Byte offset of the construct in the original pattern.
    pub(crate) offset: usize,
    /// What the construct is and why it is refused.
    pub(crate) message: String,
}

/// The translated pattern, and for each byte offset of it the offset in the original.
#[derive(Debug, Clone)]
pub(crate) struct Translated {
    pub(crate) pattern: String,
    pub(crate) origin: Vec<usize>,
}

/// A valid counted repetition at `p[i..]` (which starts with `{`): its length.
fn counted(p: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    let d0 = j;
    while j < p.len() && p[j].is_ascii_digit() {
        j += 1;
    }
    let first = j > d0;
    if j < p.len() && p[j] == b'}' {
        return first.then_some(j + 1 - i);
    }
    if j >= p.len() || p[j] != b',' || !first {
        return None;
    }
    j += 1;
    while j < p.len() && p[j].is_ascii_digit() {
        j += 1;
    }
    (j < p.len() && p[j] == b'}').then_some(j + 1 - i)
}

/// `{,n}` at `p[i..]`.
fn comma_first(p: &[u8], i: usize) -> bool {
    let mut j = i + 1;
    if j >= p.len() || p[j] != b',' {
        return false;
    }
    j += 1;
    let d0 = j;
    while j < p.len() && p[j].is_ascii_digit() {
        j += 1;
    }
    j > d0 && j < p.len() && p[j] == b'}'
}

/// Translate PCRE pattern `pattern` (see the module docs).
pub(crate) fn translate(pattern: &str) -> Result<Translated, Rejected> {
    let p = pattern.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(p.len() + 8);
    let mut origin: Vec<usize> = Vec::with_capacity(p.len() + 8);
    let push = |out: &mut Vec<u8>, origin: &mut Vec<usize>, s: &[u8], at: usize| {
        out.extend_from_slice(s);
        origin.extend(std::iter::repeat_n(at, s.len()));
    };
    let mut i = 0;
    let mut class = false; // inside `[...]`
    let mut class_start = 0; // offset of the class's first item (a `]` there is literal)
    while i < p.len() {
        let b = p[i];
        if b == b'\\' {
            let Some(&n) = p.get(i + 1) else {
                push(&mut out, &mut origin, b"\\", i);
                i += 1;
                continue;
            };
            match n {
                b'<' | b'>' => push(&mut out, &mut origin, &[n], i),
                b'Z' if !class => {
                    if i + 2 != p.len() {
                        return Err(Rejected {
                            offset: i,
                            message: "`\\Z` (the end, or before a final line end) is only accepted at the end of the pattern; write `\\z` for the very end".into(),
                        });
                    }
                    push(&mut out, &mut origin, b"(?:\\n?\\z)", i);
                }
                b'Q' | b'E' | b'K' | b'G' | b'R' | b'h' | b'H' | b'V' | b'N' | b'X' | b'C' => {
                    return Err(Rejected {
                        offset: i,
                        message: format!(
                            "the PCRE escape `\\{}` has no equal meaning in Ward's regex dialect",
                            n as char
                        ),
                    });
                }
                b'v' if !class => {
                    return Err(Rejected {
                        offset: i,
                        message: "`\\v` is the vertical-space class in PCRE but one byte (VT) here; write `[\\n\\x0b\\f\\r]`".into(),
                    });
                }
                _ => {
                    // copy the escape and its argument as one unit (`\x{..}`, `\p{..}`)
                    let mut j = i + 2;
                    if matches!(n, b'x' | b'p' | b'P') && p.get(j) == Some(&b'{') {
                        while j < p.len() && p[j] != b'}' {
                            j += 1;
                        }
                        j = (j + 1).min(p.len());
                    }
                    let s = p[i..j].to_vec();
                    push(&mut out, &mut origin, &s, i);
                    i = j;
                    continue;
                }
            }
            i += 2;
            continue;
        }
        if class {
            if b == b']' && i != class_start {
                class = false;
            } else if b == b'[' && p.get(i + 1) == Some(&b':') {
                // POSIX class `[:alpha:]`: copy through its `:]`
                if let Some(k) = pattern[i + 2..].find(":]") {
                    let e = i + 2 + k + 2;
                    let s = p[i..e].to_vec();
                    push(&mut out, &mut origin, &s, i);
                    i = e;
                    continue;
                }
            }
            push(&mut out, &mut origin, &[b], i);
            i += 1;
            continue;
        }
        match b {
            b'[' => {
                class = true;
                let mut k = i + 1;
                if p.get(k) == Some(&b'^') {
                    k += 1;
                }
                class_start = k;
                let s = p[i..k].to_vec();
                push(&mut out, &mut origin, &s, i);
                i = k;
                continue;
            }
            b'{' => {
                if let Some(len) = counted(p, i) {
                    let s = p[i..i + len].to_vec();
                    push(&mut out, &mut origin, &s, i);
                    i += len;
                    if let Some(&q) = p.get(i) {
                        if q == b'+' {
                            return Err(possessive(i));
                        }
                    }
                    continue;
                }
                if comma_first(p, i) {
                    return Err(Rejected {
                        offset: i,
                        message: "`{,n}` is `{0,n}` in recent PCRE2 and a literal in older ones; write `{0,n}` or `\\{,n}`".into(),
                    });
                }
                push(&mut out, &mut origin, b"\\{", i);
            }
            b'}' => push(&mut out, &mut origin, b"\\}", i),
            b'*' | b'+' | b'?' => {
                push(&mut out, &mut origin, &[b], i);
                if p.get(i + 1) == Some(&b'+') {
                    return Err(possessive(i + 1));
                }
            }
            b'(' if p[i..].starts_with(b"(?>") => {
                return Err(Rejected {
                    offset: i,
                    message: "an atomic group `(?>…)` changes what matches in PCRE and is not supported; write a plain group".into(),
                });
            }
            _ => push(&mut out, &mut origin, &[b], i),
        }
        i += 1;
    }
    origin.push(p.len());
    Ok(Translated {
        pattern: String::from_utf8(out).expect("only ASCII bytes were added or removed"),
        origin,
    })
}

fn possessive(offset: usize) -> Rejected {
    Rejected {
        offset,
        message: "a possessive quantifier (`*+`, `++`, `?+`, `{n}+`) changes what matches in PCRE and is not supported; drop the `+`".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::translate;

    fn t(p: &str) -> String {
        translate(p).unwrap().pattern
    }

    #[test]
    fn braces_that_are_not_repetitions_are_literal() {
        assert_eq!(
            t(r"{%\s+autoescape\s+off\s+%}"),
            r"\{%\s+autoescape\s+off\s+%\}"
        );
        assert_eq!(t(r"a{2}b{1,}c{1,3}"), r"a{2}b{1,}c{1,3}");
        assert_eq!(t(r"a{x}"), r"a\{x\}");
        assert_eq!(t(r"[{}]"), r"[{}]");
        assert!(translate(r"a{,3}").is_err());
    }

    #[test]
    fn pcre_escapes() {
        assert_eq!(t(r"\<\%[^\@].*"), r"<\%[^\@].*");
        assert_eq!(t(r"[\<\>]"), r"[<>]");
        assert_eq!(t(r"\Aa\z"), r"\Aa\z");
        assert_eq!(t(r"a\Z"), r"a(?:\n?\z)");
        assert_eq!(translate(r"a\Zb").unwrap_err().offset, 1);
        assert_eq!(translate(r"a++").unwrap_err().offset, 2);
        assert_eq!(translate(r"x(?>a)").unwrap_err().offset, 1);
        assert_eq!(translate(r"\Qa\E").unwrap_err().offset, 0);
        assert_eq!(t(r"\x{41}{2}"), r"\x{41}{2}");
    }

    #[test]
    fn origin_maps_back() {
        let tr = translate(r"a{b").unwrap();
        assert_eq!(tr.pattern, r"a\{b");
        assert_eq!(tr.origin[3], 2);
    }
}
