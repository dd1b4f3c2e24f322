//! Ingress and egress, and data kept per direction.

use serde::Serialize;
use std::ops::{Index, IndexMut};

/// Traffic direction, seen from the pod a policy selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic into the selected pod.
    Ingress,
    /// Traffic out of the selected pod.
    Egress,
}

impl Direction {
    /// `ingress` or `egress`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// Both, ingress first.
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];
}

/// One `T` per direction, indexed by [`Direction`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PerDirection<T> {
    /// Into the pod.
    pub ingress: T,
    /// Out of the pod.
    pub egress: T,
}

impl<T> PerDirection<T> {
    /// `f` of each direction.
    pub fn from_fn(mut f: impl FnMut(Direction) -> T) -> PerDirection<T> {
        PerDirection {
            ingress: f(Direction::Ingress),
            egress: f(Direction::Egress),
        }
    }

    /// `f` of each value.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> PerDirection<U> {
        PerDirection {
            ingress: f(self.ingress),
            egress: f(self.egress),
        }
    }

    /// Each value with its direction, ingress first.
    pub fn iter(&self) -> impl Iterator<Item = (Direction, &T)> {
        [
            (Direction::Ingress, &self.ingress),
            (Direction::Egress, &self.egress),
        ]
        .into_iter()
    }
}

impl<T> Index<Direction> for PerDirection<T> {
    type Output = T;
    #[inline]
    fn index(&self, direction: Direction) -> &T {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

impl<T> IndexMut<Direction> for PerDirection<T> {
    #[inline]
    fn index_mut(&mut self, direction: Direction) -> &mut T {
        match direction {
            Direction::Ingress => &mut self.ingress,
            Direction::Egress => &mut self.egress,
        }
    }
}
