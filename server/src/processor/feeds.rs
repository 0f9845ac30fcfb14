//! Profile feeds and home timelines (what the original kept in Cassandra).
//!
//! A home timeline is the newest `timeline_cap` photos of the user and of everyone
//! they follow now, except accounts above the celebrity threshold, whose photos are
//! merged in when it is read (Twitter's hybrid model: one photo would otherwise touch
//! millions of timelines). It is a function of the follow graph and the photos, so it
//! can be kept two ways that read alike (same order, same cursors):
//!
//! - **Materialized**, for users who read theirs recently ([`Processor::note_reader`]):
//!   fan-out on write pushes each new photo into the timelines of the owner's active
//!   followers only, so an upload costs what its owner's *active* followers cost; a
//!   follow back-fills the followee's photos that belong in it, an unfollow removes
//!   them (and refills from the others when the timeline was full, since the cap may
//!   have pushed out photos that now belong in it again).
//! - **Built on read** for everyone else: a k-way merge of the newest photos of the
//!   people they follow, cut at `timeline_cap`, with nothing stored.
//!
//! Readers become inactive `reader_ttl_secs` of event time after their last read and
//! their timelines are dropped; at most `home_timelines_max` are kept.

use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::sync::Mutex;

use instabrand_shared::Millis;
use instabrand_shared::time::MS_PER_SEC;
use rustc_hash::{FxHashMap, FxHashSet};

use super::retention::PhotoStore;
use super::{PhotoId, Processor, UserId};

/// A materialized home timeline: (photo time, photo, owner), oldest first, at most `cap`
/// entries. The owner rides along (free: it fills the padding) so unfollow can filter
/// without touching every photo.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Timeline {
    entries: VecDeque<(Millis, PhotoId, UserId)>,
    /// The newest entry's (time, photo), or `UNKNOWN`. Fan-out appends to the
    /// timelines of all active followers, and reading each one's newest entry from its buffer
    /// was a cache miss per follower (three quarters of fan-out's time); beside the
    /// header, the common case only writes to the buffer. Rebuilt when unknown (after
    /// a restore: not stored).
    #[serde(skip, default = "unknown_newest")]
    newest: (Millis, PhotoId),
}

const UNKNOWN: (Millis, PhotoId) = (Millis::MIN, PhotoId(0));

fn unknown_newest() -> (Millis, PhotoId) {
    UNKNOWN
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            entries: VecDeque::new(),
            newest: UNKNOWN,
        }
    }
}

impl Timeline {
    pub fn insert(&mut self, t: Millis, id: PhotoId, owner: UserId, cap: usize) {
        let e = (t, id, owner);
        if self.newest == UNKNOWN {
            self.newest = self.entries.back().map_or(UNKNOWN, |b| (b.0, b.1));
        }
        // A photo id has one owner, so (time, photo) orders entries alone.
        if self.entries.is_empty() || self.newest < (t, id) {
            self.entries.push_back(e);
            self.newest = (t, id);
        } else {
            if self.entries.len() >= cap && self.entries.front().is_some_and(|f| e < *f) {
                return; // older than everything a full timeline keeps
            }
            let pos = self.entries.partition_point(|x| *x < e);
            if self.entries.get(pos) != Some(&e) {
                self.entries.insert(pos, e);
            }
        }
        while self.entries.len() > cap {
            self.entries.pop_front();
        }
        if self.entries.is_empty() {
            self.newest = UNKNOWN;
        }
    }

    /// Removes the owner's photos; how many went.
    pub fn remove_owner(&mut self, owner: UserId) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| e.2 != owner);
        self.newest = UNKNOWN;
        before - self.entries.len()
    }

    /// Adds entries given newest first (a followee's photos on follow): one sort and
    /// cut instead of an insertion each into the middle of the buffer.
    fn merge_newest_first(
        &mut self,
        newer: impl Iterator<Item = (Millis, PhotoId, UserId)>,
        cap: usize,
    ) {
        let mut all: Vec<_> = self.entries.drain(..).collect();
        let before = all.len();
        all.extend(newer.take(cap));
        if all.len() == before {
            self.entries = all.into();
            return;
        }
        all.sort_unstable();
        all.dedup();
        let keep = all.len().saturating_sub(cap);
        all.drain(..keep);
        self.entries = all.into();
        self.newest = UNKNOWN;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops the entries older than `horizon` (photos past retention): the oldest.
    fn expire_before(&mut self, horizon: Millis) {
        while self.entries.front().is_some_and(|e| e.0 < horizon) {
            self.entries.pop_front();
        }
        if self.entries.is_empty() {
            self.newest = UNKNOWN;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = (Millis, PhotoId)> + '_ {
        self.entries.iter().rev().map(|e| (e.0, e.1))
    }
}

/// Inserts into a profile feed kept oldest first (photos mostly arrive in order).
pub(super) fn insert_sorted(list: &mut Vec<PhotoId>, id: PhotoId, t: Millis, photos: &PhotoStore) {
    let key = |p: &PhotoId| (photos.at(*p).created, *p);
    if list.last().is_none_or(|l| key(l) < (t, id)) {
        list.push(id);
    } else {
        let pos = list.partition_point(|p| key(p) < (t, id));
        list.insert(pos, id);
    }
}

/// A position in a feed: items strictly older than it come next.
pub type Cursor = (Millis, PhotoId);

pub fn format_cursor(c: Cursor) -> String {
    format!("{}.{}", c.0, c.1.0)
}

pub fn parse_cursor(s: &str) -> Option<Cursor> {
    let (t, id) = s.split_once('.')?;
    Some((t.parse().ok()?, PhotoId(id.parse().ok()?)))
}

/// Who read their home timeline recently, and their materialized timelines.
///
/// None of it is in checkpoints: it is a cache of what the graph and the photos
/// determine, steered by reads, which are not events. A checkpoint therefore holds only
/// what the events made (so two runs over the same events checkpoint alike whoever read
/// what), and after a restart every reader is inactive until they read again, which
/// builds their timeline on read, the same as before.
#[derive(Default)]
pub struct HomeFeeds {
    /// Stream clock at each active reader's last read.
    last_read: FxHashMap<UserId, Millis>,
    /// The same, in expiry order.
    by_time: BTreeSet<(Millis, UserId)>,
    timelines: FxHashMap<UserId, Timeline>,
    /// For each account, the active readers who follow it (never the account itself):
    /// whom its uploads fan out to. A list, not a set: fan-out iterates it on every
    /// upload, expiry searches it rarely.
    fans: FxHashMap<UserId, Vec<UserId>>,
}

impl HomeFeeds {
    pub fn active_readers(&self) -> usize {
        self.last_read.len()
    }

    /// Entries of the materialized timelines, and the bytes they and the reader
    /// bookkeeping take (estimated from capacities): O(readers).
    pub(super) fn size(&self) -> (u64, u64) {
        let entry = std::mem::size_of::<(Millis, PhotoId, UserId)>() as u64;
        let mut entries = 0u64;
        let mut bytes = 0u64;
        for tl in self.timelines.values() {
            entries += tl.len() as u64;
            bytes += tl.entries.capacity() as u64 * entry;
        }
        let slots = |cap: usize, elem: usize| (cap as u64 * 8 / 7) * (elem as u64 + 1);
        bytes += slots(
            self.timelines.capacity(),
            std::mem::size_of::<(UserId, Timeline)>(),
        );
        bytes += slots(self.last_read.capacity(), 16) + self.by_time.len() as u64 * 40;
        bytes += slots(
            self.fans.capacity(),
            std::mem::size_of::<(UserId, Vec<UserId>)>(),
        );
        bytes += self
            .fans
            .values()
            .map(|f| f.capacity() as u64 * 4)
            .sum::<u64>();
        (entries, bytes)
    }

    fn remove_fan(&mut self, followed: UserId, reader: UserId) {
        if let Some(list) = self.fans.get_mut(&followed) {
            if let Some(i) = list.iter().position(|r| *r == reader) {
                list.swap_remove(i);
            }
            if list.is_empty() {
                self.fans.remove(&followed);
            }
        }
    }
}

/// Reads waiting to enter the processor: the REST and WebSocket handlers `note` who read
/// a home timeline, under the processor's read lock, and the pipeline thread, holding
/// the write lock before it applies a batch, moves them in with `drain_into`.
///
/// Why not mark readers from the read path directly: the processor is a deterministic
/// state machine behind a `RwLock`, and readers hold only the read lock. Taking the write
/// lock to record a read would make every feed request wait for the batch being
/// applied and hold back the pipeline and every other reader; interior mutability
/// inside the processor would let a concurrent read change state in the middle of a
/// batch. A small set beside it keeps reads lock-free with respect to the processor
/// (one short mutex, no allocation for a repeated reader) and makes reading an explicit
/// input, applied between batches in user order, like events. What the set changes is
/// only which timelines are materialized, never what any reader sees.
#[derive(Default)]
pub struct ReaderLog {
    users: Mutex<FxHashSet<UserId>>,
}

impl ReaderLog {
    /// At most this many distinct readers wait between two batches; more are dropped
    /// (they are read on build, as before, until they read again).
    pub const MAX_WAITING: usize = 65_536;

    pub fn note(&self, user: UserId) {
        let mut users = self.users.lock().expect("reader log poisoned");
        if users.len() < Self::MAX_WAITING {
            users.insert(user);
        }
    }

    /// Notes every waiting reader in the processor (in user order, so the outcome does
    /// not depend on the set's layout).
    pub fn drain_into(&self, p: &mut Processor) {
        let waiting = std::mem::take(&mut *self.users.lock().expect("reader log poisoned"));
        let mut users: Vec<UserId> = waiting.into_iter().collect();
        users.sort_unstable();
        for u in users {
            p.note_reader(u);
        }
    }
}

/// The photos of several users merged newest first: a heap holding each list's next
/// photo, so the first `n` cost O(lists + n log lists) however many photos each has.
struct NewestFirst<'a> {
    photos: &'a PhotoStore,
    /// Each user's photos, oldest first, and how many of them are still to come.
    lists: Vec<(&'a [PhotoId], usize)>,
    heap: BinaryHeap<(Cursor, usize)>,
}

impl<'a> NewestFirst<'a> {
    fn new(photos: &'a PhotoStore, lists: Vec<&'a [PhotoId]>) -> Self {
        let mut m = NewestFirst {
            photos,
            lists: lists.into_iter().map(|l| (l, l.len())).collect(),
            heap: BinaryHeap::new(),
        };
        for i in 0..m.lists.len() {
            m.push_next(i);
        }
        m
    }

    fn push_next(&mut self, i: usize) {
        let (list, left) = &mut self.lists[i];
        if *left > 0 {
            *left -= 1;
            let id = list[*left];
            self.heap.push(((self.photos.at(id).created, id), i));
        }
    }
}

impl Iterator for NewestFirst<'_> {
    type Item = Cursor;

    fn next(&mut self) -> Option<Cursor> {
        let (c, i) = self.heap.pop()?;
        self.push_next(i);
        Some(c)
    }
}

impl Processor {
    /// Records that `user` read their home timeline now (at the stream's clock): from
    /// here on it is materialized and fanned out to, until `reader_ttl_secs` of event
    /// time pass without another read. Called between batches (see [`ReaderLog`]).
    pub fn note_reader(&mut self, user: UserId) {
        if user.0 as usize >= self.users.len() || self.cfg.home_timelines_max == 0 {
            return;
        }
        let now = self.clock().unwrap_or(Millis::MIN);
        if let Some(before) = self.feeds.last_read.insert(user, now) {
            self.feeds.by_time.remove(&(before, user));
            self.feeds.by_time.insert((now, user));
            return;
        }
        // A new reader: room first (the least recent goes), then its timeline.
        while self.feeds.last_read.len() > self.cfg.home_timelines_max {
            let &(_, oldest) = self.feeds.by_time.first().expect("one entry per reader");
            self.forget_reader(oldest);
        }
        self.feeds.by_time.insert((now, user));
        self.materialize(user);
    }

    /// Drops the timelines of readers who have not read for `reader_ttl_secs`.
    pub(super) fn expire_readers(&mut self) {
        let Some(clock) = self.clock() else { return };
        let horizon = clock.saturating_sub(self.cfg.reader_ttl_secs.saturating_mul(MS_PER_SEC));
        while let Some(&(t, u)) = self.feeds.by_time.first()
            && t < horizon
        {
            self.forget_reader(u);
        }
    }

    fn forget_reader(&mut self, user: UserId) {
        let feeds = &mut self.feeds;
        if let Some(t) = feeds.last_read.remove(&user) {
            feeds.by_time.remove(&(t, user));
        }
        if feeds.timelines.remove(&user).is_some() {
            for f in &self.users[user.0 as usize].following {
                if *f != user {
                    self.feeds.remove_fan(*f, user);
                }
            }
        }
    }

    fn materialize(&mut self, user: UserId) {
        let tl = self.build_timeline(user);
        self.feeds.timelines.insert(user, tl);
        for f in &self.users[user.0 as usize].following {
            if *f != user {
                self.feeds.fans.entry(*f).or_default().push(user);
            }
        }
    }

    /// What the materialized timeline holds, from the graph and the photos.
    pub(super) fn build_timeline(&self, user: UserId) -> Timeline {
        let cap = self.cfg.timeline_cap;
        let photos = &self.photos;
        let entries: VecDeque<_> = self
            .sources_newest_first(user)
            .take(cap)
            .map(|(t, id)| (t, id, photos.at(id).owner))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let newest = entries.back().map_or(UNKNOWN, |e| (e.0, e.1));
        Timeline { entries, newest }
    }

    /// The photos of the user and of the non-celebrities they follow, newest first:
    /// what a materialized timeline holds, before its cap.
    fn sources_newest_first(&self, user: UserId) -> NewestFirst<'_> {
        let u = &self.users[user.0 as usize];
        let mut lists = vec![&u.photos[..]];
        lists.extend(
            u.following
                .iter()
                .filter(|f| **f != user && !self.is_celebrity(**f))
                .map(|f| &self.users[f.0 as usize].photos[..]),
        );
        NewestFirst::new(&self.photos, lists)
    }

    /// The materialized timeline, if the user reads it.
    pub fn materialized_timeline(&self, user: UserId) -> Option<&Timeline> {
        self.feeds.timelines.get(&user)
    }

    pub fn home_feeds(&self) -> &HomeFeeds {
        &self.feeds
    }

    /// Drops the entries of photos past retention from every materialized timeline:
    /// they are the oldest of each (O(readers) per expiry pass, a minute of event time
    /// at most).
    pub(super) fn expire_timelines(&mut self, horizon: Millis) {
        for tl in self.feeds.timelines.values_mut() {
            tl.expire_before(horizon);
        }
    }

    pub(super) fn fan_out(&mut self, owner: UserId, photo: PhotoId) {
        let t = self.photos.at(photo).created;
        let cap = self.cfg.timeline_cap;
        let celebrity = self.is_celebrity(owner);
        let HomeFeeds {
            timelines, fans, ..
        } = &mut self.feeds;
        if let Some(tl) = timelines.get_mut(&owner) {
            tl.insert(t, photo, owner, cap);
        }
        if celebrity {
            return;
        }
        for r in fans.get(&owner).into_iter().flatten() {
            if let Some(tl) = timelines.get_mut(r) {
                tl.insert(t, photo, owner, cap);
            }
        }
    }

    /// `follower` now follows `followed` (an edge that was not there).
    pub(super) fn home_feeds_followed(&mut self, follower: UserId, followed: UserId) {
        if follower != followed && self.feeds.timelines.contains_key(&follower) {
            self.feeds.fans.entry(followed).or_default().push(follower);
            if !self.is_celebrity(followed) {
                self.backfill(follower, followed);
            }
        }
        // Just became a celebrity: its photos leave the materialized timelines, to be
        // merged when read.
        if self.users[followed.0 as usize].followers.len() == self.cfg.celebrity_threshold + 1 {
            for r in self.feeds.fans.get(&followed).cloned().unwrap_or_default() {
                self.remove_from_timeline(r, followed);
            }
        }
    }

    /// `follower` no longer follows `followed` (an edge that was there).
    pub(super) fn home_feeds_unfollowed(&mut self, follower: UserId, followed: UserId) {
        if follower != followed && self.feeds.timelines.contains_key(&follower) {
            self.feeds.remove_fan(followed, follower);
            self.remove_from_timeline(follower, followed);
        }
        // No longer a celebrity: its photos are fanned out again, and back-filled now.
        if self.users[followed.0 as usize].followers.len() == self.cfg.celebrity_threshold {
            for r in self.feeds.fans.get(&followed).cloned().unwrap_or_default() {
                self.backfill(r, followed);
            }
        }
    }

    /// Adds the followee's photos that belong in the reader's materialized timeline.
    fn backfill(&mut self, reader: UserId, followed: UserId) {
        let cap = self.cfg.timeline_cap;
        let own = &self.users[followed.0 as usize].photos;
        let photos = &self.photos;
        if let Some(tl) = self.feeds.timelines.get_mut(&reader) {
            let newest = own
                .iter()
                .rev()
                .map(|p| (photos.at(*p).created, *p, followed));
            tl.merge_newest_first(newest, cap);
        }
    }

    /// Removes the owner's photos from the reader's materialized timeline. A full one
    /// may have pushed out photos of others that belong in it again: rebuilt then.
    fn remove_from_timeline(&mut self, reader: UserId, owner: UserId) {
        let cap = self.cfg.timeline_cap;
        let Some(tl) = self.feeds.timelines.get_mut(&reader) else {
            return;
        };
        let full = tl.len() >= cap;
        if tl.remove_owner(owner) > 0 && full {
            let rebuilt = self.build_timeline(reader);
            self.feeds.timelines.insert(reader, rebuilt);
        }
    }

    /// A page of the user's own photos, newest first.
    pub fn profile_page(
        &self,
        user: UserId,
        before: Option<Cursor>,
        limit: usize,
    ) -> (Vec<PhotoId>, Option<Cursor>) {
        let u = self.user(user);
        let items = u
            .photos
            .iter()
            .rev()
            .map(|p| (self.photos.at(*p).created, *p))
            .filter(|c| before.is_none_or(|b| *c < b));
        page(items, limit)
    }

    /// A page of the home timeline, newest first: the materialized entries, or the
    /// same built on read, merged with the recent photos of followed celebrities.
    pub fn timeline_page(
        &self,
        user: UserId,
        before: Option<Cursor>,
        limit: usize,
    ) -> (Vec<PhotoId>, Option<Cursor>) {
        let u = self.user(user);
        let older = |c: &Cursor| before.is_none_or(|b| *c < b);
        let mut items: Vec<Cursor> = match self.feeds.timelines.get(&user) {
            Some(tl) => tl.newest_first().filter(older).take(limit + 1).collect(),
            None => self
                .sources_newest_first(user)
                .take(self.cfg.timeline_cap)
                .filter(older)
                .take(limit + 1)
                .collect(),
        };
        for &c in &u.following {
            if !self.is_celebrity(c) {
                continue;
            }
            let cu = self.user(c);
            items.extend(
                cu.photos
                    .iter()
                    .rev()
                    .map(|p| (self.photos.at(*p).created, *p))
                    .filter(older)
                    .take(limit + 1),
            );
        }
        items.sort_unstable_by(|a, b| b.cmp(a));
        items.dedup();
        page(items.into_iter(), limit)
    }

    /// Whether the photo belongs in the user's home timeline (own, or followed owner);
    /// false once it is past retention.
    pub fn in_timeline_of(&self, user: UserId, photo: PhotoId) -> bool {
        let Some(owner) = self.photos.get(photo).map(|p| p.owner) else {
            return false;
        };
        owner == user || self.user(user).following.contains(&owner)
    }
}

fn page(items: impl Iterator<Item = Cursor>, limit: usize) -> (Vec<PhotoId>, Option<Cursor>) {
    let mut out = Vec::with_capacity(limit.min(64));
    let mut last = None;
    let mut more = false;
    for c in items {
        if out.len() == limit {
            more = true;
            break;
        }
        out.push(c.1);
        last = Some(c);
    }
    (out, if more { last } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timeline against a plain model (sorted, deduplicated, newest `cap` kept):
    /// in-order and late photos, repeats, unfollows, and a snapshot and restore, which
    /// forgets the newest entry kept beside the header.
    #[test]
    fn timeline_keeps_the_newest_cap_entries_in_order() {
        let cap = 20;
        let mut tl = Timeline::default();
        let mut model: Vec<(Millis, PhotoId, UserId)> = Vec::new();
        let mut x = 7u64;
        for i in 0..3_000u32 {
            x = crate::hll::hash64(x);
            let owner = UserId((x % 5) as u32);
            match x % 50 {
                0 => {
                    tl.remove_owner(owner);
                    model.retain(|e| e.2 != owner);
                }
                1 => tl = postcard::from_bytes(&postcard::to_stdvec(&tl).unwrap()).unwrap(),
                _ => {
                    // Mostly newer than all before; one in six up to 40 s older; photo
                    // ids stand for (time, owner), so a repeat is the same entry.
                    let late = if x.is_multiple_of(6) {
                        (x >> 8) % 40_000
                    } else {
                        0
                    };
                    let t = 40_000 + i64::from(i) * 1_000 - late as i64;
                    let id = PhotoId(((t as u64) * 5 + u64::from(owner.0)) as u32);
                    tl.insert(t, id, owner, cap);
                    tl.insert(t, id, owner, cap); // a repeat changes nothing
                    model.push((t, id, owner));
                    model.sort();
                    model.dedup();
                    let keep = model.len().saturating_sub(cap);
                    model.drain(..keep);
                }
            }
            let got: Vec<_> = tl.entries.iter().copied().collect();
            assert_eq!(got, model, "step {i}");
        }
    }
}
