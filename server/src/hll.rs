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

    /// Empties the sketch (a dense one gives its array back: most reuse is sparse).
    pub fn clear(&mut self) {
        match self {
            Hll::Sparse(v) => v.clear(),
            Hll::Dense(_) => *self = Hll::new(),
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

/// Lowest precision a [`Folded`] sketch goes to (16 registers, 26 % standard error).
pub const MIN_P: u8 = 4;

/// A sketch at any precision from [`MIN_P`] to [`P`], for history kept for months:
/// the p14 registers of an [`Hll`] folded down (`2^(14-p)` registers become one), so a
/// dense sketch costs `2^p` bytes instead of 16 KiB. Folding is exact: the folded
/// registers are those a sketch built at the lower precision from the same hashes
/// would have (see [`Folded::from_hashes`] and its test), so folded sketches merge
/// with each other and with live ones like any sketches of the same users. Merging
/// two precisions gives the lower one (what the union can still know).
///
/// Kept apart from [`Hll`] so the hot path's insert and merge stay at a constant
/// precision; history is written when a minute closes or an hour ages out, and read
/// by range queries.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Folded {
    p: u8,
    regs: Regs,
}

/// Equal when they hold the same registers at the same precision, sparse or dense.
impl PartialEq for Folded {
    fn eq(&self, other: &Self) -> bool {
        self.p == other.p && self.registers().eq(other.registers())
    }
}

impl Eq for Folded {}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Regs {
    /// Sorted by register index; each entry is `index << 8 | rank`. Kept until it
    /// would cost as much as the dense array (no hot inserts here, so no earlier cut).
    Sparse(Vec<u32>),
    Dense(Box<[u8]>),
}

/// Index and rank of `hash` at precision `p` (as [`split`] does at [`P`]).
#[inline]
fn split_at(hash: u64, p: u8) -> (u32, u8) {
    let p = p as u32;
    let index = (hash >> (64 - p)) as u32;
    let rest = hash << p;
    let rank = if rest == 0 {
        64 - p + 1
    } else {
        rest.leading_zeros() + 1
    };
    (index, rank as u8)
}

/// The register (index, rank) at precision `to` that register `index` with `rank` at
/// precision `from` folds into. The dropped low index bits are the hash bits just
/// after the new index: if any is set, the new rank counts the zeros before it;
/// if none is, the old rank continues after them.
#[inline]
fn fold_register(index: u32, rank: u8, from: u8, to: u8) -> (u32, u8) {
    let drop = (from - to) as u32;
    let low = index & ((1u32 << drop) - 1);
    let rank = if low == 0 {
        rank + drop as u8
    } else {
        (drop - (32 - low.leading_zeros()) + 1) as u8
    };
    (index >> drop, rank)
}

/// Dense registers at [`P`] folded to precision `to`: `set(index, rank)` for each
/// non-empty register at `to`, the same registers as [`fold_register`] of each source
/// register gives, taking the highest per target. Why not that per register: a minute
/// closing folds every busy brand's 16,384 registers into the day's rollup, and this
/// visits each group of 2^(P - to) once: the group's first register, if set, gives
/// the highest rank (its own plus the dropped bits); otherwise the first set one after
/// it does (the fewer leading bits its position in the group has, the higher).
fn fold_dense(r: &[u8], to: u8, mut set: impl FnMut(usize, u8)) {
    let drop = P as u8 - to;
    if drop == 0 {
        for (j, &k) in r.iter().enumerate() {
            if k != 0 {
                set(j, k);
            }
        }
        return;
    }
    for (j, group) in r.chunks_exact(1 << drop).enumerate() {
        let rank = if group[0] != 0 {
            group[0] + drop
        } else {
            match group.iter().position(|&k| k != 0) {
                Some(low) => drop + 1 - (usize::BITS - low.leading_zeros()) as u8,
                None => continue,
            }
        };
        set(j, rank);
    }
}

impl Folded {
    /// An empty sketch at precision `p` (clamped to `MIN_P..=P`).
    pub fn new(p: u8) -> Self {
        Folded {
            p: p.clamp(MIN_P, P as u8),
            regs: Regs::Sparse(Vec::new()),
        }
    }

    pub fn precision(&self) -> u8 {
        self.p
    }

    /// A sketch of exactly these hashes built at precision `p` (the reference that
    /// folding must equal; also for tests).
    pub fn from_hashes(p: u8, hashes: impl Iterator<Item = u64>) -> Self {
        let mut f = Folded::new(p);
        let p = f.p;
        f.set_many(hashes.map(|h| split_at(h, p)));
        f
    }

    /// `h` folded to precision `p` (or kept at 14 if `p` is 14).
    pub fn from_hll(h: &Hll, p: u8) -> Self {
        let mut f = Folded::new(p);
        f.merge_hll(h);
        f
    }

    fn threshold(&self) -> usize {
        (1usize << self.p) / 4
    }

    /// Sets each register to the max of itself and the given rank.
    fn set_many(&mut self, regs: impl Iterator<Item = (u32, u8)>) {
        match &mut self.regs {
            Regs::Dense(r) => {
                for (i, k) in regs {
                    let x = &mut r[i as usize];
                    *x = (*x).max(k);
                }
            }
            Regs::Sparse(v) => {
                let mut add: Vec<u32> = regs.map(|(i, k)| i << 8 | k as u32).collect();
                if add.is_empty() {
                    return;
                }
                add.sort_unstable();
                // Equal indexes sit together with ranks ascending: keep the last of each.
                add.dedup_by(|later, earlier| {
                    if *later >> 8 == *earlier >> 8 {
                        *earlier = *later;
                        true
                    } else {
                        false
                    }
                });
                *v = merge_sparse(v, &add);
                if v.len() > self.threshold() {
                    self.densify();
                }
            }
        }
    }

    fn densify(&mut self) {
        if let Regs::Sparse(v) = &self.regs {
            let mut r = vec![0u8; 1 << self.p].into_boxed_slice();
            for e in v {
                r[(e >> 8) as usize] = (e & 0xff) as u8;
            }
            self.regs = Regs::Dense(r);
        }
    }

    /// The non-empty registers as (index, rank).
    fn registers(&self) -> Box<dyn Iterator<Item = (u32, u8)> + '_> {
        match &self.regs {
            Regs::Sparse(v) => Box::new(v.iter().map(|e| (e >> 8, (e & 0xff) as u8))),
            Regs::Dense(r) => Box::new(
                r.iter()
                    .enumerate()
                    .filter(|(_, k)| **k != 0)
                    .map(|(i, k)| (i as u32, *k)),
            ),
        }
    }

    /// This sketch at precision `p` (no higher than its own): exact.
    pub fn fold(&self, p: u8) -> Folded {
        let p = p.clamp(MIN_P, self.p);
        if p == self.p {
            return self.clone();
        }
        let mut out = Folded::new(p);
        let from = self.p;
        out.set_many(self.registers().map(|(i, k)| fold_register(i, k, from, p)));
        out
    }

    /// Union with a live sketch, folded to this precision.
    pub fn merge_hll(&mut self, h: &Hll) {
        let to = self.p;
        match h {
            Hll::Sparse(v) => self.set_many(
                v.iter()
                    .map(|e| fold_register(e >> 8, (e & 0xff) as u8, P as u8, to)),
            ),
            Hll::Dense(r) => {
                // A dense source folds to at least as many registers as a dense target holds
                // sparse: go dense first and fold in place.
                self.densify();
                if let Regs::Dense(t) = &mut self.regs {
                    fold_dense(r, to, |j, k| t[j] = t[j].max(k));
                }
            }
        }
    }

    /// Union; the result has the lower of the two precisions.
    pub fn merge(&mut self, other: &Folded) {
        if other.p < self.p {
            *self = self.fold(other.p);
        }
        let to = self.p;
        let from = other.p;
        if let (Regs::Dense(a), Regs::Dense(b)) = (&mut self.regs, &other.regs)
            && from == to
        {
            for (x, y) in a.iter_mut().zip(b.iter()) {
                *x = (*x).max(*y);
            }
            return;
        }
        self.set_many(
            other
                .registers()
                .map(|(i, k)| fold_register(i, k, from, to)),
        );
    }

    pub fn is_empty(&self) -> bool {
        self.registers().next().is_none()
    }

    /// Bytes held on the heap, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        match &self.regs {
            Regs::Sparse(v) => v.capacity() * 4,
            Regs::Dense(r) => r.len(),
        }
    }

    /// Estimated distinct count; standard error about `1.04 / sqrt(2^p)`.
    pub fn estimate(&self) -> f64 {
        let m = 1usize << self.p;
        let q = 64 - self.p as usize;
        let mut hist = [0u32; 64];
        let mut set = 0usize;
        for (_, k) in self.registers() {
            hist[k as usize] += 1;
            set += 1;
        }
        hist[0] = (m - set) as u32;
        ertl_estimate_m(&hist[..q + 2], q, m)
    }
}

/// Ertl's improved raw estimator over the register histogram `c[0..=q+1]`.
fn ertl_estimate(c: &[u32], q: usize) -> f64 {
    ertl_estimate_m(c, q, M)
}

/// [`ertl_estimate`] for `m` registers.
fn ertl_estimate_m(c: &[u32], q: usize, m: usize) -> f64 {
    let m = m as f64;
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

    /// Folding p14 registers to a lower precision must give exactly the registers of a
    /// sketch built at that precision from the same hashes: from sparse and dense
    /// sketches, in one step or several, and through merges across precisions.
    #[test]
    fn a_folded_sketch_equals_one_built_at_the_lower_precision() {
        for n in [0u64, 1, 3, 40, 250, 3_000, 60_000] {
            let hashes = || (n * 3..n * 4).map(hash64);
            let live = sketch(n * 3..n * 4);
            for p in MIN_P..=P as u8 {
                let want = Folded::from_hashes(p, hashes());
                let got = Folded::from_hll(&live, p);
                assert_eq!(got.estimate(), want.estimate(), "n={n} p={p}");
                assert_eq!(
                    got.registers().collect::<Vec<_>>(),
                    want.registers().collect::<Vec<_>>(),
                    "n={n} p={p}"
                );
                // In steps: 14 -> 12 -> p.
                let stepped = Folded::from_hll(&live, 12.max(p)).fold(p);
                assert_eq!(
                    stepped.registers().collect::<Vec<_>>(),
                    want.registers().collect::<Vec<_>>(),
                    "n={n} p={p} in steps"
                );
            }
            assert_eq!(
                Folded::from_hll(&live, P as u8).estimate(),
                live.estimate(),
                "p14 kept as is"
            );
        }
        // Hashes whose bits after the index are all zero (the rank's ceiling).
        let edge = [0u64, 1 << 50, 1 << 49 | 1, u64::MAX, 0xFFFC_0000_0000_0000];
        let mut live = Hll::new();
        edge.iter().for_each(|&h| live.insert_hash(h));
        for p in MIN_P..=P as u8 {
            assert_eq!(
                Folded::from_hll(&live, p),
                Folded::from_hashes(p, edge.iter().copied()),
                "p={p}"
            );
        }
        // The same ceilings in a dense sketch, whose registers fold group by group.
        let many = || (0..30_000u64).map(hash64).chain(edge.iter().copied());
        let mut live = Hll::new();
        many().for_each(|h| live.insert_hash(h));
        assert!(matches!(live, Hll::Dense(_)));
        for p in MIN_P..=P as u8 {
            assert_eq!(
                Folded::from_hll(&live, p).registers().collect::<Vec<_>>(),
                Folded::from_hashes(p, many())
                    .registers()
                    .collect::<Vec<_>>(),
                "dense, p={p}"
            );
        }
    }

    #[test]
    fn merging_precisions_gives_the_lower_one_exactly() {
        let a = Folded::from_hll(&sketch(0..20_000), 12);
        let b = Folded::from_hll(&sketch(10_000..40_000), 10);
        let mut ab = a.clone();
        ab.merge(&b);
        assert_eq!(ab.precision(), 10);
        assert_eq!(ab, Folded::from_hashes(10, (0..40_000).map(hash64)));
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ba, ab);
        let mut c = Folded::new(11);
        c.merge_hll(&sketch(0..100));
        c.merge_hll(&sketch(50..30_000));
        assert_eq!(c, Folded::from_hashes(11, (0..30_000).map(hash64)));
        let e = c.estimate();
        assert!(rel_err(e, 30_000) < 3.0 * 1.04 / 45.25, "estimate {e}");
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
