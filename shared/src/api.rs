//! REST response bodies. Times are milliseconds since the epoch (UTC); rates are
//! fractions (0.25 = 25 %) except in the original `/brand-metrics` shape, which keeps
//! the original's percentages.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// A sliding window over event time, ending at the stream's clock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub enum Window {
    #[serde(rename = "5m")]
    #[default]
    M5,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "24h")]
    H24,
    #[serde(rename = "all")]
    All,
}

impl Window {
    pub const ALL: [Window; 4] = [Window::M5, Window::H1, Window::H24, Window::All];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::M5 => "5m",
            Window::H1 => "1h",
            Window::H24 => "24h",
            Window::All => "all",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Window::M5 => "5 minutes",
            Window::H1 => "1 hour",
            Window::H24 => "24 hours",
            Window::All => "all time",
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Window {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Window::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| format!("unknown window {s:?}: use 5m, 1h, 24h or all"))
    }
}

/// `GET /api/build`: what the server serves. `id` changes with a new dashboard build
/// or a new server binary; a page that saw another id reloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BuildInfo {
    pub id: String,
    pub version: String,
}

/// `GET /api/compare?brands=A,B[,…]&window=1h`: 2 to 5 brands over the same period,
/// step by step, and the audience overlap of every pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Comparison {
    pub window: Window,
    pub from_ms: Millis,
    pub to_ms: Millis,
    /// Minutes for 5m and 1h, hours for 24h and all.
    pub series_step_ms: Millis,
    /// In the order asked for.
    pub brands: Vec<ComparedBrand>,
    /// Every pair of the brands, in the order asked for (a before b).
    pub overlaps: Vec<Overlap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ComparedBrand {
    /// Over the whole period (share of voice against all photos in it).
    pub metrics: BrandMetrics,
    pub series: Vec<ComparedPoint>,
}

/// One step of one brand: its counts, its unique reach in that step alone, and its
/// share of all photos posted in the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ComparedPoint {
    pub at_ms: Millis,
    pub photos: u64,
    pub likes: u64,
    pub comments: u64,
    pub reach: u64,
    pub engagement_rate: f64,
    pub share_of_voice: f64,
}

/// The audience two brands share, by inclusion–exclusion of their reach sketches:
/// `overlap = reach_a + reach_b - union`, where `union` is the estimate of the two
/// sketches merged. Each of the three is an estimate; `error` bounds the overlap's
/// error (two standard errors of each estimate, added, so about 95 % or better).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Overlap {
    pub a: String,
    pub b: String,
    pub reach_a: u64,
    pub reach_b: u64,
    pub union: u64,
    pub overlap: u64,
    pub error: u64,
}

/// One brand's metrics over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BrandMetrics {
    pub brand: String,
    /// Photos tagged with the brand (the original's "frequency").
    pub photos: u64,
    pub likes: u64,
    pub comments: u64,
    /// Estimated distinct users reached (HyperLogLog).
    pub reach: u64,
    pub like_rate: f64,
    pub comment_rate: f64,
    /// (likes + comments) / reach.
    pub engagement_rate: f64,
    /// The brand's photos / all photos in the window.
    pub share_of_voice: f64,
    /// Sum of the posters' follower counts.
    pub impressions: u64,
    /// Photos in the period of the same length just before the window (0 for "all",
    /// which has none): what the "rising" order compares against.
    #[serde(default)]
    pub previous_photos: u64,
    /// Activity (photos + likes + comments) per step across the window, oldest first,
    /// for a sparkline: up to 30 points (minutes for 5m and 1h, hours for 24h and all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spark: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Leaderboard {
    pub window: Window,
    /// Start and end of the window in event time.
    pub from_ms: Millis,
    pub to_ms: Millis,
    pub total_photos: u64,
    /// Sorted by photos, then engagement; every brand seen in the window.
    pub rows: Vec<BrandMetrics>,
}

/// One minute of one brand.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct SeriesPoint {
    pub minute_ms: Millis,
    pub photos: u64,
    pub likes: u64,
    pub comments: u64,
}

/// Bucket size of a range series (`GET /api/brands/{brand}/series`, `GET /api/series`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Minute,
    #[default]
    Hour,
    Day,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }

    /// One bucket, in milliseconds (days are UTC days).
    pub fn step_ms(self) -> Millis {
        match self {
            Resolution::Minute => crate::time::MS_PER_MIN,
            Resolution::Hour => crate::time::MS_PER_HOUR,
            Resolution::Day => crate::time::MS_PER_DAY,
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resolution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Resolution::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown resolution {s:?}: use auto, minute, hour or day"))
    }
}

/// One bucket of a range series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct RangePoint {
    /// Start of the bucket.
    pub time_ms: Millis,
    pub photos: u64,
    pub likes: u64,
    pub comments: u64,
    /// Sum of the posters' follower counts.
    pub impressions: u64,
    /// Estimated distinct users reached in the bucket; `None` where no sketch is kept
    /// (minutes older than the minute sketch retention; the all-brands series).
    pub reach: Option<u64>,
    /// (likes + comments) / reach, when reach is known.
    pub engagement_rate: Option<f64>,
    /// The brand's photos / all brands' photos in the bucket.
    pub share_of_voice: f64,
}

/// A range series' totals: counters summed, reach the union of the buckets' sketches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct RangeTotals {
    pub photos: u64,
    pub likes: u64,
    pub comments: u64,
    pub impressions: u64,
    /// Distinct users reached over the whole range (not the sum of the points).
    pub reach: Option<u64>,
    pub engagement_rate: Option<f64>,
    pub share_of_voice: f64,
}

/// One brand (or `*`, all brands together) over a range of event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BrandSeries {
    pub brand: String,
    pub resolution: Resolution,
    pub step_ms: Millis,
    /// The buckets covered: `[from_ms, to_ms)`, from the bucket holding the requested
    /// `from` to the one holding `to` (or the stream's clock, if earlier).
    pub from_ms: Millis,
    pub to_ms: Millis,
    /// The stream's clock: the bucket holding it is still filling (partial).
    pub clock_ms: Option<Millis>,
    /// Every bucket of the range, oldest first, zero-filled.
    pub points: Vec<RangePoint>,
    pub totals: RangeTotals,
}

/// Several brands over one range, on the same buckets, with all brands together
/// (`all`, whose photos are the denominator of share of voice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SeriesComparison {
    pub resolution: Resolution,
    pub step_ms: Millis,
    pub from_ms: Millis,
    pub to_ms: Millis,
    pub clock_ms: Option<Millis>,
    pub brands: Vec<BrandSeries>,
    pub all: BrandSeries,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Influencer {
    pub username: String,
    pub uploads: u64,
    pub likes_received: u64,
    pub comments_received: u64,
    /// uploads + likes_received + comments_received.
    pub score: u64,
    pub followers: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BrandDetail {
    pub window: Window,
    pub from_ms: Millis,
    pub to_ms: Millis,
    pub current: BrandMetrics,
    /// The same metrics over the window just before (absent for `all`).
    pub previous: Option<BrandMetrics>,
    /// Per-minute points (per-hour for 24h and all), oldest first.
    pub series: Vec<SeriesPoint>,
    pub series_step_ms: Millis,
    /// The same steps over the previous period of the same length, oldest first (none
    /// for "all"): the brand chart draws it faintly behind the current one. Its last
    /// step is complete; `series`' last step is the one in progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_series: Vec<SeriesPoint>,
    pub top_posters: Vec<Influencer>,
    /// The brand's most recent photos, for its map.
    pub recent_points: Vec<MapPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CommentView {
    pub username: String,
    pub text: String,
    pub created_ms: Millis,
}

/// A photo as a feed shows it, with live counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PhotoView {
    /// Stable key: `owner` and `created_ms` identify a photo.
    pub owner: String,
    pub created_ms: Millis,
    pub brands: Vec<String>,
    /// As sent; show as a link or image only if `is_http_url`.
    pub photo_link: String,
    pub latitude: f64,
    pub longitude: f64,
    pub likes: u64,
    pub comments: u64,
    /// The newest comments, oldest first (bounded).
    pub recent_comments: Vec<CommentView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct UserProfile {
    pub username: String,
    pub full_name: Option<String>,
    /// False for users only ever named by other events (no `create-user` seen).
    pub registered: bool,
    pub created_ms: Option<Millis>,
    pub followers: u64,
    pub following: u64,
    pub photos: u64,
    pub likes_received: u64,
    pub comments_received: u64,
    /// Above the celebrity threshold: photos merged into timelines at read time.
    pub celebrity: bool,
}

/// A page of a feed, newest first. Pass `next` back as `before` for the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FeedPage {
    pub username: String,
    pub items: Vec<PhotoView>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct UserFeeds {
    pub profile: UserProfile,
    /// The user's own photos.
    pub photos: FeedPage,
    /// Home timeline: own photos and those of everyone followed.
    pub timeline: FeedPage,
}

/// An upload for the live map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MapPoint {
    pub owner: String,
    pub created_ms: Millis,
    pub brand: String,
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Alert {
    /// Unique and increasing.
    pub id: u64,
    pub brand: String,
    /// Event time at which the spike was detected.
    pub at_ms: Millis,
    /// Activity (photos + likes + comments) per minute over the recent span.
    pub rate_per_min: f64,
    /// Mean activity per minute over the baseline span before it.
    pub baseline_per_min: f64,
    pub factor: f64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DeadLetterView {
    pub reason: String,
    pub detail: String,
    /// Where it came from (topic/partition/offset, `ingest`, `generator`, …).
    pub source: String,
    pub at_ms: Millis,
    /// The original bytes, as UTF-8 where they are (lossy otherwise).
    pub raw: String,
}

/// A source's view of itself, for the health page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SourceHealth {
    /// `generator`, `kafka`, `replay`, `ingest`.
    pub kind: String,
    pub connected: bool,
    pub detail: String,
    /// Kafka consumer lag per `topic/partition`.
    pub lag: BTreeMap<String, i64>,
    pub paused: bool,
    /// Target events/s, where the source is rate-controlled.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Health {
    /// `ok`, or `degraded` with the reasons in `problems`.
    pub status: String,
    pub problems: Vec<String>,
    pub uptime_ms: Millis,
    pub events_applied: u64,
    /// Valid events through the pipeline: applied, or only archived when the server is
    /// an archiver (`pipeline.apply = false`, where `events_applied` stays 0).
    #[serde(default)]
    pub events_ingested: u64,
    pub events_per_sec: f64,
    pub events_by_kind: BTreeMap<String, u64>,
    pub dead_letters: u64,
    pub dead_letters_by_reason: BTreeMap<String, u64>,
    pub pending_engagements: u64,
    pub users: u64,
    /// Users named by events without ever sending `create-user`.
    pub implicit_users: u64,
    pub photos: u64,
    /// The stream's clock: newest event time seen, held back by the allowed lateness.
    pub stream_clock_ms: Millis,
    /// Events older than every retained bucket (all-time totals only).
    pub late_events: u64,
    /// Repeats of an event already applied (a second like of one photo by one user…).
    #[serde(default)]
    pub duplicates: u64,
    /// Follows and unfollows older than a newer event on the same edge.
    #[serde(default)]
    pub superseded: u64,
    /// Events applied behind the newest applied time by more than the allowed lateness,
    /// by how they were handled (`follow_repaired`, `unfollow_reach_kept`, …).
    #[serde(default)]
    pub late_by_handling: BTreeMap<String, u64>,
    /// Event-time order across inputs.
    #[serde(default)]
    pub order: OrderHealth,
    pub websocket_clients: u64,
    pub sources: Vec<SourceHealth>,
    /// State checkpoints; `None` when the server keeps its state in memory only.
    #[serde(default)]
    pub checkpoints: Option<CheckpointHealth>,
    /// The raw-event archive; `None` when it is off.
    #[serde(default)]
    pub archive: Option<ArchiveHealth>,
    /// The processor's state by part (users, follow edges, photos, likes, timelines,
    /// sketches…): what grows, and by how much.
    #[serde(default)]
    pub state: Vec<StatePart>,
}

/// One part of the processor's state: how many entries it holds and an estimate of
/// the memory they take (lengths and capacities times element sizes, not a heap walk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatePart {
    pub name: String,
    pub entries: u64,
    pub bytes: u64,
}

/// Event-time order across the inputs: each input's watermark and how far applying
/// trails it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OrderHealth {
    /// The newest event time applied.
    pub applied_time_ms: Option<Millis>,
    /// Events read and waiting for the other inputs to pass them.
    pub held: u64,
    /// Events applied before the other inputs passed them (the hold was full).
    pub released_early: u64,
    pub inputs: Vec<InputHealth>,
}

/// One input (a Kafka partition, the generator, a file, HTTP ingest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct InputHealth {
    pub name: String,
    /// The newest event time it delivered.
    pub watermark_ms: Option<Millis>,
    /// How far the applied time trails this input's watermark.
    pub trails_ms: Option<Millis>,
    pub held: u64,
    /// `open`, `at_end` (of its log) or `behind` (a backlog).
    pub position: String,
    /// Holds no other input back: at the end of its log, or silent past its bound.
    pub idle: bool,
}

/// How the state's checkpoints are going.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CheckpointHealth {
    pub taken: u64,
    pub last_bytes: u64,
    /// From the snapshot to durable on disk.
    pub last_ms: u64,
    /// How long applying stopped for it (taking the events applied since the last).
    pub last_pause_ms: u64,
    #[serde(default)]
    pub last_pause_us: u64,
    /// The store: its base snapshot, the changelog after it, the file on disk.
    #[serde(default)]
    pub base_bytes: u64,
    #[serde(default)]
    pub changelog_bytes: u64,
    #[serde(default)]
    pub changelog_entries: u64,
    #[serde(default)]
    pub file_bytes: u64,
    /// Changelog compactions into a new base, and how long the last took.
    #[serde(default)]
    pub compactions: u64,
    #[serde(default)]
    pub last_compaction_ms: u64,
    /// The last failure, cleared by the next checkpoint that succeeds.
    pub last_error: Option<String>,
}

/// How the raw-event archive is going.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ArchiveHealth {
    /// The folder or `s3://bucket/prefix` it writes to.
    pub location: String,
    pub files: u64,
    pub records: u64,
    pub dead_letters: u64,
    pub bytes: u64,
    /// Accepted but not yet in a visible file.
    pub buffered: u64,
    /// The last failed write, cleared by the next that succeeds.
    pub last_error: Option<String>,
}

/// The original system's `GET /brand-metrics` element, keys exactly as it sent them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OriginalBrandMetric {
    #[serde(rename = "Tag")]
    pub tag: String,
    #[serde(rename = "Reach")]
    pub reach: u64,
    #[serde(rename = "Comment Frequency")]
    pub comment_frequency: u64,
    #[serde(rename = "Like Frequency")]
    pub like_frequency: u64,
    #[serde(rename = "Comment Rate")]
    pub comment_rate: f64,
    #[serde(rename = "Like Rate")]
    pub like_rate: f64,
    #[serde(rename = "Engagement Rate")]
    pub engagement_rate: f64,
}

/// Response of `POST /api/ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IngestReport {
    pub accepted: u64,
    pub rejected: u64,
    /// The first rejected lines (1-based) with their reasons.
    pub errors: Vec<IngestError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IngestError {
    pub line: u64,
    pub reason: String,
    pub detail: String,
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ApiError {
    pub error: String,
}

/// Presenter controls (token-protected): the embedded generator's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GeneratorStatus {
    pub running: bool,
    pub paused: bool,
    pub rate: f64,
    pub events_sent: u64,
}

/// `POST /api/control/campaign`: a burst of uploads for one brand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CampaignRequest {
    pub brand: String,
    /// A city name from the bundled list; random cities when absent.
    pub city: Option<String>,
    /// How many photos (default 300).
    pub photos: Option<u32>,
    /// Over how many seconds (default 20).
    pub seconds: Option<u32>,
}

/// A brand from the bundled list, with its category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BrandInfo {
    pub name: String,
    pub category: String,
}
