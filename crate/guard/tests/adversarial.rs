//! Adversarial property test on the python pack: a driver that always commits the allowed
//! token closest to a violation (fewest bytes to the violated state in some module), at a
//! random hole each step, with remasking on conflicts. The final text must have zero
//! enforced findings by the policy's independent regex checker.
//!
//! Vocabulary: the real `models/*/tokenizer.json` when one exists, otherwise a byte-level BPE
//! trained here on the python snippets of `policies/cases`. Cases: `WARD_PROPTEST_CASES`
//! (default 6, seconds); the nightly run uses 10 000.

mod common;
#[path = "common/synth.rs"]
mod synth;

use std::sync::{Arc, OnceLock};

use common::*;
use ward_guard::{Canvas, Guard, GuardError, TokenKind, TokenPolicy, Vocab};
use ward_policy::CompiledPolicy;

struct Fixture {
    policy: Arc<CompiledPolicy>,
    tp: Arc<TokenPolicy>,
    source: String,
    /// Tokens of the python snippets of `policies/cases` (violating ones included): always
    /// among the adversary's candidates.
    attack_tokens: Vec<u32>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // The whole shipped pack: a rule that stops compiling must fail this test, not be
        // left out silently.
        let (policy, skipped) = synth::compile_pack_lenient(&synth::policies_dir().join("python"));
        assert!(
            skipped.is_empty(),
            "rules of policies/python do not compile: {skipped:?}"
        );
        let policy = Arc::new(policy);
        let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let mut real = None;
        if let Ok(rd) = std::fs::read_dir(&models) {
            for e in rd.flatten() {
                let p = e.path().join("tokenizer.json");
                if let Ok(s) = std::fs::read_to_string(&p) {
                    match ward_guard::vocab::from_tokenizer_json(&s) {
                        Ok(v) => {
                            real = Some((v, p.display().to_string()));
                            break;
                        }
                        Err(err) => panic!("{}: {err}", p.display()),
                    }
                }
            }
        }
        let (vocab, source) = match real {
            Some(r) => r,
            None => {
                let corpus = synth::cases_corpus(&synth::policies_dir());
                let mut toks = synth::train_bpe(&corpus[..corpus.len().min(60_000)], 500);
                toks.push(Vec::new()); // [MASK]: text-free
                toks.push(Vec::new()); // <|endoftext|>
                let mut kinds = vec![TokenKind::Text; toks.len()];
                let n = kinds.len();
                kinds[n - 2] = TokenKind::Empty;
                kinds[n - 1] = TokenKind::End;
                (
                    Vocab::from_parts(&toks, kinds).unwrap(),
                    format!("BPE trained in the test ({n} tokens)"),
                )
            }
        };
        let tp = Arc::new(TokenPolicy::new(policy.clone(), Arc::new(vocab)));
        let corpus = synth::cases_corpus(&synth::policies_dir());
        let mut attack_tokens = tp.vocab().tokenize_greedy(&corpus).unwrap_or_default();
        attack_tokens.sort_unstable();
        attack_tokens.dedup();
        Fixture {
            policy,
            tp,
            source,
            attack_tokens,
        }
    })
}

const PROMPTS: &[&str] = &[
    "import subprocess\nsubprocess.run(cmd, ",
    "import os\nos.",
    "import pickle\ndata = pickle.",
    "import yaml\nconfig = yaml.",
    "import hashlib\nh = hashlib.",
    "import requests\nr = requests.get(url, ",
    "x = ",
    "def handler(request):\n    ",
    "import random\ntoken = ",
    "query = \"SELECT * FROM users WHERE id = \" + ",
    "import tempfile\npath = tempfile.",
    "result = ",
    "",
];

#[derive(Default, Debug)]
struct Totals {
    runs: usize,
    commits: usize,
    conflicts: usize,
    remasks: usize,
    stuck: usize,
    refused_commits: usize,
    refused_canvases: usize,
}

fn pick_adversarial(g: &Guard, h: usize, allowed: &[u32], attack: &[u32], rng: &mut Rng) -> u32 {
    // Candidates: the allowed tokens of real attack snippets, plus a random sample.
    let mut cands: Vec<u32> = if allowed.len() <= 400 {
        allowed.to_vec()
    } else {
        (0..200)
            .map(|_| allowed[rng.below(allowed.len())])
            .collect()
    };
    if allowed.len() > 400 {
        cands.extend(
            attack
                .iter()
                .copied()
                .filter(|t| allowed.binary_search(t).is_ok()),
        );
    }
    let mut best = u32::MAX;
    let mut best_toks = Vec::new();
    for &t in &cands {
        let d = g.danger_after(h, t, 16).unwrap_or(u32::MAX);
        if d < best {
            best = d;
            best_toks.clear();
        }
        if d == best {
            best_toks.push(t);
        }
    }
    if best_toks.is_empty() {
        cands[rng.below(cands.len())]
    } else {
        best_toks[rng.below(best_toks.len())]
    }
}

fn run_case(fx: &Fixture, rng: &mut Rng, totals: &mut Totals) {
    let vocab = fx.tp.vocab();
    let prompt = PROMPTS[rng.below(PROMPTS.len())];
    let prefix = vocab
        .tokenize_greedy(prompt.as_bytes())
        .expect("byte-level vocabulary covers the prompt");
    let holes = 6 + rng.below(20);
    let suffix: Vec<u32> = if rng.chance(0.3) {
        vocab.tokenize_greedy(b")\n").unwrap()
    } else {
        Vec::new()
    };
    let canvas = Canvas::infill(&prefix, holes, &suffix);
    // Half the runs forbid ending the text in a hole (GuardConfig::end_in_holes = false).
    let cfg = ward_guard::GuardConfig {
        end_in_holes: rng.chance(0.5),
        ..Default::default()
    };
    let mut g = match Guard::with_config(fx.tp.clone(), &canvas, &cfg) {
        Ok(g) => g,
        Err(GuardError::CanvasViolates { .. } | GuardError::NoSafeCompletion { .. }) => {
            totals.refused_canvases += 1;
            return;
        }
        Err(e) => panic!("{e}"),
    };
    totals.runs += 1;
    let end_tokens = vocab.tokens_of_kind(TokenKind::End);
    let mut banned: Vec<(usize, u32)> = Vec::new();
    let mut remasks_here = 0;
    while !g.is_complete() {
        let holes = g.holes();
        let h = holes[rng.below(holes.len())];
        let mask = match g.mask(h) {
            Ok(m) => Some(m),
            Err(GuardError::Conflict(c)) => {
                totals.conflicts += 1;
                let _ = c;
                None
            }
            Err(e) => panic!("{e}"),
        };
        let first_forbidden = mask.as_ref().and_then(|m| m.iter_disallowed().next());
        let allowed: Vec<u32> = mask
            .map(|m| {
                m.iter_allowed()
                    .filter(|t| !banned.contains(&(h, *t)))
                    // The adversary does not end the text early: that would be too easy.
                    .filter(|t| !end_tokens.contains(t) || rng.chance(0.02))
                    .collect()
            })
            .unwrap_or_default();
        if allowed.is_empty() {
            // Remask: reopen the most recent commit constraining this hole and ban its token.
            let cons = g.constraining_commits(h);
            let Some(&p) = cons.first() else {
                totals.stuck += 1;
                break;
            };
            let t = g.slot(p).and_then(|s| s.token()).unwrap();
            g.uncommit(p).unwrap();
            banned.push((p, t));
            totals.remasks += 1;
            remasks_here += 1;
            if remasks_here > 50 {
                totals.stuck += 1;
                break;
            }
            continue;
        }
        // Try a forbidden token first: it must be refused.
        if let Some(bad) = first_forbidden {
            assert!(matches!(
                g.commit(h, bad),
                Err(GuardError::Forbidden { .. })
            ));
            totals.refused_commits += 1;
        }
        let t = pick_adversarial(&g, h, &allowed, &fx.attack_tokens, rng);
        g.commit(h, t)
            .unwrap_or_else(|e| panic!("allowed token refused: {e}"));
        totals.commits += 1;
    }
    if g.is_complete() {
        let text = g.text();
        let findings = enforced_findings(&fx.policy, &text);
        assert!(
            findings.is_empty(),
            "violation completed: {findings:?}\n{}",
            String::from_utf8_lossy(&text)
        );
        let dfa: Vec<_> = fx
            .policy
            .check(&text)
            .into_iter()
            .filter(|f| f.enforced)
            .collect();
        assert!(dfa.is_empty(), "DFA checker disagrees: {dfa:?}");
    }
}

#[test]
fn adversary_never_completes_a_violation() {
    let fx = fixture();
    let cases = cases(6);
    let mut rng = Rng::new(0xadd);
    let mut totals = Totals::default();
    for _ in 0..cases {
        run_case(fx, &mut rng, &mut totals);
    }
    eprintln!(
        "adversarial ({}, {} modules): {cases} cases: {totals:?}",
        fx.source,
        fx.tp.num_modules()
    );
    assert!(totals.runs > 0);
    assert_eq!(
        totals.stuck, 0,
        "runs that could not finish even with remasking"
    );
}

#[test]
fn known_attacks_are_blocked_with_attribution() {
    let fx = fixture();
    let vocab = fx.tp.vocab();
    for (prompt, attack, rule) in [
        (
            "import subprocess\nsubprocess.run(cmd, ",
            "shell=True)\n",
            "python.subprocess-shell-true",
        ),
        ("x = ", "eval(data)\n", "python.eval"),
    ] {
        if fx
            .policy
            .rule_index(rule)
            .is_none_or(|r| !fx.policy.rule(r).enforced())
        {
            continue;
        }
        let prefix = vocab.tokenize_greedy(prompt.as_bytes()).unwrap();
        let attack = vocab.tokenize_greedy(attack.as_bytes()).unwrap();
        let mut g = Guard::new(
            fx.tp.clone(),
            &Canvas::infill(&prefix, attack.len() + 2, &[]),
        )
        .unwrap();
        let mut blocked = None;
        for (k, &t) in attack.iter().enumerate() {
            let pos = prefix.len() + k;
            match g.commit(pos, t) {
                Ok(()) => {}
                Err(GuardError::Forbidden { blame, .. }) => {
                    blocked = Some(blame);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        let blame =
            blocked.unwrap_or_else(|| panic!("attack {attack:?} for {rule} was not blocked"));
        assert!(
            blame.iter().any(|b| b.rule_id == rule),
            "{rule} not blamed: {blame:?}"
        );
    }
}
