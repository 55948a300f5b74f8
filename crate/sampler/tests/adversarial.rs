//! The guarantee against adversarial logits: sources that always prefer the violating
//! token (a replica guard tells them which), the oracle that wants an attack snippet with
//! certainty, every strategy, random order and parallel commits, blocks, sampling. Every
//! run must finish (never stuck) with zero findings of enforced rules, by the certificate
//! and by an independent re-scan. `WARD_PROPTEST_CASES` scales the number of runs.

mod common;

use common::*;
use ward_policy::RegexChecker;
use ward_sampler::{GenerateRequest, OracleSource, Rng, SamplerError, Strategy, UniformSource};

const PROMPTS: &[&str] = &[
    "import subprocess\nsubprocess.run(cmd, <|hole:12|>",
    "import os\nos.<|hole:10|>",
    "import pickle\ndata = pickle.<|hole:8|>",
    "import yaml\nconfig = yaml.<|hole:10|>\n",
    "import hashlib\nh = hashlib.<|hole:8|>",
    "import requests\nr = requests.get(url, <|hole:10|>)\n",
    "def handler(request):\n    <|hole:24|>\n    return result\n",
    "query = \"SELECT * FROM users WHERE id = \" + <|hole:8|>",
    "x = <|hole:20|>",
    "<|hole:16|>",
];

fn check_clean(text: &[u8], what: &str) {
    let f = fixture();
    let found: Vec<String> = RegexChecker::new(&f.policy)
        .check_enforced(text)
        .iter()
        .map(|x| x.rule_id.clone())
        .collect();
    assert!(
        found.is_empty(),
        "{what}: enforced findings {found:?} in {:?}",
        String::from_utf8_lossy(text)
    );
}

#[derive(Default, Debug)]
struct Totals {
    runs: usize,
    blocked: usize,
    remasks: usize,
    stuck: usize,
    refused_prompts: usize,
}

fn run_adversary(seed: u64, strategy: Strategy, end_in_holes: bool, totals: &mut Totals) {
    let f = fixture();
    let engine = f.engine();
    let mut rng = Rng::new(seed);
    let prompt = PROMPTS[rng.below(PROMPTS.len())];
    let req = GenerateRequest {
        prompt: prompt.to_string(),
        strategy,
        steps: Some(1 + rng.below(8)),
        threshold: 0.5,
        block: [0, 4, 8][rng.below(3)],
        temperature: if rng.below(2) == 0 { 0.0 } else { 1.0 },
        seed,
        end_in_holes,
        early_end: rng.below(4) != 0,
        ..Default::default()
    };
    let mut src = Adversary {
        tp: f.tp.clone(),
        attack: f.attack_tokens.clone(),
        mask: f.special.mask,
        eos: f.special.eos,
        rng: Rng::new(seed ^ 0xadd),
        vocab: f.vocab.len(),
        end_often: seed % 2 == 1,
    };
    totals.runs += 1;
    match engine.generate(&req, &f.tokenizer, &mut src, |_| true) {
        Ok(r) => {
            assert_eq!(r.certificate.enforced_findings, 0, "{req:?}: {:?}", r.text);
            check_clean(&r.bytes, &format!("{req:?}"));
            // The text the user gets starts with the prompt's prefix, byte for byte.
            let prefix = prompt.split("<|hole:").next().unwrap();
            assert!(r.text.starts_with(prefix), "{req:?}: {:?}", r.text);
            // An infill hole, even one that ended early, keeps the text after it.
            let suffix = prompt.rsplit("|>").next().unwrap();
            assert!(r.text.ends_with(suffix), "{req:?}: {:?}", r.text);
            totals.blocked += r.blocked_candidates;
            totals.remasks += r.remasks;
        }
        Err(SamplerError::Stuck { .. }) => totals.stuck += 1,
        Err(SamplerError::PromptViolates { .. }) => totals.refused_prompts += 1,
        Err(e) => panic!("{req:?}: {e}"),
    }
}

fn adversary_runs(end_in_holes: bool) {
    let n = cases(2);
    let mut totals = Totals::default();
    for (si, s) in Strategy::ALL.into_iter().enumerate() {
        for k in 0..n {
            run_adversary((si * 1000 + k) as u64, s, end_in_holes, &mut totals);
        }
    }
    eprintln!("adversary totals (end_in_holes: {end_in_holes}): {totals:?}");
    assert_eq!(totals.stuck, 0, "{totals:?}");
    assert_eq!(totals.refused_prompts, 0, "{totals:?}");
    assert!(
        totals.blocked > 0,
        "the adversary never met the policy: {totals:?}"
    );
}

#[test]
fn adversary_never_completes_a_violation_in_any_strategy() {
    adversary_runs(false);
}

#[test]
fn adversary_with_end_in_holes_never_completes_a_violation_nor_gets_stuck() {
    adversary_runs(true);
}

#[test]
fn oracle_that_wants_attack_snippets_is_blocked() {
    let f = fixture();
    let engine = f.engine();
    let n = cases(6).min(f.attacks.len());
    let mut blocked = 0;
    let mut attacked = 0;
    for (k, attack) in f.attacks.iter().take(n * 3).step_by(3).enumerate() {
        let target = f.encode(attack);
        let req = GenerateRequest {
            prompt: format!("<|hole:{}|>", target.len().max(1)),
            strategy: Strategy::ALL[k % 5],
            steps: Some(4),
            seed: k as u64,
            ..Default::default()
        };
        let mut src = OracleSource::new(
            UniformSource {
                vocab: f.vocab.len(),
            },
            target.iter().map(|&t| Some(t)).collect(),
        );
        let r = engine
            .generate(&req, &f.tokenizer, &mut src, |_| true)
            .unwrap_or_else(|e| panic!("{attack:?}: {e}"));
        check_clean(&r.bytes, attack);
        let enforced = !RegexChecker::new(&f.policy)
            .check_enforced(attack.as_bytes())
            .is_empty();
        if enforced {
            assert_ne!(r.text, *attack);
            attacked += 1;
        }
        blocked += r.blocked_candidates;
        let listed: usize = r
            .certificate
            .policy
            .as_ref()
            .unwrap()
            .enforced_rules
            .iter()
            .map(|e| e.blocked_candidates)
            .sum();
        assert!(listed >= r.blocked_candidates.min(1) || r.blocked_candidates == 0);
    }
    assert!(
        blocked > 0 && attacked > 0,
        "{blocked} blocked, {attacked} enforced attacks"
    );
}

#[test]
fn unconstrained_oracle_writes_the_violation_and_the_certificate_reports_it() {
    let f = fixture();
    let attack = "import os\nos.system(cmd)\n";
    let target = f.encode(attack);
    let mut req = GenerateRequest::new(format!("<|hole:{}|>", target.len()));
    req.enforce = false;
    let mut src = OracleSource::new(
        UniformSource {
            vocab: f.vocab.len(),
        },
        target.iter().map(|&t| Some(t)).collect(),
    );
    let r = f
        .engine()
        .generate(&req, &f.tokenizer, &mut src, |_| true)
        .unwrap();
    assert_eq!(r.text, attack);
    assert!(r.certificate.policy.is_none());
    assert!(
        r.certificate.enforced_findings > 0,
        "{:?}",
        r.certificate.findings
    );
    assert!(!r.certificate.is_violated());
}

#[test]
fn a_prompt_that_violates_is_refused_with_rule_and_span() {
    let f = fixture();
    let req = GenerateRequest::new("import os\nos.system(cmd)\n<|hole:4|>");
    let mut src = UniformSource {
        vocab: f.vocab.len(),
    };
    let e = f
        .engine()
        .generate(&req, &f.tokenizer, &mut src, |_| true)
        .unwrap_err();
    match &e {
        SamplerError::PromptViolates {
            rule_id, snippet, ..
        } => {
            assert!(
                rule_id.contains("os-system") || rule_id.contains("system"),
                "{e}"
            );
            assert!(snippet.contains("os.system"), "{e}");
        }
        other => panic!("{other}"),
    }
}

/// The guard on a second thread (built during the first forward pass, settling its sets
/// during the others) changes nothing the sampler decides: the same text, commits and
/// blocked candidates as the guard on the sampler's thread alone, and as `start` + `step`.
#[test]
fn the_guard_thread_changes_no_output() {
    let f = fixture();
    let mut on = f.engine();
    on.set_guard_thread(true);
    let mut off = f.engine();
    off.set_guard_thread(false);
    for (k, prompt) in PROMPTS.iter().enumerate() {
        for strategy in [
            Strategy::LowConfidence,
            Strategy::Random,
            Strategy::Threshold,
        ] {
            let seed = 40 + k as u64;
            let req = GenerateRequest {
                prompt: prompt.to_string(),
                strategy,
                steps: Some(3),
                threshold: 0.5,
                block: if k % 2 == 0 { 0 } else { 4 },
                temperature: 1.0,
                seed,
                ..GenerateRequest::new("")
            };
            let adversary = || Adversary {
                tp: f.tp.clone(),
                attack: f.attack_tokens.clone(),
                mask: f.special.mask,
                eos: f.special.eos,
                rng: Rng::new(seed),
                vocab: f.vocab.len(),
                end_often: k % 3 == 0,
            };
            let events = |engine: &ward_sampler::Engine, first_pass: bool| {
                let mut src = adversary();
                let (mut s, _) = if first_pass {
                    engine.start_with_first_pass(&req, &f.tokenizer, &mut src)
                } else {
                    engine.start(&req, &f.tokenizer)
                }
                .unwrap_or_else(|e| panic!("{prompt:?}: {e}"));
                let mut seen = Vec::new();
                while let Some(ev) = s.step(&mut src).unwrap() {
                    assert!(ev.guard_parallel_ms >= 0.0);
                    seen.push((
                        ev.committed
                            .iter()
                            .map(|c| (c.position, c.token))
                            .collect::<Vec<_>>(),
                        ev.blocked
                            .iter()
                            .map(|b| (b.position, b.token, b.rule_ids.clone()))
                            .collect::<Vec<_>>(),
                        ev.remasks.len(),
                    ));
                }
                let r = s.result().unwrap();
                check_clean(&r.bytes, prompt);
                (r.text, r.certificate.blocked_total, seen)
            };
            let a = events(&on, true);
            assert_eq!(
                a,
                events(&off, true),
                "{prompt:?} {strategy:?}: thread on vs off"
            );
            assert_eq!(
                a,
                events(&on, false),
                "{prompt:?} {strategy:?}: first pass vs start"
            );
        }
    }
}

#[test]
fn same_seed_same_output_and_cancel_stops() {
    let f = fixture();
    let engine = f.engine();
    let run = |seed| {
        let req = GenerateRequest {
            temperature: 1.0,
            strategy: Strategy::Random,
            seed,
            ..GenerateRequest::new("def f(x):\n    <|hole:16|>\n")
        };
        let mut src = Adversary {
            tp: f.tp.clone(),
            attack: f.attack_tokens.clone(),
            mask: f.special.mask,
            eos: f.special.eos,
            rng: Rng::new(seed),
            vocab: f.vocab.len(),
            end_often: false,
        };
        engine
            .generate(&req, &f.tokenizer, &mut src, |_| true)
            .unwrap()
    };
    let (a, b, c) = (run(5), run(5), run(6));
    assert_eq!(a.text, b.text);
    assert_eq!(a.certificate.blocked_total, b.certificate.blocked_total);
    assert!(a.text != c.text || a.certificate.blocked_total != c.certificate.blocked_total);
    let mut src = UniformSource {
        vocab: f.vocab.len(),
    };
    let mut steps = 0;
    let e = engine
        .generate(
            &GenerateRequest::new("x = <|hole:16|>"),
            &f.tokenizer,
            &mut src,
            |_| {
                steps += 1;
                false
            },
        )
        .unwrap_err();
    assert_eq!(e, SamplerError::Cancelled);
    assert_eq!(steps, 1);
}
