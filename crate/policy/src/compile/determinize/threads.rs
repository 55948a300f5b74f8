//! The thread machinery of [`Builder`]: interned threads and sets, memoised thread steps
//! (the slow step with its context-free closures), doomed threads, dominance pruning.

use super::*;

impl<'a> Builder<'a> {
    /// The byte classes and context values of alternative `a` (computed on first use, so a
    /// builder that serves one rule costs nothing for the others).
    pub(in crate::compile) fn ensure_alt(&mut self, a: usize) {
        if self.alt_nc[a] != 0 {
            return;
        }
        let alt = &self.alts[a];
        let mut split = [false; 256];
        split[255] = true;
        for r in &alt.ranges {
            nfa::mark_boundaries(self.arena, r.clone(), &mut split);
        }
        mark_look_boundaries(alt.needs, &mut split);
        let mut classes = [0u8; 256];
        let mut c = 0u32;
        for (byte, class) in classes.iter_mut().enumerate() {
            *class = c as u8;
            if split[byte] && byte < 255 {
                c += 1;
            }
        }
        let mask = (if alt.needs.word { CTX_WORD } else { 0 })
            | (if alt.needs.line { CTX_LF } else { 0 })
            | (if alt.needs.text { CTX_START } else { 0 });
        let mut cidx = [0u8; 8];
        let mut vals: Vec<u8> = Vec::new();
        for (v, slot) in cidx.iter_mut().enumerate() {
            let m = v as u8 & mask;
            *slot = match vals.iter().position(|&x| x == m) {
                Some(k) => k as u8,
                None => {
                    vals.push(m);
                    (vals.len() - 1) as u8
                }
            };
        }
        let mut reps = vec![0u8];
        for byte in 1..256usize {
            if classes[byte] != classes[byte - 1] {
                reps.push(byte as u8);
            }
        }
        self.alt_reps[a] = reps;
        self.alt_work[a] = alt.ranges.iter().map(|r| r.len()).sum::<usize>() + 1;
        self.alt_class[a] = classes;
        self.alt_nc[a] = c + 1;
        self.alt_ctx[a] = cidx;
        self.alt_nctx[a] = vals.len() as u32;
    }

    /// The id of thread `t`.
    pub(in crate::compile) fn thread_id(&mut self, t: Thread) -> Result<u32, CompileError> {
        if let Some(&id) = self.thread_ids.get(&t) {
            return Ok(id);
        }
        let a = t.alt as usize;
        self.ensure_alt(a);
        let size = (self.alt_nctx[a] * (self.alt_nc[a] + 1)) as usize;
        self.check_bytes(size * 4)?;
        let id = self.threads.len() as u32;
        self.threads.push(t);
        self.thread_ids.insert(t, id);
        self.memo_off.push(self.memo.len() as u32);
        self.memo.resize(self.memo.len() + size, u32::MAX);
        Ok(id)
    }

    /// The id of exclusion-state set `set`.
    pub(in crate::compile) fn intern(&mut self, set: &[NfaId]) -> Result<u32, CompileError> {
        if let Some(&id) = self.bset_ids.get(set) {
            return Ok(id);
        }
        self.check_bytes(set.len() * 8)?;
        let id = self.bsets.len() as u32;
        self.bset_items += set.len();
        self.bsets.push(set.to_vec());
        self.bset_ids.insert(set.to_vec(), id);
        Ok(id)
    }

    /// Whether thread `tid`'s next step may depend on the look-behind context: some
    /// assertion is reachable by epsilon moves from its positive or exclusion states.
    pub(in crate::compile) fn thread_needs_ctx(&mut self, tid: u32) -> bool {
        if let Some(&v) = self.thread_ctx.get(tid as usize) {
            if v != 0 {
                return v == 2;
            }
        }
        let t = self.threads[tid as usize];
        let alt = &self.alts[t.alt as usize];
        let reach = &self.arena.look_reach;
        let needs = reach[t.a as usize]
            || (!alt.not_starts.is_empty()
                && (self.bsets[t.b as usize]
                    .iter()
                    .chain(&alt.not_starts)
                    .any(|&q| reach[q as usize])));
        if self.thread_ctx.len() <= tid as usize {
            self.thread_ctx.resize(tid as usize + 1, 0);
        }
        self.thread_ctx[tid as usize] = if needs { 2 } else { 1 };
        needs
    }

    /// Whether thread `tid` in context `ctx` completes a match whatever comes next (every
    /// byte and the end of text): a state holding it is dead.
    pub(in crate::compile) fn is_doomed(
        &mut self,
        tid: u32,
        ctx: u8,
    ) -> Result<bool, CompileError> {
        let t = self.threads[tid as usize];
        let a = t.alt as usize;
        let slot = tid as usize * 8 + ctx as usize;
        if self.doomed.len() <= slot {
            self.doomed.resize((tid as usize + 1) * 8, 0);
        }
        if self.doomed[slot] != 0 {
            return Ok(self.doomed[slot] == 2);
        }
        let si = self.step_thread(tid, ctx, EOI)?;
        let mut doomed = self.step_matched(si);
        if doomed {
            for k in 0..self.alt_reps[a].len() {
                let rep = self.alt_reps[a][k];
                let si = self.step_thread(tid, ctx, rep as u16)?;
                if !self.step_matched(si) {
                    doomed = false;
                    break;
                }
            }
        }
        self.doomed[slot] = if doomed { 2 } else { 1 };
        Ok(doomed)
    }

    /// One thread's step in context `ctx` before byte `next` (or the end of text).
    #[inline]
    pub(in crate::compile) fn step_thread(
        &mut self,
        tid: u32,
        ctx: u8,
        next: u16,
    ) -> Result<usize, CompileError> {
        let t = self.threads[tid as usize];
        let a = t.alt as usize;
        let class = if next == EOI {
            self.alt_nc[a]
        } else {
            self.alt_class[a][next as usize] as u32
        };
        let slot = self.memo_off[tid as usize] as usize
            + self.alt_ctx[a][ctx as usize] as usize * (self.alt_nc[a] as usize + 1)
            + class as usize;
        let m = self.memo[slot];
        if m != u32::MAX {
            return Ok(m as usize);
        }
        let idx = self.step_thread_slow(t, ctx, next)?;
        self.memo[slot] = idx as u32;
        Ok(idx)
    }

    /// Read the clock once the slow steps have visited about 64 Ki NFA states since the
    /// last time.
    pub(in crate::compile) fn tick(&mut self, work: usize) -> Result<(), CompileError> {
        self.deadline.tick(&mut self.work, work)
    }

    pub(in crate::compile) fn step_thread_slow(
        &mut self,
        t: Thread,
        ctx: u8,
        next: u16,
    ) -> Result<usize, CompileError> {
        // Each closure visits at most the alternative's NFA states.
        self.tick(self.alt_work[t.alt as usize])?;
        let mut bufs = std::mem::take(&mut self.step_bufs);
        let result = self.step_into(t, ctx, next, &mut bufs);
        let idx = self.steps.len();
        match result {
            Ok(Step::Match) => self.steps.push((0, STEP_MATCH)),
            Ok(Step::Next) => {
                let ids = &bufs[4];
                self.steps
                    .push((self.step_next.len() as u32, ids.len() as u32));
                self.step_next.extend_from_slice(ids);
            }
            Err(e) => {
                self.step_bufs = bufs;
                return Err(e);
            }
        }
        self.step_bufs = bufs;
        Ok(idx)
    }

    /// The closure of `seeds` in context `c` into `out`, and whether it matched; from
    /// [`Builder::closures`] under `key` when no assertion is reachable from the seeds.
    fn closure_of(
        &mut self,
        key: (u32, u32),
        seeds: &[NfaId],
        c: &nfa::Ctx,
        out: &mut Vec<NfaId>,
    ) -> bool {
        if let Some((matched, closed)) = self.closures.get(&key) {
            out.clear();
            out.extend_from_slice(closed);
            return *matched;
        }
        let matched = nfa::closure(self.arena, seeds, c, out, &mut self.seen);
        if self.closure_items + out.len() <= MAX_CACHED_CLOSURE_STATES
            && !seeds.iter().any(|&q| self.arena.look_reach[q as usize])
        {
            self.closure_items += out.len();
            self.closures.insert(key, (matched, out.clone()));
        }
        matched
    }

    /// [`Builder::step_thread_slow`] with its buffers: exclusion seeds and closure,
    /// positive closure, next states.
    fn step_into(
        &mut self,
        t: Thread,
        ctx: u8,
        next: u16,
        [seeds, bclosed, aclosed, anext, ids]: &mut [Vec<NfaId>; 5],
    ) -> Result<Step, CompileError> {
        ids.clear();
        let alt = &self.alts[t.alt as usize];
        let c = ctx_of(ctx, next);
        let has_not = !alt.not_starts.is_empty();
        if has_not {
            seeds.clear();
            seeds.extend_from_slice(&self.bsets[t.b as usize]);
            seeds.extend(alt.not_starts.iter().copied());
            if self.closure_of((t.alt, t.b), seeds, &c, bclosed) {
                return Ok(Step::Next); // an exclusion matched inside: the thread dies
            }
        }
        if self.closure_of((u32::MAX, t.a), &[t.a], &c, aclosed) {
            return Ok(Step::Match);
        }
        let Some(byte) = c.next else {
            return Ok(Step::Next);
        };
        nfa::step(self.arena, aclosed, byte, anext);
        if anext.is_empty() {
            return Ok(Step::Next);
        }
        let bid = if has_not {
            // (`seeds` is free again: the exclusion states after the byte.)
            nfa::step(self.arena, bclosed, byte, seeds);
            self.intern(seeds)?
        } else {
            0
        };
        // Equivalent thread states become one (smaller DFAs, same behaviour).
        if let Some(d) = self.dominance(t.alt)? {
            for a in anext.iter_mut() {
                *a = d.canon(*a);
            }
        }
        for &a in anext.iter() {
            ids.push(self.thread_id(Thread {
                alt: t.alt,
                a,
                b: bid,
            })?);
        }
        ids.sort_unstable();
        ids.dedup();
        self.check_bytes(ids.len() * 4)?;
        Ok(Step::Next)
    }

    /// The dominance relation of alternative `alt` (computed on first use; `None` when
    /// its NFA is too large for one).
    pub(in crate::compile) fn dominance(
        &mut self,
        alt: u32,
    ) -> Result<Option<&Dominance>, CompileError> {
        if self.dom[alt as usize].is_none() {
            let d = Dominance::compute(
                self.arena,
                &self.alts[alt as usize],
                &mut self.seen,
                &self.deadline,
                &mut self.work,
            )?;
            self.dom[alt as usize] = Some(d);
        }
        Ok(self.dom[alt as usize].as_ref().and_then(|d| d.as_ref()))
    }

    /// Drop threads dominated by another thread of the same alternative: `t2` is dominated
    /// by `t1` when `t2.a ≼ t1.a` and `t1`'s exclusion set is a subset of `t2`'s (so `t1`
    /// matches no later than `t2` and is killed only when `t2` is too).
    pub(in crate::compile) fn prune(&mut self, tids: &mut Vec<u32>) -> Result<(), CompileError> {
        if tids.len() < 2 {
            return Ok(());
        }
        // Only threads of the same alternative can dominate each other.
        let shared = tids.iter().enumerate().any(|(i, &x)| {
            let a = self.threads[x as usize].alt;
            tids[i + 1..]
                .iter()
                .any(|&y| self.threads[y as usize].alt == a)
        });
        if !shared {
            return Ok(());
        }
        let mut keep = vec![true; tids.len()];
        let mut any = false;
        for i in 0..tids.len() {
            self.tick(tids.len())?;
            let t2 = self.threads[tids[i] as usize];
            for j in 0..tids.len() {
                if i == j || !keep[j] {
                    continue;
                }
                let t1 = self.threads[tids[j] as usize];
                if t1.alt != t2.alt {
                    continue;
                }
                if self.dominance(t2.alt)?.is_none() {
                    break;
                }
                if self.dominates(t1, t2)
                    && (!self.dominates(t2, t1) || (t1.a, t1.b) < (t2.a, t2.b))
                {
                    keep[i] = false;
                    any = true;
                    break;
                }
            }
        }
        if any {
            let mut k = keep.iter();
            tids.retain(|_| *k.next().unwrap());
        }
        Ok(())
    }

    /// `t1` dominates `t2` (same alternative).
    pub(in crate::compile) fn dominates(&self, t1: Thread, t2: Thread) -> bool {
        let Some(Some(d)) = &self.dom[t2.alt as usize] else {
            return false;
        };
        if !d.dominated(t2.a, t1.a) {
            return false;
        }
        if t1.b == t2.b || t1.b == 0 {
            return true;
        }
        let (b1, b2) = (&self.bsets[t1.b as usize], &self.bsets[t2.b as usize]);
        b1.iter().all(|x| b2.binary_search(x).is_ok())
    }
}
