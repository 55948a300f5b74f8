//! What a user asks for: prompt, decoding strategy and its knobs.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SamplerError};

/// How the positions to commit are chosen at each step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// LLaDA's low-confidence remasking: commit the positions whose chosen token has the
    /// highest probability (the rest stay masked).
    #[default]
    LowConfidence,
    /// Dream's entropy order: commit the positions whose distribution has the lowest entropy.
    Entropy,
    /// Top-2 margin: commit the positions with the largest gap between the two most likely
    /// tokens.
    Margin,
    /// Random order (seeded).
    Random,
    /// Fast-dLLM's confidence-threshold parallel decoding: commit every position whose chosen
    /// token's probability is at least `threshold` (at least one per step); `steps` is not
    /// used as a schedule.
    Threshold,
}

impl Strategy {
    /// All strategies, in a fixed order.
    pub const ALL: [Strategy; 5] = [
        Strategy::LowConfidence,
        Strategy::Entropy,
        Strategy::Margin,
        Strategy::Random,
        Strategy::Threshold,
    ];

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LowConfidence => "low_confidence",
            Strategy::Entropy => "entropy",
            Strategy::Margin => "margin",
            Strategy::Random => "random",
            Strategy::Threshold => "threshold",
        }
    }

    /// Parses a name (`low_confidence`, `low-confidence`, `entropy`, `margin`, `random`,
    /// `threshold`).
    pub fn parse(s: &str) -> Option<Strategy> {
        let s = s.replace('-', "_");
        Strategy::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A generation request. Field names are stable (JSON, the wasm API).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateRequest {
    /// The prompt, with `<|hole:N|>` holes; without a hole, `max_new` tokens are generated
    /// after it.
    pub prompt: String,
    /// Tokens to generate after a prompt without holes.
    pub max_new: usize,
    /// Denoising steps in all (forward passes planned); `None`: one step per two hole tokens.
    pub steps: Option<usize>,
    /// How positions are chosen.
    pub strategy: Strategy,
    /// Confidence threshold of [`Strategy::Threshold`].
    pub threshold: f32,
    /// Block length for semi-autoregressive decoding, in hole tokens (0: one block).
    pub block: usize,
    /// Sampling temperature (0: the most likely allowed token).
    pub temperature: f32,
    /// Keep only the k most likely tokens when sampling (0: off).
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set of tokens with this much mass (1: off).
    pub top_p: f32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Enforce the policy (false: unconstrained generation, still scanned at the end).
    pub enforce: bool,
    /// Whether the guard lets a hole end the text (`GuardConfig::end_in_holes`); default false
    /// (see the crate docs: the sampler ends the text itself, with exact masks).
    pub end_in_holes: bool,
    /// Whether an infill hole (`<|hole:N|>` followed by more prompt text) may end before its
    /// N tokens: the end token chosen there (past its first position, see below), with nothing
    /// committed after it in that hole,
    /// makes the rest of the hole empty (text-free pads; the text goes on after the hole), as
    /// the end of the text does at the canvas tail. Default true; false: a hole is exactly N
    /// tokens. A hole keeps its first position, and its end is refused right after blank
    /// text alone (every earlier position of the hole committed, all blank).
    pub early_end: bool,
    /// Blocked candidates at least this probable are reported in step events.
    pub blocked_floor: f32,
    /// Remask budget for conflicts between modules.
    pub max_remasks: usize,
}

impl Default for GenerateRequest {
    fn default() -> Self {
        GenerateRequest {
            prompt: String::new(),
            max_new: 64,
            steps: None,
            strategy: Strategy::LowConfidence,
            threshold: 0.9,
            block: 0,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
            enforce: true,
            end_in_holes: false,
            early_end: true,
            blocked_floor: 0.01,
            max_remasks: 64,
        }
    }
}

impl GenerateRequest {
    /// A request for `prompt` with the defaults.
    pub fn new(prompt: impl Into<String>) -> Self {
        GenerateRequest {
            prompt: prompt.into(),
            ..Default::default()
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        if self.max_new == 0 || self.max_new > crate::prompt::MAX_HOLE {
            return Err(SamplerError::request(
                "max_new",
                format!(
                    "{} is outside 1..={}",
                    self.max_new,
                    crate::prompt::MAX_HOLE
                ),
            ));
        }
        if self.steps == Some(0) {
            return Err(SamplerError::request("steps", "must be at least 1"));
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(SamplerError::request(
                "temperature",
                format!("{} is not a finite number ≥ 0", self.temperature),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplerError::request(
                "top_p",
                format!("{} is outside (0, 1]", self.top_p),
            ));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(SamplerError::request(
                "threshold",
                format!("{} is outside [0, 1]", self.threshold),
            ));
        }
        if !(0.0..=1.0).contains(&self.blocked_floor) {
            return Err(SamplerError::request(
                "blocked_floor",
                format!("{} is outside [0, 1]", self.blocked_floor),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_unknown_fields() {
        let r = GenerateRequest {
            strategy: Strategy::Entropy,
            ..GenerateRequest::new("x = ")
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains("\"strategy\":\"entropy\""), "{s}");
        let back: GenerateRequest = serde_json::from_str(&s).unwrap();
        assert_eq!(back, r);
        let e = serde_json::from_str::<GenerateRequest>(r#"{"promt": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("promt"), "{e}");
        let e = GenerateRequest {
            top_p: 0.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("top_p"));
        assert_eq!(
            Strategy::parse("low-confidence"),
            Some(Strategy::LowConfidence)
        );
    }
}
