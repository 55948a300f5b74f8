//! Lifting a policy's byte automata to a token vocabulary.
//!
//! The text tokens are put in one byte trie shared by every module (per-module tries over
//! byte-class strings barely collapsed a real vocabulary: 500k–600k nodes each at 152k, against
//! about as many for the shared byte trie). Per automaton state, a row holds the set of live
//! states one token can reach (`ANY(q)`), the tokens that complete a violation from `q`, and
//! the rules they complete. All rows of a module are built at once, when a guard first needs
//! one, by the bulk lift over the trie minimized to a DAG (`TokenPolicy::bulk_rows`); they
//! equal, bit for bit, the rows the walk of the trie from each state alone builds
//! (`walk_row`, used for the start state's row of the level-1 mask and checked against in
//! the tests).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use ward_policy::{CompiledPolicy, Module, RuleIndex, StateId};

use crate::mask::{states, TokenMask};
use crate::sets::FxHasher;
use crate::vocab::{TokenKind, Vocab};

mod artefact;
mod rows;
mod trie;

pub use artefact::{LiftArtefactError, LIFT_FORMAT_VERSION};

use rows::{StateRow, SubWalk, SMALL_SUBTREE};
use trie::{TokenDag, TokenTrie};

/// One module lifted to the vocabulary.
#[derive(Debug)]
pub(crate) struct ModuleLift {
    /// Number of DFA states; the end-of-text pseudo-state has index `num_states`.
    pub(crate) num_states: usize,
    /// `u64` words per state set (`num_states + 1` bits).
    pub(crate) words: usize,
    /// Every state's row, filled at once by [`TokenPolicy::bulk_rows`] on first use.
    rows: OnceLock<Vec<StateRow>>,
    /// Tokens this module forbids from every live state (level-1 mask, as forbidden set).
    pub(crate) forbidden_everywhere: Vec<u32>,
    /// Bytes to the nearest violation, per state (`u32::MAX`: none reachable).
    pub(crate) danger: OnceLock<Vec<u32>>,
    /// Memoized subtree walks, by (root child, state after its byte): only for full masks
    /// whose states are not saturated (`text_forbidden_from`) and the reference rows of the
    /// tests; the rows themselves come from the bulk lift.
    memo: Mutex<HashMap<(u32, u32), Arc<SubWalk>>>,
    /// States whose row has a live successor / has none (every row once filled).
    pub(crate) any_nonempty: Vec<AtomicU64>,
    pub(crate) any_empty: Vec<AtomicU64>,
    /// States whose only one-token successor is the end pseudo-state.
    pub(crate) any_only_end: Vec<AtomicU64>,
    /// Inverse of `ANY` over filled rows: for each state (and the end pseudo-state), the
    /// filled states that reach it by one token.
    pub(crate) inv: RwLock<Vec<Vec<u32>>>,
    /// The transition table by columns, `cols[c * num_states + s] = next(s, c)`, built on
    /// first use; `None` when a state id does not fit in `u16`.
    cols: OnceLock<Option<Vec<u16>>>,
    /// Per state, the first live successor of its row other than the end pseudo-state
    /// (`u32::MAX`: none), in one array so that a scan of a set's rows reads it in order.
    reps: OnceLock<Vec<u32>>,
}

/// Statistics of a [`TokenPolicy`]: sizes and memory of the lifted tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiftStats {
    /// Per module: number of DFA states.
    pub states: Vec<usize>,
    /// Per module: number of byte classes.
    pub classes: Vec<usize>,
    /// Per module: number of nodes of the token trie it walks (one byte trie shared by all
    /// modules, so the same number for each).
    pub trie_nodes: Vec<usize>,
    /// Per module: states whose token row has been filled so far.
    pub lifted_states: Vec<usize>,
    /// Heap bytes of everything the token policy holds (the token trie, filled rows,
    /// memoized subtree walks and indexes, the level-1 mask and the vocabulary); the compiled
    /// policy itself is not counted.
    pub memory_bytes: usize,
    /// Of which: the token trie.
    pub trie_bytes: usize,
    /// Of which: the filled state rows.
    pub row_bytes: usize,
    /// Of which: the memoized subtree walks.
    pub memo_bytes: usize,
    /// Of which: per-state indexes (row slots, inverse `ANY` index, state bitsets, the
    /// transition table by columns and first successors the set steps read, the level-1
    /// mask and forbidden lists).
    pub index_bytes: usize,
    /// Of which: the vocabulary (token bytes, first-token forms, kinds, names).
    pub vocab_bytes: usize,
    /// Tokens forbidden from every live state by some module (level-1 mask).
    pub vocab_forbidden: usize,
}

/// A compiled policy lifted to a vocabulary: computed once per (policy, vocabulary) and
/// shared (through `Arc`) by every [`crate::Guard`] that uses them.
///
/// The token rows of every automaton state of a module are built at once (one bulk pass)
/// the first time a guard needs one of them, usually in the first `Guard::new`.
pub struct TokenPolicy {
    pub(crate) policy: Arc<CompiledPolicy>,
    pub(crate) vocab: Arc<Vocab>,
    /// The text tokens' byte trie, walked by every module.
    pub(crate) trie: TokenTrie,
    /// The trie minimized to a DAG, for the bulk lift.
    dag: TokenDag,
    pub(crate) lifts: Vec<ModuleLift>,
    pub(crate) empty_tokens: Vec<u32>,
    pub(crate) end_tokens: Vec<u32>,
    vocab_mask: TokenMask,
    /// The set tables of the last guard dropped (per module, with the `small_set` and
    /// `end_in_holes` they were built for), handed to the next guard with the same settings:
    /// a table only memoises pure functions of interned sets (images, preimages,
    /// intersections) under this token policy, so a later guard starts with the work of the
    /// earlier ones instead of from nothing (the next request in a session, a remask retry).
    pub(crate) table_pool: Mutex<Option<PooledTables>>,
}

/// Set tables kept between guards (see `TokenPolicy::table_pool`).
#[derive(Debug)]
pub(crate) struct PooledTables {
    pub(crate) small_set: usize,
    pub(crate) end_in_holes: bool,
    pub(crate) tables: Vec<crate::sets::SetTable>,
}

impl TokenPolicy {
    /// Lifts every module of `policy` (its enforced rules) to `vocab`, and computes the
    /// vocabulary mask (level 1).
    pub fn new(policy: Arc<CompiledPolicy>, vocab: Arc<Vocab>) -> TokenPolicy {
        let empty_tokens = vocab.tokens_of_kind(TokenKind::Empty);
        let end_tokens = vocab.tokens_of_kind(TokenKind::End);
        let trie = TokenTrie::build(&vocab);
        let dag = TokenDag::build(&trie);
        let mut lifts = Vec::new();
        for m in policy.modules() {
            let num_states = m.num_states();
            let lift = ModuleLift {
                num_states,
                words: (num_states + 1).div_ceil(64),
                rows: OnceLock::new(),
                forbidden_everywhere: Vec::new(),
                danger: OnceLock::new(),
                memo: Mutex::new(HashMap::new()),
                any_nonempty: (0..(num_states + 1).div_ceil(64))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                any_empty: (0..(num_states + 1).div_ceil(64))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                any_only_end: (0..(num_states + 1).div_ceil(64))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                inv: RwLock::new(vec![Vec::new(); num_states + 1]),
                cols: OnceLock::new(),
                reps: OnceLock::new(),
            };
            lifts.push(lift);
        }
        let vocab_mask = TokenMask::new_full(vocab.len());
        let mut tp = TokenPolicy {
            policy,
            vocab,
            trie,
            dag,
            lifts,
            empty_tokens,
            end_tokens,
            vocab_mask,
            table_pool: Mutex::new(None),
        };
        for mi in 0..tp.lifts.len() {
            let f = tp.compute_forbidden_everywhere(mi);
            for &t in &f {
                tp.vocab_mask.clear(t);
            }
            tp.lifts[mi].forbidden_everywhere = f;
        }
        tp
    }

    /// Tokens that enter the violated state from every live state of module `mi`: among the
    /// tokens that violate from the start state (its row, which every guard needs anyway),
    /// those that violate from every other live state too (usually none: the candidates are
    /// few, and most are cleared by the first state that reads them inside a string).
    fn compute_forbidden_everywhere(&self, mi: usize) -> Vec<u32> {
        let m = self.module(mi);
        let ns = m.num_states();
        let live: Vec<StateId> = (0..ns as u32)
            .map(StateId)
            .filter(|&s| s != StateId::VIOLATED)
            .collect();
        if live.is_empty() {
            return Vec::new();
        }
        let start = m.start();
        let mut out: Vec<u32> = if start == StateId::VIOLATED {
            Vec::new()
        } else {
            self.walk_row(mi, start.as_usize())
                .violating(&self.trie.order, &self.end_tokens)
                .into_iter()
                .filter(|&t| self.vocab.kind(t) == TokenKind::Text)
                .filter(|&t| {
                    let bytes = self.vocab.bytes(t);
                    live.iter().all(|&q| m.is_violated(m.run(q, bytes)))
                })
                .collect()
        };
        // End tokens are forbidden everywhere only if no live state is a clean end.
        if live.iter().all(|&s| !m.is_clean_end(s)) {
            out.extend_from_slice(&self.end_tokens);
        }
        out.sort_unstable();
        out
    }

    /// The compiled policy.
    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The compiled policy, shared.
    pub fn policy_arc(&self) -> Arc<CompiledPolicy> {
        self.policy.clone()
    }

    /// The vocabulary, shared.
    pub fn vocab_arc(&self) -> Arc<Vocab> {
        self.vocab.clone()
    }

    /// The vocabulary mask (level 1): tokens that no module forbids from every live state.
    /// A token outside it can only ever be placed after the end of the text.
    pub fn vocab_mask(&self) -> &TokenMask {
        &self.vocab_mask
    }

    /// Number of modules (enforced automata).
    pub fn num_modules(&self) -> usize {
        self.lifts.len()
    }

    /// Sizes and memory of the lifted tables so far.
    pub fn stats(&self) -> LiftStats {
        let mut s = LiftStats::default();
        for (l, m) in self.lifts.iter().zip(self.policy.modules()) {
            s.states.push(l.num_states);
            s.classes.push(m.num_classes());
            s.trie_nodes.push(self.trie.num_nodes());
            let mut lifted = 0;
            if let Some(rows) = l.rows.get() {
                lifted = rows.len();
                s.row_bytes += rows.capacity() * std::mem::size_of::<StateRow>()
                    + rows.iter().map(StateRow::memory_bytes).sum::<usize>();
            }
            if let Ok(memo) = l.memo.lock() {
                // Map slots (key, Arc, hash) plus the walks themselves.
                s.memo_bytes += memo.capacity() * 24;
                for w in memo.values() {
                    s.memo_bytes += 48 + (w.reached.len() + w.rules.len()) * 4 + w.viol.len() * 8;
                }
            }
            s.index_bytes += (l.any_nonempty.len() + l.any_empty.len() + l.any_only_end.len()) * 8
                + l.forbidden_everywhere.capacity() * 4
                + l.danger.get().map_or(0, |d| d.capacity() * 4)
                + l.cols
                    .get()
                    .and_then(Option::as_ref)
                    .map_or(0, |c| c.capacity() * 2)
                + l.reps.get().map_or(0, |r| r.capacity() * 4);
            if let Ok(inv) = l.inv.read() {
                s.index_bytes += inv.iter().map(|v| 24 + v.capacity() * 4).sum::<usize>();
            }
            s.lifted_states.push(lifted);
        }
        s.index_bytes += self.vocab_mask.words().len() * 4
            + (self.empty_tokens.capacity() + self.end_tokens.capacity()) * 4;
        s.trie_bytes = self.trie.memory_bytes() + self.dag.memory_bytes();
        s.vocab_bytes = self.vocab.memory_bytes();
        s.memory_bytes = s.trie_bytes + s.row_bytes + s.memo_bytes + s.index_bytes + s.vocab_bytes;
        s.vocab_forbidden = self.vocab_mask.len() - self.vocab_mask.count_allowed();
        s
    }

    /// Fills the token rows of every module ahead of time (e.g. to measure the full lift)
    /// and visits those of every state reachable from the start state by tokens. Returns
    /// the number of rows visited.
    pub fn lift_reachable(&self) -> usize {
        let mut n = 0;
        for (mi, l) in self.lifts.iter().enumerate() {
            let m = &self.policy.modules()[mi];
            let mut seen = vec![0u64; l.words];
            let mut stack = vec![m.start().as_usize()];
            states::insert(&mut seen, m.start().as_usize());
            while let Some(q) = stack.pop() {
                n += 1;
                for &r in &self.row(mi, q).any {
                    let r = r as usize;
                    if r < l.num_states && !states::contains(&seen, r) {
                        states::insert(&mut seen, r);
                        stack.push(r);
                    }
                }
            }
        }
        n
    }

    /// Fills every module's token rows now, with the indexes the set steps read (first
    /// successors, the transition table by columns), on up to `threads` threads (the
    /// modules shared out among them, largest first): the work the first [`crate::Guard`]
    /// would otherwise do one module after the other when it first reads them. Nothing
    /// changes but when the rows are built (they are the same rows). `threads` 0 means one
    /// per core (as `ward_policy::PolicyConfig::threads`); with one thread, or in wasm, it
    /// runs on this thread.
    pub fn prefill(&self, threads: usize) {
        let mut order: Vec<usize> = (0..self.lifts.len()).collect();
        order.sort_by_key(|&mi| std::cmp::Reverse(self.lifts[mi].num_states));
        let fill = |mi: usize| {
            self.rows(mi);
            self.any_reps(mi);
            self.col(mi, 0);
        };
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let threads = threads.clamp(1, order.len().max(1));
        if threads == 1 || cfg!(target_family = "wasm") {
            order.into_iter().for_each(fill);
            return;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..threads {
                sc.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    match order.get(k) {
                        Some(&mi) => fill(mi),
                        None => break,
                    }
                });
            }
        });
    }

    #[inline]
    pub(crate) fn module(&self, mi: usize) -> &Module {
        &self.policy.modules()[mi]
    }

    /// Per state of module `mi`: the smallest state its row reaches by one token, other than
    /// the end pseudo-state (`u32::MAX` when there is none).
    #[inline]
    pub(crate) fn any_reps(&self, mi: usize) -> &[u32] {
        let l = &self.lifts[mi];
        l.reps.get_or_init(|| {
            self.rows(mi)
                .iter()
                .map(|row| match row.any.first() {
                    Some(&r) if r as usize != l.num_states => r,
                    _ => u32::MAX,
                })
                .collect()
        })
    }

    /// Column `c` of module `mi`'s transition table (`col[s]` is the state after a byte of
    /// class `c` in state `s`), so that a step of a whole state set reads contiguous memory;
    /// `None` for modules with more than `u16::MAX` states.
    #[inline]
    pub(crate) fn col(&self, mi: usize, c: u8) -> Option<&[u16]> {
        let l = &self.lifts[mi];
        let ns = l.num_states;
        l.cols
            .get_or_init(|| {
                let m = self.module(mi);
                if ns >= u16::MAX as usize {
                    return None;
                }
                let nc = m.num_classes();
                let mut cols = vec![0u16; nc * ns];
                for s in 0..ns {
                    for c in 0..nc {
                        cols[c * ns + s] = m.next_class(StateId(s as u32), c as u8).0 as u16;
                    }
                }
                Some(cols)
            })
            .as_ref()
            .map(|cols| &cols[c as usize * ns..][..ns])
    }

    /// The row of state `q` (< num_states) in module `mi` (the module's rows are all filled
    /// on first use).
    #[inline]
    pub(crate) fn row(&self, mi: usize, q: usize) -> &StateRow {
        &self.rows(mi)[q]
    }

    /// Every row of module `mi`, filled on first use by one bulk walk of the trie
    /// ([`TokenPolicy::bulk_rows`]), with the inverse index and the state bitsets.
    fn rows(&self, mi: usize) -> &[StateRow] {
        let l = &self.lifts[mi];
        l.rows.get_or_init(|| {
            let rows = self.bulk_rows(mi);
            Self::index_rows(l, &rows);
            rows
        })
    }

    /// Makes `rows` module `mi`'s rows unless they are filled already (then returns false
    /// and changes nothing). Like [`TokenPolicy::rows`], the rows and their indexes become
    /// visible to other threads at once.
    fn install_rows(&self, mi: usize, rows: Vec<StateRow>) -> bool {
        let l = &self.lifts[mi];
        let mut given = Some(rows);
        let mut used = false;
        l.rows.get_or_init(|| {
            used = true;
            let rows = given.take().expect("called once");
            Self::index_rows(l, &rows);
            rows
        });
        used
    }

    /// The inverse index and the state bitsets of a module's rows.
    fn index_rows(l: &ModuleLift, rows: &[StateRow]) {
        {
            if let Ok(mut inv) = l.inv.write() {
                for (q, row) in rows.iter().enumerate() {
                    for &r in &row.any {
                        if let Some(v) = inv.get_mut(r as usize) {
                            v.push(q as u32);
                        }
                    }
                }
            }
            for (q, row) in rows.iter().enumerate() {
                if row.any.len() == 1 && row.any[0] as usize == l.num_states {
                    l.any_only_end[q / 64].fetch_or(1 << (q % 64), Ordering::Release);
                }
                let bits = if row.any.is_empty() {
                    &l.any_empty
                } else {
                    &l.any_nonempty
                };
                bits[q / 64].fetch_or(1 << (q % 64), Ordering::Release);
            }
        }
    }

    /// The state after token `t` from state `q` (`num_states` is the end pseudo-state;
    /// returns `None` for a violation).
    #[inline]
    pub(crate) fn delta(&self, mi: usize, q: usize, t: u32) -> Option<usize> {
        let l = &self.lifts[mi];
        let end = l.num_states;
        if q == end {
            return Some(end);
        }
        let m = self.module(mi);
        match self.vocab.kind(t) {
            TokenKind::Empty => Some(q),
            TokenKind::End => m.is_clean_end(StateId(q as u32)).then_some(end),
            TokenKind::Text => {
                let s = m.run(StateId(q as u32), self.vocab.bytes(t));
                (!m.is_violated(s)).then_some(s.as_usize())
            }
        }
    }

    /// The text tokens that go from state `q` to a state outside `good` or violate
    /// (unsorted). Root subtrees whose reached states are all good contribute only their
    /// (memoized) violating ranges; the others are walked token by token.
    pub(crate) fn text_forbidden_from(&self, mi: usize, q: usize, good: &[u64]) -> Vec<u32> {
        let m = self.module(mi);
        let trie = &self.trie;
        let qs = StateId(q as u32);
        let mut out = Vec::new();
        let mut stack = vec![qs; trie.max_depth + 1];
        for &k1 in &trie.roots {
            let k1 = k1 as usize;
            let s1 = m.next(qs, trie.byte[k1]);
            if m.is_violated(s1) {
                out.extend_from_slice(trie.subtree_tokens(k1));
                continue;
            }
            if trie.skip[k1] as usize - k1 >= SMALL_SUBTREE {
                let sub = self.subtree(mi, k1, s1);
                if sub
                    .reached
                    .iter()
                    .all(|&r| states::contains(good, r as usize))
                {
                    for &(a, b) in &sub.viol {
                        out.extend_from_slice(&trie.order[a as usize..b as usize]);
                    }
                    continue;
                }
            }
            if !states::contains(good, s1.as_usize()) {
                out.extend_from_slice(trie.own_tokens(k1));
            }
            stack[1] = s1;
            let end = trie.skip[k1] as usize;
            let mut k = k1 + 1;
            while k < end {
                let d = trie.depth[k] as usize;
                let s = m.next(stack[d - 1], trie.byte[k]);
                if m.is_violated(s) {
                    out.extend_from_slice(trie.subtree_tokens(k));
                    k = trie.skip[k] as usize;
                    continue;
                }
                stack[d] = s;
                if !states::contains(good, s.as_usize()) {
                    out.extend_from_slice(trie.own_tokens(k));
                }
                k += 1;
            }
        }
        out
    }

    /// The tokens that complete a violation from state `q` (unsorted).
    pub(crate) fn violating_tokens(&self, mi: usize, q: usize) -> Vec<u32> {
        self.row(mi, q)
            .violating(&self.trie.order, &self.end_tokens)
    }

    /// Where a token from `q` first enters the violated state: the rules completed.
    pub(crate) fn violation_rules_of(&self, mi: usize, q: usize, t: u32) -> Vec<RuleIndex> {
        let l = &self.lifts[mi];
        if q >= l.num_states {
            return Vec::new();
        }
        let m = self.module(mi);
        let mut s = StateId(q as u32);
        match self.vocab.kind(t) {
            TokenKind::Empty => Vec::new(),
            TokenKind::End => m.end_violation_rules(s).to_vec(),
            TokenKind::Text => {
                for &b in self.vocab.bytes(t) {
                    let n = m.next(s, b);
                    if m.is_violated(n) {
                        return m.violation_rules(s, b).to_vec();
                    }
                    s = n;
                }
                Vec::new()
            }
        }
    }

    /// Bytes to the nearest violation from each state of module `mi` (for adversarial
    /// drivers and diagnostics).
    pub(crate) fn danger(&self, mi: usize) -> &[u32] {
        let l = &self.lifts[mi];
        l.danger.get_or_init(|| {
            let m = self.module(mi);
            let ns = l.num_states;
            let nc = m.num_classes();
            let mut rev: Vec<Vec<u32>> = vec![Vec::new(); ns];
            for s in 0..ns {
                for c in 0..nc {
                    let t = m.next_class(StateId(s as u32), c as u8).as_usize();
                    rev[t].push(s as u32);
                }
            }
            let mut dist = vec![u32::MAX; ns];
            let mut queue = std::collections::VecDeque::new();
            dist[StateId::VIOLATED.as_usize()] = 0;
            queue.push_back(StateId::VIOLATED.as_usize());
            while let Some(s) = queue.pop_front() {
                for &p in &rev[s] {
                    let p = p as usize;
                    if dist[p] == u32::MAX {
                        dist[p] = dist[s] + 1;
                        queue.push_back(p);
                    }
                }
            }
            dist
        })
    }
}

impl std::fmt::Debug for TokenPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPolicy")
            .field("vocab_len", &self.vocab.len())
            .field("modules", &self.lifts.len())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped python pack and the default model's 8k vocabulary.
    pub(super) fn python_and_8k() -> (Arc<CompiledPolicy>, Arc<Vocab>) {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let policy = ward_policy::PolicyBuilder::new()
            .compile_path(format!("{root}/policies/python"))
            .expect("the python pack compiles");
        let json = std::fs::read_to_string(format!("{root}/models/ward-tiny-code/tokenizer.json"))
            .expect("the 8k tokenizer is in the repository");
        let vocab = crate::vocab::from_tokenizer_json(&json).expect("tokenizer");
        (Arc::new(policy), Arc::new(vocab))
    }

    /// Two rows are equal, field by field (`at` names the state).
    fn assert_row_eq(a: &StateRow, b: &StateRow, at: &str) {
        assert_eq!(a.any, b.any, "ANY, {at}");
        assert_eq!(a.any_bits, b.any_bits, "ANY bits, {at}");
        assert_eq!(a.viol_ranges, b.viol_ranges, "violating ranges, {at}");
        assert_eq!(a.viol_end, b.viol_end, "end violates, {at}");
        assert_eq!(a.viol_count, b.viol_count, "violating count, {at}");
        assert_eq!(a.viol_rules, b.viol_rules, "rules (in walk order), {at}");
    }

    /// Every row of `a` and `b`, their inverse indexes and state bitsets are equal.
    pub(super) fn assert_same_rows(a: &TokenPolicy, b: &TokenPolicy) {
        for mi in 0..a.num_modules() {
            let (x, y) = (a.rows(mi), b.rows(mi));
            assert_eq!(x.len(), y.len());
            for (q, (r, s)) in x.iter().zip(y).enumerate() {
                assert_row_eq(r, s, &format!("module {mi}, state {q}"));
            }
            let inv = |tp: &TokenPolicy| tp.lifts[mi].inv.read().map(|v| v.clone()).unwrap();
            assert_eq!(inv(a), inv(b), "inverse index, module {mi}");
            let bits = |v: &[AtomicU64]| {
                v.iter()
                    .map(|w| w.load(Ordering::Relaxed))
                    .collect::<Vec<_>>()
            };
            let (la, lb) = (&a.lifts[mi], &b.lifts[mi]);
            assert_eq!(bits(&la.any_empty), bits(&lb.any_empty), "module {mi}");
            assert_eq!(
                bits(&la.any_nonempty),
                bits(&lb.any_nonempty),
                "module {mi}"
            );
            assert_eq!(
                bits(&la.any_only_end),
                bits(&lb.any_only_end),
                "module {mi}"
            );
        }
    }

    /// Asserts that every row of `tp` built by the bulk lift equals the row built by the walk
    /// of that one state ([`TokenPolicy::walk_row`]), for the states `pick` selects.
    fn assert_rows_match_reference(tp: &TokenPolicy, pick: impl Fn(usize, usize) -> bool) -> usize {
        let mut checked = 0;
        for mi in 0..tp.num_modules() {
            let rows = tp.rows(mi);
            assert_eq!(rows.len(), tp.lifts[mi].num_states);
            for (q, row) in rows.iter().enumerate() {
                if !pick(mi, q) {
                    continue;
                }
                assert_row_eq(row, &tp.walk_row(mi, q), &format!("module {mi}, state {q}"));
                checked += 1;
            }
        }
        checked
    }

    /// The bulk lift equals the per-state walk on the real python pack and the real 8k
    /// vocabulary (every 5th state of every module and each start state; all states with
    /// `WARD_LIFT_ALL_STATES=1`, best in release).
    #[test]
    fn bulk_rows_equal_walk_rows_on_the_python_pack() {
        let (policy, vocab) = python_and_8k();
        let tp = TokenPolicy::new(policy, vocab);
        let all = std::env::var_os("WARD_LIFT_ALL_STATES").is_some();
        let starts: Vec<usize> = tp
            .policy
            .modules()
            .iter()
            .map(|m| m.start().as_usize())
            .collect();
        let n = assert_rows_match_reference(&tp, |mi, q| all || q % 5 == 0 || q == starts[mi]);
        assert!(n > 4000, "checked {n} rows");
    }

    /// Rows filled on two threads at once (`prefill`) equal the rows the lazy fill builds,
    /// and so do the indexes beside them, on the real python pack and 8k vocabulary.
    #[test]
    fn prefill_on_threads_fills_the_same_rows_and_indexes() {
        let (policy, vocab) = python_and_8k();
        let pre = TokenPolicy::new(policy.clone(), vocab.clone());
        pre.prefill(2);
        assert!(
            pre.lifts.iter().all(|l| l.rows.get().is_some()),
            "prefill filled every module"
        );
        let lazy = TokenPolicy::new(policy, vocab);
        assert_same_rows(&pre, &lazy);
        for mi in 0..pre.num_modules() {
            assert_eq!(pre.any_reps(mi), lazy.any_reps(mi), "module {mi}");
            assert_eq!(pre.col(mi, 0), lazy.col(mi, 0), "module {mi}");
        }
        assert_eq!(pre.stats().lifted_states, lazy.stats().lifted_states);
    }

    /// The bulk lift equals the per-state walk on random small packs and random vocabularies
    /// (prefix-sharing tokens, repeated byte strings, with and without end and text-free
    /// tokens), every state.
    #[test]
    fn bulk_rows_equal_walk_rows_on_random_packs() {
        const PATTERNS: &[&str] = &[
            r"eval\(",
            r"\bexec\b",
            r"a\s*=\s*b",
            r#""[^"]{3}""#,
            r"#.*x$",
            r"\(\(",
            r"ab|ba",
            r"\bx\(",
        ];
        const PIECES: &[&[u8]] = &[
            b"e", b"v", b"a", b"l", b"(", b")", b"x", b" ", b"\"", b"#", b"\n", b"=", b"b", b"ex",
            b"ec", b"ev", b"al", b"eval", b"eval(", b"exec", b" x", b"x(", b"((", b"a =", b" b",
            b"ab", b"ba", b"\"ab", b"# x", b"\n#", b"= b",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut checked = 0;
        for case in 0..40 {
            let nrules = 1 + next(3);
            let mut yaml = String::from("pack: t\nrules:\n");
            for r in 0..nrules {
                let pat = PATTERNS[next(PATTERNS.len())].replace('\'', "''");
                yaml.push_str(&format!(
                    "  - id: t.r{r}\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: '{pat}'\n"
                ));
            }
            let policy = ward_policy::PolicyBuilder::new()
                .compile_str(&yaml, "t.yaml")
                .unwrap_or_else(|e| panic!("case {case}: {e}\n{yaml}"));
            let mut toks: Vec<Vec<u8>> = (0..3 + next(25))
                .map(|_| PIECES[next(PIECES.len())].to_vec())
                .collect();
            if next(2) == 0 {
                // Every single byte of the pieces, so every text can be spelled.
                toks.extend(b"eval()x \"#\n=bc".iter().map(|&b| vec![b]));
            }
            let mut kinds = vec![TokenKind::Text; toks.len()];
            if next(2) == 0 {
                toks.push(Vec::new());
                kinds.push(TokenKind::End);
            }
            if next(2) == 0 {
                toks.push(Vec::new());
                kinds.push(TokenKind::Empty);
            }
            let vocab = Vocab::from_parts(&toks, kinds).expect("vocabulary");
            let tp = TokenPolicy::new(Arc::new(policy), Arc::new(vocab));
            checked += assert_rows_match_reference(&tp, |_, _| true);
        }
        assert!(checked > 200, "checked {checked} rows");
    }

    #[test]
    fn stats_report_the_memory_of_every_part() {
        let yaml = "pack: t\nrules:\n  - id: t.eval\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'eval\\('\n";
        let policy = ward_policy::PolicyBuilder::new()
            .compile_str(yaml, "t.yaml")
            .unwrap();
        let toks: Vec<&[u8]> = vec![b"eval", b"(", b"x", b" ", b"ev", b"al"];
        let vocab = Vocab::from_token_bytes(&toks).unwrap();
        let tp = TokenPolicy::new(Arc::new(policy), Arc::new(vocab));
        let before = tp.stats();
        assert!(before.trie_bytes > 0 && before.vocab_bytes > 0 && before.index_bytes > 0);
        // Rows are built a module at a time, on first use (not by `new`).
        assert_eq!(before.lifted_states, vec![0]);
        assert_eq!(before.row_bytes, 0);
        assert!(tp.lift_reachable() > 0);
        let s = tp.stats();
        assert_eq!(s.lifted_states, vec![tp.lifts[0].num_states]);
        assert!(s.row_bytes > 0, "rows are filled");
        assert!(s.memory_bytes > before.memory_bytes);
        assert_eq!(
            s.memory_bytes,
            s.trie_bytes + s.row_bytes + s.memo_bytes + s.index_bytes + s.vocab_bytes
        );
    }
}
