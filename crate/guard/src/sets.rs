//! Hash-consed state sets of one module and memoised set operations.
//!
//! Every distinct state set (a bitset over the module's states plus the "text ended"
//! pseudo-state) gets a `u32` id; the guard stores only ids per position. The operations
//! the guard needs (forward and backward steps over a token or a hole, the clean-end
//! filter) are memoised by id, so an incremental update is mostly a handful of table
//! lookups, and "has the set at this position changed?" is an id comparison.
//!
//! Token steps over large sets go through memoised *class steps* (the image of a set under
//! one byte class), so tokens sharing a class prefix share work; once the set is small the
//! rest of the token is run state by state.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use ward_policy::{Module, StateId};

use crate::lift::TokenPolicy;
use crate::mask::states;
use crate::vocab::TokenKind;

/// A fast multiplicative hasher (FxHash-style; keys are ids and bitsets, not adversarial).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.add(b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, x: u8) {
        self.add(x as u64);
    }
    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.add(x as u64);
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.add(x);
    }
    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.add(x as u64);
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// No id (not computed yet, or end of a hash chain).
const NONE: u32 = u32::MAX;

/// Most entries per memo table before it is cleared (the tables are pure caches).
const MEMO_LIMIT: usize = 1 << 18;

/// Largest number of excluded states for which the backward hole step goes through the
/// inverse index instead of scanning every state of the set.
const INV_LIMIT: usize = 256;

/// Words of a set with more states than this go through the per-word memo of hole images.
const BLOCK_MIN: u32 = 4;

/// What is known about one interned set.
#[derive(Clone, Copy, Debug)]
struct Meta {
    count: u32,
    /// Next id with the same hash.
    next: u32,
    /// Image under a hole (`NONE`: not computed yet).
    hole: u32,
    /// States with a successor under a hole.
    hole_live: u32,
    /// States where the text may end cleanly (and the ended pseudo-state).
    end_clean: u32,
    /// 0 unknown, 1 the set has a state from which no text token violates, 2 it has none.
    free: u8,
}

/// The interned sets of one module and the memo tables of their operations.
#[derive(Debug)]
pub(crate) struct SetTable {
    /// `u64` words per set.
    pub(crate) w: usize,
    /// Index of the "text ended" pseudo-state.
    pub(crate) end: usize,
    words: Vec<u64>,
    meta: Vec<Meta>,
    index: FxMap<u64, u32>,
    /// (word index, word bits) → hole image of those states.
    hole_block: FxMap<(u32, u64), u32>,
    /// Recycled scratch sets.
    pool: Vec<Vec<u64>>,
    /// (set, class) → (image, states of the set that survive the class).
    cls: FxMap<(u32, u8), (u32, u32)>,
    /// (set, token) → image.
    tok_fwd: FxMap<(u32, u32), u32>,
    /// (set, token, good set after) → states of the set that go into the good set.
    tok_bwd: FxMap<(u32, u32, u32), u32>,
    /// (set, good set after) → states of the set with a hole token into the good set.
    hole_bwd: FxMap<(u32, u32), u32>,
    /// (set, class, good set after the class) → states that go into it.
    pre_cls: FxMap<(u32, u8, u32), u32>,
    /// (set, set) → intersection.
    and: FxMap<(u32, u32), u32>,
    /// Sets with at most this many states are stepped state by state.
    pub(crate) small: usize,
    /// See `GuardConfig::end_in_holes`.
    pub(crate) end_in_holes: bool,
}

/// The module context of a set operation.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) tp: &'a TokenPolicy,
    pub(crate) mi: usize,
    pub(crate) m: &'a Module,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(tp: &'a TokenPolicy, mi: usize) -> Ctx<'a> {
        Ctx {
            tp,
            mi,
            m: tp.module(mi),
        }
    }
}

#[inline]
fn hash_words(s: &[u64]) -> u64 {
    let mut h = FxHasher(0x9e37_79b9_7f4a_7c15);
    for &x in s {
        h.add(x);
    }
    h.0
}

/// True when a one-token successor set (`bits`, a row's `ANY`) meets `good`, the end
/// pseudo-state `end` counting only when `end_ok`.
#[inline]
fn reaches(bits: &[u64], good: &[u64], end: usize, end_ok: bool) -> bool {
    let (ew, eb) = (end / 64, 1u64 << (end % 64));
    bits.iter().zip(good).enumerate().any(|(k, (a, g))| {
        let m = a & g;
        (if !end_ok && k == ew { m & !eb } else { m }) != 0
    })
}

/// True when the two sets share a state.
#[inline]
pub(crate) fn intersects(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).any(|(x, y)| x & y != 0)
}

impl SetTable {
    pub(crate) fn new(num_states: usize, small: usize, end_in_holes: bool) -> SetTable {
        let w = (num_states + 1).div_ceil(64);
        let mut t = SetTable {
            w,
            end: num_states,
            words: Vec::new(),
            meta: Vec::new(),
            index: FxMap::default(),
            hole_block: FxMap::default(),
            cls: FxMap::default(),
            pool: Vec::new(),
            tok_fwd: FxMap::default(),
            tok_bwd: FxMap::default(),
            hole_bwd: FxMap::default(),
            pre_cls: FxMap::default(),
            and: FxMap::default(),
            small,
            end_in_holes,
        };
        // Id 0 is the empty set.
        t.intern(&vec![0; w]);
        t
    }

    /// A zeroed scratch set.
    #[inline]
    fn buf(&mut self) -> Vec<u64> {
        let mut v = self.pool.pop().unwrap_or_default();
        v.clear();
        v.resize(self.w, 0);
        v
    }

    /// Interns a scratch set and recycles it.
    #[inline]
    fn intern_buf(&mut self, v: Vec<u64>) -> u32 {
        let id = self.intern(&v);
        self.pool.push(v);
        id
    }

    /// Number of interned sets.
    pub(crate) fn len(&self) -> usize {
        self.meta.len()
    }

    /// The bitset of set `id`.
    #[inline]
    pub(crate) fn set(&self, id: u32) -> &[u64] {
        let k = id as usize * self.w;
        &self.words[k..k + self.w]
    }

    /// Number of states of set `id`.
    #[inline]
    pub(crate) fn count(&self, id: u32) -> usize {
        self.meta[id as usize].count as usize
    }

    /// True when set `id` holds the ended pseudo-state.
    #[inline]
    pub(crate) fn has_end(&self, id: u32) -> bool {
        states::contains(self.set(id), self.end)
    }

    /// The id of a set (interned on first sight).
    pub(crate) fn intern(&mut self, s: &[u64]) -> u32 {
        let h = hash_words(s);
        let head = self.index.get(&h).copied().unwrap_or(NONE);
        let mut k = head;
        while k != NONE {
            if self.set(k) == s {
                return k;
            }
            k = self.meta[k as usize].next;
        }
        let id = self.meta.len() as u32;
        self.words.extend_from_slice(s);
        self.meta.push(Meta {
            count: states::count(s) as u32,
            next: head,
            hole: NONE,
            hole_live: NONE,
            end_clean: NONE,
            free: 0,
        });
        self.index.insert(h, id);
        id
    }

    fn trim_memos(&mut self) {
        if self.cls.len() > MEMO_LIMIT {
            self.cls.clear();
        }
        if self.tok_fwd.len() > MEMO_LIMIT {
            self.tok_fwd.clear();
        }
        if self.tok_bwd.len() > MEMO_LIMIT {
            self.tok_bwd.clear();
        }
        if self.hole_bwd.len() > MEMO_LIMIT {
            self.hole_bwd.clear();
        }
        if self.pre_cls.len() > MEMO_LIMIT {
            self.pre_cls.clear();
        }
        if self.and.len() > MEMO_LIMIT {
            self.and.clear();
        }
    }

    /// The intersection of two sets.
    pub(crate) fn and(&mut self, a: u32, b: u32) -> u32 {
        if a == b || b == 0 {
            return b;
        }
        if a == 0 {
            return a;
        }
        if let Some(&r) = self.and.get(&(a, b)) {
            return r;
        }
        let mut out = self.buf();
        let (x, y) = (self.set(a), self.set(b));
        for ((o, p), q) in out.iter_mut().zip(x).zip(y) {
            *o = p & q;
        }
        let r = self.intern_buf(out);
        self.trim_memos();
        self.and.insert((a, b), r);
        r
    }

    /// The image of `id` under a hole: every state one hole token reaches (with
    /// `end_in_holes` false, the ended state only from itself).
    pub(crate) fn hole_fwd(&mut self, cx: Ctx, id: u32) -> u32 {
        let h = self.meta[id as usize].hole;
        if h != NONE {
            return h;
        }
        let mut out = self.buf();
        for k in 0..self.w {
            let b = self.words[id as usize * self.w + k];
            if b == 0 {
                continue;
            }
            if b.count_ones() <= BLOCK_MIN {
                self.or_rows(cx, k, b, &mut out);
            } else {
                // The image of one word of states, memoised by its bits: big sets differ
                // from one another in a few words.
                let img = match self.hole_block.get(&(k as u32, b)) {
                    Some(&img) => img,
                    None => {
                        let mut blk = self.buf();
                        self.or_rows(cx, k, b, &mut blk);
                        let img = self.intern_buf(blk);
                        if self.hole_block.len() > MEMO_LIMIT {
                            self.hole_block.clear();
                        }
                        self.hole_block.insert((k as u32, b), img);
                        img
                    }
                };
                for (o, a) in out.iter_mut().zip(self.set(img)) {
                    *o |= *a;
                }
            }
        }
        if !self.end_in_holes && !self.has_end(id) {
            states::clear(&mut out, self.end);
        }
        let r = self.intern_buf(out);
        self.meta[id as usize].hole = r;
        r
    }

    /// ORs the hole images (`ANY`) of the states of word `k` with bits `b` into `out`.
    fn or_rows(&self, cx: Ctx, k: usize, mut b: u64, out: &mut [u64]) {
        while b != 0 {
            let q = k * 64 + b.trailing_zeros() as usize;
            b &= b - 1;
            if q == self.end {
                states::insert(out, q);
            } else {
                let row = cx.tp.row(cx.mi, q);
                for (o, a) in out.iter_mut().zip(&row.any_bits) {
                    *o |= *a;
                }
            }
        }
    }

    /// The states of `id` with at least one hole token that does not violate.
    pub(crate) fn hole_live(&mut self, cx: Ctx, id: u32) -> u32 {
        let h = self.meta[id as usize].hole_live;
        if h != NONE {
            return h;
        }
        let end = self.end;
        let end_ok = self.end_in_holes;
        let mut out = self.buf();
        states::for_each(self.set(id), |q| {
            let ok = q == end || {
                let any = &cx.tp.row(cx.mi, q).any;
                if end_ok {
                    !any.is_empty()
                } else {
                    any.iter().any(|&r| r as usize != end)
                }
            };
            if ok {
                states::insert(&mut out, q);
            }
        });
        let r = self.intern_buf(out);
        self.meta[id as usize].hole_live = r;
        r
    }

    /// The states of `id` where the text may end cleanly (and the ended state).
    pub(crate) fn end_clean(&mut self, cx: Ctx, id: u32) -> u32 {
        let h = self.meta[id as usize].end_clean;
        if h != NONE {
            return h;
        }
        let end = self.end;
        let mut out = self.buf();
        states::for_each(self.set(id), |q| {
            if q == end || cx.m.is_clean_end(StateId(q as u32)) {
                states::insert(&mut out, q);
            }
        });
        let r = self.intern_buf(out);
        self.meta[id as usize].end_clean = r;
        r
    }

    /// True when `id` has a state from which no text token violates (or the ended state).
    pub(crate) fn free(&mut self, cx: Ctx, id: u32) -> bool {
        match self.meta[id as usize].free {
            1 => return true,
            2 => return false,
            _ => {}
        }
        let end = self.end;
        let ends = cx.tp.end_tokens.len();
        let f = states::any(self.set(id), |q| {
            if q == end {
                return true;
            }
            let row = cx.tp.row(cx.mi, q);
            let end_part = if ends > 0 && !cx.m.is_clean_end(StateId(q as u32)) {
                ends
            } else {
                0
            };
            row.viol_count == end_part
        });
        self.meta[id as usize].free = if f { 1 } else { 2 };
        f
    }

    /// The image of `id` under one byte class, and the states of `id` that survive it.
    fn cls_step(&mut self, cx: Ctx, id: u32, c: u8) -> (u32, u32) {
        if let Some(&r) = self.cls.get(&(id, c)) {
            return r;
        }
        let end = self.end;
        let mut img = self.buf();
        let mut live = self.buf();
        // One column of the transition table: the states of a large set read it in order.
        let col = cx.tp.col(cx.mi, c);
        for k in 0..self.w {
            let b = self.words[id as usize * self.w + k];
            if b == 0 {
                continue;
            }
            let mut x = b;
            while x != 0 {
                let q = k * 64 + x.trailing_zeros() as usize;
                x &= x - 1;
                if q == end {
                    states::insert(&mut img, end);
                    states::insert(&mut live, end);
                } else {
                    let s = match col {
                        Some(col) => col[q] as usize,
                        None => cx.m.next_class(StateId(q as u32), c).as_usize(),
                    };
                    // The violated state is 0.
                    if s != 0 {
                        states::insert(&mut img, s);
                        states::insert(&mut live, q);
                    }
                }
            }
        }
        let r = (self.intern_buf(img), self.intern_buf(live));
        self.trim_memos();
        self.cls.insert((id, c), r);
        r
    }

    /// The state after the bytes `rest` from `q` (`None`: violation).
    #[inline]
    fn run_rest(&self, cx: Ctx, q: usize, rest: &[u8]) -> Option<usize> {
        if q == self.end {
            return Some(q);
        }
        let s = cx.m.run(StateId(q as u32), rest);
        (!cx.m.is_violated(s)).then_some(s.as_usize())
    }

    /// The image of `id` under token `t` (the token's own meaning: an end token ends the
    /// text from a clean-end state).
    pub(crate) fn tok_fwd(&mut self, cx: Ctx, id: u32, t: u32) -> u32 {
        let end = self.end;
        match cx.tp.vocab().kind(t) {
            TokenKind::Empty => id,
            TokenKind::End => {
                let mut out = self.buf();
                if states::any(self.set(id), |q| {
                    q == end || cx.m.is_clean_end(StateId(q as u32))
                }) {
                    states::insert(&mut out, end);
                }
                self.intern_buf(out)
            }
            TokenKind::Text => {
                let bytes = cx.tp.vocab().bytes(t);
                if self.count(id) <= self.small {
                    let mut out = self.buf();
                    states::for_each(self.set(id), |q| {
                        if let Some(r) = self.run_rest(cx, q, bytes) {
                            states::insert(&mut out, r);
                        }
                    });
                    return self.intern_buf(out);
                }
                if let Some(&r) = self.tok_fwd.get(&(id, t)) {
                    return r;
                }
                let classes = cx.m.byte_classes();
                let mut cur = id;
                let mut k = 0;
                while k < bytes.len() && self.count(cur) > self.small {
                    cur = self.cls_step(cx, cur, classes[bytes[k] as usize]).0;
                    k += 1;
                }
                if k < bytes.len() {
                    let rest = &bytes[k..];
                    let mut out = self.buf();
                    states::for_each(self.set(cur), |q| {
                        if let Some(r) = self.run_rest(cx, q, rest) {
                            states::insert(&mut out, r);
                        }
                    });
                    cur = self.intern_buf(out);
                }
                self.trim_memos();
                self.tok_fwd.insert((id, t), cur);
                cur
            }
        }
    }

    /// The states of `id` that token `t` takes into set `good`.
    pub(crate) fn tok_bwd(&mut self, cx: Ctx, id: u32, t: u32, good: u32) -> u32 {
        let end = self.end;
        match cx.tp.vocab().kind(t) {
            TokenKind::Empty => {
                let out: Vec<u64> = self
                    .set(id)
                    .iter()
                    .zip(self.set(good))
                    .map(|(a, b)| a & b)
                    .collect();
                self.intern_buf(out)
            }
            TokenKind::End => {
                let mut out = self.buf();
                if self.has_end(good) {
                    states::for_each(self.set(id), |q| {
                        if q == end || cx.m.is_clean_end(StateId(q as u32)) {
                            states::insert(&mut out, q);
                        }
                    });
                }
                self.intern_buf(out)
            }
            TokenKind::Text => {
                let bytes = cx.tp.vocab().bytes(t);
                if self.count(id) <= self.small {
                    return self.direct_bwd(cx, id, bytes, good);
                }
                if let Some(&r) = self.tok_bwd.get(&(id, t, good)) {
                    return r;
                }
                let classes = cx.m.byte_classes();
                // Forward chain of class images while the sets are large.
                let mut chain = vec![id];
                let mut cur = id;
                while chain.len() <= bytes.len() && self.count(cur) > self.small {
                    cur = self
                        .cls_step(cx, cur, classes[bytes[chain.len() - 1] as usize])
                        .0;
                    chain.push(cur);
                }
                let k = chain.len() - 1;
                let mut p = if k == bytes.len() {
                    let out: Vec<u64> = self
                        .set(cur)
                        .iter()
                        .zip(self.set(good))
                        .map(|(a, b)| a & b)
                        .collect();
                    self.intern_buf(out)
                } else {
                    self.direct_bwd(cx, cur, &bytes[k..], good)
                };
                for kk in (0..k).rev() {
                    let (f, c, fk) = (chain[kk], classes[bytes[kk] as usize], chain[kk + 1]);
                    p = if p == fk {
                        self.cls_step(cx, f, c).1
                    } else {
                        self.pre_cls(cx, f, c, p)
                    };
                }
                self.trim_memos();
                self.tok_bwd.insert((id, t, good), p);
                p
            }
        }
    }

    /// The states of `id` that the bytes `rest` take into set `good`, state by state.
    fn direct_bwd(&mut self, cx: Ctx, id: u32, rest: &[u8], good: u32) -> u32 {
        let mut out = self.buf();
        let g = self.set(good);
        states::for_each(self.set(id), |q| {
            if self
                .run_rest(cx, q, rest)
                .is_some_and(|r| states::contains(g, r))
            {
                states::insert(&mut out, q);
            }
        });
        self.intern_buf(out)
    }

    /// The states of `id` that class `c` takes into set `good`.
    fn pre_cls(&mut self, cx: Ctx, id: u32, c: u8, good: u32) -> u32 {
        if let Some(&r) = self.pre_cls.get(&(id, c, good)) {
            return r;
        }
        let end = self.end;
        let mut out = self.buf();
        let g = self.set(good);
        let col = cx.tp.col(cx.mi, c);
        states::for_each(self.set(id), |q| {
            let r = if q == end {
                end
            } else {
                match col {
                    Some(col) => col[q] as usize,
                    None => cx.m.next_class(StateId(q as u32), c).as_usize(),
                }
            };
            // The violated state (0) is never in a good set.
            if r != 0 && states::contains(g, r) {
                states::insert(&mut out, q);
            }
        });
        let r = self.intern_buf(out);
        self.pre_cls.insert((id, c, good), r);
        r
    }

    /// The states of `id` from which some hole token goes into `good` (a subset of the
    /// hole image of `id`).
    pub(crate) fn hole_bwd(&mut self, cx: Ctx, id: u32, good: u32) -> u32 {
        let h = self.hole_fwd(cx, id);
        if good == h {
            return self.hole_live(cx, id);
        }
        if let Some(&r) = self.hole_bwd.get(&(id, good)) {
            return r;
        }
        let end = self.end;
        let end_ok = self.end_in_holes;
        let mut out = self.buf();
        let (fj, fnx, gn) = (self.set(id), self.set(h), self.set(good));
        let xcount: usize = fnx
            .iter()
            .zip(gn)
            .map(|(f, g)| (f & !g).count_ones() as usize)
            .sum();
        let l = &cx.tp.lifts[cx.mi];
        let inv = if xcount <= INV_LIMIT {
            l.inv.read().ok()
        } else {
            None
        };
        match inv {
            Some(inv) => {
                // Every state of the set reaches only states of its image by one token, so
                // q is good iff its successors are not all inside X = image \ good: only
                // predecessors of X can be bad.
                let live = self.hole_live(cx, id);
                let (fnx, gn) = (self.set(h), self.set(good));
                out.copy_from_slice(self.set(live));
                let in_x = |r: usize| states::contains(fnx, r) && !states::contains(gn, r);
                let reps = cx.tp.any_reps(cx.mi);
                for (k, (f, g)) in fnx.iter().zip(gn).enumerate() {
                    let mut b = f & !g;
                    while b != 0 {
                        let x = k * 64 + b.trailing_zeros() as usize;
                        b &= b - 1;
                        if x == end {
                            states::clear(&mut out, end);
                        }
                        for &q in &inv[x] {
                            let q = q as usize;
                            // q is bad iff no successor is good (they are all in the image):
                            // its first successor (read from one array) settles most states,
                            // the row's bitset the others.
                            if states::contains(&out, q)
                                && reps[q] != u32::MAX
                                && in_x(reps[q] as usize)
                                && !reaches(&cx.tp.row(cx.mi, q).any_bits, gn, end, end_ok)
                            {
                                states::clear(&mut out, q);
                            }
                        }
                    }
                }
            }
            None => {
                let reps = cx.tp.any_reps(cx.mi);
                states::for_each(fj, |q| {
                    let ok = if q == end {
                        states::contains(gn, end)
                    } else if reps[q] != u32::MAX && states::contains(gn, reps[q] as usize) {
                        true
                    } else {
                        reaches(&cx.tp.row(cx.mi, q).any_bits, gn, end, end_ok)
                    };
                    if ok {
                        states::insert(&mut out, q);
                    }
                });
            }
        }
        let r = self.intern_buf(out);
        self.trim_memos();
        self.hole_bwd.insert((id, good), r);
        r
    }
}
