//! Building the token rows of automaton states: the bulk lift over the token DAG
//! (`TokenPolicy::bulk_rows`, every row of a module at once) and the walk of the trie from
//! one state (`TokenPolicy::walk_row`, the reference it is checked against).

use super::*;

/// Modules whose state sets have at most this many `u64` words keep the bulk lift's
/// reached sets as bitsets.
pub(super) const DENSE_WORDS: usize = 8;

/// Root subtrees with fewer nodes than this are walked in place when a row is built; larger
/// ones through the memo of subtree walks.
pub(super) const SMALL_SUBTREE: usize = 64;

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
    pub(super) viol_ranges: Vec<(u32, u32)>,
    /// End-of-text tokens violate from this state (a pending match completes at the end).
    pub(super) viol_end: bool,
    /// Number of violating tokens.
    pub(crate) viol_count: usize,
    /// Rules completed by some token from this state.
    pub(crate) viol_rules: Vec<RuleIndex>,
}

impl StateRow {
    /// A row from its successors (as the sorted list `any` and the bitset `any_bits`) and its
    /// violations; the number of violating tokens is derived (`end_tokens`: how many end
    /// tokens the vocabulary has, counted when `viol_end`).
    pub(super) fn new(
        any: Vec<u32>,
        any_bits: Vec<u64>,
        viol_ranges: Vec<(u32, u32)>,
        viol_end: bool,
        viol_rules: Vec<RuleIndex>,
        end_tokens: usize,
    ) -> StateRow {
        let viol_count = viol_ranges
            .iter()
            .map(|&(a, b)| (b - a) as usize)
            .sum::<usize>()
            + if viol_end { end_tokens } else { 0 };
        StateRow {
            any,
            any_bits,
            viol_ranges,
            viol_end,
            viol_count,
            viol_rules,
        }
    }

    /// [`StateRow::new`] with the successor list read off the bitset.
    fn from_bits(
        any_bits: Vec<u64>,
        viol_ranges: Vec<(u32, u32)>,
        viol_end: bool,
        viol_rules: Vec<RuleIndex>,
        end_tokens: usize,
    ) -> StateRow {
        let mut any = Vec::new();
        states::for_each(&any_bits, |s| any.push(s as u32));
        StateRow::new(any, any_bits, viol_ranges, viol_end, viol_rules, end_tokens)
    }

    /// The tokens that complete a violation (unsorted), given the trie's token order and
    /// the end tokens.
    pub(super) fn violating(&self, order: &[u32], end_tokens: &[u32]) -> Vec<u32> {
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
    pub(super) fn memory_bytes(&self) -> usize {
        (self.any.capacity() + self.viol_rules.capacity()) * 4
            + self.viol_ranges.capacity() * 8
            + self.any_bits.capacity() * 8
    }
}

/// The result of walking one subtree of the token trie (below a child of the root) from
/// one state: states reached by its tokens, its violating token ranges and their rules.
#[derive(Debug)]
pub(crate) struct SubWalk {
    pub(super) reached: Vec<u32>,
    pub(super) viol: Vec<(u32, u32)>,
    pub(super) rules: Vec<RuleIndex>,
}

/// The states sorted by their successor under one byte class, and the runs: (successor,
/// index of its first state).
pub(super) type Groups = (Vec<u32>, Vec<(u32, u32)>);

/// Hash-consed sets of states for the bulk walk: id 0 is the empty set, ids `1..=ns` the
/// singletons, larger ids sorted sets of two or more states; unions are memoized.
pub(super) struct ReachedSets {
    pub(super) ns: u32,
    /// `0..ns`, so a singleton is a slice of it.
    pub(super) singles: Vec<u32>,
    /// Sets of two or more states (id `ns + k` is list `k`).
    pub(super) sets: Lists<u32>,
    pub(super) unions: HashMap<(u32, u32), u32, BuildHasherDefault<FxHasher>>,
    pub(super) scratch: Vec<u32>,
}

impl ReachedSets {
    const EMPTY: u32 = 0;

    pub(super) fn new(ns: usize) -> ReachedSets {
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
    pub(super) fn single(s: u32) -> u32 {
        s + 1
    }

    /// The states of set `id`, sorted.
    #[inline]
    pub(super) fn elements(&self, id: u32) -> &[u32] {
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
    pub(super) fn union(&mut self, a: u32, b: u32) -> u32 {
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
pub(super) trait Word: Copy + Eq {
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
pub(super) fn hash_words<T: Word>(v: &[T]) -> u64 {
    let mut h = v.len() as u64;
    for &x in v {
        h = (h.rotate_left(5) ^ x.word()).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    h
}

/// Hash-consed lists (id 0 is the empty list).
pub(super) struct Lists<T> {
    pub(super) lists: Vec<Box<[T]>>,
    /// Hash → the latest list with that hash; `chain` links earlier ones.
    pub(super) heads: HashMap<u64, u32, BuildHasherDefault<FxHasher>>,
    pub(super) chain: Vec<u32>,
}

impl<T: Word> Lists<T> {
    pub(super) fn new() -> Lists<T> {
        Lists {
            lists: vec![Box::from([])],
            heads: HashMap::default(),
            chain: vec![0],
        }
    }

    /// The id of list `v`.
    #[inline]
    pub(super) fn intern(&mut self, v: &[T]) -> u32 {
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
    pub(super) fn get(&self, id: u32) -> &[T] {
        &self.lists[id as usize]
    }
}

/// Appends a token range after the sorted ranges `v`, merging it with an adjacent last one.
#[inline]
pub(super) fn push_range(v: &mut Vec<(u32, u32)>, r: (u32, u32)) {
    match v.last_mut() {
        Some(last) if last.1 >= r.0 => last.1 = last.1.max(r.1),
        _ => v.push(r),
    }
}

/// Adds the rules not yet in `v`, keeping first-met order.
#[inline]
pub(super) fn add_rules(v: &mut Vec<RuleIndex>, rules: &[RuleIndex]) {
    for &r in rules {
        if !v.contains(&r) {
            v.push(r);
        }
    }
}

impl TokenPolicy {
    /// The walk of the subtree below root child `k1` entered in state `s1` (memoized: the
    /// result does not depend on the state the token started from).
    pub(super) fn subtree(&self, mi: usize, k1: usize, s1: StateId) -> Arc<SubWalk> {
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
    pub(super) fn walk_subtree(
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
    pub(super) fn bulk_rows(&self, mi: usize) -> Vec<StateRow> {
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
            viol_ranges.shrink_to_fit();
            rows.push(StateRow::from_bits(
                any_bits,
                viol_ranges,
                viol_end,
                viol_rules,
                self.end_tokens.len(),
            ));
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
        StateRow::from_bits(
            any_bits,
            merged,
            viol_end,
            viol_rules,
            self.end_tokens.len(),
        )
    }
}
