//! Choosing a token for an open position (static exclusions, the guard's exact masks, the
//! blocked-candidate report), committing it through the guard, and remasking on conflicts.

use super::*;

impl Session {
    /// The row of `pos` with every static exclusion applied.
    pub(super) fn base_row(&self, pos: usize, raw: &[f32]) -> Vec<f32> {
        let mut row = raw.to_vec();
        for &t in self.never.iter().chain(&self.vocab_forbidden) {
            row[t as usize] = f32::NEG_INFINITY;
        }
        if let Some(b) = self.banned.get(&pos) {
            for &t in b {
                row[t as usize] = f32::NEG_INFINITY;
            }
        }
        if let Some(e) = self.special.eos {
            if !self.end_permitted(pos) {
                row[e as usize] = f32::NEG_INFINITY;
            }
        }
        for x in row.iter_mut() {
            if x.is_nan() {
                *x = f32::NEG_INFINITY;
            }
        }
        row
    }

    /// Whether the guard decides about `t` at `pos` (the end token is the sampler's own
    /// decision where [`Session::eos_is_samplers`]).
    pub(super) fn guard_judges(&self, pos: usize, t: u32) -> bool {
        self.guard.is_some() && (Some(t) != self.special.eos || !self.eos_is_samplers(pos))
    }

    pub(super) fn temperature(&self) -> f32 {
        if self.req.temperature > 0.0 {
            self.req.temperature
        } else {
            1.0
        }
    }

    /// The candidate at `pos` under the static exclusions (no position mask yet).
    pub(super) fn choose_static(
        &mut self,
        pos: usize,
        row_idx: usize,
        raw: &[f32],
    ) -> Result<Cand> {
        let temp = self.temperature();
        let row = self.base_row(pos, raw);
        let d = RowDist::of(&row, temp);
        let Some(x) = pick(&row, &d, &self.req, &mut self.rng) else {
            // Every token excluded: the bans at this position were too many; forget them.
            if self.banned.remove(&pos).is_some() {
                return self.choose_static(pos, row_idx, raw);
            }
            return Err(SamplerError::Tokens(format!(
                "no token can be chosen at position {pos}: the logits are all excluded"
            )));
        };
        let conf = confidence(self.req.strategy, &row, &d, x, &mut self.rng);
        Ok(Cand {
            pos,
            token: x,
            prob: d.prob(row[x as usize]),
            conf,
            masked: false,
            checked: false,
            row: row_idx,
            d0: d,
        })
    }

    /// The candidate at `pos` under the exact position mask: the blocked likely candidates
    /// are reported, the mask is applied and the choice is made again from the allowed
    /// distribution (so a sample follows exactly the masked distribution: rejection
    /// sampling), with the masked confidence.
    pub(super) fn choose_masked(
        &mut self,
        pos: usize,
        row_idx: usize,
        raw: &[f32],
        blocked: &mut Vec<Blocked>,
        guard_ms: &mut f64,
    ) -> Result<Choice> {
        let temp = self.temperature();
        let mut row = self.base_row(pos, raw);
        let d0 = RowDist::of(&row, temp);
        let t = self.now();
        let g = self.guard.as_ref().expect("only with a guard");
        let mask = match g.mask(pos) {
            Ok(m) => m,
            Err(GuardError::Conflict(c)) => {
                *guard_ms += self.now() - t;
                return Ok(Choice::Conflict(c));
            }
            Err(e) => return Err(SamplerError::guard("mask", &e)),
        };
        self.record_blocked(pos, &row, &d0, |t| mask.contains(t), blocked);
        let keep_eos = self
            .special
            .eos
            .filter(|_| self.eos_is_samplers(pos))
            .map(|e| (e, row[e as usize]));
        mask.apply_to(&mut row);
        if let Some((e, val)) = keep_eos {
            row[e as usize] = val;
        }
        *guard_ms += self.now() - t;
        let d = RowDist::of(&row, temp);
        let Some(x) = pick(&row, &d, &self.req, &mut self.rng) else {
            // Allowed tokens exist (the mask is not empty) but all are excluded statically
            // or banned here: a conflict to remask.
            self.banned.remove(&pos);
            let constraining = self
                .guard
                .as_ref()
                .map(|g| g.constraining_commits(pos))
                .unwrap_or_default();
            return Ok(Choice::Conflict(Conflict {
                position: pos,
                modules: Vec::new(),
                rule_ids: Vec::new(),
                constraining,
            }));
        };
        let conf = confidence(self.req.strategy, &row, &d, x, &mut self.rng);
        Ok(Choice::Cand(Cand {
            pos,
            token: x,
            prob: d.prob(row[x as usize]),
            conf,
            masked: true,
            checked: true,
            row: row_idx,
            d0,
        }))
    }

    /// Reports the candidates at `pos` at least `blocked_floor` likely (in `d`, before
    /// masking) that `allowed` rejects, with the rules that forbid them.
    pub(super) fn record_blocked(
        &mut self,
        pos: usize,
        row: &[f32],
        d: &RowDist,
        allowed: impl Fn(u32) -> bool,
        out: &mut Vec<Blocked>,
    ) {
        let Some(g) = &self.guard else { return };
        let floor = self.req.blocked_floor;
        let mut found: Vec<(u32, f32)> = Vec::new();
        for (t, &x) in row.iter().enumerate() {
            if x.is_finite() {
                let p = d.prob(x);
                if p >= floor && p > 0.0 && !allowed(t as u32) && self.guard_judges(pos, t as u32) {
                    found.push((t as u32, p));
                }
            }
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (t, p) in found {
            let mut rule_ids: Vec<String> = g
                .why_forbidden(pos, t)
                .into_iter()
                .map(|b| b.rule_id)
                .collect();
            rule_ids.sort();
            rule_ids.dedup();
            for r in &rule_ids {
                let e = self.tally.entry(r.clone()).or_default();
                e.count += 1;
                e.mass += p as f64 / rule_ids.len() as f64;
            }
            self.blocked_total += 1;
            self.blocked_mass += p as f64;
            out.push(Blocked {
                position: pos,
                token: t,
                text: String::from_utf8_lossy(self.vocab.bytes(t)).into_owned(),
                probability: p,
                rule_ids,
            });
        }
    }

    pub(super) fn commit_cand(
        &mut self,
        cand: Cand,
        raw: &[f32],
        committed: &mut Vec<Committed>,
        blocked: &mut Vec<Blocked>,
        remasks: &mut Vec<Remask>,
        guard_ms: &mut f64,
    ) -> Result<()> {
        let pos = cand.pos;
        if self.slots[pos] != Pos::Hole {
            return Ok(()); // ended by an earlier commit of this step
        }
        let logprob = raw[cand.token as usize] - logsumexp(raw);
        if Some(cand.token) == self.special.eos {
            let t = self.now();
            let ok = self.try_end(pos, committed)?;
            *guard_ms += self.now() - t;
            if !ok {
                self.banned.entry(pos).or_default().push(cand.token);
            }
            return Ok(());
        }
        if self.guard.is_some() {
            let t = self.now();
            if !cand.masked {
                // Report what the policy blocked among the likely candidates here: the
                // tokens at least `blocked_floor` likely under the static exclusions (a
                // logit threshold, no second softmax).
                let row = self.base_row(pos, raw);
                let d = cand.d0;
                let floor = self.req.blocked_floor.max(f32::MIN_POSITIVE);
                let zmin = d.m as f64 + (floor as f64 * d.s).ln();
                let g = self.guard.as_ref().expect("checked");
                let forbidden: Vec<u32> = row
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| (**x * d.inv_t) as f64 >= zmin)
                    .map(|(t, _)| t as u32)
                    .filter(|&t| t != cand.token && self.guard_judges(pos, t) && !g.allows(pos, t))
                    .collect();
                if !forbidden.is_empty() {
                    self.record_blocked(pos, &row, &d, |t| !forbidden.contains(&t), blocked);
                }
            }
            let g = self.guard.as_mut().expect("checked");
            match g.commit(pos, cand.token) {
                Ok(()) => {}
                Err(GuardError::Forbidden { .. }) => {
                    // An earlier commit of this step changed what is allowed here: choose
                    // again with the exact mask.
                    *guard_ms += self.now() - t;
                    let mut tmp_guard_ms = 0.0;
                    match self.choose_masked(pos, cand.row, raw, blocked, &mut tmp_guard_ms)? {
                        Choice::Cand(c) => {
                            *guard_ms += tmp_guard_ms;
                            // The new choice was checked against the current sets (fast
                            // path or exact mask), so this commit cannot be refused again;
                            // if it were, that is a guard bug, reported as such.
                            let retry = self.guard.as_ref().is_some_and(|g| g.allows(pos, c.token))
                                || Some(c.token) == self.special.eos;
                            if !retry {
                                return Err(SamplerError::Guard(format!(
                                    "position {pos}: token {} was chosen under the exact mask but is not allowed",
                                    c.token
                                )));
                            }
                            return self.commit_cand(
                                Cand { masked: true, ..c },
                                raw,
                                committed,
                                blocked,
                                remasks,
                                guard_ms,
                            );
                        }
                        Choice::Conflict(c) => {
                            *guard_ms += tmp_guard_ms;
                            return self.remask(c, remasks);
                        }
                    }
                }
                Err(e) => return Err(SamplerError::guard("commit", &e)),
            }
            *guard_ms += self.now() - t;
        }
        self.slots[pos] = Pos::Token(cand.token);
        self.ids[pos] = cand.token;
        self.logprobs.insert(pos, logprob);
        committed.push(Committed {
            position: pos,
            token: cand.token,
            text: String::from_utf8_lossy(self.vocab.bytes(cand.token)).into_owned(),
            probability: cand.prob,
            end: false,
        });
        Ok(())
    }

    /// Resolves a conflict: reopens the most recent commit that constrains the hole (the
    /// second time at the same hole, every constraining commit), and forbids the reopened
    /// tokens at their positions.
    pub(super) fn remask(&mut self, c: Conflict, out: &mut Vec<Remask>) -> Result<()> {
        self.remasks += 1;
        let stuck = |s: &Session, c: &Conflict| SamplerError::Stuck {
            position: c.position,
            rule_ids: if c.rule_ids.is_empty() {
                Vec::new()
            } else {
                c.rule_ids.clone()
            },
            remasks: s.remasks,
        };
        if self.remasks > self.req.max_remasks {
            return Err(stuck(self, &c));
        }
        let att = self.attempts.entry(c.position).or_insert(0);
        *att += 1;
        let reopen: Vec<usize> = if *att == 1 {
            c.constraining.iter().take(1).copied().collect()
        } else {
            c.constraining.clone()
        };
        if reopen.is_empty() {
            return Err(stuck(self, &c));
        }
        let g = self.guard.as_mut().expect("conflicts come from the guard");
        for &p in &reopen {
            let prev = self.slots[p];
            g.uncommit(p)
                .map_err(|e| SamplerError::guard("remask", &e))?;
            let banned_tok = match prev {
                Pos::Token(t) => Some(t),
                Pos::Ended | Pos::Pad => self.special.eos,
                _ => None,
            };
            if let Some(t) = banned_tok {
                self.banned.entry(p).or_default().push(t);
            }
            self.slots[p] = Pos::Hole;
            self.ids[p] = self.special.mask;
            self.logprobs.remove(&p);
        }
        out.push(Remask {
            position: c.position,
            reopened: reopen,
            rule_ids: c.rule_ids,
        });
        Ok(())
    }
}
