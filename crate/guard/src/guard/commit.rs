//! The commit protocol: `commit` (re-checked, refused with blame when forbidden),
//! `uncommit`, `snapshot` / `restore`, block-wise `retire_prefix`, and the rebuild of the
//! set tables when they grow too large (after which snapshots are restored by recomputing).

use super::propagate::ensure_f;
use super::{Guard, ModIds, Slot};
use crate::error::GuardError;
use crate::sets::{Ctx, FxMap};

/// One successful commit, in the guard's log (most recent last).
#[derive(Clone, Debug)]
pub(super) struct CommitRecord {
    /// The committed position.
    pub(super) position: usize,
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

/// Most interned sets per module before the tables are rebuilt from the sets in use.
pub(super) const SET_LIMIT: usize = 1 << 16;

impl Guard {
    /// Rebuilds the set tables from the sets in use when they have grown too large.
    fn maybe_compact(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if inner.tables.iter().all(|t| t.len() <= self.set_limit) {
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{Canvas, Guard, GuardConfig, Slot, Snapshot, TokenKind, TokenPolicy, Vocab};

    /// Small deterministic RNG (xorshift64).
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn token_policy() -> Arc<TokenPolicy> {
        let yaml = r#"pack: rebuild-test
rules:
  - id: t.eval
    message: eval
    severity: ERROR
    languages: [python]
    pattern-regex: 'eval\s*\('
  - id: t.system
    message: system
    severity: ERROR
    languages: [python]
    pattern-regex: 'os\.system\b'
  - id: t.secret
    message: secret
    severity: ERROR
    languages: [python]
    pattern-regex: 'secret = "[a-z]{3}'
"#;
        let policy = ward_policy::PolicyBuilder::new()
            .compile_str(yaml, "rebuild-test.yaml")
            .expect("test pack compiles");
        let toks: Vec<&[u8]> = vec![
            b"eval", b"(", b")", b"x", b" ", b"os", b".", b"system", b"secret", b" = ", b"\"",
            b"ab", b"a", b"\n", b"#", b"", b"",
        ];
        let mut kinds = vec![TokenKind::Text; toks.len()];
        kinds[15] = TokenKind::End;
        kinds[16] = TokenKind::Empty;
        let vocab = Vocab::from_parts(&toks, kinds).expect("vocab");
        Arc::new(TokenPolicy::new(Arc::new(policy), Arc::new(vocab)))
    }

    /// Commits a random token of the mask at hole `h`; the mask's error (a conflict) as is.
    fn commit_random_allowed(
        g: &mut Guard,
        rng: &mut Rng,
        h: usize,
        ctx: &str,
    ) -> Result<(), crate::GuardError> {
        let allowed: Vec<u32> = g.mask(h)?.iter_allowed().collect();
        let t = allowed[rng.below(allowed.len())];
        g.commit(h, t).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        Ok(())
    }

    /// Every mask (and `allows` for every token) of `g` equals that of a guard built from
    /// scratch on the same slots.
    fn assert_same_as_fresh(g: &Guard, cfg: &GuardConfig, ctx: &str) {
        let canvas = Canvas::from_slots(g.slots.iter().copied());
        // Really from scratch: not with the tables an earlier guard left behind.
        *g.token_policy().table_pool.lock().unwrap() = None;
        let fresh = Guard::with_config(g.token_policy().clone(), &canvas, cfg)
            .unwrap_or_else(|e| panic!("{ctx}: a reachable state is refused from scratch: {e}"));
        let v = g.token_policy().vocab().len() as u32;
        for h in g.holes() {
            let (a, b) = (
                g.mask_unchecked(h).unwrap(),
                fresh.mask_unchecked(h).unwrap(),
            );
            assert_eq!(a, b, "{ctx}: mask at hole {h}");
            for t in 0..v {
                assert_eq!(g.allows(h, t), b.contains(t), "{ctx}: allows({h}, {t})");
            }
        }
        assert_eq!(g.text(), fresh.text(), "{ctx}");
    }

    #[test]
    fn snapshots_survive_table_rebuilds() {
        let tp = token_policy();
        let prefix = tp.vocab().tokenize_greedy(b"x = ").unwrap();
        let mut crossed = 0;
        for seed in 0..24u64 {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (seed + 1).wrapping_mul(0x2545_F491));
            let suffix: &[u32] = if seed % 3 == 0 { &[2, 13] } else { &[] };
            let canvas = Canvas::infill(&prefix, 6 + rng.below(8), suffix);
            let cfg = GuardConfig {
                end_in_holes: seed % 2 == 0,
                ..GuardConfig::default()
            };
            let Ok(mut g) = Guard::with_config(tp.clone(), &canvas, &cfg) else {
                continue;
            };
            // Rebuild the set tables at (nearly) every commit and uncommit.
            g.set_limit = 4;
            let mut snaps: Vec<(Snapshot, Vec<Slot>)> = vec![(g.snapshot(), g.slots.clone())];
            for step in 0..40 {
                let ctx = format!("seed {seed} step {step}");
                match rng.below(6) {
                    0..=2 => {
                        let holes = g.holes();
                        if holes.is_empty() {
                            continue;
                        }
                        let h = holes[rng.below(holes.len())];
                        match commit_random_allowed(&mut g, &mut rng, h, &ctx) {
                            Ok(()) => {}
                            Err(crate::GuardError::Conflict(c)) => {
                                if let Some(&p) = c.constraining.first() {
                                    g.uncommit(p).unwrap();
                                }
                            }
                            Err(e) => panic!("{ctx}: {e}"),
                        }
                    }
                    3 => {
                        let committed: Vec<usize> = (0..g.len())
                            .filter(|&p| matches!(g.slot(p), Some(Slot::Committed(_))))
                            .collect();
                        if !committed.is_empty() {
                            g.uncommit(committed[rng.below(committed.len())]).unwrap();
                        }
                    }
                    4 => snaps.push((g.snapshot(), g.slots.clone())),
                    _ => {
                        let (s, slots) = &snaps[rng.below(snaps.len())];
                        if s.epoch != g.epoch {
                            crossed += 1;
                        }
                        g.restore(s).unwrap();
                        assert_eq!(&g.slots, slots, "{ctx}: restored slots");
                        assert_same_as_fresh(&g, &cfg, &ctx);
                    }
                }
                assert_same_as_fresh(&g, &cfg, &ctx);
            }
            assert!(g.epoch > 0, "seed {seed}: the tables were never rebuilt");
        }
        assert!(
            crossed >= 20,
            "only {crossed} restores of a snapshot taken before a table rebuild"
        );
    }

    #[test]
    fn a_guard_on_tables_left_by_earlier_guards_equals_one_from_scratch() {
        let tp = token_policy();
        let prefix = tp.vocab().tokenize_greedy(b"x = ").unwrap();
        let mut reused = 0;
        for seed in 0..16u64 {
            let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (seed + 1).wrapping_mul(0x9E37_79B9));
            let cfg = GuardConfig {
                end_in_holes: seed % 4 < 2,
                ..GuardConfig::default()
            };
            let canvas = Canvas::infill(&prefix, 4 + rng.below(10), &[]);
            let pooled = tp
                .table_pool
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|p| p.end_in_holes == cfg.end_in_holes);
            let Ok(mut g) = Guard::with_config(tp.clone(), &canvas, &cfg) else {
                continue;
            };
            reused += pooled as usize;
            for step in 0..12 {
                let ctx = format!("seed {seed} step {step} (pooled tables: {pooled})");
                assert_same_as_fresh(&g, &cfg, &ctx);
                let holes = g.holes();
                if holes.is_empty() {
                    break;
                }
                let h = holes[rng.below(holes.len())];
                if commit_random_allowed(&mut g, &mut rng, h, &ctx).is_err() {
                    break;
                }
            }
            // Dropping `g` leaves its tables (grown by its commits) to the next guard.
            drop(g);
        }
        assert!(reused >= 6, "only {reused} guards started on pooled tables");
    }
}
