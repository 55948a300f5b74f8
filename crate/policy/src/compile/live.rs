//! Phase 2: co-reachability (which states can still reach a clean end) and a rule's
//! enforced form, where the other states become the violated state, attributed to the rules
//! pending there.

use rustc_hash::FxHashMap;

use super::context::EOI;
use super::determinize::{Builder, Raw};
use super::reduce::{reduce_tables, Pruned};
use super::report::ReportParts;
use crate::error::CompileError;
use crate::module::{RuleIndex, StateId};

impl Raw {
    /// The enforced form, reduced, and the reporting form. States that cannot reach a clean
    /// end are merged into the violated state (so every other state has a clean completion),
    /// and the transitions into them attributed to the rules pending there. Needs the builder
    /// that made this automaton; the results do not.
    pub(super) fn enforced(
        mut self,
        b: &mut Builder<'_>,
    ) -> Result<(Pruned, ReportParts), CompileError> {
        let n = self.states.len();
        let nc = self.nc();
        // States only reset transitions reach are not part of the module.
        let mut reached = vec![false; n];
        let mut stack = vec![self.start.as_usize()];
        reached[self.start.as_usize()] = true;
        while let Some(s) = stack.pop() {
            for &t in &self.trans[s * nc..(s + 1) * nc] {
                if !reached[t.as_usize()] {
                    reached[t.as_usize()] = true;
                    stack.push(t.as_usize());
                }
            }
        }
        let live = co_reachable(n, nc, &self.trans, &self.clean_end, &reached);
        // Transitions into dead states violate, attributed to the rules pending there. They
        // are patched in place for the reduction and restored afterwards: the reporting DFA
        // (the same tables) must report a match where it ends.
        let mut pending: FxHashMap<usize, u32> = FxHashMap::default();
        let mut patches: Vec<(usize, StateId, u16)> = Vec::new();
        for s in 1..n {
            if !live[s] {
                continue;
            }
            for c in 0..nc {
                let t = self.trans[s * nc + c].as_usize();
                if t != 0 && !live[t] {
                    let vid = match pending.get(&t) {
                        Some(&v) => v,
                        None => {
                            let mut rs: Vec<RuleIndex> = Vec::new();
                            for next in [b'a' as u16, b' ' as u16, b'\n' as u16, b'(' as u16, EOI] {
                                for &th in self.tsets.get(self.states[t].ts) {
                                    let si = b.step_thread(th, self.states[t].ctx, next)?;
                                    if b.step_matched(si) {
                                        let r = b.alts[b.threads[th as usize].alt as usize].rule;
                                        if !rs.contains(&r) {
                                            rs.push(r);
                                        }
                                    }
                                }
                            }
                            if rs.is_empty() {
                                rs = self.rules.clone();
                            }
                            rs.sort_unstable();
                            let v = match self.viol_sets.iter().position(|v| *v == rs) {
                                Some(k) => k as u32 + 1,
                                None => {
                                    self.viol_sets.push(rs);
                                    self.viol_sets.len() as u32
                                }
                            };
                            pending.insert(t, v);
                            v
                        }
                    };
                    let k = s * nc + c;
                    patches.push((k, self.trans[k], self.viol[k]));
                    self.viol[k] = super::determinize::viol_id16(vid)?;
                    self.trans[k] = StateId::VIOLATED;
                }
            }
        }
        let lex: Vec<u16> = self.states.iter().map(|k| k.lex).collect();
        let pruned = reduce_tables(
            self.rules.clone(),
            self.classes,
            nc,
            &lex,
            &self.trans,
            &self.viol,
            self.viol_sets.clone(),
            &self.clean_end,
            &self.end_rules,
            &live,
            self.start,
            &b.deadline,
        )?;
        for (k, t, v) in patches {
            self.trans[k] = t;
            self.viol[k] = v;
        }
        let report = self.into_report();
        Ok((pruned, report))
    }
}

/// Which states (among `reached`) can reach a clean end without a violation. Most states
/// are clean ends themselves; the others are settled by depth-first searches: one that
/// finds a live state makes its whole current path live, one that finds none proves every
/// state it visited dead. Past a work budget (pathological graphs) it falls back to a
/// backward search over all reverse edges.
pub(super) fn co_reachable(
    n: usize,
    nc: usize,
    trans: &[StateId],
    clean_end: &[bool],
    reached: &[bool],
) -> Vec<bool> {
    // 0 unknown, 1 live, 2 dead, 3 on the current search
    let mut st = vec![0u8; n];
    st[0] = 2;
    for s in 1..n {
        if !reached[s] {
            st[s] = 2;
        } else if clean_end[s] {
            st[s] = 1;
        }
    }
    let budget = 8 * n * nc;
    let mut work = 0usize;
    let mut seen: Vec<usize> = Vec::new();
    let mut path: Vec<(usize, usize)> = Vec::new(); // (state, next class to try)
    for s0 in 1..n {
        if st[s0] != 0 {
            continue;
        }
        seen.clear();
        path.clear();
        path.push((s0, 0));
        st[s0] = 3;
        seen.push(s0);
        let mut found = false;
        while let Some(&mut (s, ref mut ci)) = path.last_mut() {
            if *ci == nc {
                path.pop();
                continue;
            }
            let t = trans[s * nc + *ci].as_usize();
            *ci += 1;
            work += 1;
            match st[t] {
                1 => {
                    found = true;
                    break;
                }
                0 => {
                    st[t] = 3;
                    seen.push(t);
                    path.push((t, 0));
                }
                _ => {}
            }
        }
        if found {
            for &x in &seen {
                st[x] = 0;
            }
            for &(x, _) in &path {
                st[x] = 1;
            }
        } else {
            for &x in &seen {
                st[x] = 2;
            }
        }
        if work > budget {
            return co_reachable_backward(n, nc, trans, clean_end, reached);
        }
    }
    st.iter().map(|&x| x == 1).collect()
}

/// [`co_reachable`] by a backward search from the clean ends over all reverse edges.
pub(super) fn co_reachable_backward(
    n: usize,
    nc: usize,
    trans: &[StateId],
    clean_end: &[bool],
    reached: &[bool],
) -> Vec<bool> {
    let mut rstart = vec![0u32; n + 1];
    for s in 1..n {
        for &t in &trans[s * nc..(s + 1) * nc] {
            rstart[t.as_usize() + 1] += 1;
        }
    }
    for k in 1..=n {
        rstart[k] += rstart[k - 1];
    }
    let mut fill = rstart.clone();
    let mut rev = vec![0u32; rstart[n] as usize];
    for s in 1..n {
        for &t in &trans[s * nc..(s + 1) * nc] {
            let f = &mut fill[t.as_usize()];
            rev[*f as usize] = s as u32;
            *f += 1;
        }
    }
    let mut live = vec![false; n];
    let mut stack: Vec<usize> = (1..n).filter(|&s| clean_end[s] && reached[s]).collect();
    for &s in &stack {
        live[s] = true;
    }
    while let Some(s) = stack.pop() {
        for &p in &rev[rstart[s] as usize..rstart[s + 1] as usize] {
            if !live[p as usize] && reached[p as usize] {
                live[p as usize] = true;
                stack.push(p as usize);
            }
        }
    }
    live
}
