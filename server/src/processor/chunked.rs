//! A vector that grows in fixed-size chunks and never moves what it holds.
//!
//! The user table grows from nothing to hundreds of thousands of entries of about
//! 190 bytes. As a `Vec` every doubling allocated a fresh buffer, copied the whole
//! table into it (freshly zeroed pages from the kernel, then the copy) and freed the
//! old one: on the popular-posting bench that was 13 % of the applying thread. Here a
//! full chunk stays where it is and the next one is allocated at its final size, so
//! each entry is written once and the pages touched are the ones kept.
//!
//! It serializes as a plain sequence, exactly as the `Vec` it replaces, so checkpoints
//! keep their format.

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
}
