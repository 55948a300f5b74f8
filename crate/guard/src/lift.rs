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

/// Modules whose state sets have at most this many `u64` words keep the bulk lift's
/// reached sets as bitsets.
const DENSE_WORDS: usize = 8;

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

/// The token trie minimized to a DAG: trie nodes with the same suffix language (the same
/// own-token flag and the same children by byte) share one node (at 8k tokens, 16 908 trie
/// nodes become 4 757). What the tokens below a node do from a state depends only on that
/// language, so the bulk lift computes it once per (DAG node, state).
#[derive(Debug)]
pub(crate) struct TokenDag {
    /// Per node: its edges are `edges[start[u]..start[u + 1]]`, in byte order (for the
    /// root: the trie's root children, in order).
    start: Vec<u32>,
    /// (byte, child node).
    edges: Vec<(u8, u32)>,
    /// Per node: some token ends here.
    fin: Vec<bool>,
    /// Per node: number of tokens ending here.
    own: Vec<u32>,
    /// Per node: number of tokens below it, its own included.
    size: Vec<u32>,
    /// The node of the empty prefix (the highest id: children always have smaller ids).
    root: u32,
}

impl TokenDag {
    fn build(trie: &TokenTrie) -> TokenDag {
        let n = trie.num_nodes();
        let mut dag = TokenDag {
            start: vec![0],
            edges: Vec::new(),
            fin: Vec::new(),
            own: Vec::new(),
            size: Vec::new(),
            root: 0,
        };
        // Node signatures: [own tokens, byte, child, byte, child, ...]; list k + 1 is node k.
        let mut sigs: Lists<u32> = Lists::new();
        let mut intern = |dag: &mut TokenDag, sig: &[u32]| -> u32 {
            let before = sigs.lists.len();
            let id = sigs.intern(sig) - 1;
            if sigs.lists.len() == before {
                return id;
            }
            dag.fin.push(sig[0] != 0);
            dag.own.push(sig[0]);
            let mut size = sig[0];
            for e in sig[1..].chunks_exact(2) {
                dag.edges.push((e[0] as u8, e[1]));
                size += dag.size[e[1] as usize];
            }
            dag.size.push(size);
            dag.start.push(dag.edges.len() as u32);
            id
        };
        // Per trie node: its DAG node (only while building).
        let mut of_trie = vec![0u32; n];
        let mut sig: Vec<u32> = Vec::new();
        // Reverse pre-order: every child (a later node) is interned before its parent.
        for k in (0..n).rev() {
            sig.clear();
            sig.push(trie.own_end[k] - trie.lo[k]);
            let mut c = k + 1;
            while c < trie.skip[k] as usize {
                sig.push(trie.byte[c] as u32);
                sig.push(of_trie[c]);
                c = trie.skip[c] as usize;
            }
            of_trie[k] = intern(&mut dag, &sig);
        }
        sig.clear();
        sig.push(0);
        for &r in &trie.roots {
            sig.push(trie.byte[r as usize] as u32);
            sig.push(of_trie[r as usize]);
        }
        dag.root = intern(&mut dag, &sig);
        dag.start.shrink_to_fit();
        dag.edges.shrink_to_fit();
        dag.fin.shrink_to_fit();
        dag.own.shrink_to_fit();
        dag.size.shrink_to_fit();
        dag
    }

    /// Number of nodes.
    fn num_nodes(&self) -> usize {
        self.fin.len()
    }

    /// The edges of node `u`.
    #[inline]
    fn edges(&self, u: usize) -> &[(u8, u32)] {
        &self.edges[self.start[u] as usize..self.start[u + 1] as usize]
    }

    fn memory_bytes(&self) -> usize {
        (self.start.capacity() + self.own.capacity() + self.size.capacity()) * 4
            + self.edges.capacity() * 8
            + self.fin.capacity()
    }
}

/// What one token does from one state, per module: the row of a state.
#[derive(Debug)]
pub(crate) struct StateRow {
    /// Live states reachable by one token, sorted (may include the end pseudo-state).
    pub(crate) any: Vec<u32>,
    /// The same as a bitset over states.
    pub(crate) any_bits: Vec<u64>,
    /// Tokens that complete a violation from this state, as sorted, disjoint, non-adjacent
    /// ranges of the token trie's token order (unions of whole subtrees), plus the end
    /// tokens when `viol_end`.
    viol_ranges: Vec<(u32, u32)>,
    /// End-of-text tokens violate from this state (a pending match completes at the end).
    viol_end: bool,
    /// Number of violating tokens.
    pub(crate) viol_count: usize,
    /// Rules completed by some token from this state.
    pub(crate) viol_rules: Vec<RuleIndex>,
}

impl StateRow {
    /// The tokens that complete a violation (unsorted), given the trie's token order and
    /// the end tokens.
    fn violating(&self, order: &[u32], end_tokens: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.viol_count);
        for &(a, b) in &self.viol_ranges {
            out.extend_from_slice(&order[a as usize..b as usize]);
        }
        if self.viol_end {
            out.extend_from_slice(end_tokens);
        }
        out
    }

    /// Heap bytes (the row itself is counted by its container).
    fn memory_bytes(&self) -> usize {
        (self.any.capacity() + self.viol_rules.capacity()) * 4
            + self.viol_ranges.capacity() * 8
            + self.any_bits.capacity() * 8
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

/// The states sorted by their successor under one byte class, and the runs: (successor,
/// index of its first state).
type Groups = (Vec<u32>, Vec<(u32, u32)>);

/// Hash-consed sets of states for the bulk walk: id 0 is the empty set, ids `1..=ns` the
/// singletons, larger ids sorted sets of two or more states; unions are memoized.
struct ReachedSets {
    ns: u32,
    /// `0..ns`, so a singleton is a slice of it.
    singles: Vec<u32>,
    /// Sets of two or more states (id `ns + k` is list `k`).
    sets: Lists<u32>,
    unions: HashMap<(u32, u32), u32, BuildHasherDefault<FxHasher>>,
    scratch: Vec<u32>,
}

impl ReachedSets {
    const EMPTY: u32 = 0;

    fn new(ns: usize) -> ReachedSets {
        ReachedSets {
            ns: ns as u32,
            singles: (0..ns as u32).collect(),
            sets: Lists::new(),
            unions: HashMap::default(),
            scratch: Vec::new(),
        }
    }

    /// The id of `{s}`.
    #[inline]
    fn single(s: u32) -> u32 {
        s + 1
    }

    /// The states of set `id`, sorted.
    #[inline]
    fn elements(&self, id: u32) -> &[u32] {
        if id == Self::EMPTY {
            &[]
        } else if id <= self.ns {
            &self.singles[id as usize - 1..id as usize]
        } else {
            self.sets.get(id - self.ns)
        }
    }

    /// The id of the union of sets `a` and `b`.
    #[inline]
    fn union(&mut self, a: u32, b: u32) -> u32 {
        if a == b || b == Self::EMPTY {
            return a;
        }
        if a == Self::EMPTY {
            return b;
        }
        let key = (a.min(b), a.max(b));
        if let Some(&r) = self.unions.get(&key) {
            return r;
        }
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let (x, y) = (self.elements(a), self.elements(b));
        let (mut i, mut j) = (0, 0);
        while i < x.len() && j < y.len() {
            match x[i].cmp(&y[j]) {
                std::cmp::Ordering::Less => {
                    out.push(x[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(y[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push(x[i]);
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&x[i..]);
        out.extend_from_slice(&y[j..]);
        let r = self.ns + self.sets.intern(&out);
        self.scratch = out;
        self.unions.insert(key, r);
        r
    }
}

/// An element of a hash-consed list, as one word for hashing.
trait Word: Copy + Eq {
    fn word(self) -> u64;
}

impl Word for u32 {
    #[inline]
    fn word(self) -> u64 {
        self as u64
    }
}

impl Word for (u32, u32) {
    #[inline]
    fn word(self) -> u64 {
        (self.0 as u64) << 32 | self.1 as u64
    }
}

/// FxHash of a list, one word per element (the default `Hash` of a slice feeds the hasher
/// byte by byte).
#[inline]
fn hash_words<T: Word>(v: &[T]) -> u64 {
    let mut h = v.len() as u64;
    for &x in v {
        h = (h.rotate_left(5) ^ x.word()).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    h
}

/// Hash-consed lists (id 0 is the empty list).
struct Lists<T> {
    lists: Vec<Box<[T]>>,
    /// Hash → the latest list with that hash; `chain` links earlier ones.
    heads: HashMap<u64, u32, BuildHasherDefault<FxHasher>>,
    chain: Vec<u32>,
}

impl<T: Word> Lists<T> {
    fn new() -> Lists<T> {
        Lists {
            lists: vec![Box::from([])],
            heads: HashMap::default(),
            chain: vec![0],
        }
    }

    /// The id of list `v`.
    #[inline]
    fn intern(&mut self, v: &[T]) -> u32 {
        if v.is_empty() {
            return 0;
        }
        let h = hash_words(v);
        let head = self.heads.get(&h).copied().unwrap_or(0);
        let mut id = head;
        while id != 0 {
            if *self.lists[id as usize] == *v {
                return id;
            }
            id = self.chain[id as usize];
        }
        let id = self.lists.len() as u32;
        self.lists.push(v.into());
        self.chain.push(head);
        self.heads.insert(h, id);
        id
    }

    /// The list of id `id`.
    #[inline]
    fn get(&self, id: u32) -> &[T] {
        &self.lists[id as usize]
    }
}

/// Appends a token range after the sorted ranges `v`, merging it with an adjacent last one.
#[inline]
fn push_range(v: &mut Vec<(u32, u32)>, r: (u32, u32)) {
    match v.last_mut() {
        Some(last) if last.1 >= r.0 => last.1 = last.1.max(r.1),
        _ => v.push(r),
    }
}

/// Adds the rules not yet in `v`, keeping first-met order.
#[inline]
fn add_rules(v: &mut Vec<RuleIndex>, rules: &[RuleIndex]) {
    for &r in rules {
        if !v.contains(&r) {
            v.push(r);
        }
    }
}

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
            rows
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

    /// Every row of module `mi` at once, exactly as the walk of each state alone would fill it
    /// ([`TokenPolicy::walk_row`] in the tests), in three passes over the token DAG:
    ///
    /// 1. top-down (parents first), the distinct states each DAG node can be entered in,
    ///    starting with every state at the root. Automaton states converge (different
    ///    states reach the same state after a common prefix) and the DAG shares suffixes, so
    ///    a node is visited once per *distinct* state there, not once per start state and
    ///    trie path as in a walk per row;
    /// 2. bottom-up, per (node, state): the set of states its tokens reach (hash-consed
    ///    sets with memoized unions, [`ReachedSets`]: they are tiny below the root and
    ///    repeat) and whether some token below violates; the root's sets are the rows'
    ///    `ANY`;
    /// 3. per state that has violating tokens, a trie walk in pre-order that enters only
    ///    subtrees where pass 2 found a violation: the violating ranges, in order and merged,
    ///    and the rules in the order the walk meets them.
    ///
    /// Transitions are read one byte class at a time for every state of a node (columns of
    /// the table), which keeps them in cache.
    fn bulk_rows(&self, mi: usize) -> Vec<StateRow> {
        let l = &self.lifts[mi];
        let m = self.module(mi);
        let trie = &self.trie;
        let dag = &self.dag;
        let ns = l.num_states;
        let words = l.words;
        let nc = m.num_classes();
        let classes = m.byte_classes();
        // cols[c * ns + s] = next(s, c).
        let mut cols = vec![0u32; nc * ns];
        for s in 0..ns {
            for c in 0..nc {
                cols[c * ns + s] = m.next_class(StateId(s as u32), c as u8).0;
            }
        }
        let col = |b: u8| &cols[classes[b as usize] as usize * ns..][..ns];
        let viol = StateId::VIOLATED.0;
        let nd = dag.num_nodes();
        let root = dag.root as usize;
        let inner = |v: usize| dag.start[v] < dag.start[v + 1];
        // The byte classes below each node, and the classes each state loops on: a state
        // that loops on every class below a node stays put through all its tokens (no
        // violation, reaches only itself), so it is never carried into that node.
        let mut alph: Vec<[u64; 4]> = vec![[0; 4]; nd];
        for u in 0..nd {
            let mut a = [0u64; 4];
            for &(b, v) in dag.edges(u) {
                let c = classes[b as usize] as usize;
                a[c / 64] |= 1 << (c % 64);
                for (x, y) in a.iter_mut().zip(&alph[v as usize]) {
                    *x |= y;
                }
            }
            alph[u] = a;
        }
        let mut loops: Vec<[u64; 4]> = vec![[0; 4]; ns];
        for (s, lp) in loops.iter_mut().enumerate() {
            for c in 0..nc {
                if cols[c * ns + s] as usize == s {
                    lp[c / 64] |= 1 << (c % 64);
                }
            }
        }
        // A class each state does not loop on (a quick refusal), or none.
        let leave: Vec<u16> = loops
            .iter()
            .map(|lp| {
                (0..nc)
                    .find(|&c| lp[c / 64] >> (c % 64) & 1 == 0)
                    .map_or(u16::MAX, |c| c as u16)
            })
            .collect();
        let stays = |t: u32, v: usize| {
            let a = &alph[v];
            let c = leave[t as usize] as usize;
            if c < 256 && a[c / 64] >> (c % 64) & 1 != 0 {
                return false;
            }
            let lp = &loops[t as usize];
            (a[0] & !lp[0]) | (a[1] & !lp[1]) | (a[2] & !lp[2]) | (a[3] & !lp[3]) == 0
        };
        // Pass 1: distinct entry states per node (sorted), for nodes with edges.
        let mut entry: Vec<Vec<u32>> = vec![Vec::new(); nd];
        entry[root] = (0..ns as u32).collect();
        // Per edge, the states already pushed (`seen[t] == gen`).
        let mut seen = vec![0u32; ns];
        let mut gen = 0u32;
        for u in (0..nd).rev() {
            let mut du = std::mem::take(&mut entry[u]);
            if u != root {
                du.sort_unstable();
                du.dedup();
            }
            for &(b, v) in dag.edges(u) {
                let v = v as usize;
                if !inner(v) {
                    continue;
                }
                let col = col(b);
                let ev = &mut entry[v];
                gen += 1;
                for &s in &du {
                    let t = col[s as usize];
                    if t != viol && seen[t as usize] != gen && !stays(t, v) {
                        seen[t as usize] = gen;
                        ev.push(t);
                    }
                }
            }
            entry[u] = du;
        }
        // Pass 2, children first: per (node, entry state), the states its tokens reach, its
        // violating token ranges (relative to the node's first token: every trie node of a
        // DAG node has the same token layout) and their rules in walk order.
        let mut sets = ReachedSets::new(ns);
        let mut ranges: Lists<(u32, u32)> = Lists::new();
        let mut rule_lists: Lists<RuleIndex> = Lists::new();
        // Per node and entry state: (reached set, ranges id, rules id).
        let mut res: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); nd];
        let mut pos = vec![0u32; ns];
        // The root's `ANY`, transposed: bit q of row x is set if a token takes q to x.
        let wq = ns.div_ceil(64);
        let mut tbits = vec![0u64; ns * wq];
        let mut vl: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut rl: Vec<Vec<RuleIndex>> = Vec::new();
        // Modules with few states keep the reached sets of inner nodes as bitsets (an OR is
        // cheaper than a memoized union there); larger ones as hash-consed sparse sets.
        let dense = words <= DENSE_WORDS;
        let mut pool: Vec<u64> = Vec::new();
        let mut rd: Vec<u64> = Vec::new();
        for u in 0..nd {
            if !inner(u) || u == root {
                continue;
            }
            let du = &entry[u];
            let n = du.len();
            let mut r: Vec<u32> = if dense || !dag.fin[u] {
                vec![ReachedSets::EMPTY; n]
            } else {
                du.iter().map(|&s| ReachedSets::single(s)).collect()
            };
            if dense {
                rd.clear();
                rd.resize(n * words, 0);
                if dag.fin[u] {
                    for (i, &s) in du.iter().enumerate() {
                        states::insert(&mut rd[i * words..][..words], s as usize);
                    }
                }
            }
            if vl.len() < n {
                vl.resize_with(n, Vec::new);
                rl.resize_with(n, Vec::new);
            }
            for x in &mut vl[..n] {
                x.clear();
            }
            for x in &mut rl[..n] {
                x.clear();
            }
            // Offset of the current child's tokens.
            let mut off = dag.own[u];
            for &(b, v) in dag.edges(u) {
                let v = v as usize;
                let span = (off, off + dag.size[v]);
                off += dag.size[v];
                let col = col(b);
                let leafy = !inner(v);
                if !leafy {
                    for (k, &t) in entry[v].iter().enumerate() {
                        pos[t as usize] = k as u32;
                    }
                }
                let rv = &res[v];
                for (i, &s) in du.iter().enumerate() {
                    let t = col[s as usize];
                    if t == viol {
                        push_range(&mut vl[i], span);
                        add_rules(&mut rl[i], m.violation_rules(StateId(s), b));
                        continue;
                    }
                    if leafy || stays(t, v) {
                        if dense {
                            states::insert(&mut rd[i * words..][..words], t as usize);
                        } else {
                            r[i] = sets.union(r[i], ReachedSets::single(t));
                        }
                        continue;
                    }
                    let (rset, rr, ru) = rv[pos[t as usize] as usize];
                    if dense {
                        let from = &pool[rset as usize * words..][..words];
                        for (o, x) in rd[i * words..][..words].iter_mut().zip(from) {
                            *o |= x;
                        }
                    } else {
                        r[i] = sets.union(r[i], rset);
                    }
                    if rr != 0 {
                        for &(a, z) in ranges.get(rr) {
                            push_range(&mut vl[i], (a + span.0, z + span.0));
                        }
                    }
                    if ru != 0 {
                        add_rules(&mut rl[i], rule_lists.get(ru));
                    }
                }
            }
            if dense {
                for (i, x) in r.iter_mut().enumerate() {
                    *x = (pool.len() / words) as u32;
                    pool.extend_from_slice(&rd[i * words..][..words]);
                }
            }
            res[u] = (0..n)
                .map(|i| (r[i], ranges.intern(&vl[i]), rule_lists.intern(&rl[i])))
                .collect();
        }
        // The root (every state): per root child, the states are grouped by their state
        // after its byte, so each group's result is looked up once and applied to its
        // members.
        vl.clear();
        rl.clear();
        vl.resize_with(ns, Vec::new);
        rl.resize_with(ns, Vec::new);
        // Per byte class: the states sorted by their successor, and where each successor's
        // run starts.
        let mut groups: Vec<Option<Groups>> = vec![None; nc];
        for (ei, &(b, v)) in dag.edges(root).iter().enumerate() {
            let v = v as usize;
            let base = trie.lo[trie.roots[ei] as usize];
            let span = (base, base + dag.size[v]);
            let c = classes[b as usize] as usize;
            let (members, runs) = groups[c].get_or_insert_with(|| {
                // A counting sort of the states by successor.
                let col = &cols[c * ns..][..ns];
                let mut count = vec![0u32; ns + 1];
                for &t in col {
                    count[t as usize + 1] += 1;
                }
                let mut runs: Vec<(u32, u32)> = Vec::new();
                for t in 0..ns {
                    if count[t + 1] > 0 {
                        runs.push((t as u32, count[t]));
                    }
                    count[t + 1] += count[t];
                }
                let mut members = vec![0u32; ns];
                for (q, &t) in col.iter().enumerate() {
                    members[count[t as usize] as usize] = q as u32;
                    count[t as usize] += 1;
                }
                (members, runs)
            });
            let leafy = !inner(v);
            if !leafy {
                for (k, &t) in entry[v].iter().enumerate() {
                    pos[t as usize] = k as u32;
                }
            }
            for (ri, &(t, from)) in runs.iter().enumerate() {
                let to = runs.get(ri + 1).map_or(ns, |r| r.1 as usize);
                let group = &members[from as usize..to];
                if t == viol {
                    for &q in group {
                        push_range(&mut vl[q as usize], span);
                        add_rules(&mut rl[q as usize], m.violation_rules(StateId(q), b));
                    }
                    continue;
                }
                // Transposed: row x holds the states whose row reaches x, so a group's
                // writes stay in a few cache lines.
                let mut mark = |x: usize| {
                    let row = &mut tbits[x * wq..][..wq];
                    for &q in group {
                        row[q as usize / 64] |= 1 << (q % 64);
                    }
                };
                let (rr, ru) = if leafy || stays(t, v) {
                    mark(t as usize);
                    (0, 0)
                } else {
                    let (rset, rr, ru) = res[v][pos[t as usize] as usize];
                    if dense {
                        states::for_each(&pool[rset as usize * words..][..words], &mut mark);
                    } else {
                        for &x in sets.elements(rset) {
                            mark(x as usize);
                        }
                    }
                    (rr, ru)
                };
                if rr != 0 {
                    let list = ranges.get(rr);
                    for &q in group {
                        for &(a, z) in list {
                            push_range(&mut vl[q as usize], (a + span.0, z + span.0));
                        }
                    }
                }
                if ru != 0 {
                    let list = rule_lists.get(ru);
                    for &q in group {
                        add_rules(&mut rl[q as usize], list);
                    }
                }
            }
        }
        drop(res);
        let mut root_bits = vec![0u64; ns * words];
        for x in 0..ns {
            states::for_each(&tbits[x * wq..][..wq], |q| {
                states::insert(&mut root_bits[q * words..][..words], x)
            });
        }
        drop(tbits);
        let mut rows = Vec::with_capacity(ns);
        for q in 0..ns {
            let qs = StateId(q as u32);
            let mut viol_ranges: Vec<(u32, u32)> = std::mem::take(&mut vl[q]);
            let mut viol_rules: Vec<RuleIndex> = std::mem::take(&mut rl[q]);
            let mut any_bits = root_bits[q * words..(q + 1) * words].to_vec();
            let mut viol_end = false;
            if !self.empty_tokens.is_empty() {
                states::insert(&mut any_bits, q);
            }
            if !self.end_tokens.is_empty() {
                if m.is_clean_end(qs) {
                    states::insert(&mut any_bits, ns);
                } else {
                    viol_end = true;
                    add_rules(&mut viol_rules, m.end_violation_rules(qs));
                }
            }
            let viol_count = viol_ranges
                .iter()
                .map(|&(a, b)| (b - a) as usize)
                .sum::<usize>()
                + if viol_end { self.end_tokens.len() } else { 0 };
            let mut any = Vec::new();
            states::for_each(&any_bits, |s| any.push(s as u32));
            viol_ranges.shrink_to_fit();
            rows.push(StateRow {
                any,
                any_bits,
                viol_ranges,
                viol_end,
                viol_count,
                viol_rules,
            });
        }
        rows
    }

    /// The row of one state by one walk of the trie from `q` (root subtrees through the memo
    /// of subtree walks), the way every row was built before the bulk lift. `new` uses it
    /// for the start state's row (the level-1 mask) so that the modules' rows are built only
    /// when a guard first needs them; the tests check the bulk rows against it.
    pub(crate) fn walk_row(&self, mi: usize, q: usize) -> StateRow {
        let l = &self.lifts[mi];
        let m = self.module(mi);
        let trie = &self.trie;
        let mut any_bits = vec![0u64; l.words];
        let mut viol_ranges: Vec<(u32, u32)> = Vec::new();
        let mut viol_rules: Vec<RuleIndex> = Vec::new();
        let mut viol_subs: Vec<Arc<SubWalk>> = Vec::new();
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
        for sub in &viol_subs {
            viol_ranges.extend_from_slice(&sub.viol);
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
        let viol_count = merged.iter().map(|&(a, b)| (b - a) as usize).sum::<usize>()
            + if viol_end { self.end_tokens.len() } else { 0 };
        let mut any = Vec::new();
        states::for_each(&any_bits, |s| any.push(s as u32));
        StateRow {
            any,
            any_bits,
            viol_ranges: merged,
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
                let r = tp.walk_row(mi, q);
                let at = format!("module {mi}, state {q}");
                assert_eq!(row.any, r.any, "ANY, {at}");
                assert_eq!(row.any_bits, r.any_bits, "ANY bits, {at}");
                assert_eq!(row.viol_ranges, r.viol_ranges, "violating ranges, {at}");
                assert_eq!(row.viol_end, r.viol_end, "end violates, {at}");
                assert_eq!(row.viol_count, r.viol_count, "violating count, {at}");
                assert_eq!(row.viol_rules, r.viol_rules, "rules (in walk order), {at}");
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
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let policy = ward_policy::PolicyBuilder::new()
            .compile_path(format!("{root}/policies/python"))
            .expect("the python pack compiles");
        let json = std::fs::read_to_string(format!("{root}/models/ward-tiny-code/tokenizer.json"))
            .expect("the 8k tokenizer is in the repository");
        let vocab = crate::vocab::from_tokenizer_json(&json).expect("tokenizer");
        let tp = TokenPolicy::new(Arc::new(policy), Arc::new(vocab));
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
