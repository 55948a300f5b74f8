//! Lifting a policy's byte automata to a token vocabulary.
//!
//! The text tokens are put in one byte trie shared by every module (per-module tries over
//! byte-class strings barely collapsed a real vocabulary: 500k–600k nodes each at 152k, against
//! about as many for the shared byte trie). Per automaton state, a row is filled lazily on
//! first use by one walk of that trie: the set of live states one token can reach (`ANY(q)`),
//! the tokens that complete a violation from `q`, and the rules they complete. Subtrees are
//! cut as soon as a prefix enters the absorbing violated state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use ward_policy::{CompiledPolicy, Module, RuleIndex, StateId};

use crate::mask::{states, TokenMask};
use crate::vocab::{TokenKind, Vocab};

/// Root subtrees with fewer nodes than this are walked in place when a row is built; larger
/// ones through the memo of subtree walks.
const SMALL_SUBTREE: usize = 64;

/// A trie over the bytes of a vocabulary's text tokens, stored in pre-order (shared by every
/// module).
#[derive(Debug)]
pub(crate) struct TokenTrie {
    /// Byte read on the edge into the node.
    byte: Vec<u8>,
    /// Depth of the node (1 for children of the root; tokens have at most
    /// [`crate::vocab::MAX_TOKEN_BYTES`] bytes).
    depth: Vec<u16>,
    /// Index of the first node after this node's subtree.
    skip: Vec<u32>,
    /// First entry in `order` of this node's subtree (own tokens first); one more entry at
    /// the end (`order.len()`).
    lo: Vec<u32>,
    /// End (exclusive) of this node's own tokens in `order`.
    own_end: Vec<u32>,
    /// Text token ids sorted by bytes.
    order: Vec<u32>,
    max_depth: usize,
    /// The children of the root (nodes of depth 1).
    roots: Vec<u32>,
}

impl TokenTrie {
    fn build(vocab: &Vocab) -> TokenTrie {
        let mut ids: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&t| vocab.kind(t) == TokenKind::Text)
            .collect();
        ids.sort_unstable_by(|&a, &b| vocab.bytes(a).cmp(vocab.bytes(b)).then(a.cmp(&b)));
        let mut trie = TokenTrie {
            byte: Vec::new(),
            depth: Vec::new(),
            skip: Vec::new(),
            lo: Vec::new(),
            own_end: Vec::new(),
            order: ids,
            max_depth: 0,
            roots: Vec::new(),
        };
        let mut path: Vec<usize> = Vec::new();
        let mut prev: &[u8] = &[];
        for idx in 0..trie.order.len() {
            let seq = vocab.bytes(trie.order[idx]);
            let lcp = prev
                .iter()
                .zip(seq.iter())
                .take_while(|(a, b)| a == b)
                .count();
            while path.len() > lcp {
                let n = path.pop().unwrap_or(0);
                trie.skip[n] = trie.byte.len() as u32;
            }
            if lcp == seq.len() {
                // Same bytes as the previous token: one more own token.
                if let Some(&n) = path.last() {
                    trie.own_end[n] = idx as u32 + 1;
                }
            } else {
                for d in lcp..seq.len() {
                    let n = trie.byte.len();
                    trie.byte.push(seq[d]);
                    trie.depth.push(d as u16 + 1);
                    trie.skip.push(0);
                    trie.lo.push(idx as u32);
                    let own = if d + 1 == seq.len() {
                        idx as u32 + 1
                    } else {
                        idx as u32
                    };
                    trie.own_end.push(own);
                    path.push(n);
                }
            }
            trie.max_depth = trie.max_depth.max(seq.len());
            prev = seq;
        }
        while let Some(n) = path.pop() {
            trie.skip[n] = trie.byte.len() as u32;
        }
        trie.lo.push(trie.order.len() as u32);
        let mut k = 0;
        while k < trie.byte.len() {
            trie.roots.push(k as u32);
            k = trie.skip[k] as usize;
        }
        trie.byte.shrink_to_fit();
        trie.depth.shrink_to_fit();
        for v in [
            &mut trie.skip,
            &mut trie.lo,
            &mut trie.own_end,
            &mut trie.roots,
        ] {
            v.shrink_to_fit();
        }
        trie
    }

    /// Number of nodes.
    pub(crate) fn num_nodes(&self) -> usize {
        self.byte.len()
    }

    /// Tokens of the subtree of node `k` (its own and its descendants').
    #[inline]
    pub(crate) fn subtree_tokens(&self, k: usize) -> &[u32] {
        &self.order[self.lo[k] as usize..self.lo[self.skip[k] as usize] as usize]
    }

    /// Tokens whose bytes end exactly at node `k`.
    #[inline]
    pub(crate) fn own_tokens(&self, k: usize) -> &[u32] {
        &self.order[self.lo[k] as usize..self.own_end[k] as usize]
    }

    fn memory_bytes(&self) -> usize {
        self.byte.capacity()
            + self.depth.capacity() * 2
            + (self.skip.capacity()
                + self.lo.capacity()
                + self.own_end.capacity()
                + self.order.capacity()
                + self.roots.capacity())
                * 4
    }
}

/// What one token does from one state, per module: the lazily filled row of a state.
#[derive(Debug)]
pub(crate) struct StateRow {
    /// Live states reachable by one token, sorted (may include the end pseudo-state).
    pub(crate) any: Vec<u32>,
    /// The same as a bitset over states.
    pub(crate) any_bits: Vec<u64>,
    /// Tokens that complete a violation from this state, as ranges of the token trie's
    /// token order (whole subtrees), plus the end tokens when `viol_end`.
    viol_ranges: Vec<(u32, u32)>,
    /// Memoized subtree walks (shared between rows) whose violating ranges also count.
    viol_subs: Vec<Arc<SubWalk>>,
    /// End-of-text tokens violate from this state (a pending match completes at the end).
    viol_end: bool,
    /// Number of violating tokens.
    pub(crate) viol_count: usize,
    /// Rules completed by some token from this state.
    pub(crate) viol_rules: Vec<RuleIndex>,
}

impl StateRow {
    fn memory_bytes(&self) -> usize {
        (self.any.len() + self.viol_rules.len()) * 4
            + (self.viol_ranges.len() + self.viol_subs.len()) * 8
            + self.any_bits.len() * 8
            + 120
    }
}

/// The result of walking one subtree of the token trie (below a child of the root) from
/// one state: states reached by its tokens, its violating token ranges and their rules.
#[derive(Debug)]
pub(crate) struct SubWalk {
    reached: Vec<u32>,
    viol: Vec<(u32, u32)>,
    rules: Vec<RuleIndex>,
}

/// One module lifted to the vocabulary.
#[derive(Debug)]
pub(crate) struct ModuleLift {
    /// Number of DFA states; the end-of-text pseudo-state has index `num_states`.
    pub(crate) num_states: usize,
    /// `u64` words per state set (`num_states + 1` bits).
    pub(crate) words: usize,
    rows: Vec<OnceLock<Box<StateRow>>>,
    /// Tokens this module forbids from every live state (level-1 mask, as forbidden set).
    pub(crate) forbidden_everywhere: Vec<u32>,
    /// Bytes to the nearest violation, per state (`u32::MAX`: none reachable).
    pub(crate) danger: OnceLock<Vec<u32>>,
    /// Memoized subtree walks, by (root child, state after its byte).
    memo: Mutex<HashMap<(u32, u32), Arc<SubWalk>>>,
    /// States whose row is filled and has a live successor / has none.
    pub(crate) any_nonempty: Vec<AtomicU64>,
    pub(crate) any_empty: Vec<AtomicU64>,
    /// States whose only one-token successor is the end pseudo-state.
    pub(crate) any_only_end: Vec<AtomicU64>,
    /// Inverse of `ANY` over filled rows: for each state (and the end pseudo-state), the
    /// filled states that reach it by one token.
    pub(crate) inv: RwLock<Vec<Vec<u32>>>,
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
    /// level-1 mask and forbidden lists).
    pub index_bytes: usize,
    /// Of which: the vocabulary (token bytes, first-token forms, kinds, names).
    pub vocab_bytes: usize,
    /// Tokens forbidden from every live state by some module (level-1 mask).
    pub vocab_forbidden: usize,
}

/// A compiled policy lifted to a vocabulary: computed once per (policy, vocabulary) and
/// shared (through `Arc`) by every [`crate::Guard`] that uses them.
///
/// Token rows per automaton state are filled lazily, so the first generations pay for the
/// states they reach and later ones reuse them.
pub struct TokenPolicy {
    pub(crate) policy: Arc<CompiledPolicy>,
    pub(crate) vocab: Arc<Vocab>,
    /// The text tokens' byte trie, walked by every module.
    pub(crate) trie: TokenTrie,
    pub(crate) lifts: Vec<ModuleLift>,
    pub(crate) empty_tokens: Vec<u32>,
    pub(crate) end_tokens: Vec<u32>,
    vocab_mask: TokenMask,
}

impl TokenPolicy {
    /// Lifts every module of `policy` (its enforced rules) to `vocab`, and computes the
    /// vocabulary mask (level 1).
    pub fn new(policy: Arc<CompiledPolicy>, vocab: Arc<Vocab>) -> TokenPolicy {
        let empty_tokens = vocab.tokens_of_kind(TokenKind::Empty);
        let end_tokens = vocab.tokens_of_kind(TokenKind::End);
        let trie = TokenTrie::build(&vocab);
        let mut lifts = Vec::new();
        for m in policy.modules() {
            let num_states = m.num_states();
            let lift = ModuleLift {
                num_states,
                words: (num_states + 1).div_ceil(64),
                rows: (0..num_states).map(|_| OnceLock::new()).collect(),
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
            };
            lifts.push(lift);
        }
        let vocab_mask = TokenMask::new_full(vocab.len());
        let mut tp = TokenPolicy {
            policy,
            vocab,
            trie,
            lifts,
            empty_tokens,
            end_tokens,
            vocab_mask,
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
            self.violating_tokens(mi, start.as_usize())
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
            for r in &l.rows {
                if let Some(r) = r.get() {
                    lifted += 1;
                    s.row_bytes += r.memory_bytes();
                }
            }
            if let Ok(memo) = l.memo.lock() {
                // Map slots (key, Arc, hash) plus the walks themselves.
                s.memo_bytes += memo.capacity() * 24;
                for w in memo.values() {
                    s.memo_bytes += 48 + (w.reached.len() + w.rules.len()) * 4 + w.viol.len() * 8;
                }
            }
            s.index_bytes += l.rows.len() * 8
                + (l.any_nonempty.len() + l.any_empty.len() + l.any_only_end.len()) * 8
                + l.forbidden_everywhere.capacity() * 4
                + l.danger.get().map_or(0, |d| d.capacity() * 4);
            if let Ok(inv) = l.inv.read() {
                s.index_bytes += inv.iter().map(|v| 24 + v.capacity() * 4).sum::<usize>();
            }
            s.lifted_states.push(lifted);
        }
        s.index_bytes += self.vocab_mask.words().len() * 4
            + (self.empty_tokens.capacity() + self.end_tokens.capacity()) * 4;
        s.trie_bytes = self.trie.memory_bytes();
        s.vocab_bytes = self.vocab.memory_bytes();
        s.memory_bytes = s.trie_bytes + s.row_bytes + s.memo_bytes + s.index_bytes + s.vocab_bytes;
        s.vocab_forbidden = self.vocab_mask.len() - self.vocab_mask.count_allowed();
        s
    }

    /// Fills the token rows of every state reachable from the start state by tokens
    /// (ahead of time, e.g. to measure the full lift). Returns the number of rows filled.
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

    #[inline]
    pub(crate) fn module(&self, mi: usize) -> &Module {
        &self.policy.modules()[mi]
    }

    /// The row of state `q` (< num_states) in module `mi`, filled on first use.
    #[inline]
    pub(crate) fn row(&self, mi: usize, q: usize) -> &StateRow {
        let l = &self.lifts[mi];
        l.rows[q].get_or_init(|| {
            let row = self.build_row(mi, q);
            if let Ok(mut inv) = l.inv.write() {
                for &r in &row.any {
                    if let Some(v) = inv.get_mut(r as usize) {
                        v.push(q as u32);
                    }
                }
            }
            if row.any.len() == 1 && row.any[0] as usize == l.num_states {
                l.any_only_end[q / 64].fetch_or(1 << (q % 64), Ordering::Release);
            }
            let bits = if row.any.is_empty() {
                &l.any_empty
            } else {
                &l.any_nonempty
            };
            bits[q / 64].fetch_or(1 << (q % 64), Ordering::Release);
            Box::new(row)
        })
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
        let row = self.row(mi, q);
        let order = &self.trie.order;
        let mut out = Vec::with_capacity(row.viol_count);
        for &(a, b) in row
            .viol_ranges
            .iter()
            .chain(row.viol_subs.iter().flat_map(|s| s.viol.iter()))
        {
            out.extend_from_slice(&order[a as usize..b as usize]);
        }
        if row.viol_end {
            out.extend_from_slice(&self.end_tokens);
        }
        out
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

    /// The walk of the subtree below root child `k1` entered in state `s1` (memoized: the
    /// result does not depend on the state the token started from).
    fn subtree(&self, mi: usize, k1: usize, s1: StateId) -> Arc<SubWalk> {
        let l = &self.lifts[mi];
        let key = (k1 as u32, s1.0);
        if let Some(r) = l.memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return r;
        }
        let mut reached_bits = vec![0u64; l.words];
        let mut viol: Vec<(u32, u32)> = Vec::new();
        let mut rules: Vec<RuleIndex> = Vec::new();
        self.walk_subtree(mi, k1, s1, &mut reached_bits, &mut viol, &mut rules);
        let mut reached = Vec::new();
        states::for_each(&reached_bits, |s| reached.push(s as u32));
        let r = Arc::new(SubWalk {
            reached,
            viol,
            rules,
        });
        if let Ok(mut memo) = l.memo.lock() {
            memo.insert(key, r.clone());
        }
        r
    }

    /// Walks the subtree of root child `k1` entered in state `s1`: adds the states its tokens
    /// reach to `reached`, its violating token ranges to `viol` and their rules to `rules`.
    fn walk_subtree(
        &self,
        mi: usize,
        k1: usize,
        s1: StateId,
        reached: &mut [u64],
        viol: &mut Vec<(u32, u32)>,
        rules: &mut Vec<RuleIndex>,
    ) {
        let m = self.module(mi);
        let trie = &self.trie;
        if trie.own_end[k1] > trie.lo[k1] {
            states::insert(reached, s1.as_usize());
        }
        let end = trie.skip[k1] as usize;
        if end == k1 + 1 {
            return;
        }
        let mut stack = vec![s1; trie.max_depth + 1];
        let mut k = k1 + 1;
        while k < end {
            let d = trie.depth[k] as usize;
            let parent = stack[d - 1];
            let c = trie.byte[k];
            let s = m.next(parent, c);
            if m.is_violated(s) {
                viol.push((trie.lo[k], trie.lo[trie.skip[k] as usize]));
                for &r in m.violation_rules(parent, c) {
                    if !rules.contains(&r) {
                        rules.push(r);
                    }
                }
                k = trie.skip[k] as usize;
                continue;
            }
            stack[d] = s;
            if trie.own_end[k] > trie.lo[k] {
                states::insert(reached, s.as_usize());
            }
            k += 1;
        }
    }

    fn build_row(&self, mi: usize, q: usize) -> StateRow {
        let l = &self.lifts[mi];
        let m = self.module(mi);
        let trie = &self.trie;
        let mut any_bits = vec![0u64; l.words];
        let mut viol_ranges: Vec<(u32, u32)> = Vec::new();
        let mut viol_rules: Vec<RuleIndex> = Vec::new();
        let mut viol_subs: Vec<Arc<SubWalk>> = Vec::new();
        let mut viol_count = 0usize;
        let qs = StateId(q as u32);
        for &k1 in &trie.roots {
            let k1 = k1 as usize;
            let c = trie.byte[k1];
            let s1 = m.next(qs, c);
            if m.is_violated(s1) {
                viol_ranges.push((trie.lo[k1], trie.lo[trie.skip[k1] as usize]));
                for &r in m.violation_rules(qs, c) {
                    if !viol_rules.contains(&r) {
                        viol_rules.push(r);
                    }
                }
                continue;
            }
            if trie.skip[k1] as usize - k1 < SMALL_SUBTREE {
                // Small subtrees are walked in place: cheaper than a memo entry.
                self.walk_subtree(mi, k1, s1, &mut any_bits, &mut viol_ranges, &mut viol_rules);
                continue;
            }
            let sub = self.subtree(mi, k1, s1);
            if !sub.viol.is_empty() {
                viol_count += sub
                    .viol
                    .iter()
                    .map(|&(a, b)| (b - a) as usize)
                    .sum::<usize>();
                viol_subs.push(sub.clone());
            }
            for &r in &sub.reached {
                states::insert(&mut any_bits, r as usize);
            }
            for &r in &sub.rules {
                if !viol_rules.contains(&r) {
                    viol_rules.push(r);
                }
            }
        }
        let mut viol_end = false;
        if !self.empty_tokens.is_empty() {
            states::insert(&mut any_bits, q);
        }
        if !self.end_tokens.is_empty() {
            if m.is_clean_end(qs) {
                states::insert(&mut any_bits, l.num_states);
            } else {
                viol_end = true;
                for &r in m.end_violation_rules(qs) {
                    if !viol_rules.contains(&r) {
                        viol_rules.push(r);
                    }
                }
            }
        }
        // Merge adjacent ranges.
        viol_ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(viol_ranges.len());
        for (a, b) in viol_ranges {
            match merged.last_mut() {
                Some(last) if last.1 >= a => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let viol_count = viol_count
            + merged.iter().map(|&(a, b)| (b - a) as usize).sum::<usize>()
            + if viol_end { self.end_tokens.len() } else { 0 };
        let mut any = Vec::new();
        states::for_each(&any_bits, |s| any.push(s as u32));
        StateRow {
            any,
            any_bits,
            viol_ranges: merged,
            viol_subs,
            viol_end,
            viol_count,
            viol_rules,
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
        // Rows are filled lazily: only the start state's (for the level-1 mask) so far.
        assert_eq!(before.lifted_states, vec![1]);
        assert!(tp.lift_reachable() > 0);
        let s = tp.stats();
        assert!(s.row_bytes > before.row_bytes, "rows are filled");
        assert_eq!(
            s.memory_bytes,
            s.trie_bytes + s.row_bytes + s.memo_bytes + s.index_bytes + s.vocab_bytes
        );
        assert!(s.memory_bytes > before.memory_bytes);
    }
}
