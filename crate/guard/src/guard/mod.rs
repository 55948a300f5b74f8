//! The guard over one canvas. This file owns the `Guard` value itself: its fields, the
//! per-module set ids (`ModIds`, `Inner`), construction (`Guard::new`, `with_config`) and the
//! read-only accessors; each concept of the algorithm lives in its own file below.
//!
//! - `canvas.rs`: `Slot`, `Canvas`, `GuardConfig` (plain data).
//! - `propagate.rs`: the forward/backward state sets and their lazy propagation.
//! - `witness.rs`: the witness path, one state per position kept up to date at each commit.
//! - `query.rs`: `allows`, `mask`, `mask_unchecked` (what a hole may take).
//! - `commit.rs`: commit, uncommit, snapshot, restore, retire_prefix, table rebuilds.
//! - `attribution.rs`: conflicts, constraining commits, blame, blocked mass, and the
//!   diagnosis of a canvas without a safe completion.

mod attribution;
mod canvas;
mod commit;
mod propagate;
mod query;
mod witness;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::GuardError;
use crate::lift::TokenPolicy;
use crate::mask::states;
use crate::sets::SetTable;
use crate::vocab::TokenKind;

pub use attribution::BlockedMass;
pub use canvas::{Canvas, GuardConfig, Slot};
pub use commit::Snapshot;
use commit::{CommitRecord, SET_LIMIT};

/// Id of the empty set in every module's table.
const EMPTY: u32 = 0;

/// No state (a witness path that died).
const NO_STATE: u32 = u32::MAX;

/// Per module: the ids of the forward sets `F_j` and of the backward sets `B_j ∩ F⁰_j`
/// (`n + 1` of each), brought up to date lazily: the pending lists name the positions where
/// an update has to resume.
#[derive(Clone, Debug)]
struct ModIds {
    f: Vec<u32>,
    b: Vec<u32>,
    /// Sorted: positions `j` whose `F_{j+1}` must be recomputed from `F_j` (every `F` up to
    /// the first of them is current).
    fpend: Vec<u32>,
    /// Sorted: positions `j` whose `B_j` must be recomputed from `B_{j+1}` (every `B` from
    /// one past the last of them is current).
    bpend: Vec<u32>,
    /// A witness path: one state `w_j ∈ F_j` per position (`NO_STATE` where the path has
    /// died), kept up to date eagerly (single-state steps). `allows` answers yes from it
    /// when `t` takes `w_i` into `B_{i+1}`, without bringing `F` up to date.
    w: Vec<u32>,
}

impl ModIds {
    /// Slot `i` changed: `F_{i+1}` and `B_i` must be recomputed.
    fn mark(&mut self, i: usize) {
        for v in [&mut self.fpend, &mut self.bpend] {
            if let Err(k) = v.binary_search(&(i as u32)) {
                v.insert(k, i as u32);
            }
        }
    }
}

/// The mutable derived state of a guard (behind a lock, so that the `&self` queries can
/// bring sets up to date).
#[derive(Debug)]
struct Inner {
    /// Per module: the interned sets and memo tables.
    tables: Vec<SetTable>,
    /// Per module: the state-set ids per position.
    mods: Vec<ModIds>,
    /// Per module and position: `F⁰_j`, the forward set with every non-fixed slot open (a
    /// superset of `F_j` whatever is committed).
    f0: Vec<Vec<u32>>,
}

static NEXT_GUARD_ID: AtomicU64 = AtomicU64::new(1);

/// The guard over one canvas: exact per-position masks and the commit protocol.
///
/// For every module it keeps, per position `j`, the forward set `F_j` (states reachable
/// from the start through the canvas so far) and the backward set `B_j` (states from which
/// the rest of the canvas can still be completed without a violation, restricted to the
/// states `F⁰_j` reachable with every hole open), as ids of hash-consed sets; the good set
/// is `G_j = F_j ∩ B_j`. Token `t` is allowed at hole `i` iff in every module some
/// `q ∈ F_i` goes by `t` to a state of `B_{i+1}`. A commit only marks where the sets must be
/// updated; queries bring the sets they read up to date (memoised set operations), forward
/// from a mark until `F` stops changing and backward until `B` stops changing.
pub struct Guard {
    tp: Arc<TokenPolicy>,
    id: u64,
    /// Positions before `base` are retired (block-wise decoding); internal index = position - base.
    base: usize,
    retired: Vec<u32>,
    slots: Vec<Slot>,
    log: Vec<CommitRecord>,
    /// See [`GuardConfig::end_in_holes`].
    end_in_holes: bool,
    small_set: usize,
    /// Set tables, set ids and pending updates.
    inner: Mutex<Inner>,
    /// Generation of the tables (bumped when they are rebuilt).
    epoch: u64,
    /// Most interned sets per module before the tables are rebuilt ([`SET_LIMIT`]; lowered
    /// by tests to force rebuilds).
    set_limit: usize,
}

impl Guard {
    /// A guard for `canvas` with the default [`GuardConfig`].
    pub fn new(tp: Arc<TokenPolicy>, canvas: &Canvas) -> Result<Guard, GuardError> {
        Guard::with_config(tp, canvas, &GuardConfig::default())
    }

    /// A guard for `canvas`. Fails when the canvas is empty or too long, names a token
    /// outside the vocabulary, or its fixed tokens already violate an enforced rule (or
    /// leave no safe completion).
    pub fn with_config(
        tp: Arc<TokenPolicy>,
        canvas: &Canvas,
        config: &GuardConfig,
    ) -> Result<Guard, GuardError> {
        let n = canvas.len();
        if n == 0 {
            return Err(GuardError::EmptyCanvas);
        }
        if n > config.max_len {
            return Err(GuardError::CanvasTooLong {
                len: n,
                max: config.max_len,
            });
        }
        let vlen = tp.vocab().len();
        for (position, s) in canvas.slots().iter().enumerate() {
            if let Some(token) = s.token() {
                if token as usize >= vlen {
                    return Err(GuardError::TokenOutOfRange {
                        position,
                        token,
                        vocab_len: vlen,
                    });
                }
            }
        }
        // A tokenizer that decodes the first text token differently: the prompt up to and
        // including that token is retired at once, its text (first-token form) folded into
        // the start sets.
        let lead = if tp.vocab().has_first_forms() {
            Self::text_start(&tp, canvas)?
        } else {
            None
        };
        let keep = lead.map_or(0, |p| p + 1);
        let n = canvas.len() - keep;
        let mods = tp
            .lifts
            .iter()
            .map(|_| ModIds {
                f: vec![0; n + 1],
                b: vec![0; n + 1],
                fpend: Vec::new(),
                bpend: Vec::new(),
                w: vec![NO_STATE; n + 1],
            })
            .collect();
        let mut tables = Self::pooled_tables(&tp, config.small_set, config.end_in_holes)
            .unwrap_or_else(|| Self::new_tables(&tp, config.small_set, config.end_in_holes));
        let mut f0 = vec![vec![0; n + 1]; tp.lifts.len()];
        for (mi, tab) in tables.iter_mut().enumerate() {
            let m = tp.module(mi);
            let mut s = vec![0u64; tab.w];
            let start = match lead.and_then(|p| canvas.slots()[p].token()) {
                Some(t) => {
                    Some(m.run(m.start(), tp.vocab().first_bytes(t))).filter(|&q| !m.is_violated(q))
                }
                None => Some(m.start()),
            };
            if let Some(q) = start {
                states::insert(&mut s, q.as_usize());
            }
            f0[mi][0] = tab.intern(&s);
        }
        let mut g = Guard {
            id: NEXT_GUARD_ID.fetch_add(1, Ordering::Relaxed),
            tp,
            base: keep,
            retired: canvas.slots()[..keep]
                .iter()
                .filter_map(|s| s.token())
                .collect(),
            slots: canvas.slots()[keep..].to_vec(),
            log: Vec::new(),
            end_in_holes: config.end_in_holes,
            small_set: config.small_set,
            inner: Mutex::new(Inner { tables, mods, f0 }),
            epoch: 0,
            set_limit: SET_LIMIT,
        };
        let mut bad = Vec::new();
        for mi in 0..g.tp.lifts.len() {
            let inner = g.inner.get_mut().unwrap_or_else(|e| e.into_inner());
            inner.mods[mi].f[0] = inner.f0[mi][0];
            g.recompute_all(mi);
            let inner = g.inner.get_mut().unwrap_or_else(|e| e.into_inner());
            let ids = &inner.mods[mi];
            if inner.tables[mi].and(ids.f[0], ids.b[0]) == EMPTY {
                bad.push(mi);
            }
        }
        if !bad.is_empty() {
            return Err(g.diagnose(&bad));
        }
        Ok(g)
    }

    /// For a vocabulary with first-token forms: the position of the canvas's first text
    /// token (`None` when the text ends or the canvas ends before one). Refused when a hole
    /// comes first: the guard would not know which form its token takes.
    fn text_start(tp: &TokenPolicy, canvas: &Canvas) -> Result<Option<usize>, GuardError> {
        for (position, s) in canvas.slots().iter().enumerate() {
            match s.token() {
                None => return Err(GuardError::OpenTextStart { position }),
                Some(t) => match tp.vocab().kind(t) {
                    TokenKind::Empty => {}
                    TokenKind::End => return Ok(None),
                    TokenKind::Text => return Ok(Some(position)),
                },
            }
        }
        Ok(None)
    }

    /// The tables the last guard of `tp` left behind, when they were built for the same
    /// settings.
    fn pooled_tables(tp: &TokenPolicy, small: usize, end_in_holes: bool) -> Option<Vec<SetTable>> {
        let mut pool = tp.table_pool.lock().unwrap_or_else(|e| e.into_inner());
        match pool.take() {
            Some(p) if p.small_set == small && p.end_in_holes == end_in_holes => Some(p.tables),
            other => {
                *pool = other;
                None
            }
        }
    }

    fn new_tables(tp: &TokenPolicy, small: usize, end_in_holes: bool) -> Vec<SetTable> {
        tp.lifts
            .iter()
            .map(|l| SetTable::new(l.num_states, small, end_in_holes))
            .collect()
    }

    /// The set tables and ids (a poisoned lock only means a panic elsewhere; they are
    /// consistent after every operation).
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of modules.
    fn num_mods(&self) -> usize {
        self.tp.lifts.len()
    }

    /// The token policy this guard uses.
    pub fn token_policy(&self) -> &Arc<TokenPolicy> {
        &self.tp
    }

    /// Number of positions, retired ones included.
    pub fn len(&self) -> usize {
        self.base + self.slots.len()
    }

    /// Always false (a guard has at least one position).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first position not retired by [`Guard::retire_prefix`]. For a vocabulary with
    /// first-token forms ([`crate::Vocab::has_first_forms`], e.g. SentencePiece) the prompt up
    /// to its first text token is retired by [`Guard::new`] already.
    pub fn base(&self) -> usize {
        self.base
    }

    /// The slot at `position` (`None` out of range or retired).
    pub fn slot(&self, position: usize) -> Option<Slot> {
        position
            .checked_sub(self.base)
            .and_then(|i| self.slots.get(i))
            .copied()
    }

    /// True when `position` is an open hole.
    pub fn is_hole(&self, position: usize) -> bool {
        self.slot(position) == Some(Slot::Hole)
    }

    /// The open holes, in order.
    pub fn holes(&self) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == Slot::Hole)
            .map(|(i, _)| i + self.base)
            .collect()
    }

    /// True when no hole is left.
    pub fn is_complete(&self) -> bool {
        !self.slots.contains(&Slot::Hole)
    }

    /// All tokens so far (`None` for holes), retired ones included.
    pub fn tokens(&self) -> Vec<Option<u32>> {
        self.retired
            .iter()
            .map(|&t| Some(t))
            .chain(self.slots.iter().map(|s| s.token()))
            .collect()
    }

    /// The text of the canvas: the bytes of every token up to the first end-of-text token,
    /// holes skipped. Once the canvas is complete this is the generated text.
    pub fn text(&self) -> Vec<u8> {
        let toks: Vec<u32> = self.tokens().into_iter().flatten().collect();
        self.tp.vocab().decode(&toks)
    }

    fn index(&self, position: usize) -> Result<usize, GuardError> {
        match position.checked_sub(self.base) {
            Some(i) if i < self.slots.len() => Ok(i),
            _ => Err(GuardError::PositionOutOfRange {
                position,
                len: self.len(),
            }),
        }
    }

    fn hole_index(&self, position: usize) -> Result<usize, GuardError> {
        let i = self.index(position)?;
        if self.slots[i] != Slot::Hole {
            return Err(GuardError::NotAHole { position });
        }
        Ok(i)
    }

    /// The first open hole (internal index).
    fn first_hole(&self) -> Option<usize> {
        self.slots.iter().position(|s| *s == Slot::Hole)
    }

    /// Brings up to date now, in every module, the sets that queries at the open holes read
    /// (`F` up to one past the last hole, `B` from the first hole on): the work
    /// [`Guard::allows`] and [`Guard::mask`] would otherwise do lazily when they first read a
    /// set after commits. No answer changes (the sets are functions of the slots); a caller
    /// with a spare thread calls it there, so that the queries after it find their sets ready
    /// (the sampler does, natively, during the model's forward pass). It can do more work
    /// than the lazy queries would (sets that the witness path spares them), so it pays only
    /// off the critical path.
    pub fn settle(&self) {
        let (Some(first), Some(last)) = (
            self.slots.iter().position(|s| *s == Slot::Hole),
            self.slots.iter().rposition(|s| *s == Slot::Hole),
        ) else {
            return;
        };
        let mut inner = self.inner();
        for mi in 0..self.num_mods() {
            self.prepare_range(&mut inner, mi, first, last + 1);
        }
    }

    // ---- introspection ----------------------------------------------------------------

    /// Sizes of the state sets at `position` per module: (|F|, |G|). For diagnostics and
    /// benchmarks.
    pub fn set_sizes(&self, position: usize) -> Vec<(usize, usize)> {
        match self.index(position) {
            Ok(i) => {
                let mut inner = self.inner();
                (0..self.num_mods())
                    .map(|mi| {
                        self.prepare_all(&mut inner, mi);
                        let g = Self::good(&mut inner, mi, i);
                        let tab = &inner.tables[mi];
                        (tab.count(inner.mods[mi].f[i]), tab.count(g))
                    })
                    .collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// For adversarial testing: the smallest number of bytes to a violation, over every
    /// module and (a sample of at most `sample` of) the good states at `position`, after
    /// committing `t` there (`u32::MAX` when no violation is reachable; `None` when `t` is not
    /// allowed or `position` is not a hole).
    pub fn danger_after(&self, position: usize, t: u32, sample: usize) -> Option<u32> {
        let i = self.hole_index(position).ok()?;
        if (t as usize) >= self.tp.vocab().len() || !self.allows_idx(i, t) {
            return None;
        }
        let tp = &*self.tp;
        let mut best = u32::MAX;
        let mut inner = self.inner();
        for mi in 0..self.num_mods() {
            let d = tp.danger(mi);
            self.prepare_all(&mut inner, mi);
            let (gi, gn) = (
                Self::good(&mut inner, mi, i),
                Self::good(&mut inner, mi, i + 1),
            );
            let (gi, gn) = (inner.tables[mi].set(gi), inner.tables[mi].set(gn));
            let mut seen = 0;
            states::any(gi, |q| {
                if let Some(r) = tp.delta(mi, q, t) {
                    if states::contains(gn, r) {
                        if let Some(&x) = d.get(r) {
                            best = best.min(x);
                        }
                    }
                }
                seen += 1;
                seen >= sample
            });
        }
        Some(best)
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("len", &self.len())
            .field("base", &self.base)
            .field(
                "holes",
                &self.slots.iter().filter(|s| **s == Slot::Hole).count(),
            )
            .field("modules", &self.num_mods())
            .field("commits", &self.log.len())
            .finish()
    }
}

impl Drop for Guard {
    /// Leaves the set tables to the next guard of the same token policy (unless they have
    /// grown past the rebuild limit: then the next guard starts fresh).
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if inner.tables.iter().any(|t| t.len() > SET_LIMIT) {
            return;
        }
        let tables = std::mem::take(&mut inner.tables);
        let mut pool = self.tp.table_pool.lock().unwrap_or_else(|e| e.into_inner());
        *pool = Some(crate::lift::PooledTables {
            small_set: self.small_set,
            end_in_holes: self.end_in_holes,
            tables,
        });
    }
}
