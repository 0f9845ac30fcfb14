//! WebSocket messages. One connection per page; the client subscribes to topics and
//! gets, per topic, a snapshot first and then deltas, at most ~10 frames a second.
//!
//! Deltas are idempotent upserts keyed by stable ids (brand name, photo owner and time,
//! alert id), so a delta that overlaps the snapshot, or repeats, changes nothing. When
//! a client falls behind, the server drops what it queued and sends a fresh snapshot
//! (`snapshot: true`), so a client simply replaces its state whenever it sees one.

use serde::{Deserialize, Serialize};

use crate::api::{
    Alert, BrandDetail, BrandMetrics, FeedPage, Health, Influencer, MapPoint, PhotoView,
    UserProfile, Window,
};
use crate::time::Millis;

/// What a client can subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Topic {
    /// The brand leaderboard over one window: `rows` rows from `offset` in `sort`
    /// order (a page of the table; the table scrolls by subscribing to another page).
    /// A subscription without them gets the top [`DEFAULT_TABLE_ROWS`] by photos.
    Leaderboard {
        window: Window,
        #[serde(default)]
        sort: SortKey,
        #[serde(default)]
        offset: u32,
        #[serde(default = "default_rows")]
        rows: u32,
    },
    /// One brand's detail over one window.
    Brand { brand: String, window: Window },
    /// Top influencers over one window.
    Influencers { window: Window },
    /// Every upload, as it happens, for the map.
    Map,
    /// One user's profile feed and home timeline.
    Feed { username: String },
    /// Spike alerts.
    Alerts,
    /// Pipeline health.
    Health,
    /// About the connection itself (pongs, unreadable messages); not subscribable.
    Connection,
}

/// Rows a leaderboard page holds unless the subscription says otherwise.
pub const DEFAULT_TABLE_ROWS: u32 = 20;
/// Most rows one leaderboard subscription may ask for: the frame budget (see
/// docs/live.md) holds for pages up to this size.
pub const MAX_TABLE_ROWS: u32 = 100;

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn default_rows() -> u32 {
    DEFAULT_TABLE_ROWS
}

impl Topic {
    /// The leaderboard's top [`DEFAULT_TABLE_ROWS`] by photos over `window`.
    pub fn leaderboard(window: Window) -> Topic {
        Topic::Leaderboard {
            window,
            sort: SortKey::Photos,
            offset: 0,
            rows: DEFAULT_TABLE_ROWS,
        }
    }
}

/// The column a leaderboard is ordered by, largest first; ties by photos, then name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    #[default]
    Photos,
    Likes,
    Comments,
    Reach,
    Engagement,
    /// Photos now minus photos in the previous period of the same length: who gains
    /// the most, in photos, not in percent (a brand going from 1 to 3 photos is not
    /// rising faster than one going from 500 to 800).
    Rising,
}

impl SortKey {
    pub const ALL: [SortKey; 6] = [
        SortKey::Photos,
        SortKey::Likes,
        SortKey::Comments,
        SortKey::Reach,
        SortKey::Engagement,
        SortKey::Rising,
    ];

    /// The name in URLs and query strings (`?sort=reach`), as serde spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Photos => "photos",
            SortKey::Likes => "likes",
            SortKey::Comments => "comments",
            SortKey::Reach => "reach",
            SortKey::Engagement => "engagement",
            SortKey::Rising => "rising",
        }
    }
}

impl std::str::FromStr for SortKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SortKey::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown sort {s:?}: use photos, likes, comments, reach, engagement or rising"
                )
            })
    }
}

impl SortKey {
    /// The table's order: this key descending, then photos descending, then brand name
    /// (the server cuts pages and the page sorts its rows with the same comparator).
    pub fn compare<R: Ranked>(self, a: &R, b: &R) -> std::cmp::Ordering {
        b.key(self)
            .total_cmp(&a.key(self))
            .then_with(|| b.key(SortKey::Photos).total_cmp(&a.key(SortKey::Photos)))
            .then_with(|| a.brand().cmp(b.brand()))
    }
}

/// A leaderboard row of either shape (the processor's or the wire's).
pub trait Ranked {
    fn key(&self, sort: SortKey) -> f64;
    fn brand(&self) -> &str;
}

impl Ranked for BrandMetrics {
    fn key(&self, sort: SortKey) -> f64 {
        match sort {
            SortKey::Photos => self.photos as f64,
            SortKey::Likes => self.likes as f64,
            SortKey::Comments => self.comments as f64,
            SortKey::Reach => self.reach as f64,
            SortKey::Engagement => self.engagement_rate,
            SortKey::Rising => self.photos as f64 - self.previous_photos as f64,
        }
    }
    fn brand(&self) -> &str {
        &self.brand
    }
}

impl Ranked for TableRow {
    fn key(&self, sort: SortKey) -> f64 {
        match sort {
            SortKey::Photos => self.photos as f64,
            SortKey::Likes => self.likes as f64,
            SortKey::Comments => self.comments as f64,
            SortKey::Reach => self.reach as f64,
            SortKey::Engagement => self.engagement_rate,
            SortKey::Rising => self.rising as f64,
        }
    }
    fn brand(&self) -> &str {
        &self.brand
    }
}

/// One leaderboard row on the wire: what the table shows, and nothing else (the like
/// and comment rates and impressions are on the brand page), about a third smaller
/// than a [`BrandMetrics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TableRow {
    pub brand: String,
    pub photos: u64,
    pub likes: u64,
    pub comments: u64,
    pub reach: u64,
    pub engagement_rate: f64,
    pub share_of_voice: f64,
    /// Photos now minus photos in the previous period of the same length, its
    /// magnitude shown as `format::compact` shows counts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rising: i64,
    /// Closed steps only. Left out of a delta when it did not move.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spark: Vec<u64>,
}

/// The values of a row already on a page that changed on screen, and only those:
/// a new photo changes every row's share of voice, but rarely anything else in most
/// of them, so a delta carrying whole rows was mostly repeats (at 150 events/s, 20
/// rows: about 10 KB/s per dashboard; with patches about 6). Applying a patch twice
/// changes nothing, like any other delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RowPatch {
    pub brand: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photos: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_of_voice: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rising: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spark: Option<Vec<u64>>,
}

impl RowPatch {
    /// What changed from `old` to `new` (the same brand), or `None` if nothing did.
    pub fn between(old: &TableRow, new: &TableRow) -> Option<RowPatch> {
        fn diff<T: PartialEq + Clone>(a: &T, b: &T) -> Option<T> {
            (a != b).then(|| b.clone())
        }
        let p = RowPatch {
            brand: new.brand.clone(),
            photos: diff(&old.photos, &new.photos),
            likes: diff(&old.likes, &new.likes),
            comments: diff(&old.comments, &new.comments),
            reach: diff(&old.reach, &new.reach),
            engagement_rate: diff(&old.engagement_rate, &new.engagement_rate),
            share_of_voice: diff(&old.share_of_voice, &new.share_of_voice),
            rising: diff(&old.rising, &new.rising),
            spark: diff(&old.spark, &new.spark),
        };
        (p != RowPatch {
            brand: new.brand.clone(),
            ..RowPatch::default()
        })
        .then_some(p)
    }

    /// Sets the values this patch carries on `row`.
    pub fn apply(&self, row: &mut TableRow) {
        fn set<T: Clone>(field: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *field = v.clone();
            }
        }
        set(&mut row.photos, &self.photos);
        set(&mut row.likes, &self.likes);
        set(&mut row.comments, &self.comments);
        set(&mut row.reach, &self.reach);
        set(&mut row.engagement_rate, &self.engagement_rate);
        set(&mut row.share_of_voice, &self.share_of_voice);
        set(&mut row.rising, &self.rising);
        set(&mut row.spark, &self.spark);
    }
}

/// A row as the table shows it: counts truncated as `format::compact` prints them,
/// rates rounded as `format::percent` prints them (0.01 percentage points below 1 %,
/// 0.1 above), and the sparkline's closed steps
/// only (the step in progress would draw as a drop and change every frame). Deltas
/// compare rows at this precision, so a frame carries only rows whose shown values
/// changed.
pub fn at_display_precision(m: &BrandMetrics) -> TableRow {
    fn percent(f: f64) -> f64 {
        if !f.is_finite() {
            return 0.0;
        }
        let p = f * 100.0;
        let step = if p.abs() < 1.0 { 0.01 } else { 0.1 };
        ((p / step).round() * step / 100.0 * 1e6).round() / 1e6
    }
    // Counts as `format::compact` shows them: exact below 1,000, then truncated to
    // what `12.3k`, `123k`, `1.2M` can say. An estimate of reach moves with nearly
    // every engagement; its fourth digit never reaches the screen.
    fn compact(n: u64) -> u64 {
        for size in [1_000_000_000u64, 1_000_000, 1_000] {
            if n >= size {
                let step = if n / size >= 100 { size } else { size / 10 };
                return n / step * step;
            }
        }
        n
    }
    let mut spark = m.spark.clone();
    spark.pop();
    TableRow {
        brand: m.brand.clone(),
        photos: compact(m.photos),
        likes: compact(m.likes),
        comments: compact(m.comments),
        reach: compact(m.reach),
        engagement_rate: percent(m.engagement_rate),
        share_of_voice: percent(m.share_of_voice),
        rising: {
            let change = m.photos as i64 - m.previous_photos as i64;
            change.signum() * compact(change.unsigned_abs()) as i64
        },
        spark,
    }
}

/// Events per second as the header shows them (`format::rate`): tenths below 10,
/// whole numbers below 1,000, three significant digits above; 0 when quiet.
pub fn rate_at_display_precision(per_sec: f64) -> f64 {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        return 0.0;
    }
    if per_sec < 10.0 {
        (per_sec * 10.0).round() / 10.0
    } else if per_sec < 1000.0 {
        per_sec.round()
    } else {
        let scale = 10f64.powi(per_sec.log10().floor() as i32 - 2);
        (per_sec / scale).round() * scale
    }
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientMessage {
    Subscribe {
        topic: Topic,
    },
    Unsubscribe {
        topic: Topic,
    },
    /// Answered at once with a [`Frame::Pong`] on [`Topic::Connection`]: a page cannot
    /// see WebSocket pings, so this is how it tells a live link from a dead one.
    Ping,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMessage {
    pub topic: Topic,
    /// Per-topic frame counter (snapshots carry the counter they were taken at).
    pub seq: u64,
    /// True: replace everything held for this topic. False: apply as upserts.
    pub snapshot: bool,
    pub frame: Frame,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Frame {
    Leaderboard(LeaderboardFrame),
    Brand(BrandDetail),
    Influencers(Vec<Influencer>),
    /// New uploads (snapshot: the most recent ones), oldest first.
    MapPoints(Vec<MapPoint>),
    Feed(FeedFrame),
    /// New alerts (snapshot: the most recent ones), oldest first.
    Alerts(Vec<Alert>),
    Health(Health),
    /// The answer to [`ClientMessage::Ping`]. `interval_ms`: the server's heartbeat
    /// interval; a page that hears nothing (no frame, no pong) for about that long
    /// should count the link as dead and reconnect.
    Pong {
        interval_ms: u64,
    },
    /// The subscription was refused or failed; the reason is for people.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LeaderboardFrame {
    pub window: Window,
    pub from_ms: Millis,
    pub to_ms: Millis,
    pub total_photos: u64,
    /// Snapshot: every row of the page. Delta: rows that entered the page (upsert
    /// by brand), at display precision ([`at_display_precision`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<TableRow>,
    /// Delta only: rows already on the page whose shown values changed, each with
    /// only the values that did ([`RowPatch`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<RowPatch>,
    /// Brands that left the page (or the window) since the last frame.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// The page: the rank of its first row minus one, and its order.
    #[serde(default)]
    pub offset: u32,
    #[serde(default)]
    pub sort: SortKey,
    /// Brands in the whole table, for scrolling through the pages.
    #[serde(default)]
    pub total_brands: u64,
    /// Events applied per second over the last few seconds (all kinds).
    pub events_per_sec: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FeedFrame {
    pub profile: UserProfile,
    /// Snapshot: the first page. Delta: new or changed photos (upsert by owner+time).
    pub photos: FeedPage,
    pub timeline: FeedPage,
}

/// Applies an upsert list onto a held list keyed by `key`, keeping newest-first order
/// by `created_ms` and at most `cap` items. Shared by the dashboard and the tests.
pub fn upsert_photos(held: &mut Vec<PhotoView>, updates: &[PhotoView], cap: usize) {
    for u in updates {
        match held
            .iter_mut()
            .find(|p| p.owner == u.owner && p.created_ms == u.created_ms)
        {
            Some(p) => *p = u.clone(),
            None => held.push(u.clone()),
        }
    }
    held.sort_by(|a, b| {
        b.created_ms
            .cmp(&a.created_ms)
            .then_with(|| a.owner.cmp(&b.owner))
    });
    held.truncate(cap);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_readable_shape() {
        let m = ClientMessage::Subscribe {
            topic: Topic::leaderboard(Window::H1),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"op":"subscribe","topic":{"type":"leaderboard","window":"1h","sort":"photos","offset":0,"rows":20}}"#
        );
        let old: ClientMessage = serde_json::from_str(
            r#"{"op":"subscribe","topic":{"type":"leaderboard","window":"1h"}}"#,
        )
        .unwrap();
        assert_eq!(old, m, "a subscription without a page gets the top rows");
        let back: ClientMessage = serde_json::from_str(
            r#"{"op":"unsubscribe","topic":{"type":"feed","username":"bob"}}"#,
        )
        .unwrap();
        assert_eq!(
            back,
            ClientMessage::Unsubscribe {
                topic: Topic::Feed {
                    username: "bob".into()
                }
            }
        );
    }

    #[test]
    fn display_precision_rounds_rates_as_shown_and_drops_the_open_step() {
        let m = BrandMetrics {
            brand: "b".into(),
            engagement_rate: 0.123_44,
            share_of_voice: 0.004_567,
            spark: vec![1, 2, 3],
            ..Default::default()
        };
        let d = at_display_precision(&m);
        let counts = at_display_precision(&BrandMetrics {
            likes: 999,
            reach: 13_632,
            comments: 123_456,
            photos: 1_234_567,
            ..Default::default()
        });
        assert_eq!(
            (counts.likes, counts.reach, counts.comments, counts.photos),
            (999, 13_600, 123_000, 1_200_000),
            "999, 13.6k, 123k, 1.2M"
        );
        assert_eq!(d.engagement_rate, 0.123);
        assert_eq!(d.share_of_voice, 0.0046);
        assert_eq!(d.spark, [1, 2]);
        let nudged = BrandMetrics {
            engagement_rate: 0.123_41,
            ..m.clone()
        };
        assert_eq!(at_display_precision(&nudged), d, "the same on screen");
    }

    #[test]
    fn a_patch_carries_only_what_changed_and_applies_idempotently() {
        let old = TableRow {
            brand: "Nike".into(),
            photos: 5,
            likes: 7,
            share_of_voice: 0.05,
            spark: vec![1, 2],
            ..Default::default()
        };
        assert_eq!(RowPatch::between(&old, &old), None, "nothing changed");
        let new = TableRow {
            share_of_voice: 0.049,
            likes: 8,
            ..old.clone()
        };
        let p = RowPatch::between(&old, &new).unwrap();
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"brand":"Nike","likes":8,"share_of_voice":0.049}"#
        );
        let mut held = old.clone();
        p.apply(&mut held);
        assert_eq!(held, new);
        p.apply(&mut held);
        assert_eq!(held, new, "a repeat changes nothing");
        let moved = TableRow {
            spark: vec![1, 2, 3],
            ..new.clone()
        };
        assert_eq!(
            RowPatch::between(&new, &moved).unwrap().spark,
            Some(vec![1, 2, 3]),
            "a sparkline goes when it moved"
        );
    }

    #[test]
    fn tables_sort_by_their_key_then_photos_then_name() {
        let row = |brand: &str, photos, reach| BrandMetrics {
            brand: brand.into(),
            photos,
            reach,
            ..Default::default()
        };
        let mut rows = [row("c", 1, 9), row("a", 5, 1), row("b", 5, 1)];
        rows.sort_by(|x, y| SortKey::Photos.compare(x, y));
        let names: Vec<_> = rows.iter().map(|r| r.brand.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        rows.sort_by(|x, y| SortKey::Reach.compare(x, y));
        let names: Vec<_> = rows.iter().map(|r| r.brand.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
    }

    #[test]
    fn upserts_replace_by_key_and_keep_newest_first() {
        let p = |owner: &str, t: i64, likes: u64| PhotoView {
            owner: owner.into(),
            created_ms: t,
            likes,
            ..Default::default()
        };
        let mut held = vec![p("a", 3, 0), p("b", 1, 0)];
        upsert_photos(&mut held, &[p("b", 1, 5), p("c", 2, 0), p("d", 4, 0)], 3);
        let got: Vec<_> = held.iter().map(|x| (x.owner.as_str(), x.likes)).collect();
        assert_eq!(got, [("d", 0), ("a", 0), ("c", 0)]);
    }
}
