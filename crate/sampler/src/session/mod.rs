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

mod choose;
mod ending;
mod finish;
mod forward;

use forward::{Forward, Prefetched};

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
    /// Whether the guard works on a second thread during forward passes (natively).
    guard_thread: bool,
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
    /// An engine for `vocab`, enforcing `policy`, lifted to the vocabulary here: natively
    /// with every module's token rows filled at once on one thread per core
    /// ([`TokenPolicy::prefill`]; about 0.1 s for the python pack at 8k tokens on two cores),
    /// in wasm lazily by the first guard. Without a policy, generation is unconstrained and
    /// nothing is re-scanned.
    pub fn new(
        vocab: Arc<Vocab>,
        policy: Option<Arc<CompiledPolicy>>,
        special: SpecialTokens,
        model: ModelInfo,
    ) -> Result<Engine> {
        let tp = policy.as_ref().map(|p| {
            let tp = TokenPolicy::new(p.clone(), vocab.clone());
            #[cfg(not(target_family = "wasm"))]
            tp.prefill(0);
            Arc::new(tp)
        });
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
            guard_thread: cfg!(not(target_family = "wasm")),
        })
    }

    /// Whether the guard works on a second thread while the model computes logits (default:
    /// on natively, off in wasm, which has no threads here): during each forward pass it
    /// brings its sets up to date for the commits of the step before
    /// ([`ward_guard::Guard::settle`]), and [`Engine::start_with_first_pass`] builds it
    /// during the first pass. The output is the same either way (the guard's answers do not
    /// depend on when its sets are computed); only where the time goes changes.
    pub fn set_guard_thread(&mut self, on: bool) {
        self.guard_thread = on && cfg!(not(target_family = "wasm"));
    }

    /// Whether the guard works on a second thread during forward passes
    /// ([`Engine::set_guard_thread`]).
    pub fn guard_thread(&self) -> bool {
        self.guard_thread
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
    /// false from it to cancel). The first forward pass runs while the guard is built
    /// ([`Engine::start_with_first_pass`]).
    pub fn generate(
        &self,
        request: &GenerateRequest,
        encoder: &dyn TextEncoder,
        source: &mut dyn LogitsSource,
        mut on_step: impl FnMut(&StepEvent) -> bool,
    ) -> Result<GenerationResult> {
        let (mut s, _) = self.start_with_first_pass(request, encoder, source)?;
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
    /// See [`Engine::set_guard_thread`] (always false in wasm).
    #[cfg_attr(target_family = "wasm", allow(dead_code))]
    guard_thread: bool,
    /// The first forward pass, run by [`Engine::start_with_first_pass`].
    prefetched: Option<Prefetched>,
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
    guard_parallel_ms: f64,
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
        let (mut s, start, canvas) = Session::unguarded(engine, req, encoder)?;
        if let Some(c) = canvas {
            s.install_guard(engine, &c)?;
        }
        Ok((s, start))
    }

    /// The guard's configuration for this request.
    fn guard_config(&self) -> GuardConfig {
        GuardConfig {
            end_in_holes: self.req.end_in_holes,
            ..GuardConfig::default()
        }
    }

    /// Builds the guard over `canvas` here (on the critical path).
    fn install_guard(&mut self, engine: &Engine, canvas: &Canvas) -> Result<()> {
        let tp = engine.tp.clone().expect("a canvas only when enforcing");
        let t = self.now();
        let g = Guard::with_config(tp, canvas, &self.guard_config())
            .map_err(|e| prompt_error(engine, &self.slots, &e))?;
        self.guard_ms += self.now() - t;
        self.guard = Some(g);
        Ok(())
    }

    /// The session without its guard, and the guard's canvas when enforcing.
    fn unguarded(
        engine: &Engine,
        req: &GenerateRequest,
        encoder: &dyn TextEncoder,
    ) -> Result<(Session, StartEvent, Option<Canvas>)> {
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
            guard: None,
            guard_thread: engine.guard_thread,
            prefetched: None,
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
            guard_parallel_ms: 0.0,
            t0,
            done: holes.is_empty(),
            cancelled: false,
            max_steps,
        };
        Ok((s, start, enforce.then_some(canvas)))
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

        // Forward pass (and the guard's pending set updates on a second thread).
        let Forward {
            logits,
            vocab: v,
            model_ms,
            guard_wait_ms,
            guard_parallel_ms,
        } = self.forward(src, &open)?;
        let vl = self.vocab.len();
        if logits.len() != open.len() * v {
            return Err(SamplerError::Source(format!(
                "{} logits for {} positions × {v}",
                logits.len(),
                open.len()
            )));
        }
        guard_ms += guard_wait_ms;
        self.guard_parallel_ms += guard_parallel_ms;
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
        // Commit one at a time, re-checking each against the updated sets, left to right: a
        // commit changes the guard's backward sets only to its left (back to the nearest open
        // hole) and its forward sets only through the witness path, which is kept eagerly, so
        // a later commit to the right finds the sets it reads still up to date (in confidence
        // order each commit to the left of an earlier one redid that backward chain: p99 per
        // committed token at 152k 229 against 48 µs, crate/guard/README.md). Where two tokens
        // of one step interact, the left one now wins; both were chosen from the same pass.
        let mut cands = accepted;
        cands.sort_by_key(|c| c.pos);
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
            guard_parallel_ms,
        }))
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
