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
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Timeline {
    entries: VecDeque<(Millis, PhotoId, UserId)>,
}

impl Timeline {
    pub fn insert(&mut self, t: Millis, id: PhotoId, owner: UserId, cap: usize) {
        let e = (t, id, owner);
        if self.entries.len() >= cap && self.entries.front().is_some_and(|f| e < *f) {
            return; // older than everything a full timeline keeps
        }
        match self.entries.back() {
            None => self.entries.push_back(e),
            Some(b) if *b < e => self.entries.push_back(e),
            _ => {
                let pos = self.entries.partition_point(|x| *x < e);
                if self.entries.get(pos) != Some(&e) {
                    self.entries.insert(pos, e);
                }
            }
        }
        while self.entries.len() > cap {
            self.entries.pop_front();
        }
    }

    pub fn remove_owner(&mut self, owner: UserId) {
        self.entries.retain(|e| e.2 != owner);
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
        let recent: Vec<(Millis, PhotoId)> = {
            let photos = &self.users[followed.0 as usize].photos;
            photos[photos.len().saturating_sub(n)..]
                .iter()
                .map(|p| (self.photos[p.0 as usize].created, *p))
                .collect()
        };
        let tl = &mut self.timelines[follower.0 as usize];
        for (t, p) in recent {
            tl.insert(t, p, followed, cap);
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
