//! Conflicts and attribution: the conflict report of a hole no token satisfies, the
//! commits that constrain a hole, the rules to blame for a forbidden token, the blocked
//! probability mass per rule, and the diagnosis of a canvas without a safe completion.

use ward_policy::RuleIndex;

use super::propagate::{ensure_b, ensure_f};
use super::{Guard, Slot, EMPTY};
use crate::error::{Blame, BlameKind, Conflict, GuardError};
use crate::lift::TokenPolicy;
use crate::mask::states;
use crate::sets::Ctx;
use crate::vocab::TokenKind;

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

/// Probability below which a blocked token's mass is not attributed to rules.
const ATTRIBUTION_MIN_P: f32 = 1e-6;

impl Guard {
    /// The conflict at hole `position`, if no token is allowed there by every module.
    pub fn conflict_at(&self, position: usize) -> Option<Conflict> {
        let i = self.hole_index(position).ok()?;
        if self.mask_idx(i).is_all_clear() {
            Some(self.conflict_report(i))
        } else {
            None
        }
    }

    pub(super) fn conflict_report(&self, i: usize) -> Conflict {
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

    /// The rules that forbid token `t` at hole `position` (empty when it is allowed).
    pub fn why_forbidden(&self, position: usize, t: u32) -> Vec<Blame> {
        match self.hole_index(position) {
            Ok(i) if (t as usize) < self.tp.vocab().len() => self.blame_idx(i, t),
            _ => Vec::new(),
        }
    }

    pub(super) fn blame_idx(&self, i: usize, t: u32) -> Vec<Blame> {
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

    pub(super) fn diagnose(&self, bad: &[usize]) -> GuardError {
        let tp = &*self.tp;
        let first_hole = self.slots.iter().position(|s| *s == Slot::Hole);
        // The text before the first hole, retired positions included (a first text token
        // retired at construction is decoded in its first-token form).
        let prefix: Vec<u32> = self
            .retired
            .iter()
            .copied()
            .chain(
                self.slots[..first_hole.unwrap_or(self.slots.len())]
                    .iter()
                    .filter_map(|s| s.token()),
            )
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
                        if position.is_none_or(|p| j + self.base < p) {
                            position = Some(j + self.base);
                        }
                    }
                    break;
                }
            }
        }
        if rule_set.is_empty() {
            for &mi in bad {
                let mut start = Vec::new();
                states::for_each(inner.tables[mi].set(inner.f0[mi][0]), |q| start.push(q));
                rule_set.extend(self.unavoidable_rules(mi, 0, start));
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
}
