//! The denoising loop: one forward pass per step → the guard's masks → choose positions →
//! commit through the guard one at a time → a step event. Remasking on conflicts between
//! modules, semi-autoregressive blocks, end of text.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use ward_guard::{
    Canvas, Conflict, Guard, GuardConfig, GuardError, Slot, TokenKind, TokenPolicy, Vocab,
};
use ward_policy::CompiledPolicy;

use crate::certificate::{
    policy_digest, rescan, CertFinding, Certificate, EnforcedRule, ModelInfo, PolicyInfo,
    CERTIFICATE_FORMAT,
};
use crate::dist::{confidence, logsumexp, pick, RowDist};
use crate::error::{Result, SamplerError};
use crate::events::{
    Blocked, CanvasCell, Committed, GenerationResult, Remask, StartEvent, StepEvent, Timings,
};
use crate::prompt::{Prompt, Segment};
use crate::request::{GenerateRequest, Strategy};
use crate::rng::Rng;
use crate::source::LogitsSource;

/// Turns prompt text into token ids (the model's tokenizer).
pub trait TextEncoder {
    /// The ids of `text` (no special tokens added).
    fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, String>;
}

/// An encoder from a [`Vocab`] alone: greedy longest match (for tests and for callers
/// without the model's tokenizer; the model's own tokenizer gives better prompts).
#[derive(Clone, Debug)]
pub struct GreedyEncoder(pub Arc<Vocab>);

impl TextEncoder for GreedyEncoder {
    fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        self.0
            .tokenize_greedy(text.as_bytes())
            .ok_or_else(|| format!("the vocabulary cannot spell {text:?}"))
    }
}

/// The mask and end-of-text token ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    /// The mask token (what the model sees at holes).
    pub mask: u32,
    /// The end-of-text token, if the model has one (without it, the text fills the canvas).
    pub eos: Option<u32>,
}

/// A clock in milliseconds (monotonic; any origin).
pub type Clock = fn() -> f64;

fn std_clock() -> f64 {
    #[cfg(not(target_family = "wasm"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static T0: OnceLock<Instant> = OnceLock::new();
        T0.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
    }
    #[cfg(target_family = "wasm")]
    {
        0.0
    }
}

/// What generations share: the vocabulary, the policy (compiled and lifted to the
/// vocabulary once), the special tokens and the model's identity.
#[derive(Clone)]
pub struct Engine {
    vocab: Arc<Vocab>,
    policy: Option<Arc<CompiledPolicy>>,
    tp: Option<Arc<TokenPolicy>>,
    special: SpecialTokens,
    model: ModelInfo,
    clock: Clock,
    /// Text-free tokens other than the end token: never chosen.
    never: Vec<u32>,
    /// Tokens of the vocabulary mask (forbidden at every position when enforcing).
    vocab_forbidden: Vec<u32>,
    /// A text-free token committed to the guard where the text has ended (exact masks
    /// without `end_in_holes`).
    pad: Option<u32>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("vocab", &self.vocab.len())
            .field(
                "policy",
                &self.policy.as_ref().map(|p| p.name().to_string()),
            )
            .field("special", &self.special)
            .field("model", &self.model)
            .finish()
    }
}

impl Engine {
    /// An engine for `vocab`, enforcing `policy` (lifted to the vocabulary here: about 70 ms
    /// for the python pack at 8k tokens). Without a policy, generation is unconstrained and
    /// nothing is re-scanned.
    pub fn new(
        vocab: Arc<Vocab>,
        policy: Option<Arc<CompiledPolicy>>,
        special: SpecialTokens,
        model: ModelInfo,
    ) -> Result<Engine> {
        let tp = policy
            .as_ref()
            .map(|p| Arc::new(TokenPolicy::new(p.clone(), vocab.clone())));
        Engine::with_token_policy(vocab, policy, tp, special, model)
    }

    /// An engine from an already lifted policy (`tp` must be `policy` lifted to `vocab`).
    pub fn with_token_policy(
        vocab: Arc<Vocab>,
        policy: Option<Arc<CompiledPolicy>>,
        tp: Option<Arc<TokenPolicy>>,
        special: SpecialTokens,
        model: ModelInfo,
    ) -> Result<Engine> {
        let n = vocab.len();
        if special.mask as usize >= n {
            return Err(SamplerError::Tokens(format!(
                "mask token id {} is outside the vocabulary of {n} tokens",
                special.mask
            )));
        }
        if let Some(e) = special.eos {
            if e as usize >= n {
                return Err(SamplerError::Tokens(format!(
                    "end token id {e} is outside the vocabulary of {n} tokens"
                )));
            }
            if vocab.kind(e) != TokenKind::End {
                return Err(SamplerError::Tokens(format!(
                    "end token id {e} ({:?}) is not an end-of-text token of the tokenizer",
                    String::from_utf8_lossy(vocab.bytes(e))
                )));
            }
        }
        if model.vocab_size != 0 && model.vocab_size < n {
            return Err(SamplerError::Tokens(format!(
                "the model has {} logits per position but the tokenizer has {n} tokens",
                model.vocab_size
            )));
        }
        if let (Some(tp), Some(_)) = (&tp, &policy) {
            if tp.vocab().len() != n {
                return Err(SamplerError::Tokens(
                    "the lifted policy was built for another vocabulary".into(),
                ));
            }
        }
        let never: Vec<u32> = (0..n as u32)
            .filter(|&t| vocab.kind(t) != TokenKind::Text && Some(t) != special.eos)
            .collect();
        let vocab_forbidden: Vec<u32> = tp
            .as_ref()
            .map(|tp| {
                tp.vocab_mask()
                    .iter_disallowed()
                    .filter(|&t| (t as usize) < n && Some(t) != special.eos)
                    .collect()
            })
            .unwrap_or_default();
        let pad = if vocab.kind(special.mask) == TokenKind::Empty {
            Some(special.mask)
        } else {
            (0..n as u32).find(|&t| vocab.kind(t) == TokenKind::Empty)
        };
        Ok(Engine {
            vocab,
            policy,
            tp,
            special,
            model,
            clock: std_clock,
            never,
            vocab_forbidden,
            pad,
        })
    }

    /// Replaces the clock used for the timings (the wasm bindings pass `performance.now`).
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Arc<Vocab> {
        &self.vocab
    }

    /// The policy, if any.
    pub fn policy(&self) -> Option<&Arc<CompiledPolicy>> {
        self.policy.as_ref()
    }

    /// The lifted policy, if any.
    pub fn token_policy(&self) -> Option<&Arc<TokenPolicy>> {
        self.tp.as_ref()
    }

    /// The special tokens.
    pub fn special(&self) -> SpecialTokens {
        self.special
    }

    /// The model's identity.
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    /// Starts a generation: parses and encodes the prompt, builds the canvas and (when
    /// enforcing) the guard. A prompt that already violates an enforced rule is refused with
    /// [`SamplerError::PromptViolates`].
    pub fn start(
        &self,
        request: &GenerateRequest,
        encoder: &dyn TextEncoder,
    ) -> Result<(Session, StartEvent)> {
        Session::new(self, request, encoder)
    }

    /// Runs a whole generation with `source`, calling `on_step` after every step (return
    /// false from it to cancel).
    pub fn generate(
        &self,
        request: &GenerateRequest,
        encoder: &dyn TextEncoder,
        source: &mut dyn LogitsSource,
        mut on_step: impl FnMut(&StepEvent) -> bool,
    ) -> Result<GenerationResult> {
        let (mut s, _) = self.start(request, encoder)?;
        while let Some(ev) = s.step(source)? {
            if !on_step(&ev) {
                s.cancel();
            }
        }
        s.result()
    }
}

/// State of one canvas position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pos {
    /// Prompt token.
    Fixed(u32),
    /// Open.
    Hole,
    /// Committed by the sampler.
    Token(u32),
    /// The text ended at or before this position.
    Ended,
    /// The infill hole of this position ended at or before it (`early_end`): no text here,
    /// the text goes on after the hole.
    Pad,
}

/// A candidate for one open position at one step.
#[derive(Clone, Debug)]
struct Cand {
    pos: usize,
    token: u32,
    prob: f32,
    conf: f64,
    /// The exact mask was applied (the fast path failed).
    masked: bool,
    /// The guard has accepted the token (fast path or exact mask).
    checked: bool,
    /// Index of the position's row in the step's logits.
    row: usize,
    /// The distribution under the static exclusions (before any position mask).
    d0: RowDist,
}

enum Choice {
    Cand(Cand),
    Conflict(Conflict),
}

/// Per-rule tallies of blocked candidates.
#[derive(Clone, Debug, Default)]
struct BlockTally {
    count: usize,
    mass: f64,
}

/// One generation in progress. JavaScript (or the CLI) owns the loop: [`Session::step`]
/// until it returns `None`, then [`Session::result`].
pub struct Session {
    vocab: Arc<Vocab>,
    policy: Option<Arc<CompiledPolicy>>,
    tp_used: bool,
    special: SpecialTokens,
    model: ModelInfo,
    clock: Clock,
    never: Vec<u32>,
    vocab_forbidden: Vec<u32>,
    pad: Option<u32>,
    req: GenerateRequest,
    guard: Option<Guard>,
    slots: Vec<Pos>,
    ids: Vec<u32>,
    /// Hole ranges of the prompt (one per `<|hole:N|>`).
    hole_ranges: Vec<Range<usize>>,
    /// For each position, the first prompt position after it (`u32::MAX`: none follows, the
    /// canvas tail); prompt positions never change, so this is computed once at start.
    next_fixed: Vec<u32>,
    blocks: Vec<Vec<usize>>,
    block_steps: Vec<usize>,
    block: usize,
    block_step: usize,
    step: usize,
    forward_passes: usize,
    rng: Rng,
    banned: HashMap<usize, Vec<u32>>,
    attempts: HashMap<usize, usize>,
    remasks: usize,
    blocked_total: usize,
    blocked_mass: f64,
    tally: HashMap<String, BlockTally>,
    logprobs: HashMap<usize, f32>,
    model_ms: f64,
    guard_ms: f64,
    t0: f64,
    done: bool,
    cancelled: bool,
    max_steps: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("len", &self.slots.len())
            .field("step", &self.step)
            .field("open", &self.open_count())
            .field("done", &self.done)
            .finish()
    }
}

impl Session {
    fn new(
        engine: &Engine,
        req: &GenerateRequest,
        encoder: &dyn TextEncoder,
    ) -> Result<(Session, StartEvent)> {
        req.validate()?;
        let t0 = (engine.clock)();
        let prompt = Prompt::parse(&req.prompt)?.or_continue(req.max_new);
        let vlen = engine.vocab.len();
        let mut slots = Vec::new();
        let mut hole_ranges = Vec::new();
        for seg in &prompt.segments {
            match seg {
                Segment::Text(t) => {
                    let ids = encoder.encode(t).map_err(SamplerError::Tokens)?;
                    for id in ids {
                        if id as usize >= vlen {
                            return Err(SamplerError::Tokens(format!(
                                "the tokenizer gave id {id}, outside the vocabulary of {vlen}"
                            )));
                        }
                        slots.push(Pos::Fixed(id));
                    }
                }
                Segment::Hole(n) => {
                    hole_ranges.push(slots.len()..slots.len() + n);
                    slots.extend(std::iter::repeat_n(Pos::Hole, *n));
                }
            }
        }
        let canvas = Canvas::from_slots(slots.iter().map(|p| match p {
            Pos::Fixed(t) => Slot::Fixed(*t),
            _ => Slot::Hole,
        }));
        let enforce = req.enforce && engine.tp.is_some();
        let guard = if enforce {
            let tp = engine.tp.clone().expect("checked");
            let cfg = GuardConfig {
                end_in_holes: req.end_in_holes,
                ..GuardConfig::default()
            };
            Some(
                Guard::with_config(tp, &canvas, &cfg)
                    .map_err(|e| prompt_error(engine, &slots, &e))?,
            )
        } else {
            None
        };
        let ids: Vec<u32> = slots
            .iter()
            .map(|p| match p {
                Pos::Fixed(t) => *t,
                _ => engine.special.mask,
            })
            .collect();
        let holes: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i] == Pos::Hole)
            .collect();
        let blocks: Vec<Vec<usize>> = if req.block == 0 || req.block >= holes.len() {
            vec![holes.clone()]
        } else {
            holes.chunks(req.block).map(|c| c.to_vec()).collect()
        };
        let total = req.steps.unwrap_or((holes.len() / 2).max(1)).max(1);
        let block_steps: Vec<usize> = blocks
            .iter()
            .map(|b| {
                ((total as f64 * b.len() as f64 / holes.len().max(1) as f64).round() as usize)
                    .max(1)
            })
            .collect();
        let mut next_fixed = vec![u32::MAX; slots.len()];
        for q in (1..slots.len()).rev() {
            next_fixed[q - 1] = if matches!(slots[q], Pos::Fixed(_)) {
                q as u32
            } else {
                next_fixed[q]
            };
        }
        let start = StartEvent {
            kind: "start".into(),
            canvas: slots
                .iter()
                .enumerate()
                .map(|(position, p)| match p {
                    Pos::Fixed(t) => CanvasCell {
                        position,
                        token: Some(*t),
                        text: String::from_utf8_lossy(engine.vocab.bytes(*t)).into_owned(),
                        kind: "fixed".into(),
                    },
                    _ => CanvasCell {
                        position,
                        token: None,
                        text: String::new(),
                        kind: "hole".into(),
                    },
                })
                .collect(),
            holes: holes.clone(),
            steps: block_steps.iter().sum(),
            enforce,
        };
        let max_steps = 4 * holes.len() + req.max_remasks + 16;
        let s = Session {
            vocab: engine.vocab.clone(),
            policy: engine.policy.clone(),
            tp_used: enforce,
            special: engine.special,
            model: engine.model.clone(),
            clock: engine.clock,
            never: engine.never.clone(),
            vocab_forbidden: if enforce {
                engine.vocab_forbidden.clone()
            } else {
                Vec::new()
            },
            pad: engine.pad,
            req: req.clone(),
            guard,
            slots,
            ids,
            hole_ranges,
            next_fixed,
            blocks,
            block_steps,
            block: 0,
            block_step: 0,
            step: 0,
            forward_passes: 0,
            rng: Rng::new(req.seed),
            banned: HashMap::new(),
            attempts: HashMap::new(),
            remasks: 0,
            blocked_total: 0,
            blocked_mass: 0.0,
            tally: HashMap::new(),
            logprobs: HashMap::new(),
            model_ms: 0.0,
            guard_ms: 0.0,
            t0,
            done: holes.is_empty(),
            cancelled: false,
            max_steps,
        };
        Ok((s, start))
    }

    /// Counts `ms` of logits computation done outside [`Session::step`] (a caller that
    /// precomputes the logits, e.g. on WebGPU with an asynchronous read-back, then steps over
    /// them) in the result's `model_ms`.
    pub fn add_model_ms(&mut self, ms: f64) {
        if ms.is_finite() && ms > 0.0 {
            self.model_ms += ms;
        }
    }

    /// Asks the loop to stop: the next [`Session::step`] fails with
    /// [`SamplerError::Cancelled`].
    pub fn cancel(&mut self) {
        self.cancelled = true;
    }

    /// True when every hole is filled (or the text has ended).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The canvas as the model sees it (mask ids at holes, end ids where the text ended).
    pub fn model_ids(&self) -> &[u32] {
        &self.ids
    }

    /// The guard, when enforcing.
    pub fn guard(&self) -> Option<&Guard> {
        self.guard.as_ref()
    }

    fn open_count(&self) -> usize {
        self.slots.iter().filter(|p| **p == Pos::Hole).count()
    }

    fn now(&self) -> f64 {
        (self.clock)()
    }

    /// One denoising step: a forward pass over the canvas, the masked distributions at the
    /// open positions of the current block, commits. `Ok(None)` when the generation is
    /// finished.
    pub fn step(&mut self, src: &mut dyn LogitsSource) -> Result<Option<StepEvent>> {
        if self.cancelled {
            return Err(SamplerError::Cancelled);
        }
        if self.done {
            return Ok(None);
        }
        if self.step >= self.max_steps {
            return Err(SamplerError::Stuck {
                position: self.slots.iter().position(|p| *p == Pos::Hole).unwrap_or(0),
                rule_ids: Vec::new(),
                remasks: self.remasks,
            });
        }
        let mut guard_ms = 0.0;
        // The current block's open positions (advance and retire finished blocks).
        let open = loop {
            let open: Vec<usize> = self.blocks[self.block]
                .iter()
                .copied()
                .filter(|&p| self.slots[p] == Pos::Hole)
                .collect();
            if !open.is_empty() {
                break open;
            }
            if self.block + 1 >= self.blocks.len() {
                // Only reopened positions of earlier blocks could remain (never with a
                // guard: earlier blocks are retired); pick them up.
                let rest: Vec<usize> = (0..self.slots.len())
                    .filter(|&p| self.slots[p] == Pos::Hole)
                    .collect();
                if rest.is_empty() {
                    self.done = true;
                    return Ok(None);
                }
                break rest;
            }
            self.block += 1;
            self.block_step = 0;
            let first = self.blocks[self.block][0];
            let t = self.now();
            if let Some(g) = &mut self.guard {
                if (g.base()..first).all(|p| g.slot(p).is_some_and(|s| s != Slot::Hole)) {
                    g.retire_prefix(first)
                        .map_err(|e| SamplerError::guard("retiring the finished block", &e))?;
                }
            }
            guard_ms += self.now() - t;
        };

        // Forward pass.
        let t = self.now();
        let v = src.vocab_size();
        let vl = self.vocab.len();
        if v < vl {
            return Err(SamplerError::Source(format!(
                "the source gives {v} logits per position, the vocabulary has {vl} tokens"
            )));
        }
        let logits = src.logits(&self.ids, &open)?;
        if logits.len() != open.len() * v {
            return Err(SamplerError::Source(format!(
                "{} logits for {} positions × {v}",
                logits.len(),
                open.len()
            )));
        }
        let model_ms = self.now() - t;
        self.forward_passes += 1;

        // Candidates under the static exclusions (the vocabulary mask among them), then the
        // guard lazily, best first: the fast path `allows` on a candidate about to be
        // committed; when it fails, the exact mask, a new choice from the allowed
        // distribution and a new (masked) confidence, and the candidate goes back in line.
        // So the guard is only asked about the positions that are about to be committed.
        let mut blocked = Vec::new();
        let mut remasks = Vec::new();
        let mut line: Vec<Cand> = Vec::with_capacity(open.len());
        for (k, &pos) in open.iter().enumerate() {
            let raw = &logits[k * v..k * v + vl];
            line.push(self.choose_static(pos, k, raw)?);
        }
        let n_open = open.len();
        let quota = match self.req.strategy {
            Strategy::Threshold => usize::MAX,
            _ => {
                let left = self.block_steps[self.block]
                    .saturating_sub(self.block_step)
                    .max(1);
                n_open.div_ceil(left)
            }
        };
        let mut accepted: Vec<Cand> = Vec::new();
        let mut conflicts = Vec::new();
        while accepted.len() < quota {
            // The best candidate still in line (ties: lowest position).
            let Some(bi) = (0..line.len()).max_by(|&a, &b| {
                line[a]
                    .conf
                    .total_cmp(&line[b].conf)
                    .then(line[b].pos.cmp(&line[a].pos))
            }) else {
                break;
            };
            if self.req.strategy == Strategy::Threshold
                && !accepted.is_empty()
                && line[bi].prob < self.req.threshold
            {
                break;
            }
            let c = line.swap_remove(bi);
            if c.checked || !self.guard_judges(c.pos, c.token) {
                accepted.push(c);
                continue;
            }
            let t = self.now();
            let ok = self
                .guard
                .as_ref()
                .is_some_and(|g| g.allows(c.pos, c.token));
            guard_ms += self.now() - t;
            if ok {
                accepted.push(Cand { checked: true, ..c });
                continue;
            }
            let raw = &logits[c.row * v..c.row * v + vl];
            match self.choose_masked(c.pos, c.row, raw, &mut blocked, &mut guard_ms)? {
                Choice::Cand(m) => line.push(m),
                Choice::Conflict(x) => conflicts.push(x),
            }
        }
        for c in conflicts {
            self.remask(c, &mut remasks)?;
        }
        let cands = accepted;

        // Commit one at a time, re-checking each against the updated sets.
        let mut committed = Vec::new();
        for cand in cands {
            let raw = &logits[cand.row * v..cand.row * v + vl];
            self.commit_cand(
                cand,
                raw,
                &mut committed,
                &mut blocked,
                &mut remasks,
                &mut guard_ms,
            )?;
        }

        self.step += 1;
        self.block_step += 1;
        self.guard_ms += guard_ms;
        self.model_ms += model_ms;
        let open_after = self.open_count();
        if open_after == 0 {
            self.done = true;
        }
        Ok(Some(StepEvent {
            kind: "step".into(),
            step: self.step - 1,
            block: self.block,
            committed,
            blocked,
            remasks,
            open: open_after,
            model_ms,
            guard_ms,
        }))
    }

    /// The end of the infill hole holding `pos` (the first prompt position after it), or
    /// None where no prompt text follows (the canvas tail).
    fn infill_end(&self, pos: usize) -> Option<usize> {
        match self.next_fixed.get(pos) {
            Some(&q) if q != u32::MAX => Some(q as usize),
            _ => None,
        }
    }

    /// May the text end at `pos` (all later positions become end-of-text), or, in an infill
    /// hole with `early_end`, the hole (its later positions become empty)?
    fn end_permitted(&self, pos: usize) -> bool {
        if self.special.eos.is_none() {
            return false;
        }
        if let Some(e) = self.infill_end(pos) {
            // Only at the hole's tail (nothing but pads after it in the hole), and only after
            // text: a hole keeps at least one committed token with a non-blank byte before
            // its end, as in training, where an infill's span is code, never empty or blank
            // (an infill of indentation alone was the commonest failure of the default model).
            return self.req.early_end
                && self.slots[pos + 1..e]
                    .iter()
                    .all(|p| matches!(p, Pos::Hole | Pos::Pad))
                && self.text_before_in_hole(pos);
        }
        if self.guard.is_some() && !self.req.end_in_holes {
            // Exact masks: the text may only end where nothing was committed after it.
            return self.slots[pos + 1..]
                .iter()
                .all(|p| matches!(p, Pos::Hole | Pos::Ended));
        }
        true
    }

    /// Whether a token committed in the infill hole of `pos`, before `pos`, holds a byte that
    /// is not blank (space, tab, form feed, carriage return or newline).
    fn text_before_in_hole(&self, pos: usize) -> bool {
        self.slots[..pos]
            .iter()
            .rev()
            .take_while(|p| !matches!(p, Pos::Fixed(_)))
            .any(|p| match *p {
                Pos::Token(t) => self
                    .vocab
                    .bytes(t)
                    .iter()
                    .any(|b| !matches!(b, b' ' | b'\t' | b'\x0c' | b'\r' | b'\n')),
                _ => false,
            })
    }

    /// Whether the end token at `pos` is the sampler's decision rather than the guard's:
    /// always without `end_in_holes`, and in an infill hole (where it empties the hole).
    fn eos_is_samplers(&self, pos: usize) -> bool {
        !self.req.end_in_holes || self.infill_end(pos).is_some()
    }

    /// The row of `pos` with every static exclusion applied.
    fn base_row(&self, pos: usize, raw: &[f32]) -> Vec<f32> {
        let mut row = raw.to_vec();
        for &t in self.never.iter().chain(&self.vocab_forbidden) {
            row[t as usize] = f32::NEG_INFINITY;
        }
        if let Some(b) = self.banned.get(&pos) {
            for &t in b {
                row[t as usize] = f32::NEG_INFINITY;
            }
        }
        if let Some(e) = self.special.eos {
            if !self.end_permitted(pos) {
                row[e as usize] = f32::NEG_INFINITY;
            }
        }
        for x in row.iter_mut() {
            if x.is_nan() {
                *x = f32::NEG_INFINITY;
            }
        }
        row
    }

    /// Whether the guard decides about `t` at `pos` (the end token is the sampler's own
    /// decision where [`Session::eos_is_samplers`]).
    fn guard_judges(&self, pos: usize, t: u32) -> bool {
        self.guard.is_some() && (Some(t) != self.special.eos || !self.eos_is_samplers(pos))
    }

    fn temperature(&self) -> f32 {
        if self.req.temperature > 0.0 {
            self.req.temperature
        } else {
            1.0
        }
    }

    /// The candidate at `pos` under the static exclusions (no position mask yet).
    fn choose_static(&mut self, pos: usize, row_idx: usize, raw: &[f32]) -> Result<Cand> {
        let temp = self.temperature();
        let row = self.base_row(pos, raw);
        let d = RowDist::of(&row, temp);
        let Some(x) = pick(&row, &d, &self.req, &mut self.rng) else {
            // Every token excluded: the bans at this position were too many; forget them.
            if self.banned.remove(&pos).is_some() {
                return self.choose_static(pos, row_idx, raw);
            }
            return Err(SamplerError::Tokens(format!(
                "no token can be chosen at position {pos}: the logits are all excluded"
            )));
        };
        let conf = confidence(self.req.strategy, &row, &d, x, &mut self.rng);
        Ok(Cand {
            pos,
            token: x,
            prob: d.prob(row[x as usize]),
            conf,
            masked: false,
            checked: false,
            row: row_idx,
            d0: d,
        })
    }

    /// The candidate at `pos` under the exact position mask: the blocked likely candidates
    /// are reported, the mask is applied and the choice is made again from the allowed
    /// distribution (so a sample follows exactly the masked distribution: rejection
    /// sampling), with the masked confidence.
    fn choose_masked(
        &mut self,
        pos: usize,
        row_idx: usize,
        raw: &[f32],
        blocked: &mut Vec<Blocked>,
        guard_ms: &mut f64,
    ) -> Result<Choice> {
        let temp = self.temperature();
        let mut row = self.base_row(pos, raw);
        let d0 = RowDist::of(&row, temp);
        let t = self.now();
        let g = self.guard.as_ref().expect("only with a guard");
        let mask = match g.mask(pos) {
            Ok(m) => m,
            Err(GuardError::Conflict(c)) => {
                *guard_ms += self.now() - t;
                return Ok(Choice::Conflict(c));
            }
            Err(e) => return Err(SamplerError::guard("mask", &e)),
        };
        self.record_blocked(pos, &row, &d0, |t| mask.contains(t), blocked);
        let keep_eos = self
            .special
            .eos
            .filter(|_| self.eos_is_samplers(pos))
            .map(|e| (e, row[e as usize]));
        mask.apply_to(&mut row);
        if let Some((e, val)) = keep_eos {
            row[e as usize] = val;
        }
        *guard_ms += self.now() - t;
        let d = RowDist::of(&row, temp);
        let Some(x) = pick(&row, &d, &self.req, &mut self.rng) else {
            // Allowed tokens exist (the mask is not empty) but all are excluded statically
            // or banned here: a conflict to remask.
            self.banned.remove(&pos);
            let constraining = self
                .guard
                .as_ref()
                .map(|g| g.constraining_commits(pos))
                .unwrap_or_default();
            return Ok(Choice::Conflict(Conflict {
                position: pos,
                modules: Vec::new(),
                rule_ids: Vec::new(),
                constraining,
            }));
        };
        let conf = confidence(self.req.strategy, &row, &d, x, &mut self.rng);
        Ok(Choice::Cand(Cand {
            pos,
            token: x,
            prob: d.prob(row[x as usize]),
            conf,
            masked: true,
            checked: true,
            row: row_idx,
            d0,
        }))
    }

    /// Reports the candidates at `pos` at least `blocked_floor` likely (in `d`, before
    /// masking) that `allowed` rejects, with the rules that forbid them.
    fn record_blocked(
        &mut self,
        pos: usize,
        row: &[f32],
        d: &RowDist,
        allowed: impl Fn(u32) -> bool,
        out: &mut Vec<Blocked>,
    ) {
        let Some(g) = &self.guard else { return };
        let floor = self.req.blocked_floor;
        let mut found: Vec<(u32, f32)> = Vec::new();
        for (t, &x) in row.iter().enumerate() {
            if x.is_finite() {
                let p = d.prob(x);
                if p >= floor && p > 0.0 && !allowed(t as u32) && self.guard_judges(pos, t as u32) {
                    found.push((t as u32, p));
                }
            }
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (t, p) in found {
            let mut rule_ids: Vec<String> = g
                .why_forbidden(pos, t)
                .into_iter()
                .map(|b| b.rule_id)
                .collect();
            rule_ids.sort();
            rule_ids.dedup();
            for r in &rule_ids {
                let e = self.tally.entry(r.clone()).or_default();
                e.count += 1;
                e.mass += p as f64 / rule_ids.len() as f64;
            }
            self.blocked_total += 1;
            self.blocked_mass += p as f64;
            out.push(Blocked {
                position: pos,
                token: t,
                text: String::from_utf8_lossy(self.vocab.bytes(t)).into_owned(),
                probability: p,
                rule_ids,
            });
        }
    }

    fn commit_cand(
        &mut self,
        cand: Cand,
        raw: &[f32],
        committed: &mut Vec<Committed>,
        blocked: &mut Vec<Blocked>,
        remasks: &mut Vec<Remask>,
        guard_ms: &mut f64,
    ) -> Result<()> {
        let pos = cand.pos;
        if self.slots[pos] != Pos::Hole {
            return Ok(()); // ended by an earlier commit of this step
        }
        let logprob = raw[cand.token as usize] - logsumexp(raw);
        if Some(cand.token) == self.special.eos {
            let t = self.now();
            let ok = self.try_end(pos, committed)?;
            *guard_ms += self.now() - t;
            if !ok {
                self.banned.entry(pos).or_default().push(cand.token);
            }
            return Ok(());
        }
        if self.guard.is_some() {
            let t = self.now();
            if !cand.masked {
                // Report what the policy blocked among the likely candidates here: the
                // tokens at least `blocked_floor` likely under the static exclusions (a
                // logit threshold, no second softmax).
                let row = self.base_row(pos, raw);
                let d = cand.d0;
                let floor = self.req.blocked_floor.max(f32::MIN_POSITIVE);
                let zmin = d.m as f64 + (floor as f64 * d.s).ln();
                let g = self.guard.as_ref().expect("checked");
                let forbidden: Vec<u32> = row
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| (**x * d.inv_t) as f64 >= zmin)
                    .map(|(t, _)| t as u32)
                    .filter(|&t| t != cand.token && self.guard_judges(pos, t) && !g.allows(pos, t))
                    .collect();
                if !forbidden.is_empty() {
                    self.record_blocked(pos, &row, &d, |t| !forbidden.contains(&t), blocked);
                }
            }
            let g = self.guard.as_mut().expect("checked");
            match g.commit(pos, cand.token) {
                Ok(()) => {}
                Err(GuardError::Forbidden { .. }) => {
                    // An earlier commit of this step changed what is allowed here: choose
                    // again with the exact mask.
                    *guard_ms += self.now() - t;
                    let mut tmp_guard_ms = 0.0;
                    match self.choose_masked(pos, cand.row, raw, blocked, &mut tmp_guard_ms)? {
                        Choice::Cand(c) => {
                            *guard_ms += tmp_guard_ms;
                            // The new choice was checked against the current sets (fast
                            // path or exact mask), so this commit cannot be refused again;
                            // if it were, that is a guard bug, reported as such.
                            let retry = self.guard.as_ref().is_some_and(|g| g.allows(pos, c.token))
                                || Some(c.token) == self.special.eos;
                            if !retry {
                                return Err(SamplerError::Guard(format!(
                                    "position {pos}: token {} was chosen under the exact mask but is not allowed",
                                    c.token
                                )));
                            }
                            return self.commit_cand(
                                Cand { masked: true, ..c },
                                raw,
                                committed,
                                blocked,
                                remasks,
                                guard_ms,
                            );
                        }
                        Choice::Conflict(c) => {
                            *guard_ms += tmp_guard_ms;
                            return self.remask(c, remasks);
                        }
                    }
                }
                Err(e) => return Err(SamplerError::guard("commit", &e)),
            }
            *guard_ms += self.now() - t;
        }
        self.slots[pos] = Pos::Token(cand.token);
        self.ids[pos] = cand.token;
        self.logprobs.insert(pos, logprob);
        committed.push(Committed {
            position: pos,
            token: cand.token,
            text: String::from_utf8_lossy(self.vocab.bytes(cand.token)).into_owned(),
            probability: cand.prob,
            end: false,
        });
        Ok(())
    }

    /// Ends the text at `pos`: every open position from `pos` on becomes end-of-text. With a
    /// guard and exact masks, a text-free pad token is committed there (the guard then judges
    /// exactly the text that is returned); with `end_in_holes`, the end token itself. In an
    /// infill hole (`early_end`) only the hole ends: its open positions from `pos` on get the
    /// pad token, and the text goes on after the hole. False when the guard refuses (ending
    /// here would leave a violation).
    fn try_end(&mut self, pos: usize, committed: &mut Vec<Committed>) -> Result<bool> {
        let Some(eos) = self.special.eos else {
            return Ok(false);
        };
        if !self.end_permitted(pos) {
            return Ok(false);
        }
        let infill = self.infill_end(pos);
        let n = infill.unwrap_or(self.slots.len());
        let targets: Vec<usize> = (pos..n).filter(|&q| self.slots[q] == Pos::Hole).collect();
        if let Some(g) = &mut self.guard {
            let fill = if self.req.end_in_holes && infill.is_none() {
                eos
            } else {
                match self.pad {
                    Some(p) => p,
                    None => return Ok(false),
                }
            };
            let snap = g.snapshot();
            let order: Vec<usize> = if fill == eos {
                targets.clone()
            } else {
                targets.iter().rev().copied().collect()
            };
            for &q in &order {
                if g.commit(q, fill).is_err() {
                    g.restore(&snap)
                        .map_err(|e| SamplerError::guard("restoring after a refused end", &e))?;
                    return Ok(false);
                }
            }
        }
        for &q in &targets {
            self.slots[q] = if infill.is_some() {
                Pos::Pad
            } else {
                Pos::Ended
            };
            self.ids[q] = eos;
            committed.push(Committed {
                position: q,
                token: eos,
                text: String::new(),
                probability: 1.0,
                end: true,
            });
        }
        Ok(true)
    }

    /// Resolves a conflict: reopens the most recent commit that constrains the hole (the
    /// second time at the same hole, every constraining commit), and forbids the reopened
    /// tokens at their positions.
    fn remask(&mut self, c: Conflict, out: &mut Vec<Remask>) -> Result<()> {
        self.remasks += 1;
        let stuck = |s: &Session, c: &Conflict| SamplerError::Stuck {
            position: c.position,
            rule_ids: if c.rule_ids.is_empty() {
                Vec::new()
            } else {
                c.rule_ids.clone()
            },
            remasks: s.remasks,
        };
        if self.remasks > self.req.max_remasks {
            return Err(stuck(self, &c));
        }
        let att = self.attempts.entry(c.position).or_insert(0);
        *att += 1;
        let reopen: Vec<usize> = if *att == 1 {
            c.constraining.iter().take(1).copied().collect()
        } else {
            c.constraining.clone()
        };
        if reopen.is_empty() {
            return Err(stuck(self, &c));
        }
        let g = self.guard.as_mut().expect("conflicts come from the guard");
        for &p in &reopen {
            let prev = self.slots[p];
            g.uncommit(p)
                .map_err(|e| SamplerError::guard("remask", &e))?;
            let banned_tok = match prev {
                Pos::Token(t) => Some(t),
                Pos::Ended | Pos::Pad => self.special.eos,
                _ => None,
            };
            if let Some(t) = banned_tok {
                self.banned.entry(p).or_default().push(t);
            }
            self.slots[p] = Pos::Hole;
            self.ids[p] = self.special.mask;
            self.logprobs.remove(&p);
        }
        out.push(Remask {
            position: c.position,
            reopened: reopen,
            rule_ids: c.rule_ids,
        });
        Ok(())
    }

    /// The text bytes of `range` of the canvas (committed and fixed tokens; the text stops
    /// at an end token).
    fn bytes_of(&self, range: Range<usize>) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        for p in range {
            match self.slots[p] {
                Pos::Fixed(t) | Pos::Token(t) => match self.vocab.kind(t) {
                    TokenKind::End => return (out, true),
                    _ => out.extend_from_slice(self.vocab.bytes(t)),
                },
                Pos::Ended => {
                    if self.guard.is_none() || self.req.end_in_holes {
                        return (out, true);
                    }
                }
                Pos::Hole | Pos::Pad => {}
            }
        }
        (out, false)
    }

    /// The finished text and the certificate. Fails before the generation is finished.
    pub fn result(&mut self) -> Result<GenerationResult> {
        if !self.done {
            return Err(SamplerError::request(
                "result",
                "the generation is not finished (call step until it returns None)",
            ));
        }
        let (bytes, _) = self.bytes_of(0..self.slots.len());
        let mut holes = Vec::new();
        let mut ended = false;
        for r in &self.hole_ranges {
            if ended {
                holes.push(String::new());
                continue;
            }
            let (b, e) = self.bytes_of(r.clone());
            ended = e;
            holes.push(String::from_utf8_lossy(&b).into_owned());
        }
        let findings: Vec<CertFinding> = self
            .policy
            .as_ref()
            .map(|p| {
                rescan(p, &bytes)
                    .iter()
                    .map(CertFinding::from_finding)
                    .collect()
            })
            .unwrap_or_default();
        let policy_info = match (&self.policy, self.tp_used) {
            (Some(p), true) => Some(PolicyInfo {
                name: p.name().to_string(),
                digest: policy_digest(p),
                enforced_rules: p
                    .rules()
                    .iter()
                    .filter(|r| r.enforced())
                    .map(|r| {
                        let t = self.tally.get(&r.id).cloned().unwrap_or_default();
                        EnforcedRule {
                            id: r.id.clone(),
                            severity: r.severity.as_str().to_string(),
                            message: r.message.trim().to_string(),
                            cwe: r.cwe.clone(),
                            blocked_candidates: t.count,
                            blocked_mass: t.mass,
                        }
                    })
                    .collect(),
                reported_rules: p
                    .rules()
                    .iter()
                    .filter(|r| r.enabled && !r.enforced())
                    .map(|r| r.id.clone())
                    .collect(),
            }),
            _ => None,
        };
        let certificate = Certificate {
            format: CERTIFICATE_FORMAT.into(),
            policy: policy_info,
            scanned_with: self
                .policy
                .as_ref()
                .map(|p| format!("{} ({})", p.name(), policy_digest(p))),
            model: self.model.clone(),
            request: self.req.clone(),
            seed: self.req.seed,
            blocked_total: self.blocked_total,
            blocked_mass: self.blocked_mass,
            remasks: self.remasks,
            findings,
            enforced_findings: 0,
            verdict: String::new(),
        }
        .finish();
        let tokens = self
            .slots
            .iter()
            .filter(|p| matches!(p, Pos::Token(_)))
            .count();
        let mean_logprob = if self.logprobs.is_empty() {
            0.0
        } else {
            self.logprobs.values().map(|&x| x as f64).sum::<f64>() / self.logprobs.len() as f64
        };
        Ok(GenerationResult {
            kind: "result".into(),
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
            holes,
            tokens,
            steps: self.step,
            forward_passes: self.forward_passes,
            blocked_candidates: self.blocked_total,
            remasks: self.remasks,
            mean_logprob,
            timings: Timings {
                total_ms: self.now() - self.t0,
                model_ms: self.model_ms,
                guard_ms: self.guard_ms,
            },
            certificate,
        })
    }
}

/// Maps the guard's refusal of the initial canvas to a sampler error naming the rule and
/// the span.
fn prompt_error(engine: &Engine, slots: &[Pos], e: &GuardError) -> SamplerError {
    match e {
        GuardError::CanvasViolates { rule_id, span, .. } => {
            let prefix: Vec<u32> = slots
                .iter()
                .take_while(|p| matches!(p, Pos::Fixed(_)))
                .filter_map(|p| match p {
                    Pos::Fixed(t) => Some(*t),
                    _ => None,
                })
                .collect();
            let text = engine.vocab.decode(&prefix);
            let snippet = text
                .get(span.start.min(text.len())..span.end.min(text.len()))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let message = engine
                .policy
                .as_ref()
                .and_then(|p| p.rule_index(rule_id).map(|i| p.rule(i).message.clone()))
                .unwrap_or_default();
            SamplerError::PromptViolates {
                rule_id: rule_id.clone(),
                message,
                start: span.start,
                end: span.end,
                snippet,
            }
        }
        other => SamplerError::guard("the prompt", other),
    }
}
