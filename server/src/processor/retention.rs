//! Retention in event time (docs/semantics.md, "Retention").
//!
//! Everything that grows with the stream hangs off photos: their likes and comments,
//! their places in profile feeds, home timelines, the map and the brand lists. A photo
//! is kept while its own time is at or after the *retention horizon*, the stream's
//! clock minute less `photo_retention_secs`; once the clock moves past it the photo
//! and everything pointing at it go together, in one pass a minute of event time
//! whose cost follows what expires. So memory is a function of users, follows,
//! readers and the retention window, never of how many events have been seen.
//!
//! Photos are numbered in arrival order, and arrival is event-time order (the aligner
//! upstream) but for late uploads: so the oldest photos are almost always the lowest
//! numbered, and expiry pops them from the front of a queue. The few uploads that
//! arrive out of time order are remembered apart (`late`), because they can pass the
//! horizon while photos numbered before them have not; those leave a hole (`None`)
//! in the queue that the front passes over later. After each pass the photos kept are
//! exactly those at or after the horizon, which is what lets every list drop its
//! expired ones by time (a prefix of each profile feed, the front of each timeline).

use std::collections::{BTreeSet, VecDeque};

use instabrand_shared::Millis;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use super::chunked::ChunkedDeque;
use super::{Photo, PhotoId, Processor, UserId};

/// Photos by number. A [`PhotoId`] is the photo's sequence number (counting every
/// photo ever stored) cut to 32 bits: ids stay stable while the photo is kept, and
/// since fewer than 2^32 photos are ever kept at once, the cut never makes two kept
/// photos alike (at 20,000 events/s the numbers wrap after about two weeks, and
/// nothing depends on them growing).
#[derive(Default, Serialize, Deserialize)]
pub struct PhotoStore {
    /// Sequence number of `slots[0]`.
    first_seq: u64,
    /// From `first_seq` on; `None` for a late photo that expired before the photos
    /// numbered ahead of it.
    slots: ChunkedDeque<Option<Photo>>,
    /// Photos kept (`slots` minus its holes).
    live: usize,
    /// Photos stored out of time order (older than a photo stored before them), with
    /// their times: the only ones that can pass the horizon while a lower-numbered
    /// photo has not.
    late: BTreeSet<(Millis, PhotoId)>,
    /// The newest photo time stored so far.
    newest: Millis,
}

impl PhotoStore {
    fn index(&self, id: PhotoId) -> Option<usize> {
        let i = id.0.wrapping_sub(self.first_seq as u32) as usize;
        (i < self.slots.len()).then_some(i)
    }

    pub fn get(&self, id: PhotoId) -> Option<&Photo> {
        self.slots.get(self.index(id)?)?.as_ref()
    }

    pub fn get_mut(&mut self, id: PhotoId) -> Option<&mut Photo> {
        let i = self.index(id)?;
        self.slots.get_mut(i)?.as_mut()
    }

    pub fn contains(&self, id: PhotoId) -> bool {
        self.get(id).is_some()
    }

    /// A photo that is kept; panics on an expired one (callers hold ids only of
    /// photos they just read, or of lists expiry keeps free of expired ones).
    pub fn at(&self, id: PhotoId) -> &Photo {
        self.get(id).expect("a photo that is kept")
    }

    /// The sequence number the next photo gets; every photo numbered before the first
    /// kept one has expired.
    pub fn first_live_seq(&self) -> u64 {
        self.first_seq
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Slots allocated (kept photos, holes and spare capacity).
    pub fn slot_capacity(&self) -> usize {
        self.slots.capacity()
    }

    pub fn late_len(&self) -> usize {
        self.late.len()
    }

    pub fn push(&mut self, photo: Photo) -> PhotoId {
        let seq = self.first_seq + self.slots.len() as u64;
        let id = PhotoId(seq as u32);
        if self.live > 0 && photo.created < self.newest {
            self.late.insert((photo.created, id));
        }
        self.newest = self.newest.max(photo.created);
        if self.live == 0 {
            self.newest = photo.created;
        }
        self.slots.push_back(Some(photo));
        self.live += 1;
        id
    }

    pub fn iter(&self) -> impl Iterator<Item = (PhotoId, &Photo)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((PhotoId((self.first_seq + i as u64) as u32), p.as_ref()?)))
    }

    /// Takes out every photo older than `horizon`, with its sequence number, in no
    /// particular order.
    fn expire(&mut self, horizon: Millis, gone: &mut Vec<(u64, PhotoId, Photo)>) {
        while let Some(&(t, id)) = self.late.first()
            && t < horizon
        {
            self.late.pop_first();
            if let Some(i) = self.index(id)
                && let Some(p) = self.slots[i].take()
            {
                self.live -= 1;
                gone.push((self.first_seq + i as u64, id, p));
            }
        }
        // Every late photo past the horizon is out: the front stops at the first kept
        // photo at or after it, and all numbered later are at or after it too.
        while let Some(front) = self.slots.front() {
            if front.as_ref().is_some_and(|p| p.created >= horizon) {
                break;
            }
            let id = PhotoId(self.first_seq as u32);
            if let Some(p) = self.slots.pop_front().flatten() {
                self.live -= 1;
                gone.push((self.first_seq, id, p));
            }
            self.first_seq += 1;
        }
    }
}

/// Generations per retention window: a generation goes when the horizon passes its
/// end, so what it holds outlives its photos by at most 1/16 of the window (a part
/// kept in generations stays within a few percent once the window has filled).
const GENS_PER_WINDOW: i64 = 16;

/// A generation's span when retention is off (nothing is dropped then).
const GEN_DEFAULT_MS: i64 = 3_600_000;

/// The span of a generation under a retention of `retention_ms`.
pub fn generation_span(retention_ms: i64) -> i64 {
    if retention_ms > 0 {
        (retention_ms / GENS_PER_WINDOW).max(1)
    } else {
        GEN_DEFAULT_MS
    }
}

/// Tables keyed by photo, split by photo time into generations that are dropped
/// whole when the horizon passes them: the photo index and the like set. Dropping a
/// table is cheap and leaves nothing behind, where removing each expiring photo's
/// entries one by one would leave tombstones that make a hash table double its size
/// days after the window has filled. A generation may still hold entries of photos
/// that expired in it; lookups never meet them, since an event whose photo is past
/// retention is dead-lettered before any lookup.
#[derive(Default, Serialize, Deserialize)]
pub struct Generations<T> {
    /// Event time each generation spans; set at the first entry and kept (a restart
    /// under another retention keeps the layout it has).
    span_ms: i64,
    /// Generation (photo time / span) of `gens[0]`.
    first_gen: i64,
    gens: VecDeque<T>,
}

impl<T: Default> Generations<T> {
    /// The table of photos of time `t` (created if need be).
    pub fn at_mut(&mut self, t: Millis, retention_ms: i64) -> &mut T {
        if self.span_ms <= 0 {
            self.span_ms = generation_span(retention_ms);
        }
        let g = t.div_euclid(self.span_ms);
        if self.gens.is_empty() {
            self.first_gen = g;
        }
        // A kept photo older than every generation so far (the first entries were of
        // newer photos): generations are added before. Never one already dropped:
        // its photos are past the horizon.
        while g < self.first_gen {
            self.gens.push_front(T::default());
            self.first_gen -= 1;
        }
        let i = (g - self.first_gen) as usize;
        while self.gens.len() <= i {
            self.gens.push_back(T::default());
        }
        &mut self.gens[i]
    }

    /// The table of photos of time `t`, if there is one.
    pub fn at(&self, t: Millis) -> Option<&T> {
        if self.span_ms <= 0 {
            return None;
        }
        let i = t.div_euclid(self.span_ms).checked_sub(self.first_gen)?;
        self.gens.get(usize::try_from(i).ok()?)
    }

    /// Drops the generations whose photos are all older than `horizon`.
    fn expire(&mut self, horizon: Millis) {
        while !self.gens.is_empty() && (self.first_gen + 1).saturating_mul(self.span_ms) <= horizon
        {
            self.gens.pop_front();
            self.first_gen += 1;
        }
    }

    pub fn tables(&self) -> impl Iterator<Item = &T> + '_ {
        self.gens.iter()
    }
}

/// (photo, liker) pairs of kept photos, so a repeated like counts once.
pub type LikeSets = Generations<FxHashSet<u64>>;

/// (owner, photo time) to photo, for the photos kept.
pub type PhotoIndex = Generations<FxHashMap<(UserId, Millis), PhotoId>>;

pub fn like_key(id: PhotoId, liker: UserId) -> u64 {
    u64::from(id.0) << 32 | u64::from(liker.0)
}

impl Processor {
    /// The retention horizon for a clock in `minute`: photos older than it are past
    /// retention. `Millis::MIN` when retention is off.
    pub(super) fn horizon_at(&self, minute: i64) -> Millis {
        let keep = self.cfg.photo_retention_secs;
        if keep <= 0 {
            return Millis::MIN;
        }
        (minute * instabrand_shared::time::MS_PER_MIN)
            .saturating_sub(keep.saturating_mul(instabrand_shared::time::MS_PER_SEC))
    }

    /// Whether a photo of time `t` is past retention now: it has expired, or would
    /// have if it had come.
    pub fn past_retention(&self, t: Millis) -> bool {
        t < self.retained_from
    }

    /// The retention horizon now: photos older than this are gone.
    pub fn retained_from(&self) -> Millis {
        self.retained_from
    }

    /// Moves the horizon to `horizon` and drops every photo older than it, with
    /// everything that points at it. Called once per minute of event time.
    pub(super) fn expire_photos(&mut self, horizon: Millis) {
        if horizon <= self.retained_from {
            return;
        }
        self.retained_from = horizon;
        let mut gone = Vec::new();
        self.photos.expire(horizon, &mut gone);
        let first_live = self.photos.first_live_seq();
        self.likes.expire(horizon);
        self.photo_index.expire(horizon);
        if gone.is_empty() {
            return;
        }
        let mut per_owner: FxHashMap<UserId, usize> = FxHashMap::default();
        // Late photos that left a hole behind the front: lists in id order hold them
        // further in than their front.
        let mut holes = false;
        let mut late_brands = Vec::new();
        for (seq, _, p) in &gone {
            *per_owner.entry(p.owner).or_default() += 1;
            self.sizes.photo_text -= p.link.len() as u64;
            self.sizes.comments -= p.recent_comments.len() as u64;
            self.sizes.comment_text -= p
                .recent_comments
                .iter()
                .map(|c| c.text.len() as u64)
                .sum::<u64>();
            if *seq >= first_live {
                holes = true;
                late_brands.extend(p.brands.iter().copied());
            }
        }
        // A profile feed is sorted by time and every photo older than the horizon
        // has gone: the expired ones are exactly its first few.
        for (owner, n) in per_owner {
            let list = &mut self.users[owner.0 as usize].photos;
            debug_assert!(list[..n].iter().all(|p| !self.photos.contains(*p)));
            list.drain(..n);
        }
        // The map and brand lists are in id order: expired photos at their front, but
        // for late ones, which leave a hole further in.
        let photos = &self.photos;
        let drop_front = |list: &mut VecDeque<PhotoId>| {
            while list.front().is_some_and(|p| !photos.contains(*p)) {
                list.pop_front();
            }
        };
        drop_front(&mut self.recent_photos);
        for b in &mut self.brands {
            drop_front(&mut b.recent_photos);
        }
        if holes {
            self.recent_photos.retain(|p| photos.contains(*p));
            late_brands.sort_unstable();
            late_brands.dedup();
            for b in late_brands {
                self.brands[b.0 as usize]
                    .recent_photos
                    .retain(|p| photos.contains(*p));
            }
        }
        self.expire_timelines(horizon);
    }
}
