//! Profile feeds and home timelines (what the original kept in Cassandra).
//!
//! Fan-out on write: a new photo is pushed into the timeline of its owner and of each
//! follower, capped per timeline. Accounts above the celebrity threshold are not fanned
//! out (one photo would touch millions of timelines); their photos are merged into a
//! reader's timeline when it is read, as in Twitter's hybrid model. Following someone
//! back-fills their recent photos; unfollowing removes them.

use std::collections::VecDeque;

use instabrand_shared::Millis;

use super::{Photo, PhotoId, Processor, UserId};

/// A home timeline: (photo time, photo, owner), oldest first, at most `cap` entries.
/// The owner rides along (free: it fills the padding) so unfollow can filter without
/// touching every photo.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Timeline {
    entries: VecDeque<(Millis, PhotoId, UserId)>,
    /// The newest entry's (time, photo), or `UNKNOWN`. Fan-out appends to the
    /// timelines of all followers, and reading each one's newest entry from its buffer
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

    pub fn remove_owner(&mut self, owner: UserId) {
        self.entries.retain(|e| e.2 != owner);
        self.newest = UNKNOWN;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
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
pub(super) fn insert_sorted(list: &mut Vec<PhotoId>, id: PhotoId, t: Millis, photos: &[Photo]) {
    let key = |p: &PhotoId| (photos[p.0 as usize].created, *p);
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

impl Processor {
    pub(super) fn fan_out(&mut self, owner: UserId, photo: PhotoId) {
        let t = self.photos[photo.0 as usize].created;
        let cap = self.cfg.timeline_cap;
        self.timelines[owner.0 as usize].insert(t, photo, owner, cap);
        if self.is_celebrity(owner) {
            return;
        }
        for f in &self.users[owner.0 as usize].followers {
            self.timelines[f.0 as usize].insert(t, photo, owner, cap);
        }
    }

    pub(super) fn backfill(&mut self, follower: UserId, followed: UserId) {
        if self.is_celebrity(followed) {
            return; // merged at read time instead
        }
        let n = self.cfg.backfill;
        let cap = self.cfg.timeline_cap;
        // Disjoint fields, borrowed apart: no list of the photos to allocate per follow.
        let own = &self.users[followed.0 as usize].photos;
        let tl = &mut self.timelines[follower.0 as usize];
        for p in &own[own.len().saturating_sub(n)..] {
            tl.insert(self.photos[p.0 as usize].created, *p, followed, cap);
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
            .map(|p| (self.photos[p.0 as usize].created, *p))
            .filter(|c| before.is_none_or(|b| *c < b));
        page(items, limit)
    }

    /// A page of the home timeline, newest first: the fanned-out entries merged with
    /// the recent photos of followed celebrities.
    pub fn timeline_page(
        &self,
        user: UserId,
        before: Option<Cursor>,
        limit: usize,
    ) -> (Vec<PhotoId>, Option<Cursor>) {
        let u = self.user(user);
        let older = |c: &Cursor| before.is_none_or(|b| *c < b);
        let mut items: Vec<Cursor> = self.timelines[user.0 as usize]
            .newest_first()
            .filter(older)
            .take(limit + 1)
            .collect();
        for &c in &u.following {
            if !self.is_celebrity(c) {
                continue;
            }
            let cu = self.user(c);
            items.extend(
                cu.photos
                    .iter()
                    .rev()
                    .map(|p| (self.photos[p.0 as usize].created, *p))
                    .filter(older)
                    .take(limit + 1),
            );
        }
        items.sort_unstable_by(|a, b| b.cmp(a));
        items.dedup();
        page(items.into_iter(), limit)
    }

    /// Whether the photo belongs in the user's home timeline (own, or followed owner).
    pub fn in_timeline_of(&self, user: UserId, photo: PhotoId) -> bool {
        let owner = self.photos[photo.0 as usize].owner;
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
