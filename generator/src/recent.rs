//! Which photo a like or comment lands on: one of the last few thousand uploads, with
//! odds proportional to its owner's reach (followers^REACH_EXPONENT when posted) times a
//! recency decay (exponential in uploads since). A celebrity's photo thus draws
//! hundreds of times the engagement of a small account's, and every photo's fades.
//!
//! The odds live in a sum tree (`WeightedTreeIndex`) so sampling and updating are
//! O(log n). Weights are integers, which keeps the tree's subtraction-based updates
//! exact; the exponential decay is applied the other way round, as growth of new
//! weights (×2 per half-life), and the tree is rebuilt with a fresh epoch before the
//! growth could overflow.

use rand::Rng;
use rand_distr::weighted::WeightedTreeIndex;

use instabrand_shared::Millis;

/// Uploads kept reachable.
pub(crate) const RING: usize = 8_192;
/// Engagement grows as followers^REACH_EXPONENT: sub-linear, as measured like counts
/// grow more slowly than audiences.
pub(crate) const REACH_EXPONENT: f64 = 0.8;
/// Mean age, in uploads, of an engaged photo among equally popular ones.
const MEAN_AGE: f64 = 1_000.0;
/// Newest weights start at 2^EPOCH_BITS times their base, so photos a few half-lives
/// old keep some integer precision, and the epoch moves on after GROWTH_BITS more
/// half-lives: bases < 2^21, so weights stay < 2^(21 + 10 + 20) and the sum of the
/// most recent ones, which dominate it, stays far below 2^64.
const EPOCH_BITS: f64 = 10.0;
const GROWTH_BITS: f64 = 20.0;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RecentPhoto {
    pub owner: u32,
    pub created: Millis,
    /// Upload order, to remember who liked which photo.
    pub seq: u64,
    /// The owner's reach when the photo was posted, as an integer weight.
    base: u64,
}

pub(crate) struct RecentPhotos {
    /// Upload `seq` lives at `seq % RING`.
    photos: Vec<RecentPhoto>,
    odds: WeightedTreeIndex<u64>,
    epoch: u64,
    uploads: u64,
    half_life: f64,
    /// A photo's base odds are (followers + 1)^reach_exponent.
    reach_exponent: f64,
}

impl RecentPhotos {
    /// `reach_exponent`: [`REACH_EXPONENT`], or 0 for odds by recency alone (when uploads
    /// already come mostly from popular accounts).
    pub(crate) fn new(reach_exponent: f64) -> Self {
        RecentPhotos {
            reach_exponent,
            photos: Vec::with_capacity(RING),
            odds: WeightedTreeIndex::new(Vec::<u64>::new()).expect("an empty tree"),
            epoch: 0,
            uploads: 0,
            half_life: MEAN_AGE * std::f64::consts::LN_2,
        }
    }

    #[cfg(test)]
    fn uploads(&self) -> u64 {
        self.uploads
    }

    /// Records an upload by an owner who has `followers` followers.
    pub(crate) fn push(&mut self, owner: u32, created: Millis, followers: usize) -> RecentPhoto {
        let seq = self.uploads;
        self.uploads += 1;
        let base =
            (((followers + 1) as f64).powf(self.reach_exponent) * 16.0).min((1 << 21) as f64);
        let photo = RecentPhoto {
            owner,
            created,
            seq,
            base: base as u64,
        };
        if (seq - self.epoch) as f64 / self.half_life > GROWTH_BITS {
            self.epoch = seq;
            self.store(photo);
            self.rebuild();
        } else {
            let weight = self.weight(&photo);
            self.store(photo);
            let slot = (seq % RING as u64) as usize;
            let stored = if slot < self.odds.len() {
                self.odds.update(slot, weight)
            } else {
                self.odds.push(weight)
            };
            if stored.is_err() {
                // Cannot happen within the bounds above; recover rather than panic.
                self.epoch = seq;
                self.rebuild();
            }
        }
        photo
    }

    /// A recent photo, by reach and recency; `None` before the first upload.
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<RecentPhoto> {
        let slot = self.odds.try_sample(rng).ok()?;
        Some(self.photos[slot])
    }

    fn store(&mut self, photo: RecentPhoto) {
        let slot = (photo.seq % RING as u64) as usize;
        if slot < self.photos.len() {
            self.photos[slot] = photo;
        } else {
            self.photos.push(photo);
        }
    }

    fn weight(&self, photo: &RecentPhoto) -> u64 {
        let half_lives = (photo.seq as f64 - self.epoch as f64) / self.half_life;
        (photo.base as f64 * (EPOCH_BITS + half_lives).exp2()) as u64
    }

    fn rebuild(&mut self) {
        let weights: Vec<u64> = self.photos.iter().map(|p| self.weight(p)).collect();
        self.odds = WeightedTreeIndex::new(weights).expect("weights within bounds");
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_pcg::Pcg64Mcg;

    use super::*;

    #[test]
    fn nothing_is_sampled_before_the_first_upload() {
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        assert_eq!(RecentPhotos::new(REACH_EXPONENT).sample(&mut rng), None);
    }

    #[test]
    fn popular_and_recent_photos_draw_more_engagement_across_many_epochs() {
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        let mut recent = RecentPhotos::new(REACH_EXPONENT);
        // Owner 0 has 10,000 followers and posts one photo in 100; the rest have 5.
        for i in 0..100_000u64 {
            let celebrity = i % 100 == 0;
            let followers = if celebrity { 10_000 } else { 5 };
            recent.push(u32::from(!celebrity), i as Millis, followers);
        }
        let (mut celebrity, mut ages) = (0, 0.0);
        let n = 20_000;
        for _ in 0..n {
            let p = recent.sample(&mut rng).unwrap();
            celebrity += usize::from(p.owner == 0);
            ages += (recent.uploads() - 1 - p.seq) as f64;
        }
        // Reach ratio (10001/6)^0.8 ≈ 377 at 1:99 odds: about 79% of engagement.
        let share = celebrity as f64 / f64::from(n);
        assert!((0.7..0.88).contains(&share), "celebrity share {share}");
        let mean_age = ages / f64::from(n);
        assert!((700.0..1_300.0).contains(&mean_age), "mean age {mean_age}");
    }
}
