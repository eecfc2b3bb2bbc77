//! The series of one family: an insertion-ordered hash table.
//!
//! The series sit in a `Vec` in the order they were created (the order of the
//! exposition, stable from run to run), with an open-addressing index of `u32`
//! positions into it. Per series that is the handle (one pointer), about 6 bytes
//! of index, and the series itself. The 64-bit hash only picks a slot; a lookup
//! always compares the values.

use crate::metrics::family::Series;
use crate::metrics::key::{key_matches, read_u64, split_labels, words};

/// The series of a family and their index.
#[derive(Debug)]
pub(crate) struct SeriesTable<M> {
    label_count: usize,
    /// Every series, in creation order.
    pub(crate) entries: Vec<M>,
    /// Open addressing with linear probing: 0 is empty, `i + 1` points at `entries[i]`.
    /// The length is a power of two, at most three quarters full.
    slots: Vec<u32>,
    /// The family's hash seed.
    seed: [u64; 2],
}

impl<M: Series> SeriesTable<M> {
    pub(crate) fn new(label_count: usize, seed: [u64; 2]) -> Self {
        SeriesTable {
            label_count,
            entries: Vec::new(),
            slots: Vec::new(),
            seed,
        }
    }

    fn hash_key(&self, key: &[u8]) -> u64 {
        hash_parts(self.seed, split_labels(key, self.label_count))
    }

    /// The slot and the entry index of the series with these values.
    #[inline]
    pub(crate) fn find(&self, hash: u64, values: &[&str]) -> Option<(usize, usize)> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut pos = hash as usize & mask;
        loop {
            match self.slots[pos] {
                0 => return None,
                s => {
                    let i = s as usize - 1;
                    if key_matches(self.entries[i].key().labels(), values) {
                        return Some((pos, i));
                    }
                }
            }
            pos = (pos + 1) & mask;
        }
    }

    pub(crate) fn insert(&mut self, hash: u64, series: M) {
        if (self.entries.len() + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        if self.entries.len() == self.entries.capacity() {
            // Grow by a quarter rather than double: the spare capacity is paid per series.
            self.entries.reserve_exact(self.entries.len() / 4 + 4);
        }
        self.entries.push(series);
        let index = self.entries.len() as u32;
        self.place(hash, index);
    }

    fn place(&mut self, hash: u64, index: u32) {
        let mask = self.slots.len() - 1;
        let mut pos = hash as usize & mask;
        while self.slots[pos] != 0 {
            pos = (pos + 1) & mask;
        }
        self.slots[pos] = index;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(8);
        self.slots = vec![0; size];
        for i in 0..self.entries.len() {
            let hash = self.hash_key(self.entries[i].key().labels());
            self.place(hash, i as u32 + 1);
        }
    }

    pub(crate) fn remove(&mut self, hash: u64, values: &[&str]) -> bool {
        let Some((pos, index)) = self.find(hash, values) else {
            return false;
        };
        self.entries.remove(index);
        // Entries after the removed one moved down by one.
        for slot in &mut self.slots {
            if *slot as usize > index + 1 {
                *slot -= 1;
            }
        }
        // Backward-shift deletion keeps every probe chain unbroken, no tombstones.
        let mask = self.slots.len() - 1;
        let mut hole = pos;
        let mut next = (hole + 1) & mask;
        while self.slots[next] != 0 {
            let entry = self.slots[next] as usize - 1;
            let home = self.hash_key(self.entries[entry].key().labels()) as usize & mask;
            // The entry may fill the hole if its home is not inside (hole, next].
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                self.slots[hole] = self.slots[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[hole] = 0;
        true
    }
}

/// A keyed multiply-fold hash over the label values (each one ended by its length,
/// so the split between values counts): one 64x64->128-bit multiply per 16 bytes.
/// Fast on short strings, and seeded per family.
pub(crate) fn hash_parts<'a>(seed: [u64; 2], parts: impl Iterator<Item = &'a [u8]>) -> u64 {
    #[inline]
    fn fold(a: u64, b: u64) -> u64 {
        let product = u128::from(a) * u128::from(b);
        (product as u64) ^ ((product >> 64) as u64)
    }
    let mut h = seed[0];
    for part in parts {
        let n = part.len();
        let (a, b) = if n <= 16 {
            // Two words that together cover the part (overlapping when short).
            if n >= 8 {
                (read_u64(part), read_u64(&part[n - 8..]))
            } else {
                (words(part), 0)
            }
        } else {
            let mut i = 0;
            while i + 16 < n {
                h = fold(h ^ read_u64(&part[i..]), seed[1] ^ read_u64(&part[i + 8..]));
                i += 16;
            }
            (read_u64(&part[n - 16..]), read_u64(&part[n - 8..]))
        };
        h = fold(h ^ a, seed[1] ^ b) ^ n as u64;
    }
    fold(h, 0x9E37_79B9_7F4A_7C15)
}
