//! The state's size by part, for the health view and `/metrics`: entries, and bytes
//! estimated from lengths and capacities times element sizes (not a walk of the heap,
//! which would cost as much as the state is large). Parts whose exact sums would need
//! a walk over every user or photo keep running sums ([`SizeCounters`]), so a report
//! costs O(parts + brands + readers), never O(events).

use std::collections::BTreeMap;
use std::mem::size_of;

use instabrand_shared::Millis;
use instabrand_shared::api::StatePart;

use super::metrics::{HourBucket, MinuteBucket};
use super::{Comment, Pending, Photo, PhotoId, Processor, User, UserId};

/// Running sums for [`Processor::state_sizes`]. Not stored: recounted on restore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SizeCounters {
    /// Bytes of usernames and full names.
    pub user_text: u64,
    /// Follow edges (each is in two sets: the follower's `following`, the followed's
    /// `followers`).
    pub edges: u64,
    /// Capacity of all those sets together.
    pub edge_slots: u64,
    pub follower_sketches: u64,
    pub follower_sketch_bytes: u64,
    /// Bytes of photo links.
    pub photo_text: u64,
    /// Comments kept (the newest few per photo).
    pub comments: u64,
    pub comment_text: u64,
    /// Bytes of the original records waiting for their photos.
    pub pending_raw: u64,
}

/// Bytes of one hash table (hashbrown) reporting `capacity` slots of `elem` bytes:
/// a power of two of buckets, each with one control byte besides its slot. Capacity
/// is 7/8 of the buckets, less the slots tombstones hold, hence the rounding up.
fn table_bytes(capacity: usize, elem: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity as u64 * 8 / 7).next_power_of_two();
    buckets * (elem as u64 + 1)
}

/// Bytes of many small hash tables whose capacities sum to `capacity` (no removals,
/// or few: their capacities are 7/8 of their buckets).
fn tables_bytes(capacity: u64, elem: usize) -> u64 {
    capacity * 8 / 7 * (elem as u64 + 1)
}

/// Bytes per entry of a `BTreeMap` beyond its key and value (node headers, edges and
/// spare room in nodes that are on average about two thirds full).
const BTREE_OVERHEAD: u64 = 24;

fn btree_bytes<K, V>(m: &BTreeMap<K, V>) -> u64 {
    m.len() as u64 * ((size_of::<K>() + size_of::<V>()) as u64 * 3 / 2 + BTREE_OVERHEAD)
}

fn part(name: &str, entries: u64, bytes: u64) -> StatePart {
    StatePart {
        name: name.into(),
        entries,
        bytes,
    }
}

impl SizeCounters {
    /// The sums from scratch (after a restore): O(users + photos).
    pub(super) fn recount(p: &Processor) -> SizeCounters {
        let mut c = SizeCounters::default();
        for u in &p.users {
            c.user_text += (u.name.len() + u.full_name.as_ref().map_or(0, |f| f.len())) as u64;
            c.edges += u.followers.len() as u64;
            c.edge_slots += (u.followers.capacity() + u.following.capacity()) as u64;
            if let Some(s) = &u.follower_sketch {
                c.follower_sketches += 1;
                c.follower_sketch_bytes += s.heap_bytes() as u64;
            }
        }
        for (_, ph) in p.photos.iter() {
            c.photo_text += ph.link.len() as u64;
            c.comments += ph.recent_comments.len() as u64;
            c.comment_text += ph
                .recent_comments
                .iter()
                .map(|x| x.text.len() as u64)
                .sum::<u64>();
        }
        c.pending_raw = p
            .pending
            .values()
            .flatten()
            .map(|w| w.raw.len() as u64)
            .sum();
        c
    }
}

impl Processor {
    /// Entries and estimated bytes of each part of the state: users, follow edges,
    /// photos (with their places in profile feeds, the map and brand lists), likes,
    /// comments, materialized home timelines, reach sketches, brand buckets, the
    /// holding area, recent edges and influence maps.
    pub fn state_sizes(&self) -> Vec<StatePart> {
        let c = &self.sizes;
        let users = part(
            "users",
            self.users.len() as u64,
            (self.users.capacity() * size_of::<User>() + self.hashes.capacity() * 8) as u64
                + table_bytes(self.user_index.capacity(), size_of::<UserId>())
                + c.user_text,
        );
        let edges = part(
            "follow_edges",
            c.edges,
            tables_bytes(c.edge_slots, size_of::<UserId>()),
        );
        let brand_lists: usize = self.brands.iter().map(|b| b.recent_photos.capacity()).sum();
        let photos = part(
            "photos",
            self.photos.len() as u64,
            (self.photos.slot_capacity() * size_of::<Option<Photo>>()) as u64
                + c.photo_text
                + self
                    .photo_index
                    .tables()
                    .map(|t| table_bytes(t.capacity(), size_of::<((UserId, Millis), PhotoId)>()))
                    .sum::<u64>()
                // Profile feeds (one id per kept photo), the map and brand lists.
                + ((self.photos.len() + self.recent_photos.capacity() + brand_lists)
                    * size_of::<PhotoId>()) as u64
                + self.photos.late_len() as u64 * (16 + BTREE_OVERHEAD),
        );
        let likes = part(
            "likes",
            self.likes.tables().map(|t| t.len() as u64).sum(),
            self.likes
                .tables()
                .map(|t| table_bytes(t.capacity(), 8))
                .sum(),
        );
        let comments = part(
            "comments",
            c.comments,
            c.comments * size_of::<Comment>() as u64 + c.comment_text,
        );
        let (tl_entries, tl_bytes) = self.feeds.size();
        let timelines = part("timelines", tl_entries, tl_bytes);
        let (mut sketches, mut sketch_bytes) = (c.follower_sketches, c.follower_sketch_bytes);
        let (mut buckets, mut bucket_bytes) = (0u64, 0u64);
        for b in self.brands.iter().chain(std::iter::once(&self.totals)) {
            sketches += 1;
            sketch_bytes += b.all_reach.heap_bytes() as u64;
            for m in b.minutes.values() {
                if let Some(r) = &m.reach {
                    sketches += 1;
                    sketch_bytes += r.heap_bytes() as u64;
                }
            }
            for h in b.hours.values() {
                if !h.reach.is_empty() {
                    sketches += 1;
                }
                sketch_bytes += h.reach.heap_bytes() as u64;
            }
            buckets += (b.minutes.len() + b.hours.len()) as u64;
            bucket_bytes += btree_bytes::<i64, MinuteBucket>(&b.minutes)
                + btree_bytes::<i64, HourBucket>(&b.hours);
        }
        let sketches = part("sketches", sketches, sketch_bytes);
        let brand_buckets = part("brand_buckets", buckets, bucket_bytes);
        let waiting = self.pending_order.len() as u64;
        let pending = part(
            "pending",
            waiting,
            // The record and the event decoded from it (its strings copied out).
            2 * c.pending_raw
                + waiting * size_of::<Pending>() as u64
                + btree_bytes(&self.pending_order)
                + table_bytes(
                    self.pending.capacity(),
                    size_of::<((UserId, Millis), Vec<Pending>)>(),
                ),
        );
        let edge_memory = |r: &super::RecentEdges| {
            (
                r.times.len() as u64,
                table_bytes(r.times.capacity(), 16) + (r.order.capacity() * 16) as u64,
            )
        };
        let (f, fb) = edge_memory(&self.recent_follows);
        let (u, ub) = edge_memory(&self.recent_unfollows);
        let recent_edges = part("recent_edges", f + u, fb + ub);
        let (mut infl, mut infl_bytes) = (0u64, 0u64);
        for m in self
            .influence_minutes
            .values()
            .chain(self.influence_hours.values())
        {
            infl += m.len() as u64;
            infl_bytes += table_bytes(m.capacity(), 8) + BTREE_OVERHEAD + 40;
        }
        let influence = part("influence", infl, infl_bytes);
        vec![
            users,
            edges,
            photos,
            likes,
            comments,
            timelines,
            sketches,
            brand_buckets,
            pending,
            recent_edges,
            influence,
        ]
    }
}
