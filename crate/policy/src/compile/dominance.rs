//! The simulation preorder between the threads of one alternative ([`Dominance`]): a
//! dominated thread is dropped from a DFA state and mutually dominating ones are one thread,
//! which keeps counted patterns small without changing when a violation happens.

use rustc_hash::FxHashMap;

use super::context::{ctx_of, mark_look_boundaries, CTX_LF, CTX_START, CTX_WORD, EOI};
use super::AltInfo;
use crate::error::{CompileError, Deadline};
use crate::nfa::{self, Arena, LookNeeds, NfaId};

/// The simulation preorder of one alternative's positive NFA: `q2 ≼ q1` when every way
/// the thread at `q2` can complete a match, the thread at `q1` completes one at the same
/// byte or earlier. A dominated thread can be dropped from a state without changing when a
/// violation happens, which keeps counted patterns such as `AKIA[0-9A-Z]{16}` small.
pub(super) struct Dominance {
    pub(super) lo: NfaId,
    pub(super) n: usize,
    pub(super) rel: Vec<bool>,
    /// Per state (offset from `lo`): the smallest thread state equivalent to it (each
    /// dominates the other), so equivalent threads become one thread.
    pub(super) canon: Vec<NfaId>,
}

impl Dominance {
    /// The canonical representative of thread state `q`.
    pub(super) fn canon(&self, q: NfaId) -> NfaId {
        match q.checked_sub(self.lo) {
            Some(k) if (k as usize) < self.n => self.canon[k as usize],
            _ => q,
        }
    }

    pub(super) fn dominated(&self, q2: NfaId, q1: NfaId) -> bool {
        let (a, b) = ((q2 - self.lo) as usize, (q1 - self.lo) as usize);
        a < self.n && b < self.n && self.rel[a * self.n + b]
    }
}

/// Largest NFA (in states) for which the dominance relation is computed.
pub(super) const MAX_DOMINANCE_STATES: usize = 300;

impl Dominance {
    /// The relation of alternative `info`'s positive NFA, or `None` when it has more than
    /// [`MAX_DOMINANCE_STATES`] thread states. Reads the clock through `deadline` (`work`
    /// counts the NFA states visited since the last reading).
    pub(super) fn compute(
        arena: &Arena,
        info: &AltInfo,
        seen: &mut nfa::Scratch,
        deadline: &Deadline,
        work: &mut usize,
    ) -> Result<Option<Dominance>, CompileError> {
        let range = info.ranges[0].clone();
        let n = (range.end - range.start) as usize;
        if n == 0 {
            return Ok(None);
        }
        let lo = range.start;
        // Threads only ever sit on the start state or on targets of consuming states.
        let mut is_thread = vec![false; n];
        is_thread[(info.a_start - lo) as usize] = true;
        for id in range.clone() {
            match &arena.states[id as usize] {
                nfa::NState::Range { next, .. } | nfa::NState::Ranges { next, .. }
                    if (lo..range.end).contains(next) =>
                {
                    is_thread[(*next - lo) as usize] = true;
                }
                _ => {}
            }
        }
        let tstates: Vec<usize> = (0..n).filter(|&i| is_thread[i]).collect();
        let m = tstates.len();
        if m > MAX_DOMINANCE_STATES {
            return Ok(None);
        }
        let mut index = vec![usize::MAX; n];
        for (k, &q) in tstates.iter().enumerate() {
            index[q] = k;
        }
        let mut split = [false; 256];
        split[255] = true;
        nfa::mark_boundaries(arena, range.clone(), &mut split);
        let needs = LookNeeds {
            word: info.needs.word,
            line: info.needs.line,
            text: info.needs.text,
        };
        mark_look_boundaries(needs, &mut split);
        let mut nexts: Vec<u16> = vec![0];
        for (b, _) in split.iter().enumerate().take(255).filter(|(_, &sp)| sp) {
            nexts.push(b as u16 + 1);
        }
        nexts.push(EOI);
        let mask = (if needs.word { CTX_WORD } else { 0 })
            | (if needs.line { CTX_LF } else { 0 })
            | (if needs.text { CTX_START } else { 0 });
        let ctx_bits: Vec<u8> = (0..8u8).filter(|b| b & !mask == 0).collect();
        let nctx = ctx_bits.len() * nexts.len();
        let mut matched = vec![false; m * nctx];
        // Successors per (state, context), in one flat list (`succ_at` below): the loops
        // produce them in index order.
        let mut succ_start: Vec<u32> = Vec::with_capacity(m * nctx + 1);
        succ_start.push(0);
        let mut succ_items: Vec<u32> = Vec::new();
        let mut closed = Vec::new();
        let mut out = Vec::new();
        for (k, &q) in tstates.iter().enumerate() {
            // Without an assertion on the epsilon paths from q, its closure is the same in
            // every context: compute it once.
            let look_free = !arena.look_reach[lo as usize + q];
            let free_match = look_free
                && nfa::closure(
                    arena,
                    &[lo + q as NfaId],
                    &ctx_of(0, EOI),
                    &mut closed,
                    seen,
                );
            // Where the state's own successors start (the first context's row).
            let row0 = succ_start.len() - 1;
            for (bi, &bits) in ctx_bits.iter().enumerate() {
                if look_free && bi > 0 {
                    // The same closure in every context, so the same steps as the first.
                    for ni in 0..nexts.len() {
                        matched[k * nctx + bi * nexts.len() + ni] = free_match;
                        let (a, b) = (succ_start[row0 + ni], succ_start[row0 + ni + 1]);
                        succ_items.extend_from_within(a as usize..b as usize);
                        succ_start.push(succ_items.len() as u32);
                    }
                    continue;
                }
                for (ni, &nx) in nexts.iter().enumerate() {
                    deadline.tick(work, if look_free { 1 } else { n })?;
                    let c = ctx_of(bits, nx);
                    let ci = bi * nexts.len() + ni;
                    let mt = if look_free {
                        free_match
                    } else {
                        nfa::closure(arena, &[lo + q as NfaId], &c, &mut closed, seen)
                    };
                    matched[k * nctx + ci] = mt;
                    if let Some(b) = c.next {
                        nfa::step(arena, &closed, b, &mut out);
                        succ_items.extend(out.iter().map(|&r| index[(r - lo) as usize] as u32));
                    }
                    succ_start.push(succ_items.len() as u32);
                }
            }
        }
        // Contexts that every state treats alike (same match, same successors) are one.
        let succ_at = |i: usize| &succ_items[succ_start[i] as usize..succ_start[i + 1] as usize];
        let (matched, succ_start, succ_items, nctx) = {
            let mut seen_sig: FxHashMap<Vec<u32>, ()> = FxHashMap::default();
            let mut keep: Vec<usize> = Vec::new();
            for c in 0..nctx {
                let mut sig: Vec<u32> = Vec::with_capacity(3 * m);
                for k in 0..m {
                    // (Already sorted: `nfa::step` sorts, and `index` keeps the order.)
                    let sc = succ_at(k * nctx + c);
                    sig.push(matched[k * nctx + c] as u32);
                    sig.push(sc.len() as u32);
                    sig.extend_from_slice(sc);
                }
                if seen_sig.insert(sig, ()).is_none() {
                    keep.push(c);
                }
            }
            let n2 = keep.len();
            let mut m2 = vec![false; m * n2];
            let mut start2: Vec<u32> = Vec::with_capacity(m * n2 + 1);
            start2.push(0);
            let mut items2: Vec<u32> = Vec::with_capacity(succ_items.len());
            for k in 0..m {
                for (j, &c) in keep.iter().enumerate() {
                    m2[k * n2 + j] = matched[k * nctx + c];
                    items2.extend_from_slice(succ_at(k * nctx + c));
                    start2.push(items2.len() as u32);
                }
            }
            (m2, start2, items2, n2)
        };
        let succ_at = |i: usize| &succ_items[succ_start[i] as usize..succ_start[i + 1] as usize];
        // Where each state matches, as bit words: `q2 ≼ q1` needs q1 to match wherever q2
        // does (in every round of the refinement below, so these pairs are settled up front).
        let words = nctx.div_ceil(64);
        let mut match_bits = vec![0u64; m * words];
        // And where it has a successor: where q2 has one, q1 must match or have one too.
        let mut succ_bits = vec![0u64; m * words];
        for k in 0..m {
            for c in 0..nctx {
                if matched[k * nctx + c] {
                    match_bits[k * words + c / 64] |= 1 << (c % 64);
                }
                if !succ_at(k * nctx + c).is_empty() {
                    succ_bits[k * words + c / 64] |= 1 << (c % 64);
                }
            }
        }
        let mut rel = vec![true; m * m];
        for q2 in 0..m {
            let b2 = &match_bits[q2 * words..(q2 + 1) * words];
            let s2 = &succ_bits[q2 * words..(q2 + 1) * words];
            for q1 in 0..m {
                let b1 = &match_bits[q1 * words..(q1 + 1) * words];
                let s1 = &succ_bits[q1 * words..(q1 + 1) * words];
                if (0..words).any(|w| b2[w] & !b1[w] != 0 || s2[w] & !b1[w] & !s1[w] != 0) {
                    rel[q2 * m + q1] = false;
                }
            }
        }
        let mut changed = true;
        while changed {
            changed = false;
            for q2 in 0..m {
                deadline.tick(work, m * nctx)?;
                for q1 in 0..m {
                    if q1 == q2 || !rel[q2 * m + q1] {
                        continue;
                    }
                    let ok = (0..nctx).all(|c| {
                        matched[q1 * nctx + c]
                            || succ_at(q2 * nctx + c).iter().all(|&r2| {
                                succ_at(q1 * nctx + c)
                                    .iter()
                                    .any(|&r1| rel[r2 as usize * m + r1 as usize])
                            })
                    });
                    if !ok {
                        rel[q2 * m + q1] = false;
                        changed = true;
                    }
                }
            }
        }
        let mut canon: Vec<NfaId> = (0..n as NfaId).map(|k| lo + k).collect();
        for (i2, &q2) in tstates.iter().enumerate() {
            if let Some(i1) = (0..m).find(|&i1| rel[i2 * m + i1] && rel[i1 * m + i2]) {
                canon[q2] = lo + tstates[i1] as NfaId;
            }
        }
        // expand to the full range for lookups
        let mut full = vec![false; n * n];
        for (i2, &q2) in tstates.iter().enumerate() {
            for (i1, &q1) in tstates.iter().enumerate() {
                full[q2 * n + q1] = rel[i2 * m + i1];
            }
        }
        Ok(Some(Dominance {
            lo,
            n,
            rel: full,
            canon,
        }))
    }
}
