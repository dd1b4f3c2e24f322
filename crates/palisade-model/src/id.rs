//! Typed indexes. The state numbers its pods and namespaces, an engine its classes and policies; an
//! [`Id<T>`] says which list it numbers, so a class can never be taken for a pod, and an
//! [`IdVec<T, V>`] (per-`T` data) can only be indexed by an `Id<T>`.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

/// The position of a `T` in the list that numbers them. `u32`: half the size of `usize`, and a
/// cluster's pods, classes and policies are far fewer than 2³².
pub struct Id<T> {
    index: u32,
    of: PhantomData<fn() -> T>,
}

impl<T> Id<T> {
    /// The id at `index`.
    ///
    /// # Panics
    /// If `index` does not fit 32 bits: the lists are bounded far below (`--max-pods`).
    #[inline]
    pub fn new(index: usize) -> Id<T> {
        let index = u32::try_from(index).expect("fewer than 2^32 items");
        Id {
            index,
            of: PhantomData,
        }
    }

    /// The position it stands for.
    #[inline]
    pub fn index(self) -> usize {
        self.index as usize
    }
}

// Derives would require `T` itself to be `Copy`, `Eq`…; an id is all of these whatever it numbers.
impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Id<T> {}
impl<T> PartialEq for Id<T> {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}
impl<T> Eq for Id<T> {}
impl<T> PartialOrd for Id<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Id<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.index.cmp(&other.index)
    }
}
impl<T> Hash for Id<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.index.hash(state)
    }
}
impl<T> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = std::any::type_name::<T>().rsplit("::").next().unwrap_or("");
        write!(f, "{kind}#{}", self.index)
    }
}

/// Per-`T` data, indexed by [`Id<T>`].
pub struct IdVec<T, V> {
    items: Vec<V>,
    of: PhantomData<fn() -> T>,
}

impl<T, V> IdVec<T, V> {
    /// An empty one.
    pub fn new() -> Self {
        Vec::new().into()
    }

    /// An empty one with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Vec::with_capacity(n).into()
    }

    /// Appends `value`; its id.
    pub fn push(&mut self, value: V) -> Id<T> {
        self.items.push(value);
        Id::new(self.items.len() - 1)
    }

    /// Puts `value` at `id`, moving those from `id` on one up.
    pub fn insert(&mut self, id: Id<T>, value: V) {
        self.items.insert(id.index(), value);
    }

    /// Takes the value at `id` out, moving those after it one down.
    pub fn remove(&mut self, id: Id<T>) -> V {
        self.items.remove(id.index())
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The value of `id`, if it is in range.
    pub fn get(&self, id: Id<T>) -> Option<&V> {
        self.items.get(id.index())
    }

    /// The values, in id order.
    pub fn iter(&self) -> std::slice::Iter<'_, V> {
        self.items.iter()
    }

    /// The values, in id order, to change.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, V> {
        self.items.iter_mut()
    }

    /// The values with their ids.
    pub fn iter_enumerated(&self) -> impl DoubleEndedIterator<Item = (Id<T>, &V)> + '_ {
        (self.items.iter().enumerate()).map(|(i, v)| (Id::new(i), v))
    }

    /// Every id, in order.
    pub fn ids(&self) -> impl DoubleEndedIterator<Item = Id<T>> {
        (0..self.items.len()).map(Id::new)
    }

    /// The values, in id order.
    pub fn as_slice(&self) -> &[V] {
        &self.items
    }
}

impl<T, V> Default for IdVec<T, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, V: Clone> Clone for IdVec<T, V> {
    fn clone(&self) -> Self {
        self.items.clone().into()
    }
}

impl<T, V: PartialEq> PartialEq for IdVec<T, V> {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}
impl<T, V: Eq> Eq for IdVec<T, V> {}

impl<T, V: fmt::Debug> fmt::Debug for IdVec<T, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.items.fmt(f)
    }
}

impl<T, V> From<Vec<V>> for IdVec<T, V> {
    fn from(items: Vec<V>) -> Self {
        IdVec {
            items,
            of: PhantomData,
        }
    }
}

impl<T, V> FromIterator<V> for IdVec<T, V> {
    fn from_iter<I: IntoIterator<Item = V>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<V>>().into()
    }
}

impl<'a, T, V> IntoIterator for &'a IdVec<T, V> {
    type Item = &'a V;
    type IntoIter = std::slice::Iter<'a, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<T, V> Index<Id<T>> for IdVec<T, V> {
    type Output = V;
    #[inline]
    fn index(&self, id: Id<T>) -> &V {
        &self.items[id.index()]
    }
}

impl<T, V> IndexMut<Id<T>> for IdVec<T, V> {
    #[inline]
    fn index_mut(&mut self, id: Id<T>) -> &mut V {
        &mut self.items[id.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pod;

    #[test]
    fn ids_index_their_own_list_and_print_what_they_number() {
        let mut pods: IdVec<Pod, &str> = IdVec::new();
        let a = pods.push("a");
        let b = pods.push("b");
        assert_eq!((pods[a], pods[b]), ("a", "b"));
        assert!(a < b && a != b);
        assert_eq!(pods.ids().collect::<Vec<_>>(), [a, b]);
        assert_eq!(pods.iter_enumerated().last(), Some((b, &"b")));
        assert_eq!(format!("{b:?}"), "Pod#1");
        assert_eq!(pods.get(Id::new(2)), None);
    }
}
