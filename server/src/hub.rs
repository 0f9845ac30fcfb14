//! The live hub: turns the processor's deltas into WebSocket frames.
//!
//! The pipeline hands every applied batch's deltas to [`Hub::absorb`], which only
//! merges them into a pending set. A ticker ([`Hub::run`], `frames_per_sec` times a
//! second) takes that set and, for each topic somebody subscribes to, builds at most
//! one frame, serializes it once, and broadcasts the same bytes to every subscriber.
//! Each topic is a bounded `tokio::sync::broadcast` ring: sending never waits for a
//! reader, so a slow client cannot slow anyone else; a reader that falls more than the
//! ring behind is told so (`Lagged`), and its connection drops the backlog and sends it
//! a fresh snapshot instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use instabrand_shared::api::{BrandMetrics, Window};
use instabrand_shared::time::MS_PER_MIN;
use instabrand_shared::ws::{FeedFrame, Frame, LeaderboardFrame, ServerMessage, Topic};
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::LiveConfig;
use crate::processor::{BrandId, Delta, PhotoId, Processor, UserId};
use crate::state::AppState;

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
    rows: FxHashMap<String, BrandMetrics>,
    total_photos: u64,
    last_json: Option<String>,
}

pub struct TopicChannel {
    tx: broadcast::Sender<Utf8Bytes>,
    seq: AtomicU64,
    memory: Mutex<Memory>,
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
                Delta::Held | Delta::Duplicate | Delta::DeadLetter { .. } => {}
            }
        }
        // Bound what waits for the next tick: only the newest photos matter to the map.
        let cap = self.cfg.map_points_per_frame.max(1) * 4;
        if c.photos.len() > cap {
            let excess = c.photos.len() - cap;
            c.photos.drain(..excess);
        }
    }

    /// Subscribes to a topic; returns the receiver and the topic's current frame count.
    pub fn subscribe(&self, topic: &Topic) -> (broadcast::Receiver<Utf8Bytes>, u64) {
        let mut topics = self.topics.lock().expect("hub lock poisoned");
        let chan = topics.entry(topic.clone()).or_insert_with(|| {
            Arc::new(TopicChannel {
                tx: broadcast::channel(self.cfg.queue_frames.max(1)).0,
                seq: AtomicU64::new(0),
                memory: Mutex::new(Memory {
                    stale: true,
                    ..Memory::default()
                }),
            })
        });
        (chan.tx.subscribe(), chan.seq.load(Ordering::Relaxed))
    }

    /// A snapshot message for one topic, serialized.
    pub fn snapshot(&self, state: &AppState, topic: &Topic, seq: u64) -> Utf8Bytes {
        let frame = match topic {
            Topic::Health => Frame::Health(state.health()),
            _ => {
                let p = state.processor.read().expect("processor lock poisoned");
                snapshot_frame(&p, topic, &self.cfg, state.stats.rate())
            }
        };
        encode(topic, seq, true, frame)
    }

    /// Publishes frames until `shutdown`.
    pub async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
        let period =
            Duration::from_millis(1000 / state.hub.cfg.frames_per_sec.clamp(1, 100) as u64);
        let mut tick = tokio::time::interval(period);
        // A late tick (the processor busy) is followed a full period after it, not
        // skipped to the next multiple of the period, which left a gap of two periods
        // in front of whatever arrived meanwhile.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let st = state.clone();
                    // Building frames reads the processor under its lock: off the async workers.
                    let _ = tokio::task::spawn_blocking(move || st.hub.tick(&st)).await;
                }
            }
        }
    }

    /// Builds and broadcasts this tick's frames.
    pub fn tick(&self, state: &AppState) {
        let changes = std::mem::take(&mut *self.changes.lock().expect("hub lock poisoned"));
        let live: Vec<(Topic, Arc<TopicChannel>)> = {
            let mut topics = self.topics.lock().expect("hub lock poisoned");
            topics.retain(|_, c| c.tx.receiver_count() > 0);
            topics.iter().map(|(t, c)| (t.clone(), c.clone())).collect()
        };
        if live.is_empty() {
            return;
        }
        let now = Instant::now();
        let rate = state.stats.rate();
        let mut out: Vec<(Arc<TopicChannel>, Utf8Bytes)> = Vec::new();
        let mut health_due = Vec::new();
        {
            let p = state.processor.read().expect("processor lock poisoned");
            let minute = p.clock().unwrap_or(0).div_euclid(MS_PER_MIN) as u64;
            let minute_changed = self.last_minute.swap(minute, Ordering::Relaxed) != minute;
            let mut dirty: FxHashSet<BrandId> = FxHashSet::default();
            for ph in changes.photos.iter().chain(changes.engaged.iter()) {
                dirty.extend(p.photo(*ph).brands.iter().copied());
            }
            let anything = !changes.is_empty() || minute_changed;
            for (topic, chan) in &live {
                let mut mem = chan.memory.lock().expect("topic lock poisoned");
                let built = match topic {
                    Topic::Health => {
                        health_due.push((topic.clone(), chan.clone()));
                        None
                    }
                    Topic::Leaderboard { window } => {
                        mem.stale |= !dirty.is_empty() || minute_changed;
                        let every = if matches!(window, Window::H1 | Window::H24) {
                            self.cfg.slow_refresh()
                        } else {
                            self.cfg.table_refresh()
                        };
                        if mem.stale && due(&mem, now, every) {
                            mem.stale = false;
                            mem.last_built = Some(now);
                            leaderboard_delta(&p, *window, &mut mem, rate).map(|f| (f, false))
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
                        if mem.stale && due(&mem, now, self.cfg.slow_refresh()) {
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
                    Topic::Feed { username } => feed_delta(&p, username, &changes, &self.cfg),
                    Topic::Connection => None,
                };
                drop(mem);
                if let Some((frame, snapshot)) = built {
                    let seq = chan.seq.fetch_add(1, Ordering::Relaxed) + 1;
                    out.push((chan.clone(), encode(topic, seq, snapshot, frame)));
                }
            }
        }
        let health_every = Duration::from_secs(1);
        if !health_due.is_empty() {
            let mut last = self.last_health.lock().expect("hub lock poisoned");
            if last.is_none_or(|t| now.duration_since(t) >= health_every) {
                *last = Some(now);
                let h = state.health();
                for (topic, chan) in health_due {
                    let seq = chan.seq.fetch_add(1, Ordering::Relaxed) + 1;
                    out.push((chan, encode(&topic, seq, true, Frame::Health(h.clone()))));
                }
            }
        }
        for (chan, bytes) in out {
            // An error only means every subscriber left since we looked.
            if chan.tx.send(bytes).is_ok() {
                self.frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Whether a table last built at `mem.last_built` may be rebuilt, at most `every`.
fn due(mem: &Memory, now: Instant, every: Duration) -> bool {
    mem.last_built
        .is_none_or(|t| now.duration_since(t) >= every)
}

fn encode(topic: &Topic, seq: u64, snapshot: bool, frame: Frame) -> Utf8Bytes {
    let msg = ServerMessage {
        topic: topic.clone(),
        seq,
        snapshot,
        frame,
    };
    Utf8Bytes::from(serde_json::to_string(&msg).expect("frames always serialize"))
}

/// The full state of a topic, as a new subscriber (or a resynced one) gets it.
pub fn snapshot_frame(p: &Processor, topic: &Topic, cfg: &LiveConfig, rate: f64) -> Frame {
    match topic {
        Topic::Leaderboard { window } => {
            let lb = p.leaderboard(*window);
            Frame::Leaderboard(LeaderboardFrame {
                window: lb.window,
                from_ms: lb.from_ms,
                to_ms: lb.to_ms,
                total_photos: lb.total_photos,
                rows: lb.rows,
                removed: Vec::new(),
                events_per_sec: rate,
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

/// Rows that changed since the last frame; None if nothing did.
fn leaderboard_delta(p: &Processor, w: Window, mem: &mut Memory, rate: f64) -> Option<Frame> {
    let lb = p.leaderboard(w);
    let mut rows = Vec::new();
    let mut seen = FxHashSet::default();
    for r in lb.rows {
        seen.insert(r.brand.clone());
        if mem.rows.get(&r.brand) != Some(&r) {
            mem.rows.insert(r.brand.clone(), r.clone());
            rows.push(r);
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
    if rows.is_empty() && removed.is_empty() && mem.total_photos == lb.total_photos {
        return None;
    }
    mem.total_photos = lb.total_photos;
    Some(Frame::Leaderboard(LeaderboardFrame {
        window: w,
        from_ms: lb.from_ms,
        to_ms: lb.to_ms,
        total_photos: lb.total_photos,
        rows,
        removed,
        events_per_sec: rate,
    }))
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
