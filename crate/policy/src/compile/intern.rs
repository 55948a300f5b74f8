//! An interning table for sequences of `u32` (thread sets, product tuples) in one flat
//! arena with open addressing.

/// Interned sequences of `u32` (thread sets as sorted slices, product states as tuples) in
/// one flat arena, found by open addressing: no allocation per sequence and no `memcmp`
/// call per lookup. Sequence 0 is the empty one.
pub(crate) struct SetTable {
    items: Vec<u32>,
    starts: Vec<u32>,
    slots: Vec<u32>,
}

impl SetTable {
    pub(super) fn new() -> Self {
        let mut t = SetTable {
            items: Vec::new(),
            starts: vec![0],
            slots: vec![u32::MAX; 1 << 10],
        };
        t.intern(&[]);
        t
    }

    /// Number of sets.
    pub(super) fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Memory of the table, in bytes.
    pub(super) fn bytes(&self) -> usize {
        (self.items.len() + self.starts.len() + self.slots.len()) * 4
    }

    /// Set `id`.
    #[inline]
    pub(super) fn get(&self, id: u32) -> &[u32] {
        &self.items[self.starts[id as usize] as usize..self.starts[id as usize + 1] as usize]
    }

    #[inline]
    pub(super) fn hash(key: &[u32]) -> u64 {
        let mut h = key.len() as u64;
        for &x in key {
            h = (h.rotate_left(5) ^ x as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        h
    }

    /// The id of `key`, and whether it is new.
    pub(super) fn intern(&mut self, key: &[u32]) -> (u32, bool) {
        let mask = self.slots.len() - 1;
        let mut i = (Self::hash(key) >> 20) as usize & mask;
        loop {
            let id = self.slots[i];
            if id == u32::MAX {
                break;
            }
            let set = self.get(id);
            if set.len() == key.len() && set.iter().zip(key).all(|(a, b)| a == b) {
                return (id, false);
            }
            i = (i + 1) & mask;
        }
        let id = self.len() as u32;
        self.items.extend_from_slice(key);
        self.starts.push(self.items.len() as u32);
        self.slots[i] = id;
        if self.len() * 2 > self.slots.len() {
            let mut slots = vec![u32::MAX; self.slots.len() * 2];
            let mask = slots.len() - 1;
            for id in 0..self.len() as u32 {
                let mut j = (Self::hash(self.get(id)) >> 20) as usize & mask;
                while slots[j] != u32::MAX {
                    j = (j + 1) & mask;
                }
                slots[j] = id;
            }
            self.slots = slots;
        }
        (id, true)
    }
}
