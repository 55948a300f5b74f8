//! What a generation reports: the start event, one event per step, and the result. Field
//! names are stable: they are the JSON of `ward generate --format json` and the objects the
//! wasm API returns.

use serde::{Deserialize, Serialize};

use crate::certificate::Certificate;

/// One canvas position at the start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanvasCell {
    /// Position in the canvas.
    pub position: usize,
    /// The token (None for a hole).
    pub token: Option<u32>,
    /// The token's text (lossy UTF-8; empty for a hole).
    pub text: String,
    /// `fixed` or `hole`.
    pub kind: String,
}

/// Sent once, before the first step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartEvent {
    /// Always `start`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The canvas: prompt tokens and holes.
    pub canvas: Vec<CanvasCell>,
    /// The hole positions.
    pub holes: Vec<usize>,
    /// Steps planned (a schedule; remasks and the threshold strategy may change the count).
    pub steps: usize,
    /// Whether the policy is enforced.
    pub enforce: bool,
}

/// A token committed at a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    /// Canvas position.
    pub position: usize,
    /// Token id.
    pub token: u32,
    /// Token text (lossy UTF-8; empty for an end-of-text fill).
    pub text: String,
    /// Probability of the token in the allowed (masked) distribution.
    pub probability: f32,
    /// True when this position was filled because the text, or its infill hole
    /// (`early_end`), ended at or before it.
    pub end: bool,
}

/// A candidate the policy blocked (probability at least the request's `blocked_floor`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blocked {
    /// Canvas position.
    pub position: usize,
    /// Token id.
    pub token: u32,
    /// Token text (lossy UTF-8).
    pub text: String,
    /// The model's probability of the token before masking.
    pub probability: f32,
    /// The rule(s) that forbid it.
    pub rule_ids: Vec<String>,
}

/// A remask: committed positions reopened to resolve a conflict between modules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Remask {
    /// The hole no token could fill.
    pub position: usize,
    /// Positions reopened (their tokens are forbidden there from now on).
    pub reopened: Vec<usize>,
    /// Rules of the modules in conflict.
    pub rule_ids: Vec<String>,
}

/// One denoising step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepEvent {
    /// Always `step`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Step index, from 0.
    pub step: usize,
    /// Block index (semi-autoregressive decoding), from 0.
    pub block: usize,
    /// Tokens committed, in commit order.
    pub committed: Vec<Committed>,
    /// Candidates blocked by the policy.
    pub blocked: Vec<Blocked>,
    /// Remasks at this step.
    pub remasks: Vec<Remask>,
    /// Holes still open after the step.
    pub open: usize,
    /// Milliseconds in the forward pass.
    pub model_ms: f64,
    /// Milliseconds in the guard (masks, checks, commits, attribution) on the critical path.
    pub guard_ms: f64,
    /// Milliseconds the guard spent on a second thread during the forward pass, bringing its
    /// sets up to date (`ward_guard::Guard::settle`; natively, see
    /// [`crate::Engine::set_guard_thread`]): work off the critical path, 0 when there is none.
    #[serde(default)]
    pub guard_parallel_ms: f64,
}

/// Wall-clock split of a generation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// From start to result.
    pub total_ms: f64,
    /// In forward passes.
    pub model_ms: f64,
    /// In the guard, on the critical path.
    pub guard_ms: f64,
    /// In the guard on a second thread, during forward passes (the guard's construction and
    /// [`StepEvent::guard_parallel_ms`]): not part of `total_ms` unless the pass was shorter.
    #[serde(default)]
    pub guard_parallel_ms: f64,
}

/// The finished generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationResult {
    /// Always `result`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The prompt with its holes filled, ending at the end of text (lossy UTF-8 of
    /// [`GenerationResult::bytes`]).
    pub text: String,
    /// The exact bytes of the text (what the guard and the re-scan judged).
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// The text of each hole of the prompt.
    pub holes: Vec<String>,
    /// Tokens committed (end-of-text fills not counted).
    pub tokens: usize,
    /// Steps taken.
    pub steps: usize,
    /// Forward passes.
    pub forward_passes: usize,
    /// Blocked candidates reported in the step events.
    pub blocked_candidates: usize,
    /// Remasks.
    pub remasks: usize,
    /// Mean log-probability (natural log) of the committed tokens under the model's
    /// unmasked distribution at temperature 1, when they were committed.
    pub mean_logprob: f64,
    /// Time split.
    pub timings: Timings,
    /// The certificate.
    pub certificate: Certificate,
}
