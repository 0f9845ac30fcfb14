//! The processor: a deterministic state machine over the six events.
//!
//! `apply(event)` is plain synchronous Rust with no I/O and no clock but the stream's
//! own: the same events in the same order always give the same state and the same
//! deltas. It keeps the follower graph, photos with their likes and comments for a
//! retention window of event time (`retention`: memory follows users, follows,
//! readers and the window, not the events seen), profile feeds, home timelines (materialized for recent readers with fan-out
//! on write, built on read for everyone else, capped, celebrities merged at read time),
//! per-brand metrics in
//! per-minute and per-hour buckets with HyperLogLog reach, influencers and spike
//! alerts. Likes and comments that arrive before their photo (the six topics are read
//! independently) wait in a bounded holding area and are applied when it arrives.
//! Sources, stores and the web layer are adapters around it; `query` turns its state
//! into API bodies.

mod chunked;
pub mod compare;
mod feeds;
mod metrics;
pub mod partitioned;
pub mod query;
mod retention;
mod sizes;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};

use compact_str::CompactString;
use hashbrown::HashTable;
use instabrand_shared::api::Alert;
use instabrand_shared::event::{Edge, Engagement, PhotoUpload};
use instabrand_shared::time::{MS_PER_HOUR, MS_PER_MIN, MS_PER_SEC};
use instabrand_shared::{Event, EventKind, Millis, Reason};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::hll::{Hll, hash64};
use chunked::ChunkedVec;
pub use feeds::{Cursor, HomeFeeds, ReaderLog, Timeline, format_cursor, parse_cursor};
pub use metrics::{BrandState, Counters, Span, Windowed};
pub use retention::{Generations, LikeSets, PhotoIndex, PhotoStore};
use sizes::SizeCounters;

/// Every limit of the processor (docs/semantics.md explains what they bound).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessorConfig {
    /// Entries kept per home timeline (Twitter caps at 800).
    pub timeline_cap: usize,
    /// Accounts with more followers than this are not fanned out on write; their photos
    /// are merged into readers' timelines at read time.
    pub celebrity_threshold: usize,
    /// Unused. A follow back-fills every photo of the followee that belongs among the
    /// newest `timeline_cap` (a home timeline is those photos of everyone followed, so
    /// one built on read equals one kept up to date; a limit per follow would depend on
    /// when each follow happened, which the state does not keep). Still accepted so
    /// configuration files that set it load.
    pub backfill: usize,
    /// A home timeline is kept up to date (materialized) while its user reads it: for
    /// this long (event time) after their last read ([`Processor::note_reader`]).
    pub reader_ttl_secs: i64,
    /// At most this many materialized home timelines (each up to `timeline_cap`
    /// entries of 16 bytes); past it the least recently read goes. 0: none, every
    /// timeline is built on read.
    pub home_timelines_max: usize,
    /// Users with at least this many followers keep a follower sketch that is merged
    /// into reach, instead of inserting every follower.
    pub follower_sketch_threshold: usize,
    /// How long (event time) a like or comment waits for its photo.
    pub pending_hold_secs: i64,
    /// Most likes and comments waiting for their photos at once.
    pub pending_max: usize,
    /// Follows and unfollows also come on separate topics, so an unfollow can be read
    /// before the follow it undoes (or a re-follow before the unfollow it follows).
    /// The newest unfollow and the newest follow of each edge are remembered for
    /// `pending_hold_secs` of event time, so the newest event wins whatever the order:
    /// unfollows (rare) for at most this many edges...
    pub recent_unfollows_max: usize,
    /// ... and follows (half the stream, so kept small enough to stay in cache: they
    /// only guard a re-follow racing its unfollow) for at most this many.
    pub recent_follows_max: usize,
    /// How far the stream's clock is held back behind the newest event time; an event
    /// older than the newest applied by more than this is late (see `Stats::late_by_kind`).
    pub allowed_lateness_secs: i64,
    /// Per-minute counters are kept this long.
    pub minute_retention_minutes: i64,
    /// Per-minute reach sketches are kept this long (the 1 h window and its previous period).
    pub minute_sketch_retention_minutes: i64,
    /// Per-hour buckets (counters and sketches) are kept this long (24 h and its previous period).
    pub hour_retention_hours: i64,
    /// Past that, hours are kept as rollups (counters, reach folded to
    /// `hour_rollup_precision`) for this many days (docs/semantics.md, "History").
    pub hour_rollup_days: i64,
    /// Per-day buckets (counters, reach at `day_rollup_precision`) are kept this long.
    pub day_rollup_days: i64,
    /// HyperLogLog precision (4..=14) of hour rollups: 2^p bytes dense.
    pub hour_rollup_precision: u8,
    /// HyperLogLog precision (4..=14) of day buckets.
    pub day_rollup_precision: u8,
    /// Photos are kept this long (event time, after the photo's own time), and with
    /// them their likes and comments and their places in profile feeds, home
    /// timelines, the map and brand lists (docs/semantics.md, "Retention"). A like or
    /// comment on an older photo, and a photo upload older than this on arrival, is
    /// dead-lettered `photo_expired`. Brand metrics are counted when events arrive and
    /// are not affected. 0 keeps every photo (memory then grows with the stream).
    pub photo_retention_secs: i64,
    /// Newest comments kept per photo (every comment is counted).
    pub comments_kept_per_photo: usize,
    /// Newest uploads kept for the map.
    pub map_points_kept: usize,
    /// Newest uploads kept per brand (its map and top posters).
    pub brand_photos_kept: usize,
    /// Alerts kept.
    pub alerts_kept: usize,
    pub spike: SpikeConfig,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            timeline_cap: 800,
            celebrity_threshold: 10_000,
            backfill: 100,
            reader_ttl_secs: 3_600,
            home_timelines_max: 10_000,
            follower_sketch_threshold: 64,
            pending_hold_secs: 600,
            recent_unfollows_max: 1_000_000,
            recent_follows_max: 100_000,
            pending_max: 100_000,
            allowed_lateness_secs: 2,
            minute_retention_minutes: 25 * 60,
            minute_sketch_retention_minutes: 125,
            hour_retention_hours: 49,
            hour_rollup_days: 90,
            day_rollup_days: 730,
            hour_rollup_precision: 11,
            day_rollup_precision: 12,
            photo_retention_secs: 30 * 24 * 3_600,
            comments_kept_per_photo: 20,
            map_points_kept: 20_000,
            brand_photos_kept: 2_000,
            alerts_kept: 200,
            spike: SpikeConfig::default(),
        }
    }
}

/// When a brand's activity jumps far above its baseline. Rates are measured per second
/// of event time, so detection works minutes after a start, not hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpikeConfig {
    /// The recent span whose rate is compared (seconds of event time).
    pub recent_secs: i64,
    /// The baseline: up to this many seconds just before the recent span.
    pub baseline_secs: i64,
    /// The brand needs at least this much baseline history before it can alert.
    pub min_history_secs: i64,
    /// Alert when recent rate >= factor × baseline rate …
    pub factor: f64,
    /// … and the recent rate is at least this many events per minute.
    pub min_per_minute: f64,
    /// No second alert for a brand within this many seconds.
    pub cooldown_secs: i64,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        SpikeConfig {
            recent_secs: 30,
            baseline_secs: 600,
            min_history_secs: 60,
            factor: 2.5,
            min_per_minute: 20.0,
            cooldown_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserId(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PhotoId(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BrandId(pub u16);

#[derive(Serialize, Deserialize)]
pub struct User {
    /// Inline up to 24 bytes (most usernames): the user index compares names here,
    /// in the entry the event goes on to touch anyway, not behind another pointer.
    pub name: CompactString,
    pub full_name: Option<Box<str>>,
    pub created: Option<Millis>,
    pub followers: FxHashSet<UserId>,
    pub following: FxHashSet<UserId>,
    /// Own photos, oldest first.
    pub photos: Vec<PhotoId>,
    follower_sketch: Option<Box<Hll>>,
    /// Followers removed since the sketch was built (HLL cannot delete).
    sketch_removals: u32,
    /// Removals from `followers` and `following` since each was last rebuilt: see
    /// [`remove_edge`].
    edge_removals: [u32; 2],
    pub uploads: u64,
    /// Time of the user's oldest upload ever seen (`Millis::MAX`: none), kept after
    /// the photo expires: an engagement on a photo past retention that is older than
    /// it points at a photo that never was (`orphan_engagement`), not at one that
    /// expired (`photo_expired`).
    pub first_upload: Millis,
    pub likes_received: u64,
    pub comments_received: u64,
}

#[derive(Serialize, Deserialize)]
pub struct Comment {
    pub user: UserId,
    pub text: Box<str>,
    pub created: Millis,
}

#[derive(Serialize, Deserialize)]
pub struct Photo {
    pub owner: UserId,
    pub created: Millis,
    pub brands: SmallVec<[BrandId; 1]>,
    pub link: Box<str>,
    pub latitude: f64,
    pub longitude: f64,
    pub likes: u32,
    pub comments: u32,
    pub recent_comments: VecDeque<Comment>,
}

/// What one applied event changed; the live hub turns these into frames.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    UserChanged(UserId),
    Followed {
        follower: UserId,
        followed: UserId,
    },
    Unfollowed {
        follower: UserId,
        followed: UserId,
    },
    PhotoAdded(PhotoId),
    Engaged {
        photo: PhotoId,
        actor: UserId,
        kind: EventKind,
    },
    /// A like or comment is waiting for its photo.
    Held,
    /// Applied before, changes nothing now (a repeated like, follow, photo).
    Duplicate,
    /// A follow or unfollow older than a newer event on the same edge already applied:
    /// the newest stands.
    Superseded,
    Alert(u64),
    /// The record must go to the dead letters with its original bytes.
    DeadLetter {
        reason: Reason,
        detail: String,
        raw: Box<[u8]>,
    },
}

pub type Deltas = SmallVec<[Delta; 2]>;

/// A like or comment waiting for its photo. Only the original bytes are persisted;
/// the event is decoded again on restore (it decoded once, so it decodes again).
#[derive(Clone, Serialize, Deserialize)]
#[serde(into = "PendingRaw", try_from = "PendingRaw")]
struct Pending {
    seq: u64,
    event: Event<'static>,
    raw: Box<[u8]>,
}

#[derive(Serialize, Deserialize)]
struct PendingRaw {
    seq: u64,
    raw: Box<[u8]>,
}

impl From<Pending> for PendingRaw {
    fn from(p: Pending) -> Self {
        PendingRaw {
            seq: p.seq,
            raw: p.raw,
        }
    }
}

impl TryFrom<PendingRaw> for Pending {
    type Error = String;
    fn try_from(p: PendingRaw) -> Result<Self, String> {
        let event = instabrand_shared::decode(&p.raw, None, &instabrand_shared::DecodeLimits::NONE)
            .map_err(|e| e.to_string())?
            .into_owned();
        Ok(Pending {
            seq: p.seq,
            event,
            raw: p.raw,
        })
    }
}

/// Counters for the health view. Every event applied is counted once: applied (by
/// kind), a duplicate, superseded, held for its photo (`pending_count`, then one of
/// the others) or dead-lettered (by reason); late ones are also counted by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub applied_by_kind: [u64; 6],
    pub duplicates: u64,
    /// Follows and unfollows older than a newer event on their edge (which stands).
    pub superseded: u64,
    pub implicit_users: u64,
    /// Events older than every retained bucket: counted in all-time totals only.
    pub late_events: u64,
    /// Applied although older than the newest applied event by more than the allowed
    /// lateness, by kind (docs/semantics.md, "Late events"): create-user is exact; a
    /// follow is exact too (its follower is added to the reach of the followed user's
    /// photos since the follow); an unfollow cannot withdraw reach already counted
    /// (sketches only grow); a photo, like or comment lands in its own minute with
    /// the followers its user has now.
    pub late_by_kind: [u64; 6],
    pub dead_letters: BTreeMap<Reason, u64>,
}

/// The newest event time per edge (follower, followed), for one kind of edge event,
/// forgotten after the hold or beyond a count.
#[derive(Default, Serialize, Deserialize)]
struct RecentEdges {
    times: FxHashMap<u64, Millis>,
    /// Expiry order; an edge seen again has a later entry too.
    order: VecDeque<(Millis, u64)>,
}

impl RecentEdges {
    fn key(follower: UserId, followed: UserId) -> u64 {
        (u64::from(follower.0) << 32) | u64::from(followed.0)
    }

    /// The newest time remembered for `key`, if not older than `horizon`.
    fn get(&self, key: u64, horizon: Millis) -> Option<Millis> {
        self.times.get(&key).copied().filter(|t| *t >= horizon)
    }

    fn remember(&mut self, key: u64, at: Millis, horizon: Millis, max: usize) {
        let t = self.times.entry(key).or_insert(at);
        *t = (*t).max(at);
        self.order.push_back((at, key));
        while let Some(&(t, old)) = self.order.front() {
            if t >= horizon && self.order.len() <= max {
                break;
            }
            self.order.pop_front();
            // Only the entry for the time still remembered forgets the edge.
            if let Entry::Occupied(e) = self.times.entry(old)
                && *e.get() == t
            {
                e.remove();
            }
        }
    }
}

/// The whole state; `snapshot` / `restore` persist it (indexes are rebuilt, scratch
/// space and configuration are not stored).
#[derive(Serialize, Deserialize)]
pub struct Processor {
    #[serde(skip)]
    pub(crate) cfg: ProcessorConfig,
    pub(crate) users: ChunkedVec<User>,
    /// Stable hash of each username, by user id: the same user hashes alike on every
    /// instance, so reach sketches merge across instances. Kept apart from `users` (and
    /// timelines likewise) so the loops over followers touch dense memory.
    hashes: Vec<u64>,
    /// Retired: checkpoints up to format v4 held a home timeline per user here. Read
    /// and dropped on restore, written empty, so those checkpoints still load.
    retired_timelines: Vec<Timeline>,
    /// Home timelines of recent readers (not checkpointed: see `HomeFeeds`).
    #[serde(skip)]
    feeds: HomeFeeds,
    /// The users one event reaches, encoded once and merged into each of its sketches.
    #[serde(skip)]
    reached: Hll,
    #[serde(skip)]
    /// Username -> id: the table holds only ids (4 bytes a slot, so 200,000 users
    /// fit in the core's cache), hashed by [`name_hash`] and compared against the
    /// user's inline name. As a map of inline names (32-byte slots, 8 MB at 200,000
    /// users) a lookup missed the cache on the slot and again on the user it named.
    user_index: HashTable<UserId>,
    /// Photos kept (see `retention`).
    pub(crate) photos: PhotoStore,
    /// Rebuilt on restore.
    #[serde(skip)]
    photo_index: PhotoIndex,
    /// (photo, liker) pairs of kept photos: a repeated like counts once.
    likes: LikeSets,
    /// Photos older than this have expired (`Millis::MIN` until the first expiry).
    retained_from: Millis,
    /// Running sums for `state_sizes` (recounted on restore).
    #[serde(skip)]
    sizes: SizeCounters,
    pub(crate) brands: Vec<BrandState>,
    #[serde(skip)]
    brand_index: FxHashMap<Box<str>, BrandId>,
    /// All brands together, for share of voice and influencers.
    pub(crate) totals: BrandState,
    /// Activity received per user per minute and per hour (influencers).
    pub(crate) influence_minutes: BTreeMap<i64, FxHashMap<UserId, u32>>,
    pub(crate) influence_hours: BTreeMap<i64, FxHashMap<UserId, u32>>,
    pending: FxHashMap<(UserId, Millis), Vec<Pending>>,
    /// Expiry order of the holding area: (event time, seq) -> photo key.
    pending_order: BTreeMap<(Millis, u64), (UserId, Millis)>,
    pending_seq: u64,
    /// The newest follow and the newest unfollow of recently touched edges.
    recent_follows: RecentEdges,
    recent_unfollows: RecentEdges,
    pub(crate) recent_photos: VecDeque<PhotoId>,
    pub(crate) alerts: VecDeque<Alert>,
    next_alert_id: u64,
    /// Newest event time seen (that was allowed to move the clock).
    max_time: Option<Millis>,
    /// The first event time seen: how long the stream has run, for spike baselines.
    #[serde(default)]
    first_time: Option<Millis>,
    evicted_through_minute: i64,
    pub stats: Stats,
    /// A partition processor (`partitioned.rs`): a like or comment is counted here, on
    /// its photo's partition, and its reach (the engager's followers, who live on the
    /// engager's partition) goes on as a [`ReachRecord`] in `reach_out`.
    #[serde(skip)]
    pub(crate) split_reach: bool,
    #[serde(skip)]
    pub(crate) reach_out: Vec<ReachRecord>,
}

/// Which sets a follow or unfollow changes here ([`Processor::apply_as`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// Both: one processor holds every user.
    Both,
    /// The followed user's follower set (what reach and fan-out read).
    Followers,
    /// The follower's following set (what a home timeline is built from).
    Following,
}

/// The second half of a like or comment applied on another partition: the engager's
/// followers go into the reach of the photo's brands at the engagement's time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReachRecord {
    pub actor: Box<str>,
    pub brands: SmallVec<[Box<str>; 1]>,
    pub at: Millis,
}

impl Processor {
    pub fn new(cfg: ProcessorConfig) -> Self {
        Processor {
            totals: BrandState::new("*".into()),
            cfg,
            users: ChunkedVec::new(),
            hashes: Vec::new(),
            retired_timelines: Vec::new(),
            feeds: HomeFeeds::default(),
            reached: Hll::new(),
            user_index: HashTable::new(),
            photos: PhotoStore::default(),
            photo_index: PhotoIndex::default(),
            likes: LikeSets::default(),
            retained_from: Millis::MIN,
            sizes: SizeCounters::default(),
            brands: Vec::new(),
            brand_index: FxHashMap::default(),
            influence_minutes: BTreeMap::new(),
            influence_hours: BTreeMap::new(),
            pending: FxHashMap::default(),
            pending_order: BTreeMap::new(),
            pending_seq: 0,
            recent_follows: RecentEdges::default(),
            recent_unfollows: RecentEdges::default(),
            recent_photos: VecDeque::new(),
            alerts: VecDeque::new(),
            next_alert_id: 1,
            max_time: None,
            first_time: None,
            evicted_through_minute: i64::MIN,
            stats: Stats::default(),
            split_reach: false,
            reach_out: Vec::new(),
        }
    }

    pub fn config(&self) -> &ProcessorConfig {
        &self.cfg
    }

    /// The whole state as bytes (postcard), for a checkpoint.
    pub fn snapshot(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_stdvec(self)
    }

    /// The same bytes as [`Self::snapshot`], streamed into `w` without a copy in memory.
    pub fn snapshot_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        postcard::to_io(self, w)
            .map(|_| ())
            .map_err(std::io::Error::other)
    }

    /// The state a `snapshot` saved, running under `cfg`.
    pub fn restore(bytes: &[u8], cfg: ProcessorConfig) -> Result<Processor, postcard::Error> {
        let mut p: Processor = postcard::from_bytes(bytes)?;
        p.cfg = cfg;
        p.retired_timelines = Vec::new();
        let users = &p.users;
        p.user_index
            .reserve(users.len(), |id| name_hash(&users[id.0 as usize].name));
        for (i, u) in users.iter().enumerate() {
            p.user_index
                .insert_unique(name_hash(&u.name), UserId(i as u32), |id| {
                    name_hash(&users[id.0 as usize].name)
                });
        }
        for (id, ph) in p.photos.iter() {
            let keep_ms = p.retention_ms();
            p.photo_index
                .at_mut(ph.created, keep_ms)
                .insert((ph.owner, ph.created), id);
        }
        p.sizes = SizeCounters::recount(&p);
        for (i, b) in p.brands.iter_mut().enumerate() {
            p.brand_index.insert(b.name.clone(), BrandId(i as u16));
            // Minutes the clock has left were folded before the snapshot.
            b.reopen_from(p.evicted_through_minute);
        }
        Ok(p)
    }

    /// The stream's clock: the newest event time, held back by the allowed lateness.
    /// Windows end here. `None` before the first event.
    pub fn clock(&self) -> Option<Millis> {
        self.max_time
            .map(|t| t - self.cfg.allowed_lateness_secs * MS_PER_SEC)
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn photo_count(&self) -> usize {
        self.photos.len()
    }

    pub fn pending_count(&self) -> usize {
        self.pending_order.len()
    }

    pub fn user_id(&self, name: &str) -> Option<UserId> {
        self.find_user(name_hash(name), name)
    }

    fn find_user(&self, hash: u64, name: &str) -> Option<UserId> {
        let users = &self.users;
        self.user_index
            .find(hash, |id| users[id.0 as usize].name == name)
            .copied()
    }

    pub fn user(&self, id: UserId) -> &User {
        &self.users[id.0 as usize]
    }

    /// A kept photo (panics on one past retention: see `try_photo`).
    pub fn photo(&self, id: PhotoId) -> &Photo {
        self.photos.at(id)
    }

    /// The photo, unless it has expired: for ids held across batches (the live hub).
    pub fn try_photo(&self, id: PhotoId) -> Option<&Photo> {
        self.photos.get(id)
    }

    pub fn photo_id(&self, owner: UserId, created: Millis) -> Option<PhotoId> {
        self.indexed_photo(owner, created)
    }

    /// The photo of `owner` at `created`, if kept. (The index may still hold photos
    /// that expired in a generation not yet dropped: checked against the store.)
    fn indexed_photo(&self, owner: UserId, created: Millis) -> Option<PhotoId> {
        let id = *self.photo_index.at(created)?.get(&(owner, created))?;
        self.photos.contains(id).then_some(id)
    }

    fn retention_ms(&self) -> i64 {
        self.cfg.photo_retention_secs.saturating_mul(MS_PER_SEC)
    }

    pub fn brand_id(&self, name: &str) -> Option<BrandId> {
        self.brand_index.get(name).copied()
    }

    pub fn brand(&self, id: BrandId) -> &BrandState {
        &self.brands[id.0 as usize]
    }

    pub fn brand_ids(&self) -> impl Iterator<Item = BrandId> + '_ {
        (0..self.brands.len()).map(|i| BrandId(i as u16))
    }

    pub fn alerts(&self) -> &VecDeque<Alert> {
        &self.alerts
    }

    pub fn is_celebrity(&self, id: UserId) -> bool {
        self.user(id).followers.len() > self.cfg.celebrity_threshold
    }

    /// Applies one decoded event. `raw` is the record's original bytes, kept only if the
    /// event has to wait for its photo (and may later be dead-lettered).
    pub fn apply(&mut self, event: &Event<'_>, raw: &[u8]) -> Deltas {
        self.apply_as(event, raw, Half::Both)
    }

    /// [`apply`](Self::apply) on a partition (`partitioned.rs`) that keeps only `half`
    /// of a follow or unfollow: the followed user's follower set on the followed
    /// user's partition, the follower's following set on the follower's. Both decide
    /// from the same edge events in the same order (the newest of a follow and an
    /// unfollow stands; a repeat is a duplicate), so they agree. Other events ignore it.
    pub fn apply_as(&mut self, event: &Event<'_>, raw: &[u8], half: Half) -> Deltas {
        let mut out = Deltas::new();
        let t = event.time();
        let late = self
            .max_time
            .is_some_and(|m| t < m - self.cfg.allowed_lateness_secs * MS_PER_SEC);
        self.advance_clock(t, &mut out);
        // What the clock's move expired comes first; the event's own outcome follows.
        let own = out.len();
        match event {
            Event::CreateUser(e) => {
                let (id, _) = self.intern_user(&e.username, true);
                let u = &mut self.users[id.0 as usize];
                let first = u.created.is_none();
                if first || u.full_name.as_deref() != Some(&*e.full_name) {
                    let before = u.full_name.as_ref().map_or(0, |f| f.len()) as u64;
                    self.sizes.user_text += e.full_name.len() as u64;
                    self.sizes.user_text -= before;
                    u.full_name = Some(e.full_name.as_ref().into());
                    u.created = Some(u.created.map_or(e.created, |c| c.min(e.created)));
                    out.push(Delta::UserChanged(id));
                } else {
                    out.push(Delta::Duplicate);
                }
            }
            Event::PhotoUpload(p) => self.apply_photo(p, raw, &mut out),
            Event::Follow(e) => self.apply_follow(e, late, half, &mut out),
            Event::Unfollow(e) => self.apply_unfollow(e, half, &mut out),
            Event::Like(e) | Event::Comment(e) => {
                self.apply_engagement(event.kind(), e, raw, &mut out)
            }
        }
        self.count_outcome(event.kind(), &out);
        // Late counts events applied late: not one still waiting, nor one dead-lettered.
        if late
            && !out[own..]
                .iter()
                .any(|d| matches!(d, Delta::Held | Delta::DeadLetter { .. }))
        {
            self.stats.late_by_kind[event.kind() as usize] += 1;
        }
        out
    }

    /// Counts one event under what became of it (its own deltas, which may follow
    /// dead letters of expired engagements the same event pushed out).
    fn count_outcome(&mut self, kind: EventKind, out: &[Delta]) {
        let changed = out.iter().any(|d| {
            !matches!(
                d,
                Delta::Duplicate | Delta::Superseded | Delta::Held | Delta::DeadLetter { .. }
            )
        });
        if changed {
            self.stats.applied_by_kind[kind as usize] += 1;
        } else if out.iter().any(|d| matches!(d, Delta::Duplicate)) {
            self.stats.duplicates += 1;
        } else if out.iter().any(|d| matches!(d, Delta::Superseded)) {
            self.stats.superseded += 1;
        }
    }

    /// Applies the reach half of a like or comment counted on another partition
    /// (`split_reach`): the engager's followers, as they are now, into the reach of the
    /// brands at the engagement's time, exactly as an unsplit processor adds them.
    pub fn apply_reach(&mut self, r: &ReachRecord) {
        let (actor, _) = self.intern_user(&r.actor, false);
        let clock = self.clock().unwrap_or(r.at);
        self.prepare_reach(actor);
        for name in &r.brands {
            let b = self.intern_brand(name);
            self.count(Some(b), r.at, clock, Counters::default(), actor);
        }
    }

    /// Moves the stream's clock to `t` as an event at `t` would (expiry, eviction),
    /// without one: partition processors keep one clock, whoever has the events.
    pub fn advance_to(&mut self, t: Millis) -> Deltas {
        let mut out = Deltas::new();
        self.advance_clock(t, &mut out);
        out
    }

    /// The newest event time applied.
    pub fn newest_time(&self) -> Option<Millis> {
        self.max_time
    }

    /// Records a record that never decoded, so the counts by reason include it.
    pub fn count_dead_letter(&mut self, reason: Reason) {
        *self.stats.dead_letters.entry(reason).or_default() += 1;
    }

    fn advance_clock(&mut self, t: Millis, out: &mut Deltas) {
        match self.max_time {
            None => {
                self.max_time = Some(t);
                self.first_time = Some(t);
            }
            // Far-future stamps never get here: the pipeline dead-letters them
            // (`future_time`) before they can move the clock.
            Some(m) if t > m => self.max_time = Some(t),
            Some(_) => return,
        }
        self.expire_pending(out);
        self.expire_readers();
        let Some(clock) = self.clock() else { return };
        let minute = clock.div_euclid(MS_PER_MIN);
        if minute > self.evicted_through_minute {
            self.evicted_through_minute = minute;
            self.evict(minute);
        }
    }

    fn evict(&mut self, minute: i64) {
        let horizon = self.horizon_at(minute);
        self.expire_photos(horizon);
        let cfg = &self.cfg;
        let hour = minute.div_euclid(60);
        for b in self
            .brands
            .iter_mut()
            .chain(std::iter::once(&mut self.totals))
        {
            b.evict(minute, cfg);
        }
        let keep_minutes = minute - 65;
        self.influence_minutes = self.influence_minutes.split_off(&keep_minutes);
        let keep_hours = hour - 25;
        self.influence_hours = self.influence_hours.split_off(&keep_hours);
    }

    fn intern_user(&mut self, name: &str, registering: bool) -> (UserId, bool) {
        let hash = name_hash(name);
        if let Some(id) = self.find_user(hash, name) {
            return (id, false);
        }
        let id = UserId(self.users.len() as u32);
        self.users.push(User {
            name: CompactString::from(name),
            full_name: None,
            created: None,
            followers: FxHashSet::default(),
            following: FxHashSet::default(),
            photos: Vec::new(),
            follower_sketch: None,
            sketch_removals: 0,
            edge_removals: [0; 2],
            uploads: 0,
            first_upload: Millis::MAX,
            likes_received: 0,
            comments_received: 0,
        });
        let users = &self.users;
        self.user_index
            .insert_unique(hash, id, |id| name_hash(&users[id.0 as usize].name));
        self.hashes.push(stable_hash(name));
        self.sizes.user_text += name.len() as u64;
        if !registering {
            self.stats.implicit_users += 1;
        }
        (id, true)
    }

    /// Users named by events without a `create-user` of their own (yet).
    pub fn implicit_user_count(&self) -> usize {
        self.users.iter().filter(|u| u.created.is_none()).count()
    }

    fn intern_brand(&mut self, name: &str) -> BrandId {
        if let Some(&id) = self.brand_index.get(name) {
            return id;
        }
        let id = BrandId(self.brands.len() as u16);
        let mut b = BrandState::new(name.into());
        b.reopen_from(self.evicted_through_minute);
        self.brands.push(b);
        self.brand_index.insert(name.into(), id);
        id
    }

    fn apply_photo(&mut self, p: &PhotoUpload<'_>, raw: &[u8], out: &mut Deltas) {
        if self.past_retention(p.created) {
            self.expired_photo(p, raw, out);
            return;
        }
        let (owner, _) = self.intern_user(&p.username, false);
        if self.indexed_photo(owner, p.created).is_some() {
            out.push(Delta::Duplicate);
            return;
        }
        let mut brands = SmallVec::new();
        for b in &p.brands {
            let id = self.intern_brand(b);
            if !brands.contains(&id) {
                brands.push(id);
            }
        }
        self.sizes.photo_text += p.photo_link.len() as u64;
        let id = self.photos.push(Photo {
            owner,
            created: p.created,
            brands: brands.clone(),
            link: p.photo_link.as_ref().into(),
            latitude: p.latitude,
            longitude: p.longitude,
            likes: 0,
            comments: 0,
            recent_comments: VecDeque::new(),
        });
        let keep_ms = self.retention_ms();
        self.photo_index
            .at_mut(p.created, keep_ms)
            .insert((owner, p.created), id);
        let followers = self.users[owner.0 as usize].followers.len() as u64;
        {
            let u = &mut self.users[owner.0 as usize];
            u.uploads += 1;
            u.first_upload = u.first_upload.min(p.created);
            feeds::insert_sorted(&mut u.photos, id, p.created, &self.photos);
        }
        self.fan_out(owner, id);
        self.recent_photos.push_back(id);
        while self.recent_photos.len() > self.cfg.map_points_kept {
            self.recent_photos.pop_front();
        }
        let clock = self.clock().unwrap_or(p.created);
        self.prepare_reach(owner);
        let c = Counters {
            photos: 1,
            impressions: followers,
            ..Counters::default()
        };
        for &b in &brands {
            self.count(Some(b), p.created, clock, c, owner);
            let bs = &mut self.brands[b.0 as usize];
            bs.recent_photos.push_back(id);
            while bs.recent_photos.len() > self.cfg.brand_photos_kept {
                bs.recent_photos.pop_front();
            }
        }
        self.count(None, p.created, clock, c, owner);
        self.credit_influence(owner, p.created, clock);
        out.push(Delta::PhotoAdded(id));
        for &b in &brands {
            self.check_spike(b, p.created, out);
        }
        // Likes and comments that arrived first.
        if let Some(waiting) = self.pending.remove(&(owner, p.created)) {
            for w in waiting {
                self.pending_order.remove(&(w.event.time(), w.seq));
                self.sizes.pending_raw -= w.raw.len() as u64;
                if let Event::Like(e) | Event::Comment(e) = &w.event {
                    let mut own = Deltas::new();
                    self.apply_engagement(w.event.kind(), e, &w.raw, &mut own);
                    self.count_outcome(w.event.kind(), &own);
                    out.extend(own);
                }
            }
        }
    }

    /// Edge events older than this are forgotten.
    fn edge_horizon(&self, at: Millis) -> Millis {
        self.clock().unwrap_or(at) - self.cfg.pending_hold_secs * MS_PER_SEC
    }

    fn apply_follow(&mut self, e: &Edge<'_>, late: bool, half: Half, out: &mut Deltas) {
        let (follower, _) = self.intern_user(&e.follower, false);
        let (followed, _) = self.intern_user(&e.followed, false);
        let (edge, at) = (RecentEdges::key(follower, followed), e.created);
        let horizon = self.edge_horizon(at);
        // An unfollow at the same second or later, read first, wins: following and
        // unfollowing within one second is likelier than the other way round.
        if self
            .recent_unfollows
            .get(edge, horizon)
            .is_some_and(|u| u >= at)
        {
            out.push(Delta::Superseded);
            return;
        }
        let max = self.cfg.recent_follows_max;
        self.recent_follows.remember(edge, at, horizon, max);
        // The set this half keeps says whether the edge is new.
        let (set, other) = match half {
            Half::Both | Half::Followers => {
                (&mut self.users[followed.0 as usize].followers, follower)
            }
            Half::Following => (&mut self.users[follower.0 as usize].following, followed),
        };
        let slots = set.capacity() as u64;
        if !set.insert(other) {
            out.push(Delta::Duplicate);
            return;
        }
        self.sizes.edge_slots += set.capacity() as u64 - slots;
        if half == Half::Both {
            let following = &mut self.users[follower.0 as usize].following;
            let slots = following.capacity() as u64;
            following.insert(followed);
            self.sizes.edge_slots += following.capacity() as u64 - slots;
        }
        if half != Half::Following {
            self.sizes.edges += 1;
            let hash = self.hashes[follower.0 as usize];
            let u = &mut self.users[followed.0 as usize];
            if let Some(s) = u.follower_sketch.as_mut() {
                let before = s.heap_bytes() as u64;
                s.insert_hash(hash);
                self.sizes.follower_sketch_bytes += s.heap_bytes() as u64;
                self.sizes.follower_sketch_bytes -= before;
            }
            if late {
                self.repair_reach(follower, followed, at);
            }
        }
        if half != Half::Followers {
            self.home_feeds_followed(follower, followed);
        }
        out.push(Delta::Followed { follower, followed });
    }

    /// A follow applied late: had it come in its turn, the follower would have been
    /// reached by every photo the followed user posted since. Sketches only grow, so
    /// adding them now gives exactly that, in each photo's own minute.
    fn repair_reach(&mut self, follower: UserId, followed: UserId, since: Millis) {
        let hash = self.hashes[follower.0 as usize];
        let Some(clock) = self.clock() else { return };
        let photos = &self.users[followed.0 as usize].photos;
        for &ph in photos.iter().rev() {
            let photo = self.photos.at(ph);
            if photo.created < since {
                break;
            }
            for &b in &photo.brands {
                self.brands[b.0 as usize].add(
                    photo.created,
                    clock,
                    Counters::default(),
                    &self.cfg,
                    |s| s.insert_hash(hash),
                );
            }
        }
    }

    fn apply_unfollow(&mut self, e: &Edge<'_>, half: Half, out: &mut Deltas) {
        let (follower, _) = self.intern_user(&e.follower, false);
        let (followed, _) = self.intern_user(&e.followed, false);
        let (edge, at) = (RecentEdges::key(follower, followed), e.created);
        let horizon = self.edge_horizon(at);
        // A newer follow already read (a re-follow) stands.
        if self
            .recent_follows
            .get(edge, horizon)
            .is_some_and(|f| f > at)
        {
            out.push(Delta::Superseded);
            return;
        }
        let repeated = self.recent_unfollows.get(edge, horizon).is_some();
        let max = self.cfg.recent_unfollows_max;
        self.recent_unfollows.remember(edge, at, horizon, max);
        let (removed, slots) = match half {
            Half::Both | Half::Followers => {
                let u = &mut self.users[followed.0 as usize];
                remove_edge(&mut u.followers, &mut u.edge_removals[0], follower)
            }
            Half::Following => {
                let u = &mut self.users[follower.0 as usize];
                remove_edge(&mut u.following, &mut u.edge_removals[1], followed)
            }
        };
        self.sizes.edge_slots = (self.sizes.edge_slots as i64 + slots) as u64;
        if !removed {
            // Not following: a repeated unfollow changes nothing, but one read before
            // its follow is remembered above and cancels that follow when it comes.
            if repeated {
                out.push(Delta::Duplicate);
            } else {
                out.push(Delta::Unfollowed { follower, followed });
            }
            return;
        }
        if half == Half::Both {
            let u = &mut self.users[follower.0 as usize];
            let (_, slots) = remove_edge(&mut u.following, &mut u.edge_removals[1], followed);
            self.sizes.edge_slots = (self.sizes.edge_slots as i64 + slots) as u64;
        }
        if half != Half::Following {
            self.sizes.edges -= 1;
            let u = &mut self.users[followed.0 as usize];
            if u.follower_sketch.is_some() {
                u.sketch_removals += 1;
            }
        }
        if half != Half::Followers {
            self.home_feeds_unfollowed(follower, followed);
        }
        out.push(Delta::Unfollowed { follower, followed });
    }

    fn apply_engagement(
        &mut self,
        kind: EventKind,
        e: &Engagement<'_>,
        raw: &[u8],
        out: &mut Deltas,
    ) {
        // Past retention its photo is gone: neither applied nor held, but
        // dead-lettered, so it is not lost. Unless its owner had not posted yet by
        // then: a photo that never was waits and is an orphan, as before.
        if self.past_retention(e.photo)
            && self
                .user_id(&e.owner)
                .is_some_and(|o| self.users[o.0 as usize].first_upload <= e.photo)
        {
            let detail = format!(
                "{kind}: photo {}@{} is past retention (kept {} s; photos before {} have expired)",
                e.owner,
                instabrand_shared::time::format_naive(e.photo),
                self.cfg.photo_retention_secs,
                instabrand_shared::time::format_naive(self.retained_from),
            );
            self.dead_letter(Reason::PhotoExpired, detail, raw.into(), out);
            return;
        }
        let (owner, _) = self.intern_user(&e.owner, false);
        let (actor, _) = self.intern_user(&e.actor, false);
        let Some(photo) = self.indexed_photo(owner, e.photo) else {
            self.hold(kind, e, raw, owner, out);
            return;
        };
        if kind == EventKind::Like {
            let keep_ms = self.retention_ms();
            let likes = self.likes.at_mut(e.photo, keep_ms);
            if !likes.insert(retention::like_key(photo, actor)) {
                out.push(Delta::Duplicate);
                return;
            }
        }
        let clock = self.clock().unwrap_or(e.created);
        let mut c = Counters::default();
        {
            let p = self.photos.get_mut(photo).expect("indexed photos are kept");
            let o = &mut self.users[owner.0 as usize];
            if kind == EventKind::Like {
                p.likes += 1;
                o.likes_received += 1;
                c.likes = 1;
            } else {
                p.comments += 1;
                o.comments_received += 1;
                c.comments = 1;
                let text: Box<str> = e.text.as_deref().unwrap_or("").into();
                self.sizes.comments += 1;
                self.sizes.comment_text += text.len() as u64;
                p.recent_comments.push_back(Comment {
                    user: actor,
                    text,
                    created: e.created,
                });
                while p.recent_comments.len() > self.cfg.comments_kept_per_photo {
                    if let Some(old) = p.recent_comments.pop_front() {
                        self.sizes.comments -= 1;
                        self.sizes.comment_text -= old.text.len() as u64;
                    }
                }
            }
        }
        let brands = self.photos.at(photo).brands.clone();
        if self.split_reach {
            // Counted here; the engager's followers are on the engager's partition.
            for &b in &brands {
                self.brands[b.0 as usize].add(e.created, clock, c, &self.cfg, |_| {});
            }
            self.reach_out.push(ReachRecord {
                actor: e.actor.as_ref().into(),
                brands: brands
                    .iter()
                    .map(|b| self.brands[b.0 as usize].name.clone())
                    .collect(),
                at: e.created,
            });
        } else {
            self.prepare_reach(actor);
            for &b in &brands {
                self.count(Some(b), e.created, clock, c, actor);
            }
        }
        self.count(None, e.created, clock, c, actor);
        self.credit_influence(owner, e.created, clock);
        out.push(Delta::Engaged { photo, actor, kind });
        for &b in &brands {
            self.check_spike(b, e.created, out);
        }
    }

    /// Counts a dead letter by reason and hands its record on.
    fn dead_letter(&mut self, reason: Reason, detail: String, raw: Box<[u8]>, out: &mut Deltas) {
        *self.stats.dead_letters.entry(reason).or_default() += 1;
        out.push(Delta::DeadLetter {
            reason,
            detail,
            raw,
        });
    }

    /// A photo upload already past retention when it arrives: it would expire at
    /// once, so it is dead-lettered like a like on it would be (and counts nowhere,
    /// not even in all-time totals: a replay of old data keeps its numbers only while
    /// its clock is within retention of them). Likes and comments waiting for it go
    /// with it.
    fn expired_photo(&mut self, p: &PhotoUpload<'_>, raw: &[u8], out: &mut Deltas) {
        let detail = format!(
            "photo-upload: {}@{} is past retention (kept {} s; photos before {} have expired)",
            p.username,
            instabrand_shared::time::format_naive(p.created),
            self.cfg.photo_retention_secs,
            instabrand_shared::time::format_naive(self.retained_from),
        );
        self.dead_letter(Reason::PhotoExpired, detail, raw.into(), out);
        // Remembered as an upload, so engagement on it is `photo_expired` too.
        let (owner, _) = self.intern_user(&p.username, false);
        let u = &mut self.users[owner.0 as usize];
        u.first_upload = u.first_upload.min(p.created);
        for w in self.pending.remove(&(owner, p.created)).unwrap_or_default() {
            self.pending_order.remove(&(w.event.time(), w.seq));
            self.sizes.pending_raw -= w.raw.len() as u64;
            let detail = format!(
                "{}: its photo {}@{} came past retention",
                w.event.kind(),
                p.username,
                instabrand_shared::time::format_naive(p.created),
            );
            self.dead_letter(Reason::PhotoExpired, detail, w.raw, out);
        }
    }

    fn hold(
        &mut self,
        kind: EventKind,
        e: &Engagement<'_>,
        raw: &[u8],
        owner: UserId,
        out: &mut Deltas,
    ) {
        let key = (owner, e.photo);
        let clock = self.clock().unwrap_or(e.created);
        if e.created + self.cfg.pending_hold_secs * MS_PER_SEC < clock {
            *self
                .stats
                .dead_letters
                .entry(Reason::OrphanEngagement)
                .or_default() += 1;
            out.push(Delta::DeadLetter {
                reason: Reason::OrphanEngagement,
                detail: format!("{kind}: photo {}@{} never arrived", e.owner, e.photo),
                raw: raw.into(),
            });
            return;
        }
        self.pending_seq += 1;
        let seq = self.pending_seq;
        let event = match kind {
            EventKind::Like => Event::Like(e.clone()),
            _ => Event::Comment(e.clone()),
        }
        .into_owned();
        self.pending_order.insert((e.created, seq), key);
        self.sizes.pending_raw += raw.len() as u64;
        self.pending.entry(key).or_default().push(Pending {
            seq,
            event,
            raw: raw.into(),
        });
        out.push(Delta::Held);
        while self.pending_order.len() > self.cfg.pending_max {
            self.drop_oldest_pending(Reason::PendingOverflow, out);
        }
    }

    fn expire_pending(&mut self, out: &mut Deltas) {
        let Some(clock) = self.clock() else { return };
        let horizon = clock - self.cfg.pending_hold_secs * MS_PER_SEC;
        while let Some((&(t, _), _)) = self.pending_order.first_key_value() {
            if t >= horizon {
                break;
            }
            self.drop_oldest_pending(Reason::OrphanEngagement, out);
        }
    }

    fn drop_oldest_pending(&mut self, reason: Reason, out: &mut Deltas) {
        let Some(((_, seq), key)) = self.pending_order.pop_first() else {
            return;
        };
        let Some(list) = self.pending.get_mut(&key) else {
            return;
        };
        let Some(pos) = list.iter().position(|p| p.seq == seq) else {
            return;
        };
        let p = list.remove(pos);
        self.sizes.pending_raw -= p.raw.len() as u64;
        if list.is_empty() {
            self.pending.remove(&key);
        }
        *self.stats.dead_letters.entry(reason).or_default() += 1;
        let detail = match reason {
            Reason::PendingOverflow => format!(
                "{}: pushed out of the holding area ({} waiting at most)",
                p.event.kind(),
                self.cfg.pending_max
            ),
            _ => format!(
                "{}: its photo did not arrive within {} s",
                p.event.kind(),
                self.cfg.pending_hold_secs
            ),
        };
        out.push(Delta::DeadLetter {
            reason,
            detail,
            raw: p.raw,
        });
    }

    /// Encodes the followers of `user` into `self.reached`, unless the user keeps a
    /// follower sketch (then `count` merges that instead). Once per event.
    fn prepare_reach(&mut self, user: UserId) {
        self.refresh_follower_sketch(user);
        let u = &self.users[user.0 as usize];
        if u.follower_sketch.is_none() {
            let hashes = &self.hashes;
            self.reached
                .assign_hashes(u.followers.iter().map(|f| hashes[f.0 as usize]));
        }
    }

    /// Adds `c` to the brand's (or, for `None`, the totals') buckets at time `t`, and
    /// the followers of `reached_via` (prepared by `prepare_reach`) to its reach.
    fn count(
        &mut self,
        brand: Option<BrandId>,
        t: Millis,
        clock: Millis,
        c: Counters,
        reached_via: UserId,
    ) {
        let sketch = self.users[reached_via.0 as usize]
            .follower_sketch
            .as_deref();
        let reached = &self.reached;
        let state = match brand {
            Some(b) => &mut self.brands[b.0 as usize],
            None => &mut self.totals,
        };
        let late = if brand.is_some() {
            state.add(t, clock, c, &self.cfg, |s| {
                s.merge(sketch.unwrap_or(reached))
            })
        } else {
            // The totals serve share of voice and influencers: no reach to keep.
            state.add(t, clock, c, &self.cfg, |_| {})
        };
        if late && brand.is_none() {
            self.stats.late_events += 1;
        }
    }

    fn refresh_follower_sketch(&mut self, id: UserId) {
        let threshold = self.cfg.follower_sketch_threshold;
        let u = &self.users[id.0 as usize];
        let n = u.followers.len();
        let rebuild = match &u.follower_sketch {
            None => n >= threshold,
            // A follower sketch cannot forget; rebuild once 1 % of it has left.
            Some(_) => u.sketch_removals as usize * 100 > n.max(1),
        };
        if !rebuild {
            return;
        }
        let mut s = Hll::new();
        let hashes = &self.hashes;
        s.assign_hashes(u.followers.iter().map(|f| hashes[f.0 as usize]));
        let u = &mut self.users[id.0 as usize];
        self.sizes.follower_sketch_bytes += s.heap_bytes() as u64;
        match u.follower_sketch.replace(Box::new(s)) {
            Some(old) => self.sizes.follower_sketch_bytes -= old.heap_bytes() as u64,
            None => self.sizes.follower_sketches += 1,
        }
        u.sketch_removals = 0;
    }

    fn credit_influence(&mut self, user: UserId, t: Millis, clock: Millis) {
        let minute = t.div_euclid(MS_PER_MIN);
        let hour = t.div_euclid(MS_PER_HOUR);
        let clock_minute = clock.div_euclid(MS_PER_MIN);
        if minute >= clock_minute - 65 {
            *self
                .influence_minutes
                .entry(minute)
                .or_default()
                .entry(user)
                .or_default() += 1;
        }
        if hour >= clock.div_euclid(MS_PER_HOUR) - 25 {
            *self
                .influence_hours
                .entry(hour)
                .or_default()
                .entry(user)
                .or_default() += 1;
        }
    }

    fn check_spike(&mut self, b: BrandId, t: Millis, out: &mut Deltas) {
        let Some(now) = self.max_time else { return };
        let cfg = &self.cfg.spike;
        let bs = &mut self.brands[b.0 as usize];
        bs.note_activity(t, now, cfg.recent_secs + cfg.baseline_secs);
        let sec = now.div_euclid(MS_PER_SEC);
        if bs.last_spike_check_sec == sec {
            return;
        }
        bs.last_spike_check_sec = sec;
        if let Some(last) = bs.last_alert_ms
            && now - last < cfg.cooldown_secs * MS_PER_SEC
        {
            return;
        }
        let Some((recent, baseline)) = bs.spike_rates(now, self.first_time.unwrap_or(now), cfg)
        else {
            return;
        };
        if recent < cfg.min_per_minute || recent < cfg.factor * baseline.max(1.0) {
            return;
        }
        bs.last_alert_ms = Some(now);
        let id = self.next_alert_id;
        self.next_alert_id += 1;
        let factor = recent / baseline.max(1.0);
        let alert = Alert {
            id,
            brand: bs.name.to_string(),
            at_ms: now,
            rate_per_min: recent,
            baseline_per_min: baseline,
            factor,
            message: format!(
                "{} is spiking: {:.0} events/min, {:.1}× its baseline of {:.0}/min",
                bs.name, recent, factor, baseline
            ),
        };
        self.alerts.push_back(alert);
        while self.alerts.len() > self.cfg.alerts_kept {
            self.alerts.pop_front();
        }
        out.push(Delta::Alert(id));
    }
}

/// Late events by how they were handled, under the names the health view and
/// `/metrics` use (docs/semantics.md, "Late events").
pub fn late_by_handling(stats: &Stats) -> BTreeMap<String, u64> {
    EventKind::ALL
        .iter()
        .map(|&k| {
            let name = match k {
                EventKind::CreateUser => "create_user_exact",
                EventKind::Follow => "follow_repaired",
                EventKind::Unfollow => "unfollow_reach_kept",
                EventKind::PhotoUpload => "photo_followers_now",
                EventKind::Like => "like_followers_now",
                EventKind::Comment => "comment_followers_now",
            };
            (name.to_string(), stats.late_by_kind[k as usize])
        })
        .collect()
}

/// The user index's hash of a username (this process only).
fn name_hash(name: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(name)
}

/// A hash of a username that is the same on every instance and every run (FNV-1a,
/// then mixed): reach sketches from different instances must agree on users.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in s.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash64(h)
}

#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod tests;

/// Removes `id` from a follow set; whether it was there, and the change in slots.
///
/// Why rebuild: under churn (as many follows as unfollows) a hash set keeps the
/// tombstones of removed entries and, once they use up its spare room, doubles even
/// though its size is steady; each set would end at up to twice the memory it had.
/// Rebuilding it after removals of half its size clears them, amortized O(1) per
/// removal, so the graph's memory follows its edges, not how often they changed.
fn remove_edge(set: &mut FxHashSet<UserId>, removals: &mut u32, id: UserId) -> (bool, i64) {
    // `capacity` is entries plus spare room: a removal that leaves a tombstone lowers
    // it too, so the change is taken around the whole step.
    let before = set.capacity() as i64;
    if !set.remove(&id) {
        return (false, 0);
    }
    *removals += 1;
    if *removals as usize >= (set.len() / 2).max(8) {
        *removals = 0;
        set.shrink_to_fit();
    }
    (true, set.capacity() as i64 - before)
}
