//! The text tokens' byte trie (shared by every module) and its minimization to a DAG.

use super::rows::Lists;
use super::*;

/// A trie over the bytes of a vocabulary's text tokens, stored in pre-order (shared by every
/// module).
#[derive(Debug)]
pub(crate) struct TokenTrie {
    /// Byte read on the edge into the node.
    pub(super) byte: Vec<u8>,
    /// Depth of the node (1 for children of the root; tokens have at most
    /// [`crate::vocab::MAX_TOKEN_BYTES`] bytes).
    pub(super) depth: Vec<u16>,
    /// Index of the first node after this node's subtree.
    pub(super) skip: Vec<u32>,
    /// First entry in `order` of this node's subtree (own tokens first); one more entry at
    /// the end (`order.len()`).
    pub(super) lo: Vec<u32>,
    /// End (exclusive) of this node's own tokens in `order`.
    pub(super) own_end: Vec<u32>,
    /// Text token ids sorted by bytes.
    pub(super) order: Vec<u32>,
    pub(super) max_depth: usize,
    /// The children of the root (nodes of depth 1).
    pub(super) roots: Vec<u32>,
}

impl TokenTrie {
    pub(super) fn build(vocab: &Vocab) -> TokenTrie {
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

    pub(super) fn memory_bytes(&self) -> usize {
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
    pub(super) start: Vec<u32>,
    /// (byte, child node).
    pub(super) edges: Vec<(u8, u32)>,
    /// Per node: some token ends here.
    pub(super) fin: Vec<bool>,
    /// Per node: number of tokens ending here.
    pub(super) own: Vec<u32>,
    /// Per node: number of tokens below it, its own included.
    pub(super) size: Vec<u32>,
    /// The node of the empty prefix (the highest id: children always have smaller ids).
    pub(super) root: u32,
}

impl TokenDag {
    pub(super) fn build(trie: &TokenTrie) -> TokenDag {
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
    pub(super) fn num_nodes(&self) -> usize {
        self.fin.len()
    }

    /// The edges of node `u`.
    #[inline]
    pub(super) fn edges(&self, u: usize) -> &[(u8, u32)] {
        &self.edges[self.start[u] as usize..self.start[u + 1] as usize]
    }

    pub(super) fn memory_bytes(&self) -> usize {
        (self.start.capacity() + self.own.capacity() + self.size.capacity()) * 4
            + self.edges.capacity() * 8
            + self.fin.capacity()
    }
}
