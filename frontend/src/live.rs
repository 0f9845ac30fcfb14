//! What the dashboard holds for each WebSocket topic, and how a frame changes it.
//!
//! The server sends a snapshot first (and again whenever a client fell behind or
//! reconnected), then deltas that are idempotent upserts keyed by stable ids. So every
//! holder here follows one rule: a snapshot replaces, a delta upserts, a repeat changes
//! nothing. Every holder is bounded, so a wall screen left running for days keeps flat
//! memory. Pure: the browser and the host tests run the same code.

use std::collections::{HashSet, VecDeque};

use instabrand_shared::Millis;
use instabrand_shared::api::{Alert, FeedPage, MapPoint, PhotoView, UserProfile};
use instabrand_shared::ws::{FeedFrame, LeaderboardFrame, TableRow, upsert_photos};

/// The brand leaderboard for one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeaderboardState {
    pub from_ms: Millis,
    pub to_ms: Millis,
    pub total_photos: u64,
    pub events_per_sec: f64,
    /// Sorted by photos, then engagement rate, then name (a stable order on screen).
    pub rows: Vec<TableRow>,
    /// Frames applied since the last snapshot; lets a page tell "waiting" from "empty".
    pub frames: u64,
    /// The page held: the rank of its first row minus one, and brands in the whole table.
    pub offset: u32,
    pub total_brands: u64,
}

/// At most this many brands are kept; the bundled list has 60, ingest may add more.
pub const MAX_BRANDS: usize = 500;

impl LeaderboardState {
    pub fn apply(&mut self, snapshot: bool, frame: LeaderboardFrame) {
        if snapshot {
            self.rows.clear();
            self.frames = 0;
        }
        self.from_ms = frame.from_ms;
        self.to_ms = frame.to_ms;
        self.total_photos = frame.total_photos;
        self.events_per_sec = frame.events_per_sec;
        self.offset = frame.offset;
        self.total_brands = frame.total_brands;
        self.rows.retain(|r| !frame.removed.contains(&r.brand));
        // A patch for a row not held (only after a lost frame) waits for the next
        // snapshot or whole row: it cannot make a row by itself.
        for patch in &frame.changed {
            if let Some(held) = self.rows.iter_mut().find(|r| r.brand == patch.brand) {
                patch.apply(held);
            }
        }
        for mut row in frame.rows {
            match self.rows.iter_mut().find(|r| r.brand == row.brand) {
                Some(held) => {
                    // A delta leaves out a sparkline that did not move.
                    if row.spark.is_empty() {
                        row.spark = std::mem::take(&mut held.spark);
                    }
                    *held = row;
                }
                None => self.rows.push(row),
            }
        }
        let sort = frame.sort;
        self.rows.sort_by(|a, b| sort.compare(a, b));
        self.rows.truncate(MAX_BRANDS);
        self.frames += 1;
    }

    pub fn row(&self, brand: &str) -> Option<&TableRow> {
        self.rows.iter().find(|r| r.brand == brand)
    }
}

/// A map point's identity: a 64-bit FNV-1a hash of the photo (owner, time) and the
/// brand it is drawn for. A hash rather than the strings themselves halves the
/// buffer's memory at 20,000 points; a collision (about one in 10^10 per pair at this
/// size) would only drop one point from the map.
fn point_key(p: &MapPoint) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(p.owner.as_bytes());
    eat(&[0xff]);
    eat(&p.created_ms.to_le_bytes());
    eat(p.brand.as_bytes());
    h
}

/// The newest uploads for the map, oldest first, at most `cap` of them.
#[derive(Debug, Clone)]
pub struct MapBuffer {
    cap: usize,
    points: VecDeque<MapPoint>,
    keys: HashSet<u64>,
    /// Bumped on every change, so a canvas redraws only when something moved.
    pub version: u64,
}

/// Enough for a busy hour of uploads; one frame still draws well inside 16 ms.
pub const MAP_CAPACITY: usize = 20_000;

impl MapBuffer {
    pub fn new(cap: usize) -> MapBuffer {
        MapBuffer {
            cap: cap.max(1),
            points: VecDeque::with_capacity(cap.min(MAP_CAPACITY)),
            keys: HashSet::with_capacity(cap.min(MAP_CAPACITY)),
            version: 0,
        }
    }

    pub fn apply(&mut self, snapshot: bool, points: Vec<MapPoint>) {
        if snapshot {
            self.points.clear();
            self.keys.clear();
        }
        for p in points {
            self.push(p);
        }
        self.version += 1;
    }

    /// Appends one point unless it is already held, evicting the oldest past capacity.
    pub fn push(&mut self, p: MapPoint) {
        if !self.keys.insert(point_key(&p)) {
            return;
        }
        self.points.push_back(p);
        while self.points.len() > self.cap {
            if let Some(old) = self.points.pop_front() {
                self.keys.remove(&point_key(&old));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &MapPoint> + ExactSizeIterator {
        self.points.iter()
    }

    /// Newest event time held: the map fades points relative to it, not to the wall
    /// clock, so a replay of 2017 data fades exactly like live data.
    pub fn newest_ms(&self) -> Option<Millis> {
        self.points.iter().map(|p| p.created_ms).max()
    }
}

/// Alerts as they fire, newest first, at most `cap`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertLog {
    cap: usize,
    alerts: VecDeque<Alert>,
}

pub const ALERT_CAPACITY: usize = 50;

impl AlertLog {
    pub fn new(cap: usize) -> AlertLog {
        AlertLog {
            cap: cap.max(1),
            alerts: VecDeque::new(),
        }
    }

    pub fn apply(&mut self, snapshot: bool, alerts: Vec<Alert>) {
        if snapshot {
            self.alerts.clear();
        }
        for a in alerts {
            match self.alerts.iter_mut().find(|held| held.id == a.id) {
                Some(held) => *held = a,
                None => self.alerts.push_back(a),
            }
        }
        self.alerts
            .make_contiguous()
            .sort_by_key(|a| std::cmp::Reverse(a.id));
        self.alerts.truncate(self.cap);
    }

    /// Newest first.
    pub fn iter(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter()
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }
}

/// One user's profile, own photos and home timeline, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedState {
    pub profile: Option<UserProfile>,
    pub photos: Vec<PhotoView>,
    pub timeline: Vec<PhotoView>,
    /// Cursors for "older" paging over REST; `None` once the end is reached.
    pub photos_next: Option<String>,
    pub timeline_next: Option<String>,
}

/// Photos kept per list: live updates and "older" pages both stop here.
pub const FEED_CAPACITY: usize = 400;

impl FeedState {
    pub fn apply(&mut self, snapshot: bool, frame: FeedFrame) {
        self.profile = Some(frame.profile);
        if snapshot {
            self.photos.clear();
            self.timeline.clear();
            self.photos_next = frame.photos.next.clone();
            self.timeline_next = frame.timeline.next.clone();
        }
        upsert_photos(&mut self.photos, &frame.photos.items, FEED_CAPACITY);
        upsert_photos(&mut self.timeline, &frame.timeline.items, FEED_CAPACITY);
    }

    /// Appends an older page fetched over REST.
    pub fn append_page(&mut self, timeline: bool, page: FeedPage) {
        let (list, next) = if timeline {
            (&mut self.timeline, &mut self.timeline_next)
        } else {
            (&mut self.photos, &mut self.photos_next)
        };
        upsert_photos(list, &page.items, FEED_CAPACITY);
        *next = if list.len() >= FEED_CAPACITY {
            None
        } else {
            page.next
        };
    }
}

/// How long to wait before reconnect attempt `attempt` (1-based): 500 ms doubling up to
/// 15 s, spread ±20 % by `random` in [0, 1) so many screens do not reconnect in step.
pub fn reconnect_delay_ms(attempt: u32, random: f64) -> u32 {
    let base = 500.0 * 2f64.powi(attempt.saturating_sub(1).min(10) as i32);
    (base.min(15_000.0) * (0.8 + 0.4 * random.clamp(0.0, 1.0))) as u32
}

/// The heartbeat's verdict at `now_ms`, for a link last heard from at `heard_ms` and
/// last pinged at `pinged_ms`, with the server's heartbeat interval `interval_ms`.
/// The page pings every half interval, so a live link answers well inside one
/// interval; silence for a whole interval means the link is dead (a half-open socket
/// the browser has not noticed), and the page shows "offline" and reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    Quiet,
    SendPing,
    Dead,
}

pub fn heartbeat(now_ms: f64, heard_ms: f64, pinged_ms: f64, interval_ms: f64) -> Heartbeat {
    let interval = interval_ms.max(500.0);
    if now_ms - heard_ms > interval {
        Heartbeat::Dead
    } else if now_ms - pinged_ms >= interval / 2.0 {
        Heartbeat::SendPing
    } else {
        Heartbeat::Quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use instabrand_shared::ws::RowPatch;

    #[test]
    fn a_link_silent_for_an_interval_is_dead_and_pings_go_every_half_interval() {
        assert_eq!(heartbeat(1_000.0, 900.0, 900.0, 10_000.0), Heartbeat::Quiet);
        assert_eq!(
            heartbeat(6_000.0, 900.0, 900.0, 10_000.0),
            Heartbeat::SendPing
        );
        assert_eq!(
            heartbeat(6_000.0, 5_500.0, 5_900.0, 10_000.0),
            Heartbeat::Quiet
        );
        assert_eq!(
            heartbeat(11_000.0, 900.0, 10_000.0, 10_000.0),
            Heartbeat::Dead
        );
    }

    #[test]
    fn reconnect_delays_double_and_cap_with_jitter() {
        assert_eq!(reconnect_delay_ms(1, 0.5), 500);
        assert_eq!(reconnect_delay_ms(2, 0.5), 1_000);
        assert_eq!(reconnect_delay_ms(30, 0.5), 15_000);
        assert_eq!(reconnect_delay_ms(30, 0.0), 12_000);
        assert!(reconnect_delay_ms(3, 0.99) < 2_400);
    }

    fn row(brand: &str, photos: u64) -> TableRow {
        TableRow {
            brand: brand.into(),
            photos,
            ..Default::default()
        }
    }

    fn frame(rows: Vec<TableRow>, removed: &[&str]) -> LeaderboardFrame {
        LeaderboardFrame {
            rows,
            removed: removed.iter().map(|s| s.to_string()).collect(),
            total_photos: 10,
            events_per_sec: 4.5,
            ..Default::default()
        }
    }

    fn brands(s: &LeaderboardState) -> Vec<(&str, u64)> {
        s.rows
            .iter()
            .map(|r| (r.brand.as_str(), r.photos))
            .collect()
    }

    #[test]
    fn a_leaderboard_delta_upserts_by_brand_removes_and_resorts() {
        let mut s = LeaderboardState::default();
        s.apply(
            true,
            frame(vec![row("Nike", 5), row("Apple, Inc.", 3)], &[]),
        );
        s.apply(
            false,
            frame(vec![row("Apple, Inc.", 9), row("Lego", 1)], &["Nike"]),
        );
        assert_eq!(brands(&s), [("Apple, Inc.", 9), ("Lego", 1)]);
        assert_eq!(s.events_per_sec, 4.5);
    }

    #[test]
    fn a_patch_changes_only_its_values_and_can_reorder() {
        let mut s = LeaderboardState::default();
        let mut nike = row("Nike", 5);
        nike.likes = 40;
        s.apply(true, frame(vec![nike, row("Lego", 3)], &[]));
        let mut delta = frame(vec![], &[]);
        delta.changed = vec![RowPatch {
            brand: "Lego".into(),
            photos: Some(9),
            ..Default::default()
        }];
        s.apply(false, delta.clone());
        assert_eq!(brands(&s), [("Lego", 9), ("Nike", 5)]);
        assert_eq!(s.row("Nike").unwrap().likes, 40, "untouched values stay");
        let once = s.rows.clone();
        s.apply(false, delta);
        assert_eq!(s.rows, once, "a repeat changes nothing");
    }

    #[test]
    fn a_repeated_delta_changes_nothing() {
        let mut s = LeaderboardState::default();
        s.apply(true, frame(vec![row("Nike", 5)], &[]));
        let delta = frame(vec![row("Lego", 7)], &[]);
        s.apply(false, delta.clone());
        let once = s.rows.clone();
        s.apply(false, delta);
        assert_eq!(s.rows, once);
    }

    #[test]
    fn a_snapshot_replaces_everything_held() {
        let mut s = LeaderboardState::default();
        s.apply(true, frame(vec![row("Nike", 5), row("Lego", 2)], &[]));
        s.apply(true, frame(vec![row("Adidas", 1)], &[]));
        assert_eq!(brands(&s), [("Adidas", 1)]);
    }

    fn point(owner: &str, t: Millis, brand: &str) -> MapPoint {
        MapPoint {
            owner: owner.into(),
            created_ms: t,
            brand: brand.into(),
            latitude: 1.0,
            longitude: 2.0,
        }
    }

    #[test]
    fn map_points_dedupe_by_photo_and_brand_and_stay_bounded() {
        let mut m = MapBuffer::new(3);
        m.apply(true, vec![point("a", 1, "Nike"), point("b", 2, "Nike")]);
        m.apply(false, vec![point("b", 2, "Nike"), point("b", 2, "Lego")]);
        assert_eq!(
            m.len(),
            3,
            "a repeat is dropped, another brand of the same photo kept"
        );
        m.apply(false, vec![point("c", 3, "Nike"), point("d", 4, "Nike")]);
        let owners: Vec<_> = m.iter().map(|p| p.owner.as_str()).collect();
        assert_eq!(owners, ["b", "c", "d"]);
        // An evicted point may come back (its key was forgotten with it).
        m.apply(false, vec![point("a", 1, "Nike")]);
        assert_eq!(m.iter().last().unwrap().owner, "a");
        assert_eq!(m.newest_ms(), Some(4));
        m.apply(true, vec![]);
        assert!(m.is_empty());
    }

    #[test]
    fn alerts_are_newest_first_deduped_and_bounded() {
        let alert = |id| Alert {
            id,
            brand: "Nike".into(),
            ..Default::default()
        };
        let mut log = AlertLog::new(2);
        log.apply(true, vec![alert(1), alert(2)]);
        log.apply(false, vec![alert(2), alert(3)]);
        let ids: Vec<_> = log.iter().map(|a| a.id).collect();
        assert_eq!(ids, [3, 2]);
    }

    #[test]
    fn feed_frames_upsert_photos_and_keep_live_counts() {
        let photo = |owner: &str, t, likes| PhotoView {
            owner: owner.into(),
            created_ms: t,
            likes,
            ..Default::default()
        };
        let page = |items| FeedPage {
            username: "bob".into(),
            items,
            next: Some("c1".into()),
        };
        let mut f = FeedState::default();
        f.apply(
            true,
            FeedFrame {
                profile: UserProfile::default(),
                photos: page(vec![photo("bob", 1, 0)]),
                timeline: page(vec![photo("bob", 1, 0), photo("amy", 2, 0)]),
            },
        );
        f.apply(
            false,
            FeedFrame {
                profile: UserProfile::default(),
                photos: page(vec![]),
                timeline: page(vec![photo("bob", 1, 4), photo("cy", 3, 0)]),
            },
        );
        let got: Vec<_> = f
            .timeline
            .iter()
            .map(|p| (p.owner.as_str(), p.likes))
            .collect();
        assert_eq!(got, [("cy", 0), ("amy", 0), ("bob", 4)]);
        assert_eq!(f.timeline_next.as_deref(), Some("c1"));
        f.append_page(
            true,
            FeedPage {
                items: vec![photo("old", 0, 0)],
                next: None,
                ..Default::default()
            },
        );
        assert_eq!(f.timeline.last().unwrap().owner, "old");
        assert_eq!(f.timeline_next, None);
    }
}
