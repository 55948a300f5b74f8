//! Exhaustive cross-check on tiny alphabets: random policies, vocabularies and canvases;
//! every completion is enumerated and checked by the policy's independent regex checker,
//! and the guard's masks must be exact.
//!
//! `WARD_PROPTEST_CASES=N` sets the number of random cases (default: a few hundred).

mod common;

use common::*;
use ward_guard::{Canvas, Guard, GuardError, Slot};
use ward_policy::CompiledPolicy;

const ALPHABET: &[u8] = b"ab(#\n\" ";

fn random_regex(rng: &mut Rng) -> String {
    const ATOMS: &[&str] = &[
        "a", "b", "\\(", "[ab]", "a+", "b?", "#", " ", "\\s*", "[^(]",
    ];
    const SOLID: &[&str] = &["a", "b", "\\(", "[ab]", "a+", "#", "[^(]"];
    let n = 1 + rng.below(3);
    let mut s = String::new();
    if rng.chance(0.2) {
        s.push_str("\\b");
    }
    let solid_at = rng.below(n);
    for k in 0..n {
        let atom = if k == solid_at {
            SOLID[rng.below(SOLID.len())]
        } else {
            ATOMS[rng.below(ATOMS.len())]
        };
        s.push_str(atom);
    }
    if rng.chance(0.15) {
        s.push_str(if rng.chance(0.5) { "\\b" } else { "$" });
    }
    s
}

fn random_policy(rng: &mut Rng) -> (CompiledPolicy, Vec<(String, String, String)>) {
    let nrules = 1 + rng.below(3);
    let rules: Vec<(String, String, String)> = (0..nrules)
        .map(|k| {
            let sev = if rng.chance(0.8) { "ERROR" } else { "WARNING" };
            (format!("r{k}"), sev.to_string(), random_regex(rng))
        })
        .collect();
    let refs: Vec<(&str, &str, &str)> = rules
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    (compile(&refs), rules)
}

fn random_vocab(rng: &mut Rng) -> Vec<Vec<u8>> {
    let n = 3 + rng.below(4);
    let mut v: Vec<Vec<u8>> = Vec::new();
    while v.len() < n {
        let len = 1 + rng.below(3);
        let t: Vec<u8> = (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len())])
            .collect();
        if !v.contains(&t) {
            v.push(t);
        }
    }
    v
}

/// Per module: is the text clean for that module's rules (by the regex checker)?
fn clean_per_module(
    policy: &CompiledPolicy,
    rc: &ward_policy::RegexChecker<'_>,
    text: &[u8],
) -> Vec<bool> {
    let findings = rc.check(text);
    policy
        .modules()
        .iter()
        .map(|m| !findings.iter().any(|f| m.rules().contains(&f.rule)))
        .collect()
}

struct Brute {
    holes: Vec<usize>,
    /// [hole index][token][module] → some completion with that token is clean for the module.
    per_module: Vec<Vec<Vec<bool>>>,
    /// [hole index][token] → some completion with that token is clean for every module.
    joint: Vec<Vec<bool>>,
    any_clean_per_module: Vec<bool>,
}

fn brute(
    policy: &CompiledPolicy,
    g_tokens: &[Option<u32>],
    vocab: &ward_guard::Vocab,
    end_in_holes: bool,
) -> Brute {
    let rc = ward_policy::RegexChecker::new(policy);
    let holes: Vec<usize> = (0..g_tokens.len())
        .filter(|&i| g_tokens[i].is_none())
        .collect();
    let v = vocab.len();
    let nm = policy.modules().len();
    let mut per_module = vec![vec![vec![false; nm]; v]; holes.len()];
    let mut joint = vec![vec![false; v]; holes.len()];
    let mut any_clean = vec![false; nm];
    let total = v.pow(holes.len() as u32);
    let mut toks: Vec<u32> = g_tokens.iter().map(|t| t.unwrap_or(0)).collect();
    for code in 0..total {
        let mut c = code;
        for &h in &holes {
            toks[h] = (c % v) as u32;
            c /= v;
        }
        if !end_in_holes {
            // The text may not end at a hole: the first end token must be a fixed one.
            let first_end = toks
                .iter()
                .position(|&t| vocab.kind(t) == ward_guard::TokenKind::End);
            if first_end.is_some_and(|p| g_tokens[p].is_none()) {
                continue;
            }
        }
        let text = vocab.decode(&toks);
        let clean = clean_per_module(policy, &rc, &text);
        let all = clean.iter().all(|&x| x);
        for (k, &h) in holes.iter().enumerate() {
            let t = toks[h] as usize;
            for m in 0..nm {
                per_module[k][t][m] |= clean[m];
            }
            joint[k][t] |= all;
        }
        for m in 0..nm {
            any_clean[m] |= clean[m];
        }
    }
    Brute {
        holes,
        per_module,
        joint,
        any_clean_per_module: any_clean,
    }
}

fn check_exact(g: &Guard, policy: &CompiledPolicy, ctx: &str, end_in_holes: bool) {
    let vocab = g.token_policy().vocab();
    let b = brute(policy, &g.tokens(), vocab, end_in_holes);
    for (k, &h) in b.holes.iter().enumerate() {
        let mask = g.mask_unchecked(h).unwrap();
        for t in 0..vocab.len() as u32 {
            let expect = b.per_module[k][t as usize].iter().all(|&x| x);
            let got = g.allows(h, t);
            assert_eq!(got, expect, "allows({h}, {t}) on {}\n{ctx}", describe(g));
            assert_eq!(
                mask.contains(t),
                got,
                "mask vs allows at ({h}, {t}) on {}\n{ctx}",
                describe(g)
            );
            if b.joint[k][t as usize] {
                assert!(got, "jointly safe token refused at ({h}, {t})\n{ctx}");
            }
            let config_refusal = !end_in_holes && vocab.kind(t) == ward_guard::TokenKind::End;
            if !got && !config_refusal {
                assert!(
                    !g.why_forbidden(h, t).is_empty(),
                    "no blame for ({h}, {t})\n{ctx}"
                );
            }
        }
    }
}

#[test]
fn masks_are_exact_on_random_tiny_cases() {
    let cases = cases(250);
    let mut rng = Rng::new(0x5eed);
    let (mut built, mut errors, mut commits, mut conflicts) = (0, 0, 0, 0);
    for case in 0..cases {
        let (policy, rules) = random_policy(&mut rng);
        let toks = random_vocab(&mut rng);
        let with_end = rng.chance(0.4);
        let with_empty = rng.chance(0.3);
        let vocab = vocab_with_specials(&toks, with_end, with_empty);
        let v = vocab.len();
        let n = 1 + rng.below(5);
        let slots: Vec<Slot> = (0..n)
            .map(|_| {
                if rng.chance(0.6) {
                    Slot::Hole
                } else {
                    Slot::Fixed(rng.below(v) as u32)
                }
            })
            .collect();
        let ctx = format!("case {case}: rules {rules:?}\nvocab {toks:?} end={with_end} empty={with_empty}\nslots {slots:?}");
        let tp = token_policy(policy.clone(), vocab.clone());
        let canvas = Canvas::from_slots(slots.clone());
        // Half of the cases step every set through the cached partitions.
        let end_in_holes = case % 3 != 0;
        let cfg = ward_guard::GuardConfig {
            small_set: if case % 2 == 0 { 0 } else { 24 },
            end_in_holes,
            ..Default::default()
        };
        let g = Guard::with_config(tp, &canvas, &cfg);
        let fixed: Vec<Option<u32>> = slots.iter().map(|s| s.token()).collect();
        let b = brute(&policy, &fixed, &vocab, end_in_holes);
        let mut g = match g {
            Err(e) => {
                errors += 1;
                assert!(
                    matches!(
                        e,
                        GuardError::CanvasViolates { .. } | GuardError::NoSafeCompletion { .. }
                    ),
                    "{e:?}\n{ctx}"
                );
                assert!(
                    b.any_clean_per_module.iter().any(|&c| !c),
                    "guard refused a completable canvas: {e}\n{ctx}"
                );
                continue;
            }
            Ok(g) => g,
        };
        assert!(
            b.any_clean_per_module.iter().all(|&c| c),
            "guard accepted a canvas without completion\n{ctx}"
        );
        built += 1;
        check_exact(&g, &policy, &ctx, end_in_holes);
        // Random commit order, re-checking exactness after every commit, and comparing the
        // incremental state with a guard built from scratch.
        loop {
            let holes = g.holes();
            if holes.is_empty() {
                break;
            }
            let h = holes[rng.below(holes.len())];
            let mask = match g.mask(h) {
                Ok(m) => m,
                Err(GuardError::Conflict(_)) => {
                    conflicts += 1;
                    break;
                }
                Err(e) => panic!("{e}\n{ctx}"),
            };
            // A forbidden token is refused, and the guard is unchanged.
            if let Some(bad) = mask.iter_disallowed().next() {
                let before = g.tokens();
                assert!(matches!(
                    g.commit(h, bad),
                    Err(GuardError::Forbidden { .. })
                ));
                assert_eq!(before, g.tokens());
            }
            let allowed: Vec<u32> = mask.iter_allowed().collect();
            let t = allowed[rng.below(allowed.len())];
            g.commit(h, t).unwrap_or_else(|e| panic!("{e}\n{ctx}"));
            commits += 1;
            // Some cases bring the sets the hole queries read up to date at once (what the
            // sampler's second thread does during a forward pass) before the queries: the
            // answers must not change.
            if case % 4 == 1 {
                g.settle();
            }
            check_exact(&g, &policy, &ctx, end_in_holes);
            let fresh_slots: Vec<Slot> = g
                .tokens()
                .iter()
                .map(|t| t.map(Slot::Fixed).unwrap_or(Slot::Hole))
                .collect();
            let fresh = Guard::with_config(
                g.token_policy().clone(),
                &Canvas::from_slots(fresh_slots),
                &ward_guard::GuardConfig {
                    end_in_holes,
                    ..Default::default()
                },
            )
            .unwrap();
            for h in g.holes() {
                assert_eq!(
                    fresh.mask_unchecked(h).unwrap(),
                    g.mask_unchecked(h).unwrap(),
                    "incremental != fresh\n{ctx}"
                );
            }
        }
        if g.is_complete() {
            let text = g.text();
            let f = enforced_findings(&policy, &text);
            assert!(
                f.is_empty(),
                "complete canvas violates: {f:?} in {:?}\n{ctx}",
                String::from_utf8_lossy(&text)
            );
        }
    }
    eprintln!("exhaustive: {cases} cases, {built} guards, {errors} refused canvases, {commits} commits, {conflicts} conflicts");
    assert!(built > cases / 4);
}

#[test]
fn snapshot_restore_and_uncommit() {
    let policy = compile(&[("no-ab", "ERROR", "ab")]);
    let vocab = vocab_with_specials(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], false, false);
    let tp = token_policy(policy, vocab);
    let mut g = Guard::new(tp, &Canvas::new().holes(3)).unwrap();
    let snap = g.snapshot();
    g.commit(1, 0).unwrap(); // "a" at 1
    assert!(!g.allows(2, 1));
    assert!(!g.allows(0, 0) || g.allows(0, 0));
    let blame = g.why_forbidden(2, 1);
    assert_eq!(blame.len(), 1);
    assert_eq!(blame[0].rule_id, "no-ab");
    assert_eq!(g.constraining_commits(2), vec![1]);
    g.restore(&snap).unwrap();
    assert!(g.allows(2, 1));
    g.commit(1, 0).unwrap();
    g.uncommit(1).unwrap();
    assert!(g.allows(2, 1));
    assert!(matches!(
        g.uncommit(1),
        Err(GuardError::NotCommitted { position: 1 })
    ));
    let other = Guard::new(g.token_policy().clone(), &Canvas::new().holes(3)).unwrap();
    assert_eq!(
        g.restore(&other.snapshot()),
        Err(GuardError::SnapshotMismatch)
    );
}

#[test]
fn error_cases() {
    let policy = compile(&[("no-ab", "ERROR", "ab"), ("warn-c", "WARNING", "c")]);
    let vocab = vocab_with_specials(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], true, false);
    let tp = token_policy(policy, vocab);
    // Empty canvas.
    assert_eq!(
        Guard::new(tp.clone(), &Canvas::new()).err(),
        Some(GuardError::EmptyCanvas)
    );
    // Too long.
    let cfg = ward_guard::GuardConfig {
        max_len: 4,
        ..Default::default()
    };
    assert_eq!(
        Guard::with_config(tp.clone(), &Canvas::new().holes(5), &cfg).err(),
        Some(GuardError::CanvasTooLong { len: 5, max: 4 })
    );
    // Token outside the vocabulary.
    assert!(matches!(
        Guard::new(tp.clone(), &Canvas::infill(&[9], 1, &[]))
            .err()
            .unwrap(),
        GuardError::TokenOutOfRange {
            position: 0,
            token: 9,
            ..
        }
    ));
    // The prompt violates: rule and span.
    match Guard::new(tp.clone(), &Canvas::infill(&[2, 0, 1, 2], 2, &[]))
        .err()
        .unwrap()
    {
        GuardError::CanvasViolates { rule_id, span, .. } => {
            assert_eq!(rule_id, "no-ab");
            assert!(
                span.start >= 1 && span.start < 3 && span.end == 3,
                "{span:?}"
            );
        }
        e => panic!("{e:?}"),
    }
    // A WARNING rule in the prompt is fine.
    assert!(Guard::new(tp.clone(), &Canvas::infill(&[2], 1, &[])).is_ok());
    // The suffix violates whatever fills the hole (no end-of-text token in this vocabulary).
    let tp_no_end = token_policy(
        compile(&[("no-ab", "ERROR", "ab")]),
        vocab_with_specials(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], false, false),
    );
    match Guard::new(tp_no_end, &Canvas::infill(&[], 1, &[0, 1]))
        .err()
        .unwrap()
    {
        GuardError::NoSafeCompletion {
            rule_ids, position, ..
        } => {
            assert_eq!(rule_ids, vec!["no-ab".to_string()]);
            assert_eq!(position, Some(2));
        }
        e => panic!("{e:?}"),
    }
    // But an end-of-text token before the suffix makes it text-free: fine.
    let g = Guard::new(tp.clone(), &Canvas::infill(&[3], 1, &[0, 1])).unwrap();
    assert!(g.allows(1, 0));
    // Misuse of positions.
    let mut g = Guard::new(tp, &Canvas::infill(&[0], 1, &[])).unwrap();
    assert_eq!(g.commit(0, 0), Err(GuardError::NotAHole { position: 0 }));
    assert!(matches!(
        g.commit(7, 0),
        Err(GuardError::PositionOutOfRange { .. })
    ));
    assert!(matches!(
        g.commit(1, 77),
        Err(GuardError::TokenOutOfRange { .. })
    ));
    match g.commit(1, 1) {
        Err(GuardError::Forbidden { blame, .. }) => assert_eq!(blame[0].rule_id, "no-ab"),
        r => panic!("{r:?}"),
    }
    assert!(!g.allows(1, 1));
    assert!(!g.allows(0, 1));
}

#[test]
fn block_wise_retire_keeps_masks() {
    let policy = compile(&[("no-aab", "ERROR", "aab")]);
    let vocab = vocab_with_specials(&[b"a".to_vec(), b"b".to_vec()], false, false);
    let tp = token_policy(policy, vocab);
    let mut g = Guard::new(tp, &Canvas::new().holes(6)).unwrap();
    g.commit(0, 0).unwrap();
    g.commit(1, 0).unwrap();
    assert!(matches!(
        g.retire_prefix(3),
        Err(GuardError::BlockNotFinished { hole: 2 })
    ));
    g.retire_prefix(2).unwrap();
    assert_eq!(g.base(), 2);
    assert!(
        !g.allows(2, 1),
        "aa + b must stay forbidden after retiring the block"
    );
    assert!(matches!(
        g.commit(1, 0),
        Err(GuardError::PositionOutOfRange { .. })
    ));
    g.commit(2, 0).unwrap();
    assert_eq!(g.text(), b"aaa");
}

#[test]
fn warning_only_policy_enforces_nothing_and_guard_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Guard>();
    assert_send_sync::<ward_guard::TokenPolicy>();
    let policy = compile(&[("warn-ab", "WARNING", "ab")]);
    let vocab = vocab_with_specials(&[b"a".to_vec(), b"b".to_vec()], true, true);
    let tp = token_policy(policy, vocab);
    assert_eq!(tp.num_modules(), 0);
    let mut g = Guard::new(tp, &Canvas::new().holes(2)).unwrap();
    assert_eq!(g.mask(0).unwrap().count_allowed(), 4);
    g.commit(0, 0).unwrap();
    g.commit(1, 1).unwrap();
    assert_eq!(g.text(), b"ab");
    let mut stats = ward_guard::BlockedMass::default();
    assert!(matches!(
        g.record_blocked(0, &[0.5; 4], &mut stats),
        Err(GuardError::NotAHole { .. })
    ));
}

#[test]
fn blocked_mass_is_attributed() {
    let policy = compile(&[("no-ab", "ERROR", "ab")]);
    let vocab = vocab_with_specials(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], false, false);
    let tp = token_policy(policy, vocab);
    let mut g = Guard::new(tp.clone(), &Canvas::new().holes(2)).unwrap();
    g.commit(0, 0).unwrap();
    let mut stats = ward_guard::BlockedMass::default();
    assert!(matches!(
        g.record_blocked(1, &[0.5; 2], &mut stats),
        Err(GuardError::LengthMismatch { .. })
    ));
    g.record_blocked(1, &[0.2, 0.7, 0.1], &mut stats).unwrap();
    assert!((stats.total - 0.7).abs() < 1e-6);
    assert_eq!(
        stats.by_rule_id(&tp),
        vec![("no-ab".to_string(), stats.per_rule[0])]
    );
    assert!((stats.per_rule[0] - 0.7).abs() < 1e-6);
}

/// Vocabularies whose first text token decodes differently (SentencePiece-style: a token
/// `" x"` is `"x"` at the start of the text): masks stay exact against brute force over the
/// decoded text, after every commit, and the complete text is clean.
#[test]
fn first_token_forms_are_exact() {
    let cases = cases(250);
    let mut rng = Rng::new(0xf1257);
    let (mut built, mut commits) = (0, 0);
    for case in 0..cases {
        let (mut policy, mut rules) = random_policy(&mut rng);
        if rng.chance(0.5) {
            // A rule anchored at the start of the text, where the first-token form matters.
            let anchored = ["^a", "^ ?a", "^[ab]\\(", "^#"][rng.below(4)];
            rules.push(("start".into(), "ERROR".into(), anchored.into()));
            let refs: Vec<(&str, &str, &str)> = rules
                .iter()
                .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
                .collect();
            policy = compile(&refs);
        }
        let words = random_vocab(&mut rng);
        // Half the tokens carry a leading space that the first token of the text drops.
        let rest: Vec<Vec<u8>> = words
            .iter()
            .map(|w| {
                if rng.chance(0.5) {
                    [b" ".as_slice(), w].concat()
                } else {
                    w.clone()
                }
            })
            .collect();
        let with_end = rng.chance(0.4);
        let with_empty = rng.chance(0.4);
        let mut first: Vec<Vec<u8>> = rest
            .iter()
            .map(|r| r.strip_prefix(b" ").unwrap_or(r).to_vec())
            .collect();
        first.resize(
            rest.len() + with_end as usize + with_empty as usize,
            Vec::new(),
        );
        let vocab = match vocab_with_specials(&rest, with_end, with_empty).with_first_forms(&first)
        {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        if !vocab.has_first_forms() {
            continue;
        }
        let v = vocab.len();
        // The text starts with a fixed text token (after an optional text-free one).
        let mut slots = Vec::new();
        if with_empty && rng.chance(0.5) {
            slots.push(Slot::Fixed(v as u32 - 1));
        }
        slots.push(Slot::Fixed(rng.below(rest.len()) as u32));
        for _ in 0..1 + rng.below(4) {
            slots.push(if rng.chance(0.6) {
                Slot::Hole
            } else {
                Slot::Fixed(rng.below(v) as u32)
            });
        }
        let ctx = format!(
            "case {case}: rules {rules:?}\nrest {rest:?} end={with_end} empty={with_empty}\nslots {slots:?}"
        );
        let end_in_holes = case % 3 != 0;
        let cfg = ward_guard::GuardConfig {
            small_set: if case % 2 == 0 { 0 } else { 24 },
            end_in_holes,
            ..Default::default()
        };
        let tp = token_policy(policy.clone(), vocab.clone());
        let fixed: Vec<Option<u32>> = slots.iter().map(|s| s.token()).collect();
        let b = brute(&policy, &fixed, &vocab, end_in_holes);
        let mut g = match Guard::with_config(tp, &Canvas::from_slots(slots.clone()), &cfg) {
            Err(e) => {
                assert!(
                    b.any_clean_per_module.iter().any(|&c| !c),
                    "guard refused a completable canvas: {e}\n{ctx}"
                );
                continue;
            }
            Ok(g) => g,
        };
        assert!(
            b.any_clean_per_module.iter().all(|&c| c),
            "guard accepted a canvas without completion\n{ctx}"
        );
        built += 1;
        check_exact(&g, &policy, &ctx, end_in_holes);
        while let Some(&h) = g.holes().first() {
            let hs = g.holes();
            let h = if rng.chance(0.5) {
                h
            } else {
                hs[rng.below(hs.len())]
            };
            let Ok(mask) = g.mask(h) else { break };
            let allowed: Vec<u32> = mask.iter_allowed().collect();
            g.commit(h, allowed[rng.below(allowed.len())])
                .unwrap_or_else(|e| panic!("{e}\n{ctx}"));
            commits += 1;
            check_exact(&g, &policy, &ctx, end_in_holes);
        }
        if g.is_complete() {
            let f = enforced_findings(&policy, &g.text());
            assert!(f.is_empty(), "complete canvas violates: {f:?}\n{ctx}");
        }
    }
    eprintln!("first-token forms: {cases} cases, {built} guards, {commits} commits");
    assert!(built > cases / 4, "only {built} guards built");
}
