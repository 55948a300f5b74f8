//! The canvas, its state sets and the commit protocol.

use std::ops::Range;
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

/// Per module: the ids of the forward sets F and the good sets G = F ∩ B, `n + 1` of each.
#[derive(Clone, Debug)]
struct ModIds {
    f: Vec<u32>,
    g: Vec<u32>,
}

#[derive(Clone, Debug)]
struct CommitRecord {
    position: usize,
    /// Positions whose state sets this commit changed (internal indices).
    changed: Range<usize>,
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
/// from the start through the canvas so far) and the good set `G_j = F_j ∩ B_j` (those from
/// which the rest of the canvas can still be completed without a violation), as ids of
/// hash-consed sets. Token `t` is allowed at hole `i` iff in every module some `q ∈ F_i`
/// goes by `t` to a state of `G_{i+1}`. Each commit updates the sets incrementally (memoised
/// set operations), forward from the hole until `F` stops changing and backward until `G`
/// stops changing.
pub struct Guard {
    tp: Arc<TokenPolicy>,
    id: u64,
    /// Positions before `base` are retired (block-wise decoding); internal index = position - base.
    base: usize,
    retired: Vec<u32>,
    slots: Vec<Slot>,
    mods: Vec<ModIds>,
    log: Vec<CommitRecord>,
    /// See [`GuardConfig::end_in_holes`].
    end_in_holes: bool,
    small_set: usize,
    /// Per module: the interned sets and memo tables (derived data, not part of a snapshot).
    tables: Mutex<Vec<SetTable>>,
    /// Generation of the tables (bumped when they are rebuilt).
    epoch: u64,
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
                g: vec![0; n + 1],
            })
            .collect();
        let tables = Self::new_tables(&tp, config.small_set, config.end_in_holes);
        let mut g = Guard {
            id: NEXT_GUARD_ID.fetch_add(1, Ordering::Relaxed),
            tp,
            base: 0,
            retired: Vec::new(),
            slots: canvas.slots().to_vec(),
            mods,
            log: Vec::new(),
            end_in_holes: config.end_in_holes,
            small_set: config.small_set,
            tables: Mutex::new(tables),
            epoch: 0,
        };
        let mut bad = Vec::new();
        for mi in 0..g.mods.len() {
            g.recompute_all(mi);
            if g.mods[mi].g[0] == EMPTY {
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

    /// The set tables (a poisoned lock only means a panic elsewhere; the tables are
    /// consistent after every operation).
    fn tables(&self) -> MutexGuard<'_, Vec<SetTable>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of set `id` of module `mi`.
    fn set_of(&self, mi: usize, id: u32) -> Vec<u64> {
        self.tables()[mi].set(id).to_vec()
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

    /// F_{j+1} from F_j and slot j.
    #[inline]
    fn step_fwd(tab: &mut SetTable, cx: Ctx, f: u32, slot: Slot) -> u32 {
        match slot.token() {
            Some(t) => tab.tok_fwd(cx, f, t),
            None => tab.hole_fwd(cx, f),
        }
    }

    /// G_j from F_j, slot j (`None` past the end) and G_{j+1}.
    #[inline]
    fn step_bwd(tab: &mut SetTable, cx: Ctx, f: u32, slot: Option<Slot>, gn: u32) -> u32 {
        match slot {
            None => tab.end_clean(cx, f),
            Some(Slot::Hole) => tab.hole_bwd(cx, f, gn),
            Some(Slot::Fixed(t)) | Some(Slot::Committed(t)) => tab.tok_bwd(cx, f, t, gn),
        }
    }

    fn recompute_all(&mut self, mi: usize) {
        let n = self.slots.len();
        let tp = &*self.tp;
        let cx = Ctx::new(tp, mi);
        let tab = &mut self.tables.get_mut().unwrap_or_else(|e| e.into_inner())[mi];
        let ids = &mut self.mods[mi];
        let start = cx.m.start().as_usize();
        let mut s = vec![0u64; tab.w];
        states::insert(&mut s, start);
        ids.f[0] = tab.intern(&s);
        for j in 0..n {
            ids.f[j + 1] = Self::step_fwd(tab, cx, ids.f[j], self.slots[j]);
        }
        for j in (0..=n).rev() {
            let slot = if j == n { None } else { Some(self.slots[j]) };
            let gn = if j == n { EMPTY } else { ids.g[j + 1] };
            ids.g[j] = Self::step_bwd(tab, cx, ids.f[j], slot, gn);
        }
    }

    /// Re-establishes F and G after slot `i` changed; returns the range of changed positions.
    fn propagate(&mut self, mi: usize, i: usize) -> Range<usize> {
        let n = self.slots.len();
        let tp = &*self.tp;
        let cx = Ctx::new(tp, mi);
        let tab = &mut self.tables.get_mut().unwrap_or_else(|e| e.into_inner())[mi];
        let ids = &mut self.mods[mi];
        let mut hi = i;
        let mut j = i;
        while j < n {
            let nf = Self::step_fwd(tab, cx, ids.f[j], self.slots[j]);
            if nf == ids.f[j + 1] {
                break;
            }
            ids.f[j + 1] = nf;
            hi = j + 1;
            j += 1;
        }
        let mut lo = i;
        let mut j = hi;
        loop {
            let slot = if j == n { None } else { Some(self.slots[j]) };
            let gn = if j == n { EMPTY } else { ids.g[j + 1] };
            let ng = Self::step_bwd(tab, cx, ids.f[j], slot, gn);
            let same = ng == ids.g[j];
            if !same {
                ids.g[j] = ng;
                lo = lo.min(j);
            }
            if (same && j <= i) || j == 0 {
                break;
            }
            j -= 1;
        }
        lo..hi + 1
    }

    /// Rebuilds the set tables from the sets in use when they have grown too large.
    fn maybe_compact(&mut self) {
        let tables = self.tables.get_mut().unwrap_or_else(|e| e.into_inner());
        if tables.iter().all(|t| t.len() <= SET_LIMIT) {
            return;
        }
        let mut fresh = Self::new_tables(&self.tp, self.small_set, self.end_in_holes);
        for ((old, new), ids) in tables.iter().zip(fresh.iter_mut()).zip(&mut self.mods) {
            let mut map: FxMap<u32, u32> = FxMap::default();
            for x in ids.f.iter_mut().chain(ids.g.iter_mut()) {
                *x = *map.entry(*x).or_insert_with(|| new.intern(old.set(*x)));
            }
        }
        *tables = fresh;
        self.epoch += 1;
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
        let mut tables = self.tables();
        (0..self.mods.len()).all(|mi| self.module_allows(&mut tables[mi], mi, i, t))
    }

    /// Does module `mi` allow token `t` at hole index `i`: is there `q ∈ F_i` that `t`
    /// takes into `G_{i+1}`? (Such a `q` is in `G_i`.)
    fn module_allows(&self, tab: &mut SetTable, mi: usize, i: usize, t: u32) -> bool {
        let ids = &self.mods[mi];
        let (fi, gi, fnx, gn) = (ids.f[i], ids.g[i], ids.f[i + 1], ids.g[i + 1]);
        let end = tab.end;
        // The text may have ended before: every token keeps it ended.
        if tab.has_end(gi) {
            return true;
        }
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
    fn module_forbidden(&self, tab: &mut SetTable, mi: usize, i: usize) -> Vec<u32> {
        let tp = &*self.tp;
        let ids = &self.mods[mi];
        let end = tab.end;
        if tab.has_end(ids.g[i]) {
            return Vec::new();
        }
        let cx = Ctx::new(tp, mi);
        if ids.g[i + 1] == ids.f[i + 1] && tab.free(cx, ids.f[i]) {
            // Saturated with a free state: only end tokens can be refused.
            return if !self.end_in_holes || !tab.has_end(ids.f[i + 1]) {
                tp.end_tokens.clone()
            } else {
                Vec::new()
            };
        }
        let (gi, gn) = (tab.set(ids.g[i]), tab.set(ids.g[i + 1]));
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
        let mut tables = self.tables();
        for mi in 0..self.mods.len() {
            for t in self.module_forbidden(&mut tables[mi], mi, i) {
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
            let mut tables = self.tables();
            (0..self.mods.len())
                .map(|mi| self.module_forbidden(&mut tables[mi], mi, i))
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

    fn constraining_idx(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for rec in self.log.iter().rev() {
            if rec.changed.contains(&i) || rec.changed.start == i + 1 || rec.changed.end == i {
                let p = rec.position;
                if p >= self.base
                    && matches!(self.slots.get(p - self.base), Some(Slot::Committed(_)))
                    && !out.contains(&p)
                {
                    out.push(p);
                }
            }
        }
        out
    }

    /// The committed positions whose commits changed the state sets at `position` (its
    /// constraints), most recent first: candidates to remask when the hole is in conflict.
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
        let mut changed = i..i + 1;
        for mi in 0..self.mods.len() {
            let r = self.propagate(mi, i);
            changed = changed.start.min(r.start)..changed.end.max(r.end);
        }
        self.log.push(CommitRecord { position, changed });
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
        for mi in 0..self.mods.len() {
            self.propagate(mi, i);
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
            mods: self.mods.clone(),
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
            self.mods.clone_from(&snap.mods);
        } else {
            // The tables were rebuilt since: recompute the sets from the slots.
            for mi in 0..self.mods.len() {
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
        self.retired
            .extend(self.slots[..k].iter().filter_map(|s| s.token()));
        self.slots.drain(..k);
        for ids in &mut self.mods {
            ids.f.drain(..k);
            ids.g.drain(..k);
        }
        self.base = position;
        self.log.retain(|r| r.position >= position);
        for r in &mut self.log {
            r.changed = r.changed.start.saturating_sub(k)..r.changed.end.saturating_sub(k);
        }
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
        for mi in 0..self.mods.len() {
            let gi = {
                let mut tables = self.tables();
                if self.module_allows(&mut tables[mi], mi, i, t) {
                    continue;
                }
                tables[mi].set(self.mods[mi].g[i]).to_vec()
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
        for &mi in bad {
            let ms = &self.mods[mi];
            for j in 0..self.slots.len() {
                if ms.f[j + 1] == EMPTY && ms.f[j] != EMPTY {
                    if let Some(t) = self.slots[j].token() {
                        states::for_each(&self.set_of(mi, ms.f[j]), |q| {
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
                let tables = self.tables();
                self.mods
                    .iter()
                    .zip(tables.iter())
                    .map(|(ms, tab)| (tab.count(ms.f[i]), tab.count(ms.g[i])))
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
        for (mi, ms) in self.mods.iter().enumerate() {
            let d = tp.danger(mi);
            let (gi, gn) = (self.set_of(mi, ms.g[i]), self.set_of(mi, ms.g[i + 1]));
            let mut seen = 0;
            states::any(&gi, |q| {
                if let Some(r) = tp.delta(mi, q, t) {
                    if states::contains(&gn, r) {
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
            .field("modules", &self.mods.len())
            .field("commits", &self.log.len())
            .finish()
    }
}
