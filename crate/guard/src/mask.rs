//! Token masks: `u32`-word bitsets over a vocabulary.

/// A set of token ids as a `u32`-word bitset (bit `t % 32` of word `t / 32`).
///
/// A set bit means "allowed". Bits at or beyond [`TokenMask::len`] are always clear.
///
/// # Example
/// ```
/// use ward_guard::TokenMask;
/// let mut m = TokenMask::new_full(5);
/// m.clear(3);
/// let mut logits = vec![1.0f32; 6];
/// m.apply_to(&mut logits);
/// assert_eq!(logits[3], f32::NEG_INFINITY);
/// assert_eq!(logits[5], f32::NEG_INFINITY); // beyond the vocabulary
/// assert_eq!(logits[0], 1.0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenMask {
    words: Vec<u32>,
    len: usize,
}

impl TokenMask {
    /// An empty mask (nothing allowed) over `len` tokens.
    pub fn new_empty(len: usize) -> Self {
        TokenMask {
            words: vec![0; len.div_ceil(32)],
            len,
        }
    }

    /// A full mask (everything allowed) over `len` tokens.
    pub fn new_full(len: usize) -> Self {
        let mut m = TokenMask {
            words: vec![u32::MAX; len.div_ceil(32)],
            len,
        };
        m.trim();
        m
    }

    fn trim(&mut self) {
        let r = self.len % 32;
        if r != 0 {
            if let Some(w) = self.words.last_mut() {
                *w &= (1u32 << r) - 1;
            }
        }
    }

    /// Number of tokens the mask ranges over (the vocabulary size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the mask ranges over no token at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw words (bit `t % 32` of word `t / 32` is token `t`).
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// True when token `t` is allowed (false for `t` out of range).
    #[inline]
    pub fn contains(&self, t: u32) -> bool {
        let t = t as usize;
        t < self.len && (self.words[t / 32] >> (t % 32)) & 1 == 1
    }

    /// Allows token `t` (ignored when out of range).
    #[inline]
    pub fn set(&mut self, t: u32) {
        let t = t as usize;
        if t < self.len {
            self.words[t / 32] |= 1 << (t % 32);
        }
    }

    /// Disallows token `t` (ignored when out of range).
    #[inline]
    pub fn clear(&mut self, t: u32) {
        let t = t as usize;
        if t < self.len {
            self.words[t / 32] &= !(1 << (t % 32));
        }
    }

    /// Disallows every token.
    pub fn clear_all(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }

    /// Allows every token.
    pub fn set_all(&mut self) {
        self.words.iter_mut().for_each(|w| *w = u32::MAX);
        self.trim();
    }

    /// Number of allowed tokens.
    pub fn count_allowed(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True when no token is allowed.
    pub fn is_all_clear(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Keeps only the tokens allowed by both masks (masks of different lengths: the
    /// shorter one decides, tokens beyond it are cleared).
    pub fn and_assign(&mut self, other: &TokenMask) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    /// Allows the tokens allowed by either mask.
    pub fn or_assign(&mut self, other: &TokenMask) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= *o;
        }
        self.trim();
    }

    /// Iterates over the allowed token ids, in increasing order.
    pub fn iter_allowed(&self) -> impl Iterator<Item = u32> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(i, &w)| set_bits(i, w))
    }

    /// Iterates over the disallowed token ids (below [`TokenMask::len`]), in increasing order.
    pub fn iter_disallowed(&self) -> impl Iterator<Item = u32> + '_ {
        let len = self.len;
        self.words.iter().enumerate().flat_map(move |(i, &w)| {
            let mut w = !w;
            if (i + 1) * 32 > len {
                let r = len - i * 32;
                w &= if r >= 32 { u32::MAX } else { (1u32 << r) - 1 };
            }
            set_bits(i, w)
        })
    }

    /// Sets every disallowed logit to negative infinity. Logits beyond the mask's
    /// length (a model vocabulary padded past the tokenizer's) are disallowed too.
    pub fn apply_to(&self, logits: &mut [f32]) {
        for (chunk, &w) in logits.chunks_mut(32).zip(&self.words) {
            if w == u32::MAX {
                continue;
            }
            if w == 0 {
                chunk.iter_mut().for_each(|x| *x = f32::NEG_INFINITY);
                continue;
            }
            for (b, x) in chunk.iter_mut().enumerate() {
                if (w >> b) & 1 == 0 {
                    *x = f32::NEG_INFINITY;
                }
            }
        }
        let covered = self.words.len() * 32;
        if logits.len() > covered {
            logits[covered..]
                .iter_mut()
                .for_each(|x| *x = f32::NEG_INFINITY);
        }
    }
}

/// Internal: bitsets over automaton states, `u64` words, stored flat.
pub(crate) mod states {
    /// Iterates the set bits of a word slice.
    #[inline]
    pub(crate) fn for_each(set: &[u64], mut f: impl FnMut(usize)) {
        for (i, &w) in set.iter().enumerate() {
            let mut w = w;
            while w != 0 {
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                f(i * 64 + b);
            }
        }
    }

    /// The smallest set bit.
    #[inline]
    pub(crate) fn first(set: &[u64]) -> Option<usize> {
        set.iter()
            .enumerate()
            .find(|(_, &w)| w != 0)
            .map(|(i, &w)| i * 64 + w.trailing_zeros() as usize)
    }

    /// Finds a set bit for which `f` returns true.
    #[inline]
    pub(crate) fn any(set: &[u64], mut f: impl FnMut(usize) -> bool) -> bool {
        for (i, &w) in set.iter().enumerate() {
            let mut w = w;
            while w != 0 {
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                if f(i * 64 + b) {
                    return true;
                }
            }
        }
        false
    }

    #[inline]
    pub(crate) fn contains(set: &[u64], s: usize) -> bool {
        (set[s / 64] >> (s % 64)) & 1 == 1
    }

    #[inline]
    pub(crate) fn insert(set: &mut [u64], s: usize) {
        set[s / 64] |= 1 << (s % 64);
    }

    #[inline]
    pub(crate) fn clear(set: &mut [u64], s: usize) {
        set[s / 64] &= !(1 << (s % 64));
    }

    #[inline]
    pub(crate) fn is_empty(a: &[u64]) -> bool {
        a.iter().all(|&x| x == 0)
    }

    #[inline]
    pub(crate) fn count(a: &[u64]) -> usize {
        a.iter().map(|x| x.count_ones() as usize).sum()
    }
}

/// The token ids of the set bits of word `i` (`w`), in increasing order.
fn set_bits(i: usize, mut w: u32) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        if w == 0 {
            None
        } else {
            let b = w.trailing_zeros();
            w &= w - 1;
            Some(i as u32 * 32 + b)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_and_trim() {
        let mut m = TokenMask::new_full(70);
        assert_eq!(m.count_allowed(), 70);
        m.clear(0);
        m.clear(69);
        m.clear(33);
        assert_eq!(m.iter_disallowed().collect::<Vec<_>>(), vec![0, 33, 69]);
        assert_eq!(m.iter_allowed().count(), 67);
        m.set(200);
        assert!(!m.contains(200));
        let mut e = TokenMask::new_empty(70);
        e.set(5);
        m.and_assign(&e);
        assert_eq!(m.iter_allowed().collect::<Vec<_>>(), vec![5]);
    }
}
