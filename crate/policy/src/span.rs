//! The independent regex engines: each rule's regexes compiled with `regex-automata`'s own
//! engines (anchored lazy DFAs for the positive patterns, meta regexes for the exclusions),
//! without any automaton of this crate. [`SpanFinder`] locates where findings start (for the
//! DFA checker) and finds them outright (for [`RegexChecker`](crate::RegexChecker)).

use regex_automata::hybrid::dfa as lazy;
use regex_automata::nfa::thompson;
use regex_automata::util::{start, syntax};
use regex_automata::{meta, Anchored, Input, MatchKind};

use crate::error::{CompileError, ErrorKind};
use crate::lexer::Scope;
use crate::module::RuleIndex;
use crate::pack::RuleScope;

/// Size limit of each of the regex checker's NFAs and lazy-DFA caches, in bytes.
const SIZE_LIMIT: usize = 32 << 20;

/// Meta regexes here only answer "where does the first match start" and "is there a match":
/// the lazy DFA and the PikeVM suffice, and skipping the eagerly built engines (full DFA,
/// one-pass DFA, backtracker) keeps policy compilation fast.
fn meta_config() -> meta::Config {
    meta::Config::new()
        .dfa(false)
        .onepass(false)
        .backtrack(false)
        .which_captures(thompson::WhichCaptures::Implicit)
}

fn syntax_config() -> syntax::Config {
    syntax::Config::new()
        .unicode(false)
        .utf8(false)
        .multi_line(true)
}

#[derive(Debug)]
struct Alt {
    /// The positive pattern, anchored, all match ends (states built lazily, on use).
    positive: lazy::DFA,
    cache: std::sync::Mutex<lazy::Cache>,
    /// The positive pattern unanchored, only to skip to the first possible start: built on
    /// first use (`None` if it cannot be built, and then no position is skipped).
    search: std::sync::OnceLock<Option<meta::Regex>>,
    pattern: String,
    not: Vec<meta::Regex>,
}

/// Compiled regexes of every rule, used to find match spans.
#[derive(Debug)]
pub(crate) struct SpanFinder {
    rules: Vec<(RuleScope, Vec<Alt>)>,
}

impl SpanFinder {
    /// Compile the regexes of `rules` (with size limits, so a pathological pattern fails
    /// with an error naming its rule instead of exhausting memory).
    pub(crate) fn build(rules_in: &[crate::pack::Rule]) -> Result<SpanFinder, CompileError> {
        let mut rules = Vec::new();
        // The patterns as `regex-syntax` reads them (the compiler has already rejected any
        // that the PCRE translation refuses, naming the rule and column).
        let tr = |p: &str| {
            crate::pcre::translate(p)
                .map(|t| t.pattern)
                .unwrap_or_else(|_| p.to_string())
        };
        for r in rules_in {
            let mut alts = Vec::new();
            for mut a in r.pattern.alternatives() {
                a.regex = tr(&a.regex);
                for n in &mut a.not {
                    *n = tr(n);
                }
                let positive = lazy::Builder::new()
                    .syntax(syntax_config())
                    .thompson(
                        thompson::Config::new()
                            .utf8(false)
                            .nfa_size_limit(Some(SIZE_LIMIT)),
                    )
                    .configure(
                        lazy::Config::new()
                            .match_kind(MatchKind::All)
                            .starts_for_each_pattern(false)
                            .unicode_word_boundary(false)
                            .cache_capacity(SIZE_LIMIT),
                    )
                    .build(&a.regex)
                    .map_err(|e| {
                        CompileError::new(ErrorKind::SizeLimit, format!("the independent regex checker cannot build this pattern within {SIZE_LIMIT} bytes: {e}"))
                            .for_rule(&r.id)
                            .in_file(&r.source)
                    })?;
                let cache = std::sync::Mutex::new(positive.create_cache());
                let mut not = Vec::new();
                for n in &a.not {
                    not.push(
                        meta::Regex::builder()
                            .configure(meta_config())
                            .syntax(syntax_config())
                            .build(n)
                            .map_err(|e| {
                                CompileError::new(
                                    ErrorKind::BadRegex,
                                    format!("regex checker: {e}"),
                                )
                                .for_rule(&r.id)
                            })?,
                    );
                }
                alts.push(Alt {
                    positive,
                    cache,
                    search: std::sync::OnceLock::new(),
                    pattern: a.regex.clone(),
                    not,
                });
            }
            rules.push((r.scope, alts));
        }
        Ok(SpanFinder { rules })
    }

    /// Ends `e ≤ bound` of anchored matches of `alt` starting at `s`, ascending, calling `f`
    /// until it returns true. Returns whether `f` returned true.
    fn ends(
        alt: &Alt,
        text: &[u8],
        s: usize,
        bound: usize,
        mut f: impl FnMut(usize) -> bool,
    ) -> bool {
        let dfa = &alt.positive;
        let mut guard = alt.cache.lock().unwrap_or_else(|p| p.into_inner());
        let cache = &mut *guard;
        let cfg = start::Config::new()
            .anchored(Anchored::Yes)
            .look_behind(if s > 0 { Some(text[s - 1]) } else { None });
        // The cache never gives up (no minimum clear count), so these cannot fail; a
        // failure would only mean "no match found here".
        let Ok(mut sid) = dfa.start_state(cache, &cfg) else {
            return false;
        };
        let mut i = s;
        while i < text.len() {
            sid = match dfa.next_state(cache, sid, text[i]) {
                Ok(n) => n,
                Err(_) => return false,
            };
            if sid.is_match() {
                if i > bound {
                    return false;
                }
                if f(i) {
                    return true;
                }
            }
            if sid.is_dead() || i > bound {
                return false;
            }
            i += 1;
        }
        let Ok(sid) = dfa.next_eoi_state(cache, sid) else {
            return false;
        };
        if sid.is_match() && text.len() <= bound {
            return f(text.len());
        }
        false
    }

    /// A lower bound on the start of any match inside `[p, end)`: the leftmost match start
    /// of the unanchored patterns (no match starts earlier). `None` if none matches.
    fn first_start(alts: &[Alt], text: &[u8], p: usize, end: usize) -> Option<usize> {
        alts.iter()
            .filter_map(|a| {
                let search = a.search.get_or_init(|| {
                    meta::Regex::builder()
                        .configure(meta_config())
                        .syntax(syntax_config())
                        .build(&a.pattern)
                        .ok()
                });
                match search {
                    Some(re) => re.find(Input::new(text).range(p..end)).map(|m| m.start()),
                    None => Some(p),
                }
            })
            .min()
    }

    fn valid(alt: &Alt, text: &[u8], s: usize, e: usize) -> bool {
        !alt.not
            .iter()
            .any(|re| re.is_match(Input::new(text).range(s..e)))
    }

    /// The smallest `s` in `[p, e)` in the rule's scope with a match `[s, e)`. `view` is
    /// the code view of `text` ([`crate::scan`]), which `scope: code` rules read instead.
    pub(crate) fn start_of(
        &self,
        r: RuleIndex,
        text: &[u8],
        view: &[u8],
        scopes: &[Scope],
        p: usize,
        e: usize,
    ) -> Option<usize> {
        let (scope, alts) = &self.rules[r as usize];
        let text = if *scope == RuleScope::Code {
            view
        } else {
            text
        };
        let lo = Self::first_start(alts, text, p, e)?;
        (lo..e).find(|&s| {
            scope.admits(scopes[s])
                && alts.iter().any(|a| {
                    Self::ends(a, text, s, e, |end| end == e && Self::valid(a, text, s, e))
                })
        })
    }

    /// The earliest-ending match with start ≥ p: (start, end). `view` as for
    /// [`SpanFinder::start_of`].
    pub(crate) fn earliest(
        &self,
        r: RuleIndex,
        text: &[u8],
        view: &[u8],
        scopes: &[Scope],
        p: usize,
    ) -> Option<(usize, usize)> {
        let (scope, alts) = &self.rules[r as usize];
        let text = if *scope == RuleScope::Code {
            view
        } else {
            text
        };
        let mut best: Option<(usize, usize)> = None;
        let lo = Self::first_start(alts, text, p, text.len())?;
        #[allow(clippy::needless_range_loop)] // `s` is a position in `text` and `scopes`
        for s in lo..text.len() {
            if let Some((_, be)) = best {
                if s >= be {
                    break;
                }
            }
            if !scope.admits(scopes[s]) {
                continue;
            }
            for a in alts {
                let bound = best.map(|(_, e)| e.saturating_sub(1)).unwrap_or(usize::MAX);
                let mut found = None;
                Self::ends(a, text, s, bound, |e| {
                    if Self::valid(a, text, s, e) {
                        found = Some(e);
                        true
                    } else {
                        false
                    }
                });
                if let Some(e) = found {
                    if best.is_none_or(|(_, be)| e < be) {
                        best = Some((s, e));
                    }
                }
            }
        }
        best
    }
}
