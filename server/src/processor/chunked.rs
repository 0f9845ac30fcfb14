//! A vector that grows in fixed-size chunks and never moves what it holds.
//!
//! The user table grows from nothing to hundreds of thousands of entries of about
//! 190 bytes. As a `Vec` every doubling allocated a fresh buffer, copied the whole
//! table into it (freshly zeroed pages from the kernel, then the copy) and freed the
//! old one: on the popular-posting bench that was 13 % of the applying thread. Here a
//! full chunk stays where it is and the next one is allocated at its final size, so
//! each entry is written once and the pages touched are the ones kept.
//!
//! [`ChunkedDeque`] does the same for a queue taken from the front (the photos kept
//! for the retention window). As a `VecDeque` each doubling copied every photo, and
//! the ring then wandered through the whole doubled buffer, so resident memory came
//! to the capacity (up to twice the photos kept) while the photos kept stayed
//! constant. Here chunks emptied at the front are freed and new ones taken at the
//! back: memory follows the photos kept.
//!
//! Both serialize as a plain sequence, exactly as the `Vec` or `VecDeque` they
//! replace, so checkpoints keep their format.

use std::collections::VecDeque;

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Entries per chunk (a power of two: an index splits with a shift and a mask).
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

pub struct ChunkedVec<T> {
    /// Every chunk but the last is full (`CHUNK` entries); each was allocated with
    /// room for exactly `CHUNK`.
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        ChunkedVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> ChunkedVec<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries there is room for without allocating.
    pub fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(i >> CHUNK_BITS)?
            .get_mut(i & (CHUNK - 1))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> + DoubleEndedIterator + Clone {
        self.into_iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks.iter_mut().flatten()
    }
}

/// `Flatten` does not know its length; the table does.
#[derive(Clone)]
pub struct Iter<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for Iter<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let v = self.inner.next()?;
        self.left -= 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: DoubleEndedIterator> DoubleEndedIterator for Iter<I> {
    fn next_back(&mut self) -> Option<I::Item> {
        let v = self.inner.next_back()?;
        self.left -= 1;
        Some(v)
    }
}

impl<I: Iterator> ExactSizeIterator for Iter<I> {}

impl<'a, T> IntoIterator for &'a ChunkedVec<T> {
    type Item = &'a T;
    type IntoIter = Iter<std::iter::Flatten<std::slice::Iter<'a, Vec<T>>>>;

    fn into_iter(self) -> Self::IntoIter {
        Iter {
            inner: self.chunks.iter().flatten(),
            left: self.len,
        }
    }
}

impl<T> Index<usize> for ChunkedVec<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<T> IndexMut<usize> for ChunkedVec<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<T> FromIterator<T> for ChunkedVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut v = ChunkedVec::new();
        for x in iter {
            v.push(x);
        }
        v
    }
}

/// Entries per chunk of a [`ChunkedDeque`]: smaller than the table's, since a part-used
/// chunk at each end is memory the queue holds beyond its entries (512 photos, 57 KB).
const DEQUE_CHUNK: usize = 512;

/// A queue in chunks of `DEQUE_CHUNK`: every chunk but the first and the last is full;
/// the first has lost entries from its front, the last is filling.
pub struct ChunkedDeque<T> {
    chunks: VecDeque<VecDeque<T>>,
    len: usize,
}

impl<T> Default for ChunkedDeque<T> {
    fn default() -> Self {
        ChunkedDeque {
            chunks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> ChunkedDeque<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Entries there is room for without allocating.
    pub fn capacity(&self) -> usize {
        self.chunks.iter().map(VecDeque::capacity).sum()
    }

    /// The chunk and the place in it of entry `i` (which must be below `len`).
    #[inline]
    fn locate(&self, i: usize) -> (usize, usize) {
        let first = self.chunks.front().map_or(0, VecDeque::len);
        if i < first {
            (0, i)
        } else {
            let j = i - first;
            (1 + j / DEQUE_CHUNK, j % DEQUE_CHUNK)
        }
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let (c, k) = self.locate(i);
        self.chunks.get(c)?.get(k)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let (c, k) = self.locate(i);
        self.chunks.get_mut(c)?.get_mut(k)
    }

    pub fn front(&self) -> Option<&T> {
        self.chunks.front()?.front()
    }

    pub fn push_back(&mut self, value: T) {
        match self.chunks.back_mut() {
            // Only the last chunk takes entries (the first too while it is the last).
            Some(last) if last.len() < DEQUE_CHUNK => last.push_back(value),
            _ => {
                let mut chunk = VecDeque::with_capacity(DEQUE_CHUNK);
                chunk.push_back(value);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let first = self.chunks.front_mut()?;
        let value = first.pop_front()?;
        if first.is_empty() {
            self.chunks.pop_front();
        }
        self.len -= 1;
        Some(value)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + Clone {
        self.chunks.iter().flatten()
    }
}

impl<T> Index<usize> for ChunkedDeque<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        self.get(i).expect("index within the deque")
    }
}

impl<T> IndexMut<usize> for ChunkedDeque<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        self.get_mut(i).expect("index within the deque")
    }
}

impl<T: Serialize> Serialize for ChunkedDeque<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for x in self.iter() {
            seq.serialize_element(x)?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ChunkedDeque<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ChunkedDeque<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = ChunkedDeque::default();
                while let Some(x) = seq.next_element()? {
                    v.push_back(x);
                }
                Ok(v)
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

impl<T: Serialize> Serialize for ChunkedVec<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for x in self.iter() {
            seq.serialize_element(x)?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ChunkedVec<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ChunkedVec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = ChunkedVec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(v)
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_iterates_and_serializes_as_a_vec_does() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let v: Vec<u64> = (0..n as u64).map(|i| i * 7 + 1).collect();
            let mut c: ChunkedVec<u64> = v.iter().copied().collect();
            assert_eq!(c.len(), n);
            assert_eq!(c.is_empty(), n == 0);
            assert!(c.capacity() >= n && c.capacity() <= n.div_ceil(CHUNK) * CHUNK);
            for (i, x) in v.iter().enumerate() {
                assert_eq!(c[i], *x);
                assert_eq!(c.get(i), Some(x));
            }
            assert_eq!(c.get(n), None);
            assert!(c.iter().copied().eq(v.iter().copied()));
            assert!(c.iter().rev().copied().eq(v.iter().rev().copied()));
            assert_eq!(c.iter().len(), n);
            // The same bytes as the Vec, both ways.
            let bytes = postcard::to_stdvec(&c).unwrap();
            assert_eq!(bytes, postcard::to_stdvec(&v).unwrap());
            let back: ChunkedVec<u64> = postcard::from_bytes(&bytes).unwrap();
            assert!(back.iter().eq(c.iter()));
            for x in c.iter_mut() {
                *x += 1;
            }
            if n > 1 {
                c[n - 1] = 0;
                *c.get_mut(0).unwrap() = 5;
                assert_eq!((c[0], c[n - 1]), (5, 0));
            }
        }
    }

    #[test]
    fn the_deque_matches_a_vecdeque_and_frees_what_it_pops() {
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut d: ChunkedDeque<u64> = ChunkedDeque::default();
        let mut next = 0u64;
        // Rounds of pushes and pops of different sizes: the front chunk is part used
        // in most of them, and the deque empties now and then.
        for round in 0..40usize {
            for _ in 0..(round * 997) % (3 * DEQUE_CHUNK) {
                model.push_back(next);
                d.push_back(next);
                next += 1;
            }
            for _ in 0..(round * 1_777) % (3 * DEQUE_CHUNK) {
                assert_eq!(d.pop_front(), model.pop_front());
            }
            assert_eq!(d.len(), model.len());
            assert_eq!(d.front(), model.front());
            for i in (0..model.len())
                .step_by(97)
                .chain(model.len().checked_sub(1))
            {
                assert_eq!(d.get(i), model.get(i));
                assert_eq!(d[i], model[i]);
            }
            assert_eq!(d.get(model.len()), None);
            assert!(d.iter().eq(model.iter()));
            // At most one chunk beyond what the entries need (a part-used front one).
            assert!(d.capacity() <= (model.len().div_ceil(DEQUE_CHUNK) + 1) * DEQUE_CHUNK);
            if let Some(x) = d.get_mut(0) {
                *x += 1_000_000;
                model[0] += 1_000_000;
            }
            let bytes = postcard::to_stdvec(&d).unwrap();
            assert_eq!(bytes, postcard::to_stdvec(&model).unwrap());
            let back: ChunkedDeque<u64> = postcard::from_bytes(&bytes).unwrap();
            assert!(back.iter().eq(model.iter()));
        }
    }
}
