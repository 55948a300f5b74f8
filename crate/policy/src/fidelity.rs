//! Where a rule means something else in Ward than in Semgrep: the load warnings of
//! [`crate::Rule::warnings`].
//!
//! `pattern-not-regex`: Semgrep (semgrep-core's `Match_rules.difference_ranges`, kind
//! `Regexp`) drops a finding when a match of the exclusion lies inside it **or** it lies
//! inside a match of the exclusion; Ward drops it only in the first case (the exclusion is
//! searched in the finding's own text, which a guard working left to right can enforce
//! without looking ahead). The meanings differ exactly for findings that lie strictly inside
//! a longer match of the exclusion. A rule is warned about unless that is shown impossible:
//! no text matched by the positive regex is a proper substring of a text matched by the
//! exclusion (decided on the two byte NFAs with look-around assertions read as always true,
//! so the test errs towards warning).

use std::collections::HashSet;
use std::time::Duration;

use regex_syntax::hir::Hir;

use crate::clock::Instant;
use crate::error::Deadline;
use crate::nfa::{self, Arena, NState, NfaId};
use crate::pack::Pattern;

/// Most product states the substring test explores before it gives up (and warns).
const MAX_PAIRS: usize = 400_000;

/// The warnings for `pattern`'s `pattern-not-regex` exclusions (empty when every
/// exclusion means in Ward what it means in Semgrep). Patterns that do not parse get no
/// warning here: compiling them reports the error.
pub(crate) fn not_regex_warnings(pattern: &Pattern) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for alt in pattern.alternatives() {
        let Ok(p) = nfa::parse(&alt.regex) else {
            continue;
        };
        for n in &alt.not {
            let Ok(nh) = nfa::parse(n) else {
                continue;
            };
            if let Some(w) = difference(&alt.regex, &p, n, &nh) {
                if !out.contains(&w) {
                    out.push(w);
                }
            }
        }
    }
    out
}

/// The warning for one positive regex `pat` and one exclusion `not`, or `None` when they
/// mean the same in Ward and in Semgrep.
fn difference(pat: &str, p: &Hir, not: &str, n: &Hir) -> Option<String> {
    let (pmin, pmax) = (p.properties().minimum_len()?, p.properties().maximum_len());
    let (nmin, nmax) = (n.properties().minimum_len()?, n.properties().maximum_len());
    // A finding can lie strictly inside an exclusion match only if the exclusion can match
    // more bytes than the finding's shortest.
    if nmax.is_some_and(|m| m <= pmin) {
        return None;
    }
    if !proper_substring_possible(p, n) {
        return None;
    }
    if pmax.is_some_and(|m| nmin > m) {
        return Some(format!(
            "pattern-not-regex `{not}` excludes nothing in Ward: its matches ({nmin} bytes or more) never fit inside a finding of `{pat}` (at most {} bytes), while Semgrep also drops a finding that lies inside a match of it; to keep Semgrep's meaning, make the positive regex span the exclusion's text",
            pmax.unwrap_or(0)
        ));
    }
    Some(format!(
        "pattern-not-regex `{not}`: Semgrep also drops a finding of `{pat}` that lies inside a longer match of it; Ward drops a finding only when a match of it lies inside the finding's text, so it reports such findings and Semgrep does not; to keep Semgrep's meaning, make the positive regex span the exclusion's text"
    ))
}

/// Whether some text matched by `p` can be a proper substring of a text matched by `n`
/// (assertions read as always true; `true` as well when the test gives up).
fn proper_substring_possible(p: &Hir, n: &Hir) -> bool {
    let deadline = Deadline::new(Instant::now(), Duration::from_secs(2));
    let mut arena = Arena::default();
    let Ok(pc) = arena.compile(p, &deadline) else {
        return true;
    };
    let n0 = arena.states.len() as NfaId;
    let Ok(nc) = arena.compile(n, &deadline) else {
        return true;
    };
    let n1 = arena.states.len() as NfaId;
    let st = &arena.states;
    let succ = |s: NfaId| -> Vec<(NfaId, bool)> {
        // (successor, whether the move reads a byte)
        match &st[s as usize] {
            NState::Range { next, .. } | NState::Ranges { next, .. } => vec![(*next, true)],
            NState::Split(alts) => alts.iter().map(|&a| (a, false)).collect(),
            NState::Look { next, .. } => vec![(*next, false)],
            NState::Match => vec![],
        }
    };
    let idx = |s: NfaId| (s - n0) as usize;
    let len = (n1 - n0) as usize;
    // N states reachable from N's start: reading anything, and reading at least one byte.
    let mut any = vec![false; len];
    let mut some = vec![false; len];
    let mut stack = vec![(nc.start, false)];
    while let Some((s, read)) = stack.pop() {
        let seen = if read { &mut some } else { &mut any };
        if seen[idx(s)] {
            continue;
        }
        seen[idx(s)] = true;
        for (t, b) in succ(s) {
            stack.push((t, read || b));
        }
    }
    for i in 0..len {
        any[i] |= some[i];
    }
    // N states from which N's Match is reachable: by any path, by one that reads a byte.
    let mut co_any = vec![false; len];
    let mut co_some = vec![false; len];
    let mut changed = true;
    while changed {
        changed = false;
        for i in (0..len).rev() {
            let s = n0 + i as NfaId;
            let (a, b) = match &st[s as usize] {
                NState::Match => (true, false),
                _ => succ(s).iter().fold((false, false), |(a, b), &(t, read)| {
                    let (ta, tb) = (co_any[idx(t)], co_some[idx(t)]);
                    (a || ta, b || tb || (read && ta))
                }),
            };
            if (a && !co_any[i]) || (b && !co_some[i]) {
                co_any[i] |= a;
                co_some[i] |= b;
                changed = true;
            }
        }
    }
    let ranges = |s: NfaId| -> Vec<(u8, u8)> {
        match &st[s as usize] {
            NState::Range { lo, hi, .. } => vec![(*lo, *hi)],
            NState::Ranges { ranges, .. } => ranges.clone(),
            _ => vec![],
        }
    };
    let meet = |a: &[(u8, u8)], b: &[(u8, u8)]| {
        a.iter()
            .any(|&(l1, h1)| b.iter().any(|&(l2, h2)| l1.max(l2) <= h1.min(h2)))
    };
    // Lock-step product of P (from its start) and N (from any state N can be in), with a
    // flag: N has read a byte before P started.
    let mut seen: HashSet<(NfaId, NfaId, bool)> = HashSet::new();
    let mut stack: Vec<(NfaId, NfaId, bool)> = (0..len)
        .filter(|&i| any[i])
        .map(|i| (pc.start, n0 + i as NfaId, some[i]))
        .collect();
    while let Some(node @ (p, n, before)) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        if seen.len() > MAX_PAIRS {
            return true;
        }
        match &st[p as usize] {
            NState::Match => {
                if (before && co_any[idx(n)]) || co_some[idx(n)] {
                    return true;
                }
                continue;
            }
            NState::Split(_) | NState::Look { .. } => {
                for (t, _) in succ(p) {
                    stack.push((t, n, before));
                }
                continue;
            }
            _ => {}
        }
        match &st[n as usize] {
            NState::Split(_) | NState::Look { .. } => {
                for (t, _) in succ(n) {
                    stack.push((p, t, before));
                }
            }
            NState::Match => {}
            _ => {
                if meet(&ranges(p), &ranges(n)) {
                    let (pn, nn) = (succ(p)[0].0, succ(n)[0].0);
                    stack.push((pn, nn, before));
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warn(pat: &str, not: &str) -> Vec<String> {
        not_regex_warnings(&Pattern::Patterns {
            positive: Box::new(Pattern::Regex(pat.into())),
            not: vec![not.into()],
        })
    }

    #[test]
    fn short_exclusions_mean_the_same() {
        // No exclusion match is longer than the shortest finding.
        assert!(warn(
            r"(?i)aws_secret\s*=\s*[A-Za-z0-9/+=]{40}",
            "(?i)example|sample|test"
        )
        .is_empty());
        assert!(warn(r"hashlib\.md5\([^)]*\)", r"\bFalse\b").is_empty());
        assert!(warn("a", "b").is_empty());
    }

    #[test]
    fn unbounded_exclusions_that_cannot_contain_a_finding_mean_the_same() {
        // `extractall(` never occurs inside `filter = ...`, however long.
        assert!(warn(r"\.extractall\([^)]*\)", r"\bfilter\s*=").is_empty());
        // A finding has two colons; an exclusion match only one.
        assert!(warn(r"\w+://[^:/]+:[^@]+@", r":[^:@]*(?i:pass)[^:@]*@").is_empty());
    }

    #[test]
    fn a_finding_inside_a_longer_exclusion_is_warned_about() {
        let w = warn(r"[0-9]+:AA[0-9A-Za-z\-_]{33}", r"go\.mod.*");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("`go\\.mod.*`") && w[0].contains("inside a longer match"),
            "{w:?}"
        );
        let w = warn(r"\bAKC[a-zA-Z0-9]{10,}", r"(?s)---BEGIN.*---\z");
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn an_exclusion_longer_than_any_finding_excludes_nothing() {
        let w = warn(
            r"\bAIzaSy[0-9A-Za-z_-]{33}\b",
            r"\bAIzaSy[0-9A-Za-z_-]{33}\b[=]",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("excludes nothing in Ward") && w[0].contains("at most 39 bytes"),
            "{w:?}"
        );
    }

    #[test]
    fn equal_matches_are_not_a_difference() {
        // The only exclusion match that contains a finding is the finding itself, which
        // both drop.
        assert!(warn("abc", "abc|x").is_empty());
        assert_eq!(warn("abc", "abcd|x").len(), 1);
        assert_eq!(warn("abc", "xabc").len(), 1);
    }

    #[test]
    fn rules_without_exclusions_have_no_warning() {
        assert!(not_regex_warnings(&Pattern::Regex("eval\\(".into())).is_empty());
    }
}
