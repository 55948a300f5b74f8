//! The forward sets `F_j`, the backward sets `B_j ∩ F⁰_j` and their lazy propagation:
//! pending marks, bringing exactly the sets a query reads up to date (`ensure_f`,
//! `ensure_b`, `prepare`), and the full recomputation of a module's sets.

use super::{Guard, Inner, ModIds, Slot, EMPTY, NO_STATE};
use crate::mask::states;
use crate::sets::{Ctx, SetTable};

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
pub(super) fn ensure_f(tab: &mut SetTable, cx: Ctx, ids: &mut ModIds, slots: &[Slot], h: usize) {
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
pub(super) fn ensure_b(
    tab: &mut SetTable,
    cx: Ctx,
    ids: &mut ModIds,
    f0: &[u32],
    slots: &[Slot],
    h: usize,
) {
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
    /// Recomputes every set of module `mi` from `F_0` and `F⁰_0` and the slots.
    pub(super) fn recompute_all(&mut self, mi: usize) {
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
            // Where nothing is committed yet (a new guard: the whole canvas), `F` is `F⁰`:
            // same set, same slot, so the same step.
            ids.f[j + 1] = if ids.f[j] == f0[j] && open == self.slots[j] {
                f0[j + 1]
            } else {
                step_fwd(tab, cx, ids.f[j], self.slots[j])
            };
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

    /// Brings the sets module `mi` reads at hole index `i` up to date (`F_i`, `F_{i+1}`,
    /// `B_i`, `B_{i+1}`) and returns whether the text may already have ended before `i`
    /// (then every token is allowed there). `k0` is the first open hole: when the text may
    /// end there, it may have ended before every later position, so nothing else is needed.
    pub(super) fn prepare(
        &self,
        inner: &mut Inner,
        mi: usize,
        i: usize,
        k0: Option<usize>,
    ) -> bool {
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
    pub(super) fn ended_before(
        &self,
        inner: &mut Inner,
        mi: usize,
        i: usize,
        k0: Option<usize>,
    ) -> bool {
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
    pub(super) fn prepare_all(&self, inner: &mut Inner, mi: usize) {
        let cx = Ctx::new(&self.tp, mi);
        let n = self.slots.len();
        let tab = &mut inner.tables[mi];
        let ids = &mut inner.mods[mi];
        ensure_f(tab, cx, ids, &self.slots, n);
        ensure_b(tab, cx, ids, &inner.f0[mi], &self.slots, 0);
    }

    /// Brings module `mi`'s `F_0 ..= F_hi` and `B_lo ..= B_n` up to date.
    pub(super) fn prepare_range(&self, inner: &mut Inner, mi: usize, lo: usize, hi: usize) {
        let cx = Ctx::new(&self.tp, mi);
        let tab = &mut inner.tables[mi];
        let ids = &mut inner.mods[mi];
        ensure_f(tab, cx, ids, &self.slots, hi);
        ensure_b(tab, cx, ids, &inner.f0[mi], &self.slots, lo);
    }

    /// `G_j = F_j ∩ B_j` of module `mi` (up to date where `F_j` and `B_j` are).
    pub(super) fn good(inner: &mut Inner, mi: usize, j: usize) -> u32 {
        let ids = &inner.mods[mi];
        inner.tables[mi].and(ids.f[j], ids.b[j])
    }
}
