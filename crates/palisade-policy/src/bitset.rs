//! A fixed-size bit set over endpoint classes (or namespaces, or ipBlocks): the unit of work of the
//! matrix.

use palisade_model::Id;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

/// A set of the ids `0..len` of `T`s, one bit each.
pub struct BitSet<T> {
    words: Vec<u64>,
    len: usize,
    of: PhantomData<fn() -> T>,
}

// Derives would require `T` itself to be `Clone`, `Eq`…
impl<T> Clone for BitSet<T> {
    fn clone(&self) -> Self {
        BitSet {
            words: self.words.clone(),
            len: self.len,
            of: PhantomData,
        }
    }
}
impl<T> PartialEq for BitSet<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.len, &self.words) == (other.len, &other.words)
    }
}
impl<T> Eq for BitSet<T> {}
impl<T> Hash for BitSet<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.len, &self.words).hash(state)
    }
}
impl<T> fmt::Debug for BitSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<T> BitSet<T> {
    /// The empty set over `0..len`.
    pub fn new(len: usize) -> Self {
        BitSet {
            words: vec![0; len.div_ceil(64)],
            len,
            of: PhantomData,
        }
    }

    /// The full set over `0..len`.
    pub fn full(len: usize) -> Self {
        let mut s = BitSet::new(len);
        s.fill();
        s
    }

    /// Adds every possible member.
    pub fn fill(&mut self) {
        self.words.fill(u64::MAX);
        if !self.len.is_multiple_of(64) {
            if let Some(last) = self.words.last_mut() {
                *last = (1u64 << (self.len % 64)) - 1;
            }
        }
    }

    /// Removes every member.
    pub fn clear(&mut self) {
        self.words.fill(0);
    }

    /// The same members over `0..len` (those from `len` on dropped).
    pub fn resized(&self, len: usize) -> BitSet<T> {
        let mut out = BitSet::new(len);
        for (word, &w) in out.words.iter_mut().zip(&self.words) {
            *word = w;
        }
        if !len.is_multiple_of(64) {
            if let Some(last) = out.words.last_mut() {
                *last &= (1u64 << (len % 64)) - 1;
            }
        }
        out
    }

    /// True if this set, over more ids, has the members of `prefix` and none past it.
    pub fn extends(&self, prefix: &BitSet<T>) -> bool {
        if self.len == prefix.len {
            return self == prefix;
        }
        self.resized(prefix.len) == *prefix && self.iter().all(|id| id.index() < prefix.len)
    }

    /// Number of possible members.
    pub fn capacity(&self) -> usize {
        self.len
    }

    /// Adds `id`.
    pub fn insert(&mut self, id: Id<T>) {
        let i = id.index();
        self.words[i / 64] |= 1 << (i % 64);
    }

    /// Removes `id`.
    pub fn remove(&mut self, id: Id<T>) {
        let i = id.index();
        self.words[i / 64] &= !(1 << (i % 64));
    }

    /// True if `id` is a member.
    #[inline]
    pub fn contains(&self, id: Id<T>) -> bool {
        let i = id.index();
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &BitSet<T>) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// Keeps only members also in `other`.
    pub fn intersect_with(&mut self, other: &BitSet<T>) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    /// Adds every member of both `a` and `b`.
    pub fn union_intersection(&mut self, a: &BitSet<T>, b: &BitSet<T>) {
        for ((x, y), z) in self.words.iter_mut().zip(&a.words).zip(&b.words) {
            *x |= y & z;
        }
    }

    /// Removes every member of `other`.
    pub fn difference_with(&mut self, other: &BitSet<T>) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    /// True if some member is also in `other`.
    pub fn intersects(&self, other: &BitSet<T>) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    /// True if no member.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// True if every possible member is present.
    pub fn is_full(&self) -> bool {
        *self == BitSet::full(self.len)
    }

    /// Members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = Id<T>> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(Id::new(wi * 64 + bit))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item;

    fn ids(of: &BitSet<Item>) -> Vec<usize> {
        of.iter().map(Id::index).collect()
    }

    #[test]
    fn basic_operations() {
        let id = Id::<Item>::new;
        let mut a = BitSet::new(130);
        assert!(a.is_empty());
        a.insert(id(0));
        a.insert(id(129));
        assert!(a.contains(id(129)) && !a.contains(id(128)));
        let mut b = BitSet::<Item>::new(130);
        b.insert(id(5));
        b.union_with(&a);
        assert_eq!(ids(&b), vec![0, 5, 129]);
        b.intersect_with(&a);
        assert_eq!(ids(&b), vec![0, 129]);
        let f = BitSet::<Item>::full(130);
        assert!(f.is_full() && f.contains(id(129)));
        assert_eq!(f.iter().count(), 130);
        assert!(!b.is_full());
        let mut c = BitSet::<Item>::new(130);
        c.insert(id(64));
        assert!(!c.intersects(&b));
        c.insert(id(129));
        assert!(c.intersects(&b));
        c.remove(id(129));
        c.remove(id(3));
        assert_eq!(ids(&c), vec![64]);
    }

    #[test]
    fn resizing_keeps_the_members_that_fit_across_words() {
        let id = Id::<Item>::new;
        let mut a = BitSet::<Item>::new(70);
        for i in [0, 63, 64, 69] {
            a.insert(id(i));
        }
        let wider = a.resized(130);
        assert_eq!(ids(&wider), [0, 63, 64, 69]);
        assert!(wider.extends(&a) && !a.extends(&wider.resized(64)));
        let narrower = a.resized(64);
        assert_eq!(ids(&narrower), [0, 63]);
        assert_eq!(narrower.capacity(), 64);
        assert!(!a.extends(&narrower), "64 and 69 are past it");
        let mut extra = wider.clone();
        extra.insert(id(100));
        assert!(!extra.extends(&a), "a member past the prefix");
        assert!(a.extends(&a.clone()));
    }
}
