//! The live hub: turns the processor's deltas into WebSocket frames.
//!
//! The pipeline hands every applied batch's deltas to [`Hub::absorb`], which only
//! merges them into a pending set. A ticker ([`Hub::run`], `frames_per_sec` times a
//! second) takes that set and, for each topic somebody subscribes to, builds at most
//! one frame, serializes and frames it once, and writes the same bytes into every
//! subscriber's socket itself ([`Outlet::offer`]): at 10,000 dashboards, waking one
//! task per connection per frame cost more than the writes (see `outlet.rs`).
//! Writing never waits for a reader: a socket that cannot take a frame gets it queued
//! for its connection's task, and a connection whose queue passes its bound drops it;
//! the hub then sends it a fresh snapshot, so a slow client cannot slow anyone else.
//!
//! Snapshots are built here too, in the tick, for every subscriber that has none yet
//! (it just subscribed, or its queue was dropped): at most one per topic per tick
//! however many subscribe at once, and always in order with the deltas, which the
//! next tick's frames follow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use instabrand_shared::api::{Health, Leaderboard, Window};
use instabrand_shared::time::MS_PER_MIN;
use instabrand_shared::ws::{
    FeedFrame, Frame, LeaderboardFrame, MAX_TABLE_ROWS, RowPatch, ServerMessage, SortKey, TableRow,
    Topic, at_display_precision, rate_at_display_precision,
};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio_util::sync::CancellationToken;

use crate::config::LiveConfig;
use crate::processor::{BrandId, Delta, PhotoId, Processor, ReaderLog, UserId};
use crate::stats::PipelineStats;
use outlet::{Outlet, ws_frame};

pub mod outlet;

/// What the hub reads to build its frames, and where it notes who reads a feed.
pub struct HubInputs {
    /// Read under its lock at each tick.
    pub processor: Arc<RwLock<Processor>>,
    /// Feed subscribers read their home timeline: noted so it stays materialized.
    pub readers: Arc<ReaderLog>,
    /// The ingest rate shown with the leaderboards.
    pub stats: Arc<PipelineStats>,
    /// The health view as the web layer assembles it, for the health topic.
    pub health: Box<dyn Fn() -> Health + Send + Sync>,
}

/// Deltas gathered since the last tick.
#[derive(Default)]
struct Changes {
    photos: Vec<PhotoId>,
    engaged: FxHashSet<PhotoId>,
    /// Users whose following changed: their timeline is resent whole.
    graph: FxHashSet<UserId>,
    /// Users whose profile numbers changed.
    users: FxHashSet<UserId>,
    alerts: Vec<u64>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.photos.is_empty()
            && self.engaged.is_empty()
            && self.graph.is_empty()
            && self.users.is_empty()
            && self.alerts.is_empty()
    }
}

/// What a topic's ticker remembers between frames.
#[derive(Default)]
struct Memory {
    stale: bool,
    last_built: Option<Instant>,
    /// A leaderboard page's rows as last sent, at display precision.
    rows: FxHashMap<String, TableRow>,
    total_photos: u64,
    total_brands: u64,
    from_ms: i64,
    to_ms: i64,
    /// The event rate as last sent, at display precision.
    rate_shown: f64,
    last_json: Option<String>,
}

/// A leaderboard subscription's page: which rows, in which order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableView {
    pub sort: SortKey,
    pub offset: u32,
    pub rows: u32,
}

pub struct TopicChannel {
    seq: AtomicU64,
    memory: Mutex<Memory>,
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
}

/// Not yet given a snapshot.
const UNSYNCED: u64 = u64::MAX;

struct Subscriber {
    outlet: Arc<Outlet>,
    /// The outlet's lag generation when this subscription's last snapshot went out
    /// ([`UNSYNCED`] before the first): a different one means its queue was dropped
    /// since, and it needs a fresh snapshot before deltas make sense again.
    synced: AtomicU64,
}

impl Subscriber {
    fn needs_snapshot(&self) -> bool {
        self.synced.load(Ordering::Relaxed) != self.outlet.lag_generation()
    }
}

/// A tick's output for one topic: its delta for subscribers that are in sync, and a
/// snapshot for those that are not.
struct Outgoing {
    chan: Arc<TopicChannel>,
    delta: Option<Bytes>,
    snapshot: Option<Bytes>,
}

pub struct Hub {
    cfg: LiveConfig,
    changes: Mutex<Changes>,
    topics: Mutex<HashMap<Topic, Arc<TopicChannel>>>,
    connections: AtomicU64,
    resyncs: AtomicU64,
    frames: AtomicU64,
    last_minute: AtomicU64,
    last_health: Mutex<Option<Instant>>,
}

impl Hub {
    pub fn new(cfg: LiveConfig) -> Self {
        Hub {
            cfg,
            changes: Mutex::new(Changes::default()),
            topics: Mutex::new(HashMap::new()),
            connections: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            last_minute: AtomicU64::new(0),
            last_health: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &LiveConfig {
        &self.cfg
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn resynced(&self) {
        self.resyncs.fetch_add(1, Ordering::Relaxed);
    }

    pub fn resync_count(&self) -> u64 {
        self.resyncs.load(Ordering::Relaxed)
    }

    pub fn frames_sent(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Merges one batch's deltas into what the next tick will publish.
    pub fn absorb(&self, deltas: Vec<Delta>) {
        if deltas.is_empty() {
            return;
        }
        let mut c = self.changes.lock().expect("hub lock poisoned");
        for d in deltas {
            match d {
                Delta::PhotoAdded(p) => c.photos.push(p),
                Delta::Engaged { photo, .. } => {
                    c.engaged.insert(photo);
                }
                Delta::Followed { follower, followed }
                | Delta::Unfollowed { follower, followed } => {
                    c.graph.insert(follower);
                    c.users.insert(followed);
                    c.users.insert(follower);
                }
                Delta::UserChanged(u) => {
                    c.users.insert(u);
                }
                Delta::Alert(id) => c.alerts.push(id),
                Delta::Held | Delta::Duplicate | Delta::Superseded | Delta::DeadLetter { .. } => {}
            }
        }
        // Bound what waits for the next tick: only the newest photos matter to the map.
        let cap = self.cfg.map_points_per_frame.max(1) * 4;
        if c.photos.len() > cap {
            let excess = c.photos.len() - cap;
            c.photos.drain(..excess);
        }
    }

    /// Subscribes `outlet` to `topic`: it gets a snapshot at the next tick, then the
    /// topic's deltas. Subscribing again asks for a fresh snapshot.
    pub fn subscribe(&self, topic: &Topic, outlet: &Arc<Outlet>) {
        let mut topics = self.topics.lock().expect("hub lock poisoned");
        let chan = topics.entry(topic.clone()).or_insert_with(|| {
            Arc::new(TopicChannel {
                seq: AtomicU64::new(0),
                memory: Mutex::new(Memory {
                    stale: true,
                    ..Memory::default()
                }),
                subscribers: Mutex::new(Vec::new()),
            })
        });
        let mut subs = chan.subscribers.lock().expect("topic lock poisoned");
        match subs.iter().find(|s| Arc::ptr_eq(&s.outlet, outlet)) {
            Some(s) => s.synced.store(UNSYNCED, Ordering::Relaxed),
            None => subs.push(Arc::new(Subscriber {
                outlet: outlet.clone(),
                synced: AtomicU64::new(UNSYNCED),
            })),
        }
    }

    /// Ends `outlet`'s subscription to `topic`. A closed connection needs no call: the
    /// next tick drops its subscriptions.
    pub fn unsubscribe(&self, topic: &Topic, outlet: &Arc<Outlet>) {
        let chan = self
            .topics
            .lock()
            .expect("hub lock poisoned")
            .get(topic)
            .cloned();
        if let Some(chan) = chan {
            chan.subscribers
                .lock()
                .expect("topic lock poisoned")
                .retain(|s| !Arc::ptr_eq(&s.outlet, outlet));
        }
    }

    /// A topic's snapshot, built under the processor's read lock `p` (health topics,
    /// which take that lock themselves, are built apart).
    fn snapshot_locked(
        &self,
        p: &Processor,
        readers: &ReaderLog,
        topic: &Topic,
        mem: &mut Memory,
        seq: u64,
        rate: f64,
    ) -> Bytes {
        if let Topic::Feed { username } = topic
            && let Some(u) = p.user_id(username)
        {
            readers.note(u);
        }
        let frame = snapshot_frame(p, topic, &self.cfg, rate);
        if let Frame::Leaderboard(lb) = &frame {
            remember_first_snapshot(mem, lb);
        }
        encode(topic, seq, true, frame)
    }

    /// Publishes frames until `shutdown`.
    pub async fn run(self: Arc<Self>, inputs: HubInputs, shutdown: CancellationToken) {
        let inputs = Arc::new(inputs);
        let period = Duration::from_millis(1000 / self.cfg.frames_per_sec.clamp(1, 100) as u64);
        let mut tick = tokio::time::interval(period);
        // A late tick (the processor busy) is followed a full period after it, not
        // skipped to the next multiple of the period, which left a gap of two periods
        // in front of whatever arrived meanwhile.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let (hub, inputs) = (self.clone(), inputs.clone());
                    // Building frames reads the processor under its lock: off the async workers.
                    let _ = tokio::task::spawn_blocking(move || hub.tick(&inputs)).await;
                }
            }
        }
    }

    /// Builds this tick's frames and writes them to their subscribers.
    pub fn tick(&self, inputs: &HubInputs) {
        let changes = std::mem::take(&mut *self.changes.lock().expect("hub lock poisoned"));
        let live: Vec<(Topic, Arc<TopicChannel>)> = {
            let mut topics = self.topics.lock().expect("hub lock poisoned");
            // Closed connections leave here (their sockets close with the last holder).
            topics.retain(|_, c| {
                let mut subs = c.subscribers.lock().expect("topic lock poisoned");
                subs.retain(|s| !s.outlet.is_closed());
                !subs.is_empty()
            });
            topics.iter().map(|(t, c)| (t.clone(), c.clone())).collect()
        };
        if live.is_empty() {
            return;
        }
        let now = Instant::now();
        let rate = inputs.stats.rate();
        let mut out: Vec<Outgoing> = Vec::new();
        let mut health_due = Vec::new();
        {
            let p = inputs.processor.read().expect("processor lock poisoned");
            let minute = p.clock().unwrap_or(0).div_euclid(MS_PER_MIN) as u64;
            let minute_changed = self.last_minute.swap(minute, Ordering::Relaxed) != minute;
            let mut dirty: FxHashSet<BrandId> = FxHashSet::default();
            // A photo may have expired since its delta (retention runs as the clock
            // moves, between ticks): what is gone is skipped.
            for ph in changes.photos.iter().chain(changes.engaged.iter()) {
                if let Some(photo) = p.try_photo(*ph) {
                    dirty.extend(photo.brands.iter().copied());
                }
            }
            let anything = !changes.is_empty() || minute_changed;
            // Built at most once per window per tick, whatever pages are subscribed.
            let mut boards: FxHashMap<Window, Leaderboard> = FxHashMap::default();
            for (topic, chan) in &live {
                let mut mem = chan.memory.lock().expect("topic lock poisoned");
                // Snapshots first: a leaderboard's first one is also where its deltas start.
                let snapshot = (!matches!(topic, Topic::Health)
                    && chan
                        .subscribers
                        .lock()
                        .expect("topic lock poisoned")
                        .iter()
                        .any(|s| s.needs_snapshot()))
                .then(|| {
                    let seq = chan.seq.load(Ordering::Relaxed);
                    self.snapshot_locked(&p, &inputs.readers, topic, &mut mem, seq, rate)
                });
                let built = match topic {
                    Topic::Health => {
                        health_due.push((topic.clone(), chan.clone()));
                        None
                    }
                    Topic::Leaderboard {
                        window,
                        sort,
                        offset,
                        rows,
                    } => {
                        mem.stale |= !dirty.is_empty() || minute_changed;
                        let every = if matches!(window, Window::H1 | Window::H24) {
                            self.cfg.slow_refresh()
                        } else {
                            self.cfg.table_refresh()
                        };
                        // The event rate keeps moving (down to 0) on a quiet stream.
                        let rate_moved = rate_at_display_precision(rate) != mem.rate_shown;
                        if (mem.stale || rate_moved) && due(&mem, now, every) {
                            mem.last_built = Some(now);
                            let view = TableView {
                                sort: *sort,
                                offset: *offset,
                                rows: *rows,
                            };
                            if std::mem::take(&mut mem.stale) {
                                let lb = boards
                                    .entry(*window)
                                    .or_insert_with(|| p.leaderboard(*window));
                                leaderboard_delta(lb, view, &mut mem, rate).map(|f| (f, false))
                            } else {
                                Some((rate_only(*window, view, &mut mem, rate), false))
                            }
                        } else {
                            None
                        }
                    }
                    Topic::Brand { brand, .. } => {
                        let touched = p.brand_id(brand).is_some_and(|b| dirty.contains(&b));
                        mem.stale |= touched || minute_changed;
                        if mem.stale && due(&mem, now, self.cfg.slow_refresh()) {
                            mem.stale = false;
                            mem.last_built = Some(now);
                            Some((snapshot_frame(&p, topic, &self.cfg, rate), true))
                        } else {
                            None
                        }
                    }
                    Topic::Influencers { .. } => {
                        mem.stale |= anything;
                        let every = Duration::from_millis(self.cfg.influencers_refresh_ms);
                        if mem.stale && due(&mem, now, every) {
                            mem.stale = false;
                            mem.last_built = Some(now);
                            let f = snapshot_frame(&p, topic, &self.cfg, rate);
                            let json = serde_json::to_string(&f).unwrap_or_default();
                            if mem.last_json.as_ref() == Some(&json) {
                                None
                            } else {
                                mem.last_json = Some(json);
                                Some((f, true))
                            }
                        } else {
                            None
                        }
                    }
                    Topic::Map => {
                        let n = self.cfg.map_points_per_frame;
                        let start = changes.photos.len().saturating_sub(n);
                        let pts: Vec<_> = changes.photos[start..]
                            .iter()
                            .filter(|&&ph| p.try_photo(ph).is_some())
                            .flat_map(|&ph| p.map_points_of(ph))
                            .collect();
                        (!pts.is_empty()).then_some((Frame::MapPoints(pts), false))
                    }
                    Topic::Alerts => {
                        let new: Vec<_> = p
                            .alerts()
                            .iter()
                            .filter(|a| changes.alerts.contains(&a.id))
                            .cloned()
                            .collect();
                        (!new.is_empty()).then_some((Frame::Alerts(new), false))
                    }
                    Topic::Feed { username } => {
                        // A live feed is read: its home timeline stays materialized.
                        if let Some(u) = p.user_id(username) {
                            inputs.readers.note(u);
                        }
                        feed_delta(&p, username, &changes, &self.cfg)
                    }
                    Topic::Connection => None,
                };
                drop(mem);
                let delta = built.map(|(frame, snapshot)| {
                    let seq = chan.seq.fetch_add(1, Ordering::Relaxed) + 1;
                    encode(topic, seq, snapshot, frame)
                });
                if delta.is_some() || snapshot.is_some() {
                    out.push(Outgoing {
                        chan: chan.clone(),
                        delta,
                        snapshot,
                    });
                }
            }
        }
        // Health frames are whole: the same one serves as delta and as snapshot.
        let health_every = Duration::from_secs(1);
        if !health_due.is_empty() {
            let mut last = self.last_health.lock().expect("hub lock poisoned");
            let due = last.is_none_or(|t| now.duration_since(t) >= health_every);
            let joining = health_due.iter().any(|(_, c)| {
                c.subscribers
                    .lock()
                    .expect("topic lock poisoned")
                    .iter()
                    .any(|s| s.needs_snapshot())
            });
            if due || joining {
                if due {
                    *last = Some(now);
                }
                let h = (inputs.health)();
                for (topic, chan) in health_due {
                    let seq = chan.seq.fetch_add(1, Ordering::Relaxed) + 1;
                    let bytes = encode(&topic, seq, true, Frame::Health(h.clone()));
                    out.push(Outgoing {
                        chan,
                        delta: due.then(|| bytes.clone()),
                        snapshot: Some(bytes),
                    });
                }
            }
        }
        for o in out {
            if o.delta.is_some() {
                self.frames.fetch_add(1, Ordering::Relaxed);
            }
            // A copy of the list: connections come and go while this one is written.
            let subs = o
                .chan
                .subscribers
                .lock()
                .expect("topic lock poisoned")
                .clone();
            let resynced = fan_out(
                &subs,
                o.delta.as_ref(),
                o.snapshot.as_ref(),
                self.cfg.fanout_threads,
            );
            self.resyncs.fetch_add(resynced, Ordering::Relaxed);
        }
    }
}

/// Below this many subscribers a frame is written from the ticking thread alone.
const PARALLEL_FROM: usize = 2048;

/// Writes a topic's frame to its subscribers, on up to `threads` threads; returns how
/// many were resynced (given a snapshot after their queue was dropped).
fn fan_out(
    subs: &[Arc<Subscriber>],
    delta: Option<&Bytes>,
    snapshot: Option<&Bytes>,
    threads: usize,
) -> u64 {
    let deliver = |part: &[Arc<Subscriber>]| -> u64 {
        let mut resynced = 0;
        for s in part {
            let generation = s.outlet.lag_generation();
            let synced = s.synced.load(Ordering::Relaxed);
            if synced == generation {
                if let Some(d) = delta {
                    s.outlet.offer(d);
                }
            } else if let Some(snap) = snapshot {
                if synced != UNSYNCED {
                    resynced += 1;
                }
                s.synced.store(generation, Ordering::Relaxed);
                s.outlet.offer(snap);
            } else if synced != UNSYNCED
                && let Some(d) = delta
            {
                // Its queue was dropped after this tick's snapshots were decided: the
                // next tick brings one; a delta meanwhile is overwritten by it.
                s.outlet.offer(d);
            }
        }
        resynced
    };
    let threads = threads.max(1);
    if threads == 1 || subs.len() < PARALLEL_FROM {
        return deliver(subs);
    }
    let chunk = subs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = subs
            .chunks(chunk)
            .skip(1)
            .map(|part| scope.spawn(move || deliver(part)))
            .collect();
        let mine = deliver(&subs[..chunk.min(subs.len())]);
        mine + handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .sum::<u64>()
    })
}

/// A leaderboard's first deltas are diffs against its first snapshot, not against
/// nothing (which would resend the whole page at once).
fn remember_first_snapshot(mem: &mut Memory, lb: &LeaderboardFrame) {
    if mem.last_built.is_some() {
        return;
    }
    mem.rows = lb
        .rows
        .iter()
        .map(|r| (r.brand.clone(), r.clone()))
        .collect();
    mem.total_photos = lb.total_photos;
    mem.total_brands = lb.total_brands;
    mem.from_ms = lb.from_ms;
    mem.to_ms = lb.to_ms;
    mem.rate_shown = lb.events_per_sec;
    mem.stale = false;
    mem.last_built = Some(Instant::now());
}

/// Whether a table last built at `mem.last_built` may be rebuilt, at most `every`.
fn due(mem: &Memory, now: Instant, every: Duration) -> bool {
    mem.last_built
        .is_none_or(|t| now.duration_since(t) >= every)
}

/// A message serialized and framed once, for every subscriber.
fn encode(topic: &Topic, seq: u64, snapshot: bool, frame: Frame) -> Bytes {
    let msg = ServerMessage {
        topic: topic.clone(),
        seq,
        snapshot,
        frame,
    };
    ws_frame(&serde_json::to_vec(&msg).expect("frames always serialize"))
}

/// The full state of a topic, as a new subscriber (or a resynced one) gets it.
pub fn snapshot_frame(p: &Processor, topic: &Topic, cfg: &LiveConfig, rate: f64) -> Frame {
    match topic {
        Topic::Leaderboard {
            window,
            sort,
            offset,
            rows,
        } => {
            let lb = p.leaderboard(*window);
            let view = TableView {
                sort: *sort,
                offset: *offset,
                rows: *rows,
            };
            Frame::Leaderboard(LeaderboardFrame {
                window: lb.window,
                from_ms: lb.from_ms,
                to_ms: lb.to_ms,
                total_photos: lb.total_photos,
                rows: page(&lb, view),
                changed: Vec::new(),
                removed: Vec::new(),
                offset: view.offset,
                sort: view.sort,
                total_brands: lb.rows.len() as u64,
                events_per_sec: rate_at_display_precision(rate),
            })
        }
        Topic::Brand { brand, window } => match p.brand_detail(brand, *window, 20, 500) {
            Some(d) => Frame::Brand(d),
            None => Frame::Error {
                message: format!("no photos of {brand:?} yet"),
            },
        },
        Topic::Influencers { window } => Frame::Influencers(p.influencers(*window, 20)),
        Topic::Map => Frame::MapPoints(p.map_points(cfg.map_snapshot_points, None)),
        Topic::Alerts => {
            let a = p.alerts();
            Frame::Alerts(
                a.iter()
                    .skip(a.len().saturating_sub(cfg.alert_snapshot))
                    .cloned()
                    .collect(),
            )
        }
        Topic::Feed { username } => match p.user_id(username) {
            Some(u) => {
                let f = p.user_feeds(u, cfg.feed_page_size);
                Frame::Feed(FeedFrame {
                    profile: f.profile,
                    photos: f.photos,
                    timeline: f.timeline,
                })
            }
            None => Frame::Error {
                message: format!("no user {username:?}"),
            },
        },
        Topic::Health | Topic::Connection => Frame::Error {
            message: "health snapshots are built by the hub; the connection topic has none".into(),
        },
    }
}

/// The rows of `view`'s page of `lb`, in its order, at display precision.
pub fn page(lb: &Leaderboard, view: TableView) -> Vec<TableRow> {
    let cmp = |a: &usize, b: &usize| view.sort.compare(&lb.rows[*a], &lb.rows[*b]);
    let rows = view.rows.clamp(1, MAX_TABLE_ROWS) as usize;
    let end = (view.offset as usize)
        .saturating_add(rows)
        .min(lb.rows.len());
    let start = (view.offset as usize).min(end);
    let mut order: Vec<usize> = (0..lb.rows.len()).collect();
    // Only the rows up to the page's end need ordering: a page of 20 out of 10,000
    // brands is a selection, not a sort.
    if end < order.len() && end > 0 {
        order.select_nth_unstable_by(end - 1, cmp);
    }
    order.truncate(end);
    order.sort_unstable_by(cmp);
    order[start..]
        .iter()
        .map(|&i| {
            let mut row = at_display_precision(&lb.rows[i]);
            // "All time" has no previous period: a change equal to the photos would
            // only cost bytes in every frame (the table hides the column there).
            if lb.window == Window::All {
                row.rising = 0;
            }
            row
        })
        .collect()
}

/// The rows that entered the page since the last frame (whole), the values that
/// changed in rows already on it (patches), and the rows that left it; None if
/// nothing on screen changed.
fn leaderboard_delta(
    lb: &Leaderboard,
    view: TableView,
    mem: &mut Memory,
    rate: f64,
) -> Option<Frame> {
    let mut rows = Vec::new();
    let mut changed = Vec::new();
    let mut seen = FxHashSet::default();
    for r in page(lb, view) {
        seen.insert(r.brand.clone());
        match mem.rows.get_mut(&r.brand) {
            Some(held) => {
                if let Some(p) = RowPatch::between(held, &r) {
                    changed.push(p);
                    *held = r;
                }
            }
            None => {
                mem.rows.insert(r.brand.clone(), r.clone());
                rows.push(r);
            }
        }
    }
    let removed: Vec<String> = mem
        .rows
        .keys()
        .filter(|b| !seen.contains(*b))
        .cloned()
        .collect();
    for b in &removed {
        mem.rows.remove(b);
    }
    let rate_shown = rate_at_display_precision(rate);
    let total_brands = lb.rows.len() as u64;
    if rows.is_empty()
        && changed.is_empty()
        && removed.is_empty()
        && mem.total_photos == lb.total_photos
        && mem.total_brands == total_brands
        && mem.rate_shown == rate_shown
    {
        return None;
    }
    mem.total_photos = lb.total_photos;
    mem.total_brands = total_brands;
    mem.from_ms = lb.from_ms;
    mem.to_ms = lb.to_ms;
    mem.rate_shown = rate_shown;
    Some(Frame::Leaderboard(LeaderboardFrame {
        window: lb.window,
        from_ms: lb.from_ms,
        to_ms: lb.to_ms,
        total_photos: lb.total_photos,
        rows,
        changed,
        removed,
        offset: view.offset,
        sort: view.sort,
        total_brands,
        events_per_sec: rate_shown,
    }))
}

/// Nothing in the table changed but the event rate did: a frame with no rows.
fn rate_only(window: Window, view: TableView, mem: &mut Memory, rate: f64) -> Frame {
    mem.rate_shown = rate_at_display_precision(rate);
    Frame::Leaderboard(LeaderboardFrame {
        window,
        from_ms: mem.from_ms,
        to_ms: mem.to_ms,
        total_photos: mem.total_photos,
        rows: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
        offset: view.offset,
        sort: view.sort,
        total_brands: mem.total_brands,
        events_per_sec: mem.rate_shown,
    })
}

fn feed_delta(
    p: &Processor,
    username: &str,
    changes: &Changes,
    cfg: &LiveConfig,
) -> Option<(Frame, bool)> {
    let u = p.user_id(username)?;
    if changes.graph.contains(&u) {
        // Following changed: back-fill or removal reshaped the timeline; resend it whole.
        return Some((
            snapshot_frame(
                p,
                &Topic::Feed {
                    username: username.into(),
                },
                cfg,
                0.0,
            ),
            true,
        ));
    }
    let mut touched: Vec<PhotoId> = changes
        .photos
        .iter()
        .chain(changes.engaged.iter())
        .copied()
        .filter(|ph| p.in_timeline_of(u, *ph))
        .collect();
    if touched.is_empty() && !changes.users.contains(&u) {
        return None;
    }
    touched.sort_unstable();
    touched.dedup();
    let views: Vec<_> = touched.iter().map(|ph| p.photo_view(*ph)).collect();
    let own: Vec<_> = views
        .iter()
        .filter(|v| v.owner == username)
        .cloned()
        .collect();
    let profile = p.profile(u);
    Some((
        Frame::Feed(FeedFrame {
            profile,
            photos: instabrand_shared::api::FeedPage {
                username: username.into(),
                items: own,
                next: None,
            },
            timeline: instabrand_shared::api::FeedPage {
                username: username.into(),
                items: views,
                next: None,
            },
        }),
        false,
    ))
}
