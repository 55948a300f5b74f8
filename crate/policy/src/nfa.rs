//! Regex → byte-level Thompson NFA.
//!
//! Patterns are parsed by `regex-syntax` with the settings of the rule language (ASCII
//! classes, multi-line anchors, no UTF-8 requirement) and compiled here into an NFA whose
//! states live in one shared arena, so the DFA builder can combine the NFAs of many rules.

use regex_syntax::ast::ErrorKind as AstErrorKind;
use regex_syntax::hir::{Class, Hir, HirKind, Look};

use crate::error::{CompileError, Deadline, ErrorKind};

/// NFA state id in an [`Arena`].
pub(crate) type NfaId = u32;

/// One NFA state.
#[derive(Clone, Debug)]
pub(crate) enum NState {
    /// Consume one byte in `lo..=hi`, go to `next`.
    Range { lo: u8, hi: u8, next: NfaId },
    /// Consume one byte in any of the ranges, go to `next`.
    Ranges { ranges: Vec<(u8, u8)>, next: NfaId },
    /// Epsilon to all of these.
    Split(Vec<NfaId>),
    /// Epsilon if the assertion holds at the current position.
    Look { look: Look, next: NfaId },
    /// The pattern has matched.
    Match,
}

/// An arena of NFA states shared by several patterns.
#[derive(Clone, Debug, Default)]
pub(crate) struct Arena {
    pub(crate) states: Vec<NState>,
    /// Per state: an assertion (`Look`) is reachable from it by epsilon moves (itself
    /// included), so a thread there may read the context around the position.
    pub(crate) look_reach: Vec<bool>,
}

/// Most NFA states of all patterns together.
const MAX_NFA_STATES: usize = 2_000_000;

/// What one pattern's compilation carries along.
struct Job<'d> {
    needs: LookNeeds,
    deadline: &'d Deadline,
    /// Calls so far, to look at the clock every few thousand.
    calls: usize,
}

/// Which look-around context bits a set of patterns needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LookNeeds {
    pub(crate) word: bool,
    pub(crate) line: bool,
    pub(crate) text: bool,
}

impl LookNeeds {
    pub(crate) fn union(self, o: LookNeeds) -> LookNeeds {
        LookNeeds {
            word: self.word || o.word,
            line: self.line || o.line,
            text: self.text || o.text,
        }
    }
}

/// A compiled pattern: its start state in the arena and the look-around it uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Compiled {
    pub(crate) start: NfaId,
    pub(crate) needs: LookNeeds,
}

/// The regex-syntax parser configured for the rule language, after the PCRE translation
/// ([`crate::pcre`]); errors name the construct and its column in `pattern` as written.
pub(crate) fn parse(pattern: &str) -> Result<Hir, CompileError> {
    let tr = crate::pcre::translate(pattern).map_err(|r| {
        let col = pattern[..r.offset].chars().count() + 1;
        let construct = construct_at(pattern, r.offset, r.offset + 2);
        CompileError::new(
            ErrorKind::UnsupportedRegex,
            format!(
                "{}: `{construct}` at column {col} of pattern `{pattern}`",
                r.message
            ),
        )
        .at(1, col)
    })?;
    let mut parser = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .multi_line(true)
        .nest_limit(100)
        .build();
    let hir = parser
        .parse(&tr.pattern)
        .map_err(|e| regex_error(pattern, &tr, &e))?;
    if hir.properties().minimum_len() == Some(0) {
        return Err(CompileError::new(
            ErrorKind::EmptyMatch,
            format!("pattern `{pattern}` can match the empty string, which would flag every text"),
        ));
    }
    if hir.properties().minimum_len().is_none() {
        return Err(CompileError::new(
            ErrorKind::BadRegex,
            format!("pattern `{pattern}` can never match anything"),
        ));
    }
    Ok(hir)
}

fn regex_error(
    pattern: &str,
    tr: &crate::pcre::Translated,
    e: &regex_syntax::Error,
) -> CompileError {
    // Offsets and columns in the pattern as written.
    let orig = |off: usize| tr.origin.get(off).copied().unwrap_or(pattern.len());
    let column = |off: usize| pattern[..orig(off).min(pattern.len())].chars().count() + 1;
    match e {
        regex_syntax::Error::Parse(ast) => {
            let col = column(ast.span().start.offset);
            let (kind, what) = match ast.kind() {
                AstErrorKind::UnsupportedLookAround => (
                    ErrorKind::UnsupportedRegex,
                    "look-around ((?=, (?!, (?<=, (?<!) is not regular and cannot be enforced by an automaton; \
                     rewrite it with classes or pattern-not-regex"
                        .to_string(),
                ),
                AstErrorKind::UnsupportedBackreference => (
                    ErrorKind::UnsupportedRegex,
                    "a backreference (\\1) is not regular and cannot be enforced by an automaton".to_string(),
                ),
                other => (ErrorKind::BadRegex, other.to_string()),
            };
            let construct = construct_at(
                pattern,
                orig(ast.span().start.offset),
                orig(ast.span().end.offset),
            );
            CompileError::new(
                kind,
                format!("{what}: `{construct}` at column {col} of pattern `{pattern}`"),
            )
            .at(ast.span().start.line, col)
        }
        regex_syntax::Error::Translate(t) => {
            let col = column(t.span().start.offset);
            let construct = construct_at(
                pattern,
                orig(t.span().start.offset),
                orig(t.span().end.offset),
            );
            CompileError::new(
                ErrorKind::UnsupportedRegex,
                format!(
                    "{}: `{construct}` at column {col} of pattern `{pattern}`",
                    t.kind()
                ),
            )
            .at(t.span().start.line, col)
        }
        other => CompileError::new(
            ErrorKind::BadRegex,
            format!("{other} in pattern `{pattern}`"),
        ),
    }
}

fn construct_at(pattern: &str, start: usize, end: usize) -> String {
    let end = end.max(start + 1).min(pattern.len());
    let start = start.min(end);
    pattern.get(start..end).unwrap_or("").to_string()
}

impl Arena {
    fn push(&mut self, s: NState) -> NfaId {
        self.states.push(s);
        (self.states.len() - 1) as NfaId
    }

    /// Compile `hir` into the arena; the result ends in a fresh `Match` state. Fails past
    /// [`MAX_NFA_STATES`] or the deadline.
    pub(crate) fn compile(
        &mut self,
        hir: &Hir,
        deadline: &Deadline,
    ) -> Result<Compiled, CompileError> {
        let lo = self.states.len();
        let mut job = Job {
            needs: LookNeeds::default(),
            deadline,
            calls: 0,
        };
        let m = self.push(NState::Match);
        let start = self.c(hir, m, &mut job)?;
        self.mark_look_reach(lo);
        Ok(Compiled {
            start,
            needs: job.needs,
        })
    }

    /// Fill [`Arena::look_reach`] for the states from `lo` on (one pattern: its epsilon
    /// moves stay inside it). Epsilon moves mostly lead to lower ids (a state is pushed
    /// after its continuation), so sweeping upwards settles most states at once; each loop
    /// closes with one upward move, and sweeps repeat until nothing changes (about the
    /// nesting depth of loops).
    fn mark_look_reach(&mut self, lo: usize) {
        let n = self.states.len();
        self.look_reach.truncate(lo);
        self.look_reach.resize(n, false);
        let mut changed = true;
        while changed {
            changed = false;
            for q in lo..n {
                if self.look_reach[q] {
                    continue;
                }
                let reach = match &self.states[q] {
                    NState::Look { .. } => true,
                    NState::Split(alts) => alts.iter().any(|&a| self.look_reach[a as usize]),
                    _ => false,
                };
                if reach {
                    self.look_reach[q] = true;
                    changed = true;
                }
            }
        }
    }

    fn c(&mut self, hir: &Hir, next: NfaId, job: &mut Job<'_>) -> Result<NfaId, CompileError> {
        if self.states.len() > MAX_NFA_STATES {
            return Err(CompileError::new(
                ErrorKind::SizeLimit,
                "pattern expands to more than 2,000,000 NFA states",
            ));
        }
        job.calls += 1;
        if job.calls & 0xfff == 0 {
            job.deadline.check()?;
        }
        Ok(match hir.kind() {
            HirKind::Empty => next,
            HirKind::Literal(lit) => {
                let mut cur = next;
                for &b in lit.0.iter().rev() {
                    cur = self.push(NState::Range {
                        lo: b,
                        hi: b,
                        next: cur,
                    });
                }
                cur
            }
            HirKind::Class(Class::Bytes(cls)) => {
                let ranges: Vec<(u8, u8)> =
                    cls.ranges().iter().map(|r| (r.start(), r.end())).collect();
                self.ranges(ranges, next)
            }
            HirKind::Class(Class::Unicode(cls)) => {
                // Only reachable for ASCII-only classes when Unicode mode is off.
                let mut ranges = Vec::new();
                for r in cls.ranges() {
                    let (s, e) = (r.start() as u32, r.end() as u32);
                    if e > 0x7f {
                        return Err(CompileError::new(
                            ErrorKind::UnsupportedRegex,
                            "a class with non-ASCII characters is not supported; match their UTF-8 bytes literally",
                        ));
                    }
                    ranges.push((s as u8, e as u8));
                }
                self.ranges(ranges, next)
            }
            HirKind::Look(look) => {
                match look {
                    Look::Start | Look::End => job.needs.text = true,
                    Look::StartLF | Look::EndLF => job.needs.line = true,
                    Look::WordAscii
                    | Look::WordAsciiNegate
                    | Look::WordStartAscii
                    | Look::WordEndAscii
                    | Look::WordStartHalfAscii
                    | Look::WordEndHalfAscii => job.needs.word = true,
                    other => {
                        return Err(CompileError::new(
                            ErrorKind::UnsupportedRegex,
                            format!("assertion {other:?} is not supported (use ASCII \\b, ^, $)"),
                        ))
                    }
                }
                self.push(NState::Look { look: *look, next })
            }
            HirKind::Capture(cap) => self.c(&cap.sub, next, job)?,
            HirKind::Concat(subs) => {
                let mut cur = next;
                for s in subs.iter().rev() {
                    cur = self.c(s, cur, job)?;
                }
                cur
            }
            HirKind::Alternation(subs) => {
                let mut alts = Vec::with_capacity(subs.len());
                for s in subs {
                    alts.push(self.c(s, next, job)?);
                }
                self.push(NState::Split(alts))
            }
            HirKind::Repetition(rep) => {
                // Every form compiles its sub-pattern once per copy it needs, never more, so
                // nested repetitions stay linear in the pattern (`((x?)+)+` is three loops,
                // not eight copies of `x`), as regex-automata's Thompson compiler does:
                // `x*` is one loop, `x{n,}` is `n - 1` copies then one loop entered through
                // its body (`x+`), and `x{n,m}` is `n` copies then `m - n` optional ones.
                let min = rep.min;
                let mut cur = next;
                let copies = match rep.max {
                    None if min == 0 => {
                        // x*: split(body → loop, next)
                        let lp = self.push(NState::Split(vec![]));
                        let body = self.c(&rep.sub, lp, job)?;
                        self.states[lp as usize] = NState::Split(vec![body, next]);
                        cur = lp;
                        0
                    }
                    None => {
                        // x+: body → split(body, next), entered at the body
                        let lp = self.push(NState::Split(vec![]));
                        let body = self.c(&rep.sub, lp, job)?;
                        self.states[lp as usize] = NState::Split(vec![body, next]);
                        cur = body;
                        min - 1
                    }
                    Some(max) => {
                        for _ in min..max {
                            let body = self.c(&rep.sub, cur, job)?;
                            cur = self.push(NState::Split(vec![body, next]));
                        }
                        min
                    }
                };
                for _ in 0..copies {
                    cur = self.c(&rep.sub, cur, job)?;
                }
                cur
            }
        })
    }

    fn ranges(&mut self, ranges: Vec<(u8, u8)>, next: NfaId) -> NfaId {
        if ranges.len() == 1 {
            self.push(NState::Range {
                lo: ranges[0].0,
                hi: ranges[0].1,
                next,
            })
        } else {
            self.push(NState::Ranges { ranges, next })
        }
    }
}

/// Bytes that are ASCII word characters (`[0-9A-Za-z_]`).
#[inline]
pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The context around a position: what is behind (from the DFA state) and ahead (next byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ctx {
    /// Previous byte is a word byte.
    pub(crate) prev_word: bool,
    /// At a line start (previous byte is `\n`, or start of text).
    pub(crate) prev_lf: bool,
    /// At the start of the text.
    pub(crate) at_start: bool,
    /// The next byte, or `None` at the end of the text.
    pub(crate) next: Option<u8>,
}

impl Ctx {
    /// Whether `look` holds in this context.
    pub(crate) fn holds(&self, look: Look) -> bool {
        let next_word = self.next.is_some_and(is_word_byte);
        match look {
            Look::Start => self.at_start,
            Look::End => self.next.is_none(),
            Look::StartLF => self.prev_lf,
            Look::EndLF => matches!(self.next, None | Some(b'\n')),
            Look::WordAscii => self.prev_word != next_word,
            Look::WordAsciiNegate => self.prev_word == next_word,
            Look::WordStartAscii => !self.prev_word && next_word,
            Look::WordEndAscii => self.prev_word && !next_word,
            Look::WordStartHalfAscii => !self.prev_word,
            Look::WordEndHalfAscii => !next_word,
            _ => false,
        }
    }
}

/// Reusable buffers for [`closure`].
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    seen: Vec<bool>,
    stack: Vec<NfaId>,
    visited: Vec<NfaId>,
}

/// Epsilon closure of `set` in context `ctx`, into `out` (sorted, deduplicated).
/// Returns true if a `Match` state is in the closure.
pub(crate) fn closure(
    arena: &Arena,
    seeds: &[NfaId],
    ctx: &Ctx,
    out: &mut Vec<NfaId>,
    sc: &mut Scratch,
) -> bool {
    out.clear();
    if sc.seen.len() < arena.states.len() {
        sc.seen.resize(arena.states.len(), false);
    }
    sc.stack.clear();
    sc.stack.extend_from_slice(seeds);
    sc.visited.clear();
    let mut matched = false;
    while let Some(s) = sc.stack.pop() {
        if sc.seen[s as usize] {
            continue;
        }
        sc.seen[s as usize] = true;
        sc.visited.push(s);
        match &arena.states[s as usize] {
            NState::Split(alts) => sc.stack.extend(alts.iter().rev()),
            NState::Look { look, next } => {
                if ctx.holds(*look) {
                    sc.stack.push(*next);
                }
            }
            NState::Match => matched = true,
            NState::Range { .. } | NState::Ranges { .. } => out.push(s),
        }
    }
    for &v in &sc.visited {
        sc.seen[v as usize] = false;
    }
    out.sort_unstable();
    out.dedup();
    matched
}

/// Step the (closed) consuming states in `set` on byte `b`, into `out` (sorted, deduplicated).
pub(crate) fn step(arena: &Arena, set: &[NfaId], b: u8, out: &mut Vec<NfaId>) {
    out.clear();
    for &s in set {
        match &arena.states[s as usize] {
            NState::Range { lo, hi, next } if *lo <= b && b <= *hi => out.push(*next),
            NState::Ranges { ranges, next }
                if ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi) =>
            {
                out.push(*next)
            }
            _ => {}
        }
    }
    out.sort_unstable();
    out.dedup();
}

/// Record the byte-class boundaries this arena's consuming states need.
pub(crate) fn mark_boundaries(
    arena: &Arena,
    ids: impl Iterator<Item = NfaId>,
    split: &mut [bool; 256],
) {
    // split[b] = a class boundary lies between b and b+1
    let mut mark = |lo: u8, hi: u8| {
        if lo > 0 {
            split[lo as usize - 1] = true;
        }
        split[hi as usize] = true;
    };
    for id in ids {
        match &arena.states[id as usize] {
            NState::Range { lo, hi, .. } => mark(*lo, *hi),
            NState::Ranges { ranges, .. } => {
                for &(lo, hi) in ranges {
                    mark(lo, hi)
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// NFA states of `pattern` compiled alone.
    fn size(pattern: &str) -> usize {
        let mut arena = Arena::default();
        let deadline = Deadline::new(Instant::now(), Duration::from_secs(60));
        arena.compile(&parse(pattern).unwrap(), &deadline).unwrap();
        arena.states.len()
    }

    #[test]
    fn nested_repetitions_are_linear() {
        // Each `+` (and `*`) adds one loop state, never a copy of what it repeats: the NFA of
        // `\s?` repeated by n nested `+` grows by one state per `+` (issue 16: it doubled).
        // (Written with groups: `\s?+` is a possessive quantifier in PCRE, rejected.)
        let base = size(r"$^\s?\,,\-s,s#");
        for n in 1..=45 {
            let pattern = format!(r"$^{}\s?{}\,,\-s,s#", "(?:".repeat(n), ")+".repeat(n));
            assert_eq!(size(&pattern), base + n, "{pattern}");
        }
        let base = size("(?:a?b?)c");
        for n in 1..=40 {
            let pattern = format!("{}(?:a?b?){}c", "(?:".repeat(n), ")*".repeat(n));
            assert_eq!(size(&pattern), base + n, "{pattern}");
        }
    }

    #[test]
    fn counted_repetitions_compile_one_copy_each() {
        // States of one `ab`, without the `Match` state.
        let one = size("ab") - 1;
        // `x{3,}`: three copies, the last one looping; `x{2,4}`: two copies and two optional
        // ones (each behind a split).
        assert_eq!(size("(?:ab){3,}"), 1 + 3 * one + 1);
        assert_eq!(size("(?:ab){2,4}"), 1 + 4 * one + 2);
        assert_eq!(size("(?:ab)+"), 1 + one + 1);
    }

    #[test]
    fn look_reach_marks_states_that_reach_an_assertion() {
        let mut arena = Arena::default();
        let deadline = Deadline::new(Instant::now(), Duration::from_secs(60));
        let c = arena
            .compile(&parse(r"a(?:\bb)*c").unwrap(), &deadline)
            .unwrap();
        assert_eq!(arena.look_reach.len(), arena.states.len());
        // The start consumes `a` and reaches no assertion; after it, the loop's split does.
        assert!(!arena.look_reach[c.start as usize]);
        let NState::Range { next, .. } = arena.states[c.start as usize] else {
            panic!("{:?}", arena.states[c.start as usize]);
        };
        assert!(arena.look_reach[next as usize]);
    }

    #[test]
    fn the_deadline_stops_a_large_expansion() {
        let mut arena = Arena::default();
        let spent = Deadline::new(Instant::now(), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        let e = arena
            .compile(&parse("(?:a{100}){100}").unwrap(), &spent)
            .unwrap_err();
        assert!(e.is_time_limit_exceeded(), "{e}");
        let e = Arena::default()
            .compile(
                &parse("(?:(?:a{100}){100}){300}").unwrap(),
                &Deadline::new(Instant::now(), Duration::from_secs(600)),
            )
            .unwrap_err();
        assert!(e.is_size_limit_exceeded(), "{e}");
    }
}

/// A counted repetition (`{n}`, `{n,}`, `{n,m}`) of a pattern, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Counted {
    /// 1-based column (in characters) of the repeated item in the pattern as written.
    pub(crate) column: usize,
    /// The repeated item with its repetition, e.g. `[A-Za-z0-9]{40}`.
    pub(crate) text: String,
    /// The largest count it allows (`n` for `{n,}`).
    pub(crate) count: u32,
    /// An assertion (`\b`, `$`, ...) directly follows it.
    pub(crate) then_assertion: Option<String>,
}

/// The counted repetitions of `pattern`, largest count first (empty when it does not
/// parse): what the state-budget error names.
pub(crate) fn counted_repetitions(pattern: &str) -> Vec<Counted> {
    use regex_syntax::ast::{self, Ast, RepetitionKind, RepetitionRange};
    let Ok(tr) = crate::pcre::translate(pattern) else {
        return vec![];
    };
    let Ok(parsed) = ast::parse::Parser::new().parse(&tr.pattern) else {
        return vec![];
    };
    let orig = |off: usize| {
        tr.origin
            .get(off)
            .copied()
            .unwrap_or(pattern.len())
            .min(pattern.len())
    };
    let mut out = Vec::new();
    let mut stack = vec![&parsed];
    while let Some(a) = stack.pop() {
        match a {
            Ast::Repetition(r) => {
                if let RepetitionKind::Range(range) = &r.op.kind {
                    let count = match *range {
                        RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n) => n,
                        RepetitionRange::Bounded(_, m) => m,
                    };
                    let (s, e) = (orig(r.span.start.offset), orig(r.span.end.offset));
                    out.push(Counted {
                        column: pattern[..s].chars().count() + 1,
                        text: pattern.get(s..e).unwrap_or("").to_string(),
                        count,
                        then_assertion: None,
                    });
                }
                stack.push(&r.ast);
            }
            Ast::Group(g) => stack.push(&g.ast),
            Ast::Alternation(x) => stack.extend(x.asts.iter()),
            Ast::Concat(c) => {
                for (i, item) in c.asts.iter().enumerate() {
                    if let (Ast::Repetition(r), Some(Ast::Assertion(next))) =
                        (item, c.asts.get(i + 1))
                    {
                        if matches!(r.op.kind, RepetitionKind::Range(_)) {
                            let (s, e) = (orig(next.span.start.offset), orig(next.span.end.offset));
                            let col = pattern[..orig(r.span.start.offset)].chars().count() + 1;
                            let text = pattern.get(s..e).unwrap_or("").to_string();
                            // Recorded on the entry pushed when `item` is visited below.
                            out.push(Counted {
                                column: col,
                                text: String::new(),
                                count: 0,
                                then_assertion: Some(text),
                            });
                        }
                    }
                }
                stack.extend(c.asts.iter());
            }
            _ => {}
        }
    }
    // Fold the assertion markers into their repetitions.
    let marks: Vec<(usize, String)> = out
        .iter()
        .filter(|c| c.text.is_empty())
        .filter_map(|c| c.then_assertion.clone().map(|t| (c.column, t)))
        .collect();
    out.retain(|c| !c.text.is_empty());
    for c in &mut out {
        if let Some((_, t)) = marks.iter().find(|(col, _)| *col == c.column) {
            c.then_assertion = Some(t.clone());
        }
    }
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.column.cmp(&b.column)));
    out
}

#[cfg(test)]
mod counted_tests {
    use super::*;

    #[test]
    fn names_counted_repetitions_with_columns() {
        let c = counted_repetitions(r"(?i)softlayer.{0,50}[a-z0-9]{64}");
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].column, c[0].text.as_str(), c[0].count),
            (21, "[a-z0-9]{64}", 64)
        );
        assert_eq!(
            (c[1].column, c[1].text.as_str(), c[1].count),
            (14, ".{0,50}", 50)
        );
        let c = counted_repetitions(r"\bAIzaSy[0-9A-Za-z-_]{33}\b");
        assert_eq!(c[0].then_assertion.as_deref(), Some(r"\b"));
        assert_eq!(c[0].column, 9);
        // PCRE literal braces are not repetitions; columns count characters as written.
        assert!(counted_repetitions(r"{%\s+autoescape").is_empty());
        assert!(counted_repetitions("a+b*").is_empty());
    }
}
