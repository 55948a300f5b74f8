//! The canvas, its state sets and the commit protocol.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ward_policy::{RuleIndex, StateId};

use crate::error::{Blame, BlameKind, Conflict, GuardError};
use crate::lift::TokenPolicy;
use crate::mask::{states, TokenMask};
use crate::sets::{intersects, Ctx, FxMap, SetTable};
use crate::vocab::TokenKind;

/// Id of the empty set in every module's table.
const EMPTY: u32 = 0;

/// No state (a witness path that died).
const NO_STATE: u32 = u32::MAX;

/// Default of [`GuardConfig::small_set`].
const SMALL_SET: usize = 8;

/// One position of a canvas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// A fixed token of the prompt or suffix.
    Fixed(u32),
    /// A hole the model fills.
    Hole,
    /// A hole filled by [`Guard::commit`].
    Committed(u32),
}

impl Slot {
    /// The token at this slot, if any.
    pub fn token(self) -> Option<u32> {
        match self {
            Slot::Fixed(t) | Slot::Committed(t) => Some(t),
            Slot::Hole => None,
        }
    }
}

/// A canvas: fixed prompt tokens, holes and an optional fixed suffix (several holes and
/// fixed runs may alternate).
///
/// # Example
/// ```
/// use ward_guard::{Canvas, Slot};
/// let c = Canvas::infill(&[1, 2], 3, &[4]);
/// assert_eq!(c.len(), 6);
/// assert_eq!(c.slots()[2], Slot::Hole);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Canvas {
    slots: Vec<Slot>,
}

impl Canvas {
    /// An empty canvas, to be built with [`Canvas::fixed`] and [`Canvas::holes`].
    pub fn new() -> Canvas {
        Canvas::default()
    }

    /// A prefix, `holes` holes, and a suffix (empty for plain generation).
    pub fn infill(prefix: &[u32], holes: usize, suffix: &[u32]) -> Canvas {
        Canvas::new().fixed(prefix).holes(holes).fixed(suffix)
    }

    /// A canvas from slots (`Committed` slots are taken as fixed).
    pub fn from_slots(slots: impl IntoIterator<Item = Slot>) -> Canvas {
        Canvas {
            slots: slots
                .into_iter()
                .map(|s| match s {
                    Slot::Committed(t) => Slot::Fixed(t),
                    s => s,
                })
                .collect(),
        }
    }

    /// Appends fixed tokens.
    pub fn fixed(mut self, tokens: &[u32]) -> Canvas {
        self.slots.extend(tokens.iter().map(|&t| Slot::Fixed(t)));
        self
    }

    /// Appends `n` holes.
    pub fn holes(mut self, n: usize) -> Canvas {
        self.slots.extend(std::iter::repeat_n(Slot::Hole, n));
        self
    }

    /// Number of positions.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when the canvas has no position.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slots.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }
}

/// Options of a [`Guard`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardConfig {
    /// Longest canvas accepted, in tokens (default 8192).
    pub max_len: usize,
    /// Performance knob: state sets with at most this many states are stepped state by
    /// state; larger ones through memoised byte-class steps (default 8; results are
    /// identical).
    pub small_set: usize,
    /// Whether a hole may take an end-of-text token while the text has not ended yet
    /// (default true). With false, masks are exact for samplers that never end the text in
    /// a hole: end tokens are refused there (without blame), and no mask counts on an earlier
    /// hole ending the text. Fixed end tokens in the canvas still end the text.
    pub end_in_holes: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_len: 8192,
            small_set: SMALL_SET,
            end_in_holes: true,
        }
    }
}

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

#[derive(Clone, Debug)]
struct CommitRecord {
    position: usize,
}

/// A saved guard state (see [`Guard::snapshot`]).
#[derive(Clone, Debug)]
pub struct Snapshot {
    guard_id: u64,
    base: usize,
    /// The set tables' generation the ids refer to.
    epoch: u64,
    slots: Vec<Slot>,
    mods: Vec<ModIds>,
    log: Vec<CommitRecord>,
}

/// Per rule: probability mass the guard blocked (see [`Guard::record_blocked`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlockedMass {
    /// Mass per rule index (a token blamed on k rules adds p/k to each).
    pub per_rule: Vec<f64>,
    /// Total blocked mass.
    pub total: f64,
    /// Blocked mass of tokens below the attribution threshold (not attributed).
    pub unattributed: f64,
    /// Number of masks recorded.
    pub masks: u64,
}

impl BlockedMass {
    /// Blocked mass per rule id, largest first (rules with none are left out).
    pub fn by_rule_id(&self, policy: &TokenPolicy) -> Vec<(String, f64)> {
        let rules = policy.policy().rules();
        let mut v: Vec<(String, f64)> = self
            .per_rule
            .iter()
            .enumerate()
            .filter(|(_, &m)| m > 0.0)
            .map(|(i, &m)| (rules.get(i).map(|r| r.id.clone()).unwrap_or_default(), m))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

static NEXT_GUARD_ID: AtomicU64 = AtomicU64::new(1);

/// Probability below which a blocked token's mass is not attributed to rules.
const ATTRIBUTION_MIN_P: f32 = 1e-6;

/// Most interned sets per module before the tables are rebuilt from the sets in use.
const SET_LIMIT: usize = 1 << 16;

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
}

/// F_{j+1} from F_j and slot j.
#[inline]
fn step_fwd(tab: &mut SetTable, cx: Ctx, f: u32, slot: Slot) -> u32 {
    match slot.token() {
        Some(t) => tab.tok_fwd(cx, f, t),
        None => tab.hole_fwd(cx, f),
    }
}

/// The states of `f` (at position j) from which slot j (`None` past the end) leads into
/// `good` (at j + 1) and the rest can be completed.
#[inline]
fn step_bwd(tab: &mut SetTable, cx: Ctx, f: u32, slot: Option<Slot>, good: u32) -> u32 {
    match slot {
        None => tab.end_clean(cx, f),
        Some(Slot::Hole) => tab.hole_bwd(cx, f, good),
        Some(Slot::Fixed(t)) | Some(Slot::Committed(t)) => tab.tok_bwd(cx, f, t, good),
    }
}

/// Brings `F_0 ..= F_h` up to date: resumes at each pending position below `h` and goes
/// forward until the recomputed set equals the stored one.
fn ensure_f(tab: &mut SetTable, cx: Ctx, ids: &mut ModIds, slots: &[Slot], h: usize) {
    let n = slots.len();
    while let Some(&p) = ids.fpend.first() {
        let mut j = p as usize;
        if j >= h {
            break;
        }
        ids.fpend.remove(0);
        loop {
            let nf = step_fwd(tab, cx, ids.f[j], slots[j]);
            if nf == ids.f[j + 1] {
                break;
            }
            ids.f[j + 1] = nf;
            j += 1;
            if j >= n {
                break;
            }
            if ids.fpend.first() == Some(&(j as u32)) {
                ids.fpend.remove(0);
            }
            if j >= h {
                ids.fpend.insert(0, j as u32);
                break;
            }
        }
    }
}

/// Brings `B_h ..= B_n` up to date: resumes at each pending position from `h` on, last
/// first, and goes backward until the recomputed set equals the stored one.
fn ensure_b(tab: &mut SetTable, cx: Ctx, ids: &mut ModIds, f0: &[u32], slots: &[Slot], h: usize) {
    let n = slots.len();
    while let Some(&p) = ids.bpend.last() {
        let mut j = p as usize;
        if j < h {
            break;
        }
        ids.bpend.pop();
        loop {
            let bn = if j == n { EMPTY } else { ids.b[j + 1] };
            let nb = step_bwd(tab, cx, f0[j], slots.get(j).copied(), bn);
            if nb == ids.b[j] {
                break;
            }
            ids.b[j] = nb;
            if j == 0 {
                break;
            }
            j -= 1;
            if ids.bpend.last() == Some(&(j as u32)) {
                ids.bpend.pop();
            }
            if j < h {
                ids.bpend.push(j as u32);
                break;
            }
        }
    }
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
        let mut tables = Self::new_tables(&tp, config.small_set, config.end_in_holes);
        let mut f0 = vec![vec![0; n + 1]; tp.lifts.len()];
        for (mi, tab) in tables.iter_mut().enumerate() {
            let mut s = vec![0u64; tab.w];
            states::insert(&mut s, tp.module(mi).start().as_usize());
            f0[mi][0] = tab.intern(&s);
        }
        let mut g = Guard {
            id: NEXT_GUARD_ID.fetch_add(1, Ordering::Relaxed),
            tp,
            base: 0,
            retired: Vec::new(),
            slots: canvas.slots().to_vec(),
            log: Vec::new(),
            end_in_holes: config.end_in_holes,
            small_set: config.small_set,
            inner: Mutex::new(Inner { tables, mods, f0 }),
            epoch: 0,
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

    /// The first position not retired by [`Guard::retire_prefix`].
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

    // ---- state-set computations -------------------------------------------------------

    /// Recomputes every set of module `mi` from `F_0` and `F⁰_0` and the slots.
    fn recompute_all(&mut self, mi: usize) {
        let n = self.slots.len();
        let cx = Ctx::new(&self.tp, mi);
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let tab = &mut inner.tables[mi];
        let ids = &mut inner.mods[mi];
        let f0 = &mut inner.f0[mi];
        for j in 0..n {
            let open = match self.slots[j] {
                Slot::Fixed(_) => self.slots[j],
                _ => Slot::Hole,
            };
            f0[j + 1] = step_fwd(tab, cx, f0[j], open);
            ids.f[j + 1] = step_fwd(tab, cx, ids.f[j], self.slots[j]);
        }
        for j in (0..=n).rev() {
            let bn = if j == n { EMPTY } else { ids.b[j + 1] };
            ids.b[j] = step_bwd(tab, cx, f0[j], self.slots.get(j).copied(), bn);
        }
        ids.fpend.clear();
        ids.bpend.clear();
        ids.w[0] = match states::first(tab.set(ids.f[0])) {
            Some(q) => q as u32,
            None => NO_STATE,
        };
        self.walk_witness(mi, 0);
    }

    /// Re-establishes the witness path of module `mi` after `w_from` or slot `from` changed:
    /// forward until it meets the stored path. At a hole the stored next state is kept when
    /// the hole can still reach it, else a successor in (the possibly stale) `B` is
    /// preferred, so that the path tends to stay completable.
    fn walk_witness(&mut self, mi: usize, from: usize) {
        let n = self.slots.len();
        let tp = &*self.tp;
        let end = tp.lifts[mi].num_states;
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let ids = &mut inner.mods[mi];
        let tab = &inner.tables[mi];
        let mut j = from;
        while j < n {
            let q = ids.w[j];
            let old = ids.w[j + 1];
            let next = if q == NO_STATE {
                NO_STATE
            } else {
                let q = q as usize;
                match self.slots[j] {
                    Slot::Fixed(t) | Slot::Committed(t) => {
                        tp.delta(mi, q, t).map_or(NO_STATE, |r| r as u32)
                    }
                    Slot::Hole if q == end => q as u32,
                    Slot::Hole => {
                        let row = tp.row(mi, q);
                        let ok = |r: u32| self.end_in_holes || r as usize != end;
                        if old != NO_STATE
                            && ok(old)
                            && states::contains(&row.any_bits, old as usize)
                        {
                            old
                        } else {
                            let b = tab.set(ids.b[j + 1]);
                            let mut pick = NO_STATE;
                            for &r in &row.any {
                                if !ok(r) {
                                    continue;
                                }
                                if states::contains(b, r as usize) {
                                    pick = r;
                                    break;
                                }
                                if pick == NO_STATE {
                                    pick = r;
                                }
                            }
                            pick
                        }
                    }
                }
            };
            if next == old {
                break;
            }
            ids.w[j + 1] = next;
            j += 1;
        }
    }

    /// Rebuilds the set tables from the sets in use when they have grown too large.
    fn maybe_compact(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if inner.tables.iter().all(|t| t.len() <= SET_LIMIT) {
            return;
        }
        let mut fresh = Self::new_tables(&self.tp, self.small_set, self.end_in_holes);
        for (((old, new), ids), f0) in inner
            .tables
            .iter()
            .zip(fresh.iter_mut())
            .zip(&mut inner.mods)
            .zip(&mut inner.f0)
        {
            let mut map: FxMap<u32, u32> = FxMap::default();
            for x in ids
                .f
                .iter_mut()
                .chain(ids.b.iter_mut())
                .chain(f0.iter_mut())
            {
                *x = *map.entry(*x).or_insert_with(|| new.intern(old.set(*x)));
            }
        }
        inner.tables = fresh;
        self.epoch += 1;
    }

    /// The first open hole (internal index).
    fn first_hole(&self) -> Option<usize> {
        self.slots.iter().position(|s| *s == Slot::Hole)
    }

    /// Brings the sets module `mi` reads at hole index `i` up to date (`F_i`, `F_{i+1}`,
    /// `B_i`, `B_{i+1}`) and returns whether the text may already have ended before `i`
    /// (then every token is allowed there). `k0` is the first open hole: when the text may
    /// end there, it may have ended before every later position, so nothing else is needed.
    fn prepare(&self, inner: &mut Inner, mi: usize, i: usize, k0: Option<usize>) -> bool {
        if self.ended_before(inner, mi, i, k0) {
            return true;
        }
        let cx = Ctx::new(&self.tp, mi);
        let tab = &mut inner.tables[mi];
        let ids = &mut inner.mods[mi];
        ensure_f(tab, cx, ids, &self.slots, i + 1);
        // The ended state is in every B, so G_i has it iff F_i has.
        if tab.has_end(ids.f[i]) {
            return true;
        }
        ensure_b(tab, cx, ids, &inner.f0[mi], &self.slots, i);
        false
    }

    /// True when the text may end at the first open hole `k0 < i` (then it may have ended
    /// before `i`: the ended state is in `G_i`).
    fn ended_before(&self, inner: &mut Inner, mi: usize, i: usize, k0: Option<usize>) -> bool {
        let Some(k) = k0.filter(|&k| k < i) else {
            return false;
        };
        let cx = Ctx::new(&self.tp, mi);
        let tab = &mut inner.tables[mi];
        let ids = &mut inner.mods[mi];
        ensure_f(tab, cx, ids, &self.slots, k + 1);
        tab.has_end(ids.f[k + 1])
    }

    /// Brings every set of module `mi` up to date.
    fn prepare_all(&self, inner: &mut Inner, mi: usize) {
        let cx = Ctx::new(&self.tp, mi);
        let n = self.slots.len();
        let tab = &mut inner.tables[mi];
        let ids = &mut inner.mods[mi];
        ensure_f(tab, cx, ids, &self.slots, n);
        ensure_b(tab, cx, ids, &inner.f0[mi], &self.slots, 0);
    }

    /// `G_j = F_j ∩ B_j` of module `mi` (up to date where `F_j` and `B_j` are).
    fn good(inner: &mut Inner, mi: usize, j: usize) -> u32 {
        let ids = &inner.mods[mi];
        inner.tables[mi].and(ids.f[j], ids.b[j])
    }

    // ---- masks ------------------------------------------------------------------------

    /// The state after token `t` from `q` at a hole (`None`: violation, or an end token
    /// that would end the text in a hole when that is not allowed).
    #[inline]
    fn hole_delta(&self, mi: usize, q: usize, t: u32) -> Option<usize> {
        if !self.end_in_holes
            && q != self.tp.lifts[mi].num_states
            && self.tp.vocab().kind(t) == TokenKind::End
        {
            return None;
        }
        self.tp.delta(mi, q, t)
    }

    fn allows_idx(&self, i: usize, t: u32) -> bool {
        let mut inner = self.inner();
        let k0 = self.first_hole();
        (0..self.num_mods()).all(|mi| self.module_allows(&mut inner, mi, i, t, k0))
    }

    /// Does module `mi` allow token `t` at hole index `i`: is there `q ∈ F_i` that `t`
    /// takes into `G_{i+1}`? (Such a `q` is in `G_i`.)
    fn module_allows(
        &self,
        inner: &mut Inner,
        mi: usize,
        i: usize,
        t: u32,
        k0: Option<usize>,
    ) -> bool {
        if self.ended_before(inner, mi, i, k0) {
            return true;
        }
        // The witness: w_i ∈ F_i, so t is allowed if it takes w_i into B_{i+1}.
        {
            let cx = Ctx::new(&self.tp, mi);
            let tab = &mut inner.tables[mi];
            let ids = &mut inner.mods[mi];
            ensure_b(tab, cx, ids, &inner.f0[mi], &self.slots, i + 1);
            let q = ids.w[i];
            if q != NO_STATE {
                if let Some(r) = self.hole_delta(mi, q as usize, t) {
                    if states::contains(tab.set(ids.b[i + 1]), r) {
                        return true;
                    }
                }
            }
        }
        // The text may have ended before: every token keeps it ended.
        if self.prepare(inner, mi, i, k0) {
            return true;
        }
        let gn = Self::good(inner, mi, i + 1);
        let tab = &mut inner.tables[mi];
        let ids = &inner.mods[mi];
        let (fi, fnx) = (ids.f[i], ids.f[i + 1]);
        let end = tab.end;
        let cx = Ctx::new(&self.tp, mi);
        match self.tp.vocab().kind(t) {
            TokenKind::Text => {
                // Saturated: every successor is good, so only tokens violating from every
                // state are refused, and a free state violates on none.
                if gn == fnx && tab.free(cx, fi) {
                    return true;
                }
                if tab.count(fi) <= tab.small {
                    let g = tab.set(gn);
                    let bytes = self.tp.vocab().bytes(t);
                    return states::any(tab.set(fi), |q| {
                        if q == end {
                            // Ended stays ended, and G_{i+1} has no ended state here.
                            return false;
                        }
                        let s = cx.m.run(StateId(q as u32), bytes);
                        !cx.m.is_violated(s) && states::contains(g, s.as_usize())
                    });
                }
                let r = tab.tok_fwd(cx, fi, t);
                intersects(tab.set(r), tab.set(gn))
            }
            TokenKind::Empty => intersects(tab.set(fi), tab.set(gn)),
            TokenKind::End => {
                states::contains(tab.set(gn), end)
                    && self.end_in_holes
                    && states::any(tab.set(fi), |q| {
                        q == end || cx.m.is_clean_end(StateId(q as u32))
                    })
            }
        }
    }

    /// Fast path: is token `t` allowed at hole `position`? (False for positions that are not
    /// open holes and for tokens outside the vocabulary.) Costs a few memoised set steps
    /// per module, no full mask.
    pub fn allows(&self, position: usize, t: u32) -> bool {
        match self.hole_index(position) {
            Ok(i) => (t as usize) < self.tp.vocab().len() && self.allows_idx(i, t),
            Err(_) => false,
        }
    }

    /// Tokens module `mi` forbids at hole index `i`, sorted.
    fn module_forbidden(
        &self,
        inner: &mut Inner,
        mi: usize,
        i: usize,
        k0: Option<usize>,
    ) -> Vec<u32> {
        let tp = &*self.tp;
        if self.prepare(inner, mi, i, k0) {
            return Vec::new();
        }
        let (gi, gn) = (Self::good(inner, mi, i), Self::good(inner, mi, i + 1));
        let tab = &mut inner.tables[mi];
        let ids = &inner.mods[mi];
        let end = tab.end;
        let cx = Ctx::new(tp, mi);
        if gn == ids.f[i + 1] && tab.free(cx, ids.f[i]) {
            // Saturated with a free state: only end tokens can be refused.
            return if !self.end_in_holes || !tab.has_end(ids.f[i + 1]) {
                tp.end_tokens.clone()
            } else {
                Vec::new()
            };
        }
        let (gi, gn) = (tab.set(gi), tab.set(gn));
        let mut qs = Vec::new();
        states::for_each(gi, |q| qs.push(q));
        // Start from the state whose forbidden set is smallest: a saturated state
        // (every one-token successor is good) forbids exactly its violating tokens.
        let mut best: Option<(usize, usize)> = None;
        let end_free = !self.end_in_holes && !tp.end_tokens.is_empty();
        for (k, &q) in qs.iter().enumerate() {
            let row = tp.row(mi, q);
            let saturated = row.any_bits.iter().zip(gn).enumerate().all(|(wi, (a, g))| {
                let a = if end_free && wi == end / 64 {
                    a & !(1u64 << (end % 64))
                } else {
                    *a
                };
                a & !g == 0
            });
            if saturated && best.is_none_or(|(_, len)| row.viol_count < len) {
                best = Some((k, row.viol_count));
                if row.viol_count == 0 && !end_free {
                    return Vec::new();
                }
            }
        }
        let (first, mut out) = match best {
            Some((k, _)) => {
                let mut v = tp.violating_tokens(mi, qs[k]);
                if end_free {
                    v.extend_from_slice(&tp.end_tokens);
                }
                (k, v)
            }
            None => (0, self.walk_forbidden(mi, qs[0], gn)),
        };
        for (k, &q) in qs.iter().enumerate() {
            if out.is_empty() {
                break;
            }
            if k == first {
                continue;
            }
            out.retain(|&t| {
                !self
                    .hole_delta(mi, q, t)
                    .is_some_and(|r| states::contains(gn, r))
            });
        }
        out
    }

    /// Tokens that go from `q` to a state outside `good` (or violate), by a trie walk.
    fn walk_forbidden(&self, mi: usize, q: usize, good: &[u64]) -> Vec<u32> {
        let tp = &*self.tp;
        let l = &tp.lifts[mi];
        let m = tp.module(mi);
        let mut out = tp.text_forbidden_from(mi, q, good);
        if !states::contains(good, q) {
            out.extend_from_slice(&tp.empty_tokens);
        }
        let qs = StateId(q as u32);
        if !(self.end_in_holes && m.is_clean_end(qs) && states::contains(good, l.num_states)) {
            out.extend_from_slice(&tp.end_tokens);
        }
        out.sort_unstable();
        out
    }

    fn mask_idx(&self, i: usize) -> TokenMask {
        let mut mask = TokenMask::new_full(self.tp.vocab().len());
        let mut inner = self.inner();
        let k0 = self.first_hole();
        for mi in 0..self.num_mods() {
            for t in self.module_forbidden(&mut inner, mi, i, k0) {
                mask.clear(t);
            }
        }
        mask
    }

    /// The exact mask at hole `position`: every token allowed by every module. An empty
    /// mask is reported as [`GuardError::Conflict`] naming the modules in conflict.
    pub fn mask(&self, position: usize) -> Result<TokenMask, GuardError> {
        let i = self.hole_index(position)?;
        let mask = self.mask_idx(i);
        if mask.is_all_clear() {
            return Err(GuardError::Conflict(self.conflict_report(i)));
        }
        Ok(mask)
    }

    /// The mask at `position` without the conflict check (possibly all clear).
    pub fn mask_unchecked(&self, position: usize) -> Result<TokenMask, GuardError> {
        let i = self.hole_index(position)?;
        Ok(self.mask_idx(i))
    }

    /// The conflict at hole `position`, if no token is allowed there by every module.
    pub fn conflict_at(&self, position: usize) -> Option<Conflict> {
        let i = self.hole_index(position).ok()?;
        if self.mask_idx(i).is_all_clear() {
            Some(self.conflict_report(i))
        } else {
            None
        }
    }

    fn conflict_report(&self, i: usize) -> Conflict {
        let v = self.tp.vocab().len();
        let forb: Vec<Vec<u32>> = {
            let mut inner = self.inner();
            let k0 = self.first_hole();
            (0..self.num_mods())
                .map(|mi| self.module_forbidden(&mut inner, mi, i, k0))
                .collect()
        };
        let mut modules: Vec<usize> = (0..forb.len()).filter(|&m| !forb[m].is_empty()).collect();
        'pairs: for a in 0..forb.len() {
            for b in a + 1..forb.len() {
                let mut u: Vec<u32> = forb[a].iter().chain(&forb[b]).copied().collect();
                u.sort_unstable();
                u.dedup();
                if u.len() == v {
                    modules = vec![a, b];
                    break 'pairs;
                }
            }
        }
        let rules = self.tp.policy().rules();
        let mut rule_ids = Vec::new();
        for &m in &modules {
            for &r in self.tp.module(m).rules() {
                if let Some(rule) = rules.get(r as usize) {
                    rule_ids.push(rule.id.clone());
                }
            }
        }
        Conflict {
            position: i + self.base,
            modules,
            rule_ids,
            constraining: self.constraining_idx(i),
        }
    }

    /// The committed positions whose commit alone changes a state set at index `i`
    /// (`F_i`, `F_{i+1}`, `B_i` or `B_{i+1}` of some module), most recent first.
    fn constraining_idx(&self, i: usize) -> Vec<usize> {
        let mut inner = self.inner();
        let inner = &mut *inner;
        for mi in 0..self.num_mods() {
            self.prepare_all(inner, mi);
        }
        let last = (i + 1).min(self.slots.len());
        let mut out = Vec::new();
        for rec in self.log.iter().rev() {
            let p = rec.position;
            if p < self.base || out.contains(&p) {
                continue;
            }
            let k = p - self.base;
            if !matches!(self.slots.get(k), Some(Slot::Committed(_))) {
                continue;
            }
            let mut slots = self.slots.clone();
            slots[k] = Slot::Hole;
            let changes = (0..self.num_mods()).any(|mi| {
                let cx = Ctx::new(&self.tp, mi);
                let tab = &mut inner.tables[mi];
                let ids = &inner.mods[mi];
                let mut alt = ids.clone();
                alt.mark(k);
                ensure_f(tab, cx, &mut alt, &slots, last);
                ensure_b(tab, cx, &mut alt, &inner.f0[mi], &slots, i);
                (i..=last).any(|j| alt.f[j] != ids.f[j] || alt.b[j] != ids.b[j])
            });
            if changes {
                out.push(p);
            }
        }
        out
    }

    /// The committed positions whose commit alone constrains `position` (reopening it would
    /// change the state sets there), most recent first: candidates to remask when the hole
    /// is in conflict.
    pub fn constraining_commits(&self, position: usize) -> Vec<usize> {
        match self.index(position) {
            Ok(i) => self.constraining_idx(i),
            Err(_) => Vec::new(),
        }
    }

    // ---- commits ----------------------------------------------------------------------

    /// Commits token `t` at hole `position`, after re-checking that it is allowed. A
    /// forbidden token is refused with [`GuardError::Forbidden`] and the rules responsible;
    /// the guard is then unchanged.
    pub fn commit(&mut self, position: usize, t: u32) -> Result<(), GuardError> {
        let i = self.hole_index(position)?;
        let vlen = self.tp.vocab().len();
        if t as usize >= vlen {
            return Err(GuardError::TokenOutOfRange {
                position,
                token: t,
                vocab_len: vlen,
            });
        }
        if !self.allows_idx(i, t) {
            return Err(GuardError::Forbidden {
                position,
                token: t,
                blame: self.blame_idx(i, t),
            });
        }
        self.maybe_compact();
        self.slots[i] = Slot::Committed(t);
        for ids in &mut self.inner.get_mut().unwrap_or_else(|e| e.into_inner()).mods {
            ids.mark(i);
        }
        for mi in 0..self.num_mods() {
            self.walk_witness(mi, i);
        }
        self.log.push(CommitRecord { position });
        Ok(())
    }

    /// Reopens a committed position as a hole (remasking one token).
    pub fn uncommit(&mut self, position: usize) -> Result<(), GuardError> {
        let i = self.index(position)?;
        if !matches!(self.slots[i], Slot::Committed(_)) {
            return Err(GuardError::NotCommitted { position });
        }
        self.maybe_compact();
        self.slots[i] = Slot::Hole;
        for ids in &mut self.inner.get_mut().unwrap_or_else(|e| e.into_inner()).mods {
            ids.mark(i);
        }
        self.log.retain(|r| r.position != position);
        Ok(())
    }

    /// Saves the guard state (slots and state-set ids) for [`Guard::restore`].
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            guard_id: self.id,
            base: self.base,
            epoch: self.epoch,
            slots: self.slots.clone(),
            mods: self.inner().mods.clone(),
            log: self.log.clone(),
        }
    }

    /// Restores a state saved by [`Guard::snapshot`] of this same guard (and block layout).
    pub fn restore(&mut self, snap: &Snapshot) -> Result<(), GuardError> {
        if snap.guard_id != self.id
            || snap.base != self.base
            || snap.slots.len() != self.slots.len()
        {
            return Err(GuardError::SnapshotMismatch);
        }
        self.slots.clone_from(&snap.slots);
        self.log.clone_from(&snap.log);
        if snap.epoch == self.epoch {
            self.inner
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .mods
                .clone_from(&snap.mods);
        } else {
            // The tables were rebuilt since: recompute the sets from the slots (F_0 is the
            // same set: the base is the same).
            for mi in 0..self.num_mods() {
                self.recompute_all(mi);
            }
        }
        Ok(())
    }

    /// Block-wise decoding: retires every position before `position` (all of them must be
    /// fixed or committed). Their state sets are folded into the sets at `position`, so later
    /// commits never look behind it; positions keep their numbers.
    pub fn retire_prefix(&mut self, position: usize) -> Result<(), GuardError> {
        if position <= self.base {
            return Ok(());
        }
        let k = position - self.base;
        if k >= self.slots.len() {
            return Err(GuardError::PositionOutOfRange {
                position,
                len: self.len(),
            });
        }
        if let Some(h) = self.slots[..k].iter().position(|s| *s == Slot::Hole) {
            return Err(GuardError::BlockNotFinished {
                hole: h + self.base,
            });
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        for mi in 0..self.tp.lifts.len() {
            let cx = Ctx::new(&self.tp, mi);
            let ids = &mut inner.mods[mi];
            ensure_f(&mut inner.tables[mi], cx, ids, &self.slots, k);
            ids.f.drain(..k);
            ids.b.drain(..k);
            ids.w.drain(..k);
            inner.f0[mi].drain(..k);
            let k = k as u32;
            ids.fpend.retain(|&p| p >= k);
            ids.bpend.retain(|&p| p >= k);
            for p in ids.fpend.iter_mut().chain(ids.bpend.iter_mut()) {
                *p -= k;
            }
        }
        self.retired
            .extend(self.slots[..k].iter().filter_map(|s| s.token()));
        self.slots.drain(..k);
        self.base = position;
        self.log.retain(|r| r.position >= position);
        Ok(())
    }

    // ---- attribution ------------------------------------------------------------------

    /// The rules that forbid token `t` at hole `position` (empty when it is allowed).
    pub fn why_forbidden(&self, position: usize, t: u32) -> Vec<Blame> {
        match self.hole_index(position) {
            Ok(i) if (t as usize) < self.tp.vocab().len() => self.blame_idx(i, t),
            _ => Vec::new(),
        }
    }

    fn blame_idx(&self, i: usize, t: u32) -> Vec<Blame> {
        let mut out: Vec<Blame> = Vec::new();
        if !self.end_in_holes && self.tp.vocab().kind(t) == TokenKind::End {
            // Refused by configuration, not by a rule.
            return out;
        }
        let tp = &*self.tp;
        let k0 = self.first_hole();
        for mi in 0..self.num_mods() {
            let gi = {
                let mut inner = self.inner();
                if self.module_allows(&mut inner, mi, i, t, k0) {
                    continue;
                }
                let g = Self::good(&mut inner, mi, i);
                inner.tables[mi].set(g).to_vec()
            };
            let mut completes: Vec<RuleIndex> = Vec::new();
            let mut doomed: Vec<usize> = Vec::new();
            states::for_each(&gi, |q| match tp.delta(mi, q, t) {
                None => completes.extend(tp.violation_rules_of(mi, q, t)),
                Some(r) => doomed.push(r),
            });
            let mut unavoidable = if doomed.is_empty() {
                Vec::new()
            } else {
                self.unavoidable_rules(mi, i + 1, doomed)
            };
            unavoidable.retain(|r| !completes.contains(r));
            if completes.is_empty() && unavoidable.is_empty() {
                unavoidable = tp.module(mi).rules().to_vec();
            }
            for (rules, kind) in [
                (completes, BlameKind::Completes),
                (unavoidable, BlameKind::Unavoidable),
            ] {
                for r in rules {
                    let b = self.blame(r, mi, kind);
                    if !out.contains(&b) {
                        out.push(b);
                    }
                }
            }
        }
        out
    }

    fn blame(&self, rule: RuleIndex, module: usize, kind: BlameKind) -> Blame {
        let rule_id = self
            .tp
            .policy()
            .rules()
            .get(rule as usize)
            .map(|r| r.id.clone())
            .unwrap_or_default();
        Blame {
            rule,
            rule_id,
            module,
            kind,
        }
    }

    /// Rules violated on the way from states `start` (at index `j`, none of them good)
    /// along the rest of the canvas.
    fn unavoidable_rules(&self, mi: usize, j: usize, start: Vec<usize>) -> Vec<RuleIndex> {
        let tp = &*self.tp;
        let l = &tp.lifts[mi];
        let m = tp.module(mi);
        let n = self.slots.len();
        let mut rules: Vec<RuleIndex> = Vec::new();
        let add = |rs: &[RuleIndex], rules: &mut Vec<RuleIndex>| {
            for &r in rs {
                if !rules.contains(&r) {
                    rules.push(r);
                }
            }
        };
        let mut cur = vec![0u64; l.words];
        for q in start {
            states::insert(&mut cur, q);
        }
        for k in j..=n {
            if states::is_empty(&cur) {
                break;
            }
            let mut next = vec![0u64; l.words];
            if k == n {
                states::for_each(&cur, |q| {
                    if q < l.num_states {
                        add(
                            m.end_violation_rules(ward_policy::StateId(q as u32)),
                            &mut rules,
                        );
                    }
                });
                break;
            }
            match self.slots[k].token() {
                Some(t) => states::for_each(&cur, |q| match tp.delta(mi, q, t) {
                    None => add(&tp.violation_rules_of(mi, q, t), &mut rules),
                    Some(r) => states::insert(&mut next, r),
                }),
                None => states::for_each(&cur, |q| {
                    if q < l.num_states {
                        let row = tp.row(mi, q);
                        add(&row.viol_rules, &mut rules);
                        for (o, a) in next.iter_mut().zip(&row.any_bits) {
                            *o |= *a;
                        }
                    }
                }),
            }
            cur = next;
        }
        rules
    }

    /// Adds the probability mass that the mask at hole `position` blocks to `stats`, per
    /// rule. `probs` are the model's probabilities over the vocabulary (softmax of logits).
    pub fn record_blocked(
        &self,
        position: usize,
        probs: &[f32],
        stats: &mut BlockedMass,
    ) -> Result<(), GuardError> {
        let i = self.hole_index(position)?;
        let v = self.tp.vocab().len();
        if probs.len() < v {
            return Err(GuardError::LengthMismatch {
                expected: v,
                got: probs.len(),
            });
        }
        let mask = self.mask_idx(i);
        stats.masks += 1;
        let nrules = self.tp.policy().rules().len();
        if stats.per_rule.len() < nrules {
            stats.per_rule.resize(nrules, 0.0);
        }
        for t in mask.iter_disallowed() {
            let p = probs[t as usize];
            if p.is_nan() || p <= 0.0 {
                continue;
            }
            stats.total += p as f64;
            if p < ATTRIBUTION_MIN_P {
                stats.unattributed += p as f64;
                continue;
            }
            let blame = self.blame_idx(i, t);
            let mut rules: Vec<RuleIndex> = blame.iter().map(|b| b.rule).collect();
            rules.sort_unstable();
            rules.dedup();
            if rules.is_empty() {
                stats.unattributed += p as f64;
            }
            for r in &rules {
                if let Some(x) = stats.per_rule.get_mut(*r as usize) {
                    *x += p as f64 / rules.len() as f64;
                }
            }
        }
        Ok(())
    }

    // ---- diagnosis of a canvas without a safe completion -----------------------------------

    fn diagnose(&self, bad: &[usize]) -> GuardError {
        let tp = &*self.tp;
        let first_hole = self.slots.iter().position(|s| *s == Slot::Hole);
        let prefix: Vec<u32> = self.slots[..first_hole.unwrap_or(self.slots.len())]
            .iter()
            .filter_map(|s| s.token())
            .collect();
        let ended = prefix.iter().any(|&t| tp.vocab().kind(t) == TokenKind::End);
        let text = tp.vocab().decode(&prefix);
        let whole = first_hole.is_none() || ended;
        let rules = tp.policy().rules();
        let mut findings = tp.policy().check(&text);
        findings.retain(|f| {
            rules.get(f.rule as usize).is_some_and(|r| r.enforced())
                && (whole || f.end < text.len())
        });
        findings.sort_by_key(|f| (f.start, f.end));
        if let Some(f) = findings.first() {
            return GuardError::CanvasViolates {
                rule: f.rule,
                rule_id: f.rule_id.clone(),
                span: f.start..f.end,
            };
        }
        // Otherwise: the first fixed token after which some bad module has no live state.
        let mut position = None;
        let mut rule_set: Vec<RuleIndex> = Vec::new();
        let mut inner = self.inner();
        for &mi in bad {
            self.prepare_all(&mut inner, mi);
            let ms = &inner.mods[mi];
            for j in 0..self.slots.len() {
                if ms.f[j + 1] == EMPTY && ms.f[j] != EMPTY {
                    if let Some(t) = self.slots[j].token() {
                        states::for_each(inner.tables[mi].set(ms.f[j]), |q| {
                            rule_set.extend(tp.violation_rules_of(mi, q, t))
                        });
                        if position.is_none_or(|p| j < p) {
                            position = Some(j);
                        }
                    }
                    break;
                }
            }
        }
        if rule_set.is_empty() {
            for &mi in bad {
                let start = tp.module(mi).start().as_usize();
                rule_set.extend(self.unavoidable_rules(mi, 0, vec![start]));
            }
        }
        if rule_set.is_empty() {
            for &mi in bad {
                rule_set.extend_from_slice(tp.module(mi).rules());
            }
        }
        rule_set.sort_unstable();
        rule_set.dedup();
        GuardError::NoSafeCompletion {
            position,
            modules: bad.to_vec(),
            rule_ids: rule_set
                .iter()
                .filter_map(|&r| rules.get(r as usize).map(|r| r.id.clone()))
                .collect(),
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
