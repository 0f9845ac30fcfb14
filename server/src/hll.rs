//! HyperLogLog distinct counting for unique reach.
//!
//! Precision 14 (16,384 one-byte registers, standard error 0.81 %). A sketch starts
//! sparse — a sorted list of `(register, rank)` pairs — and turns dense once the list
//! would cost a sixteenth of the dense array, so the many small per-minute sketches stay
//! small. The estimate is Ertl's improved estimator ("New cardinality estimation
//! algorithms for HyperLogLog sketches", 2017), which is unbiased from tiny to huge
//! cardinalities without the empirical bias tables HLL++ needs.
//!
//! Why not a crate: we insert pre-computed 64-bit user hashes (computed once per user,
//! not once per insert), merge register arrays directly (a user's follower sketch into
//! a brand's bucket, buckets into windows, instances into each other), estimate through
//! `&self`, and will persist the raw registers; the crates we looked at
//! (`hyperloglogplus`, `cardinality-estimator`) hash for you, need `&mut self` to count,
//! or use the older bias-corrected estimator.

pub const P: u32 = 14;
pub const M: usize = 1 << P;
/// Sparse entries at most before turning dense (4 bytes each: 1/16 of dense). Small
/// enough that inserting into the sorted list stays cheap on the hot path.
const SPARSE_MAX: usize = M / 64;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Hll {
    /// Sorted by register index; each entry is `index << 8 | rank`.
    Sparse(Vec<u32>),
    Dense(Box<[u8]>),
}

impl Default for Hll {
    fn default() -> Self {
        Hll::Sparse(Vec::new())
    }
}

/// Mixes a value into a well-distributed 64-bit hash (SplitMix64's finaliser). User ids
/// are small integers; this spreads them over the whole space deterministically, so the
/// same events always give the same registers on every instance.
pub fn hash64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn split(hash: u64) -> (usize, u8) {
    let index = (hash >> (64 - P)) as usize;
    // Rank of the first 1 bit in the remaining 50 bits, 1-based; 51 if all zero.
    let rest = hash << P;
    let rank = if rest == 0 {
        64 - P + 1
    } else {
        rest.leading_zeros() + 1
    };
    (index, rank as u8)
}

impl Hll {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Hll::Sparse(v) => v.is_empty(),
            Hll::Dense(r) => r.iter().all(|&x| x == 0),
        }
    }

    /// Inserts a pre-hashed value (see [`hash64`]).
    #[inline]
    pub fn insert_hash(&mut self, hash: u64) {
        let (index, rank) = split(hash);
        self.set_max(index, rank);
    }

    #[inline]
    fn set_max(&mut self, index: usize, rank: u8) {
        match self {
            Hll::Dense(r) => {
                if r[index] < rank {
                    r[index] = rank;
                }
            }
            Hll::Sparse(v) => {
                let key = (index as u32) << 8;
                match v.binary_search_by(|e| (e & !0xff).cmp(&key)) {
                    Ok(i) => {
                        if ((v[i] & 0xff) as u8) < rank {
                            v[i] = key | rank as u32;
                        }
                    }
                    Err(i) => {
                        v.insert(i, key | rank as u32);
                        if v.len() > SPARSE_MAX {
                            self.densify();
                        }
                    }
                }
            }
        }
    }

    fn densify(&mut self) {
        if let Hll::Sparse(v) = self {
            let mut r = vec![0u8; M].into_boxed_slice();
            for e in v.iter() {
                r[(e >> 8) as usize] = (e & 0xff) as u8;
            }
            *self = Hll::Dense(r);
        }
    }

    /// Rebuilds `self` as a sparse sketch of exactly these hashes (reusing its buffer):
    /// a set of users encoded once, then merged into several sketches.
    pub fn assign_hashes(&mut self, hashes: impl Iterator<Item = u64>) {
        let mut v = match std::mem::take(self) {
            Hll::Sparse(mut v) => {
                v.clear();
                v
            }
            Hll::Dense(_) => Vec::new(),
        };
        v.extend(hashes.map(|h| {
            let (index, rank) = split(h);
            (index as u32) << 8 | rank as u32
        }));
        v.sort_unstable();
        // Equal indexes sit together with ranks ascending: keep the last of each.
        v.dedup_by(|later, earlier| {
            if *later >> 8 == *earlier >> 8 {
                *earlier = *later;
                true
            } else {
                false
            }
        });
        *self = Hll::Sparse(v);
        if matches!(self, Hll::Sparse(v) if v.len() > SPARSE_MAX) {
            self.densify();
        }
    }

    /// Union: afterwards `self` estimates the distinct count of both.
    pub fn merge(&mut self, other: &Hll) {
        match other {
            Hll::Sparse(o) => {
                if let (Hll::Sparse(v), true) = (&*self, o.len() > 64) {
                    // Merge two sorted lists in one pass rather than `o.len()` inserts.
                    let merged = merge_sparse(v, o);
                    *self = Hll::Sparse(merged);
                    if matches!(self, Hll::Sparse(v) if v.len() > SPARSE_MAX) {
                        self.densify();
                    }
                } else {
                    for e in o {
                        self.set_max((e >> 8) as usize, (e & 0xff) as u8);
                    }
                }
            }
            Hll::Dense(o) => {
                self.densify();
                if let Hll::Dense(r) = self {
                    // Plain loop over equal-length slices: the compiler vectorises it.
                    for (a, b) in r.iter_mut().zip(o.iter()) {
                        *a = (*a).max(*b);
                    }
                }
            }
        }
    }

    /// Bytes held on the heap, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Hll::Sparse(v) => v.capacity() * 4,
            Hll::Dense(r) => r.len(),
        }
    }

    /// Estimated distinct count.
    pub fn estimate(&self) -> f64 {
        let q = 64 - P as usize; // rank values run 0..=q+1
        let mut hist = [0u32; 64];
        match self {
            Hll::Sparse(v) => {
                hist[0] = (M - v.len()) as u32;
                for e in v {
                    hist[(e & 0xff) as usize] += 1;
                }
            }
            Hll::Dense(r) => {
                for &x in r.iter() {
                    hist[x as usize] += 1;
                }
            }
        }
        ertl_estimate(&hist[..q + 2], q)
    }
}

fn merge_sparse(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (ka, kb) = (a[i] >> 8, b[j] >> 8);
        match ka.cmp(&kb) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i].max(b[j]));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Ertl's improved raw estimator over the register histogram `c[0..=q+1]`.
fn ertl_estimate(c: &[u32], q: usize) -> f64 {
    let m = M as f64;
    let mut z = m * tau(1.0 - c[q + 1] as f64 / m);
    for k in (1..=q).rev() {
        z = 0.5 * (z + c[k] as f64);
    }
    z += m * sigma(c[0] as f64 / m);
    let alpha_inf = 0.5 / std::f64::consts::LN_2;
    (alpha_inf * m * m / z).round()
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_old = z;
        z += x * y;
        y += y;
        if z == z_old {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_old = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == z_old {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(range: std::ops::Range<u64>) -> Hll {
        let mut h = Hll::new();
        for i in range {
            h.insert_hash(hash64(i));
        }
        h
    }

    fn rel_err(est: f64, exact: u64) -> f64 {
        (est - exact as f64).abs() / exact as f64
    }

    #[test]
    fn small_counts_are_near_exact() {
        assert_eq!(Hll::new().estimate(), 0.0);
        for n in [1u64, 2, 10, 100, 1000] {
            let e = sketch(0..n).estimate();
            // Linear counting: off by at most a collision or two at these sizes.
            assert!(
                (e - n as f64).abs() <= (n as f64 * 0.01).max(1.0),
                "n={n} estimate={e}"
            );
        }
    }

    #[test]
    fn estimates_stay_within_two_percent_across_the_range() {
        for n in [5_000u64, 20_000, 50_000, 200_000, 1_000_000] {
            let e = sketch(n * 7..n * 8).estimate();
            assert!(rel_err(e, n) < 0.02, "n={n} estimate={e}");
        }
    }

    #[test]
    fn a_batch_of_hashes_equals_inserting_them_one_by_one() {
        for n in [0u64, 5, 300, 5000] {
            let mut batch = Hll::new();
            batch.assign_hashes((0..n).chain(0..n / 2).map(hash64));
            assert_eq!(batch, sketch(0..n), "n={n}");
        }
    }

    #[test]
    fn repeated_inserts_change_nothing() {
        let mut a = sketch(0..5000);
        let before = a.clone();
        for i in 0..5000 {
            a.insert_hash(hash64(i));
        }
        assert_eq!(a, before);
    }

    #[test]
    fn merge_equals_the_sketch_of_the_union_in_any_representation() {
        let whole = sketch(0..30_000);
        for (x, y) in [
            (0..100, 100..30_000),
            (0..29_000, 29_000..30_000),
            (0..15_000, 10_000..30_000),
        ] {
            let mut a = sketch(x.clone());
            a.merge(&sketch(y.clone()));
            let mut b = sketch(y);
            b.merge(&sketch(x));
            assert_eq!(a.estimate(), whole.estimate());
            assert_eq!(b.estimate(), whole.estimate());
        }
        let mut small = sketch(0..100);
        small.merge(&sketch(80..200));
        assert!(matches!(small, Hll::Sparse(_)));
        assert_eq!(small, sketch(0..200));
    }
}
