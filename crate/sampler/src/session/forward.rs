//! The forward pass of a step, and the guard's work beside it: natively, while this thread
//! computes the logits, a second one builds the guard (the first pass,
//! [`Engine::start_with_first_pass`]) or brings its sets up to date ([`Guard::settle`], every
//! later pass), so that the guard's work costs no wall time where the pass takes longer.

use super::*;

/// The logits of one step and where its time went.
pub(super) struct Forward {
    pub(super) logits: Vec<f32>,
    /// Logits per position.
    pub(super) vocab: usize,
    pub(super) model_ms: f64,
    /// Waiting for the guard's thread after the pass (critical path).
    pub(super) guard_wait_ms: f64,
    /// The guard's work on its thread.
    pub(super) guard_parallel_ms: f64,
}

/// A forward pass run before the first step ([`Engine::start_with_first_pass`]), for the
/// positions `open` (the first block's holes); the guard's times are already counted in the
/// session.
pub(super) struct Prefetched {
    pub(super) open: Vec<usize>,
    pub(super) pass: Forward,
}

/// `src.logits(ids, open)` on this thread while `beside` runs on a second one: the pass, its
/// milliseconds, the milliseconds waited for `beside` after it, and `beside`'s result and
/// milliseconds.
#[cfg(not(target_family = "wasm"))]
fn with_beside<T: Send>(
    clock: Clock,
    src: &mut dyn LogitsSource,
    ids: &[u32],
    open: &[usize],
    beside: impl FnOnce() -> T + Send,
) -> (Result<Vec<f32>>, f64, f64, T, f64) {
    std::thread::scope(|sc| {
        let h = sc.spawn(move || {
            let t = clock();
            let r = beside();
            (r, clock() - t)
        });
        let t = clock();
        let l = src.logits(ids, open);
        let ms = clock() - t;
        let (r, beside_ms) = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (l, ms, clock() - t - ms, r, beside_ms)
    })
}

/// `src.logits(ids, open)` alone, timed.
fn alone(
    clock: Clock,
    src: &mut dyn LogitsSource,
    ids: &[u32],
    open: &[usize],
    vocab: usize,
) -> Result<Forward> {
    let t = clock();
    let logits = src.logits(ids, open)?;
    Ok(Forward {
        logits,
        vocab,
        model_ms: clock() - t,
        guard_wait_ms: 0.0,
        guard_parallel_ms: 0.0,
    })
}

impl Engine {
    /// Starts a generation like [`Engine::start`] (the same session, event and errors) and
    /// runs its first forward pass with `source`, which the first [`Session::step`] then uses.
    /// With [`Engine::guard_thread`] on, the guard is built on a second thread while this one
    /// runs the pass, so its construction (forward and backward sets over the whole canvas)
    /// costs no wall time where the pass takes longer; otherwise the two run one after the
    /// other. A prompt that violates is refused as by `start` (after the pass, which is then
    /// wasted); an error of the pass is returned after the guard's.
    pub fn start_with_first_pass(
        &self,
        request: &GenerateRequest,
        encoder: &dyn TextEncoder,
        source: &mut dyn LogitsSource,
    ) -> Result<(Session, StartEvent)> {
        let (mut s, start, canvas) = Session::unguarded(self, request, encoder)?;
        let open = s.blocks.first().cloned().unwrap_or_default();
        if s.done || open.is_empty() {
            if let Some(c) = canvas {
                s.install_guard(self, &c)?;
            }
            return Ok((s, start));
        }
        let v = source.vocab_size();
        let pass = match canvas {
            #[cfg(not(target_family = "wasm"))]
            Some(c) if self.guard_thread => {
                let tp = self.tp.clone().expect("a canvas only when enforcing");
                let cfg = s.guard_config();
                let (l, model_ms, wait, g, build_ms) =
                    with_beside(self.clock, source, &s.ids, &open, move || {
                        Guard::with_config(tp, &c, &cfg)
                    });
                s.guard = Some(g.map_err(|e| prompt_error(self, &s.slots, &e))?);
                s.guard_parallel_ms += build_ms;
                s.guard_ms += wait;
                Forward {
                    logits: l?,
                    vocab: v,
                    model_ms,
                    guard_wait_ms: 0.0,
                    guard_parallel_ms: 0.0,
                }
            }
            c => {
                if let Some(c) = c {
                    s.install_guard(self, &c)?;
                }
                alone(self.clock, source, &s.ids, &open, v)?
            }
        };
        s.prefetched = Some(Prefetched { open, pass });
        Ok((s, start))
    }
}

impl Session {
    /// The logits of `open`: the prefetched first pass when it is the one asked for, else a
    /// forward pass of `src`. With the guard thread on and something committed since the
    /// guard was built, the guard brings its sets up to date on a second thread during the
    /// pass ([`Guard::settle`]), so that this step's queries find them ready.
    pub(super) fn forward(
        &mut self,
        src: &mut dyn LogitsSource,
        open: &[usize],
    ) -> Result<Forward> {
        let pre = self
            .prefetched
            .take()
            .filter(|p| p.open == open)
            .map(|p| p.pass);
        let v = pre.as_ref().map_or_else(|| src.vocab_size(), |p| p.vocab);
        let vl = self.vocab.len();
        if v < vl {
            return Err(SamplerError::Source(format!(
                "the source gives {v} logits per position, the vocabulary has {vl} tokens"
            )));
        }
        if let Some(p) = pre {
            return Ok(p);
        }
        #[cfg(not(target_family = "wasm"))]
        if let Some(g) = self
            .guard
            .as_ref()
            .filter(|_| self.guard_thread && self.step > 0)
        {
            let (l, model_ms, wait, (), settle_ms) =
                with_beside(self.clock, src, &self.ids, open, || g.settle());
            return Ok(Forward {
                logits: l?,
                vocab: v,
                model_ms,
                guard_wait_ms: wait,
                guard_parallel_ms: settle_ms,
            });
        }
        alone(self.clock, src, &self.ids, open, v)
    }
}
