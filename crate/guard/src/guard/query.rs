//! What a hole may take: the fast path `allows(i, t)` (witness, saturation, small-set and
//! memoised token-image checks per module) and the exact masks (`mask`, `mask_unchecked`),
//! AND-ed over the modules.

use ward_policy::StateId;

use super::propagate::ensure_b;
use super::{Guard, Inner, NO_STATE};
use crate::error::GuardError;
use crate::mask::{states, TokenMask};
use crate::sets::{intersects, Ctx};
use crate::vocab::TokenKind;

impl Guard {
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

    pub(super) fn allows_idx(&self, i: usize, t: u32) -> bool {
        let mut inner = self.inner();
        let k0 = self.first_hole();
        (0..self.num_mods()).all(|mi| self.module_allows(&mut inner, mi, i, t, k0))
    }

    /// Does module `mi` allow token `t` at hole index `i`: is there `q ∈ F_i` that `t`
    /// takes into `G_{i+1}`? (Such a `q` is in `G_i`.)
    pub(super) fn module_allows(
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
    pub(super) fn module_forbidden(
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

    pub(super) fn mask_idx(&self, i: usize) -> TokenMask {
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
}
