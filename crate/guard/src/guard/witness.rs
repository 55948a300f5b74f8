//! The witness path: per module one state `w_j ∈ F_j` per position, kept up to date at
//! every commit by single-state steps, so that `allows` can answer yes without bringing
//! the forward sets up to date.

use super::{Guard, Slot, NO_STATE};
use crate::mask::states;

impl Guard {
    /// Re-establishes the witness path of module `mi` after `w_from` or slot `from` changed:
    /// forward until it meets the stored path. At a hole the stored next state is kept when
    /// the hole can still reach it, else a successor in (the possibly stale) `B` is
    /// preferred, so that the path tends to stay completable.
    pub(super) fn walk_witness(&mut self, mi: usize, from: usize) {
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
}
