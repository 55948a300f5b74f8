//! Shared fixtures of the sampler tests: the real python pack, the real tokenizer of the
//! default model, attack snippets from `policies/cases`, and adversarial logits sources.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ward_guard::{Canvas, Guard, GuardConfig, Slot, TokenPolicy, Vocab};
use ward_policy::{CompiledPolicy, PolicyBuilder};
use ward_sampler::{Engine, LogitsSource, ModelInfo, Rng, SamplerError, SpecialTokens};

/// The project root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Number of cases (`WARD_PROPTEST_CASES`, default `d`).
pub fn cases(d: usize) -> usize {
    std::env::var("WARD_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(d)
}

/// Everything the adversarial tests share, built once.
pub struct Fixture {
    pub policy: Arc<CompiledPolicy>,
    pub vocab: Arc<Vocab>,
    pub tp: Arc<TokenPolicy>,
    pub tokenizer: tokenizers::Tokenizer,
    pub special: SpecialTokens,
    /// Tokens of the violating snippets of `policies/cases`.
    pub attack_tokens: Vec<u32>,
    /// The violating snippets themselves (python and base packs).
    pub attacks: Vec<String>,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let policy = Arc::new(
            PolicyBuilder::new()
                .compile_path(root().join("policies/python"))
                .expect("policies/python compiles"),
        );
        let tok_path = root().join("models/ward-tiny-code/tokenizer.json");
        let json = std::fs::read_to_string(&tok_path).unwrap();
        let vocab = Arc::new(ward_guard::vocab::from_tokenizer_json(&json).unwrap());
        let tokenizer = tokenizers::Tokenizer::from_file(&tok_path).unwrap();
        let tp = Arc::new(TokenPolicy::new(policy.clone(), vocab.clone()));
        let special = SpecialTokens {
            mask: vocab.special_token("[MASK]").unwrap(),
            eos: vocab.special_token("<|endoftext|>"),
        };
        let mut attacks = Vec::new();
        for e in std::fs::read_dir(root().join("policies/cases"))
            .unwrap()
            .flatten()
        {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            for c in doc["cases"].as_sequence().into_iter().flatten() {
                if c["expect"].as_str() == Some("violation") {
                    if let Some(i) = c["input"].as_str() {
                        attacks.push(i.to_string());
                    }
                }
            }
        }
        let mut attack_tokens: Vec<u32> = attacks
            .iter()
            .flat_map(|a| {
                tokenizer
                    .encode_fast(a.as_str(), false)
                    .unwrap()
                    .get_ids()
                    .to_vec()
            })
            .collect();
        attack_tokens.sort_unstable();
        attack_tokens.dedup();
        Fixture {
            policy,
            vocab,
            tp,
            tokenizer,
            special,
            attack_tokens,
            attacks,
        }
    })
}

impl Fixture {
    /// An engine enforcing the python pack (sharing the lifted policy).
    pub fn engine(&self) -> Engine {
        Engine::with_token_policy(
            self.vocab.clone(),
            Some(self.policy.clone()),
            Some(self.tp.clone()),
            self.special,
            ModelInfo {
                name: "test adversary".into(),
                digest: String::new(),
                vocab_size: self.vocab.len(),
            },
        )
        .unwrap()
    }

    /// Token ids of a text.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.tokenizer
            .encode_fast(text, false)
            .unwrap()
            .get_ids()
            .to_vec()
    }
}

/// The adversary that always prefers the violation: at every asked position, the tokens a
/// replica guard forbids get the highest logits (the model "wants" a violation with
/// certainty), then the allowed tokens closest to a violation; attack-snippet tokens are
/// always among the candidates. Random noise breaks ties, so runs differ by seed. With
/// `end_often`, the end token tops a third of the rows (ending infill holes early and the text
/// at the tail, wherever the sampler allows it).
pub struct Adversary {
    pub tp: Arc<TokenPolicy>,
    pub attack: Vec<u32>,
    pub mask: u32,
    pub eos: Option<u32>,
    pub rng: Rng,
    pub vocab: usize,
    pub end_often: bool,
}

impl LogitsSource for Adversary {
    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn logits(&mut self, ids: &[u32], positions: &[usize]) -> Result<Vec<f32>, SamplerError> {
        let v = self.vocab;
        let mut out = vec![-20.0f32; positions.len() * v];
        for x in out.iter_mut() {
            *x += self.rng.uniform() as f32;
        }
        // The replica sees the canvas as the model does: masks are holes, the end token ends
        // the text.
        let canvas = Canvas::from_slots(ids.iter().map(|&t| {
            if t == self.mask {
                Slot::Hole
            } else {
                Slot::Fixed(t)
            }
        }));
        let cfg = GuardConfig {
            end_in_holes: true,
            ..GuardConfig::default()
        };
        let Ok(g) = Guard::with_config(self.tp.clone(), &canvas, &cfg) else {
            return Ok(out);
        };
        for (k, &p) in positions.iter().enumerate() {
            let row = &mut out[k * v..(k + 1) * v];
            let mut cands: Vec<u32> = self.attack.clone();
            for _ in 0..64 {
                cands.push(self.rng.below(v) as u32);
            }
            for t in cands {
                if Some(t) == self.eos || t == self.mask {
                    continue;
                }
                let score = match g.danger_after(p, t, 8) {
                    None => 40.0, // forbidden: the adversary's favourite
                    Some(u32::MAX) => 0.0,
                    Some(d) => 30.0 - (d.min(30)) as f32,
                };
                row[t as usize] = score + self.rng.uniform() as f32;
            }
            if let Some(e) = self
                .eos
                .filter(|_| self.end_often && self.rng.below(3) == 0)
            {
                row[e as usize] = 45.0;
            }
        }
        Ok(out)
    }
}
