//! A fixed-size bit set over endpoint classes (or namespaces): the unit of work of the matrix.

/// A set of small integers `0..len`, one bit each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BitSet {
    words: Vec<u64>,
    len: usize,
}

impl BitSet {
    /// The empty set over `0..len`.
    pub fn new(len: usize) -> Self {
        BitSet {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// The full set over `0..len`.
    pub fn full(len: usize) -> Self {
        let mut s = BitSet {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        if len % 64 != 0 {
            if let Some(last) = s.words.last_mut() {
                *last = (1u64 << (len % 64)) - 1;
            }
        }
        s
    }

    /// Number of possible members.
    pub fn capacity(&self) -> usize {
        self.len
    }

    /// Adds `i`.
    pub fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    /// Removes `i`.
    pub fn remove(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }

    /// True if `i` is a member.
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// Keeps only members also in `other`.
    pub fn intersect_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    /// True if some member is also in `other`.
    pub fn intersects(&self, other: &BitSet) -> bool {
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
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + bit)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_operations() {
        let mut a = BitSet::new(130);
        assert!(a.is_empty());
        a.insert(0);
        a.insert(129);
        assert!(a.contains(129) && !a.contains(128));
        let mut b = BitSet::new(130);
        b.insert(5);
        b.union_with(&a);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 5, 129]);
        b.intersect_with(&a);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 129]);
        let f = BitSet::full(130);
        assert!(f.is_full() && f.contains(129));
        assert_eq!(f.iter().count(), 130);
        assert!(!b.is_full());
        let mut c = BitSet::new(130);
        c.insert(64);
        assert!(!c.intersects(&b));
        c.insert(129);
        assert!(c.intersects(&b));
        c.remove(129);
        c.remove(3);
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![64]);
    }
}
