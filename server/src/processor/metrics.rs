//! Per-brand metrics in event-time buckets, and the windows merged from them.
//!
//! Counters live per minute (kept 25 h) and per hour (kept 49 h); reach sketches per
//! minute (kept ~2 h: the 1 h window and its previous period) and per hour. Windows
//! end at the stream's clock and are merges of whole buckets:
//! - 5m: the clock's minute and the 4 before it; 1h: the clock's minute and 59 before;
//! - 24h: the clock's hour and the 23 before it (so its far edge is hour-aligned and
//!   its counters and reach cover exactly the same events);
//! - all: everything since the start.
//!
//! Buckets newer than the clock (events inside the allowed lateness) are included.
//! An event older than every retained bucket counts in all-time totals only.

use std::collections::{BTreeMap, VecDeque};
use std::ops::AddAssign;

use instabrand_shared::Millis;
use instabrand_shared::api::Window;
use instabrand_shared::time::{MS_PER_HOUR, MS_PER_MIN, MS_PER_SEC};

use serde::{Deserialize, Serialize};

use super::{PhotoId, ProcessorConfig, SpikeConfig};
use crate::hll::Hll;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub photos: u64,
    pub likes: u64,
    pub comments: u64,
    /// Sum of the posters' follower counts.
    pub impressions: u64,
}

impl Counters {
    pub fn activity(&self) -> u64 {
        self.photos + self.likes + self.comments
    }
}

impl AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.photos += o.photos;
        self.likes += o.likes;
        self.comments += o.comments;
        self.impressions += o.impressions;
    }
}

#[derive(Serialize, Deserialize)]
pub struct MinuteBucket {
    pub counters: Counters,
    /// Dropped once older than the sketch retention.
    pub reach: Option<Hll>,
}

#[derive(Serialize, Deserialize)]
pub struct HourBucket {
    pub counters: Counters,
    pub reach: Hll,
}

/// Counters and reach merged over one window.
#[derive(Debug, Clone, Default)]
pub struct Windowed {
    pub counters: Counters,
    pub reach: Hll,
}

#[derive(Serialize, Deserialize)]
pub struct BrandState {
    pub name: Box<str>,
    pub minutes: BTreeMap<i64, MinuteBucket>,
    pub hours: BTreeMap<i64, HourBucket>,
    pub all: Counters,
    pub all_reach: Hll,
    /// Newest photos of the brand, oldest first (bounded).
    pub recent_photos: VecDeque<PhotoId>,
    /// Activity per second over the spike detector's spans: (second, count), oldest first.
    activity: VecDeque<(i64, u32)>,
    pub last_spike_check_sec: i64,
    pub last_alert_ms: Option<Millis>,
}

/// The window's bounds in event time: `[from, to]`.
pub fn window_bounds(w: Window, clock: Millis) -> (Millis, Millis) {
    let m = clock.div_euclid(MS_PER_MIN);
    let h = clock.div_euclid(MS_PER_HOUR);
    let from = match w {
        Window::M5 => (m - 4) * MS_PER_MIN,
        Window::H1 => (m - 59) * MS_PER_MIN,
        Window::H24 => (h - 23) * MS_PER_HOUR,
        Window::All => i64::MIN,
    };
    (from, clock)
}

/// Which buckets a window (or its previous period) covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Minutes(i64, i64),
    Hours(i64, i64),
    All,
}

pub fn span(w: Window, clock: Millis, previous: bool) -> Span {
    let m = clock.div_euclid(MS_PER_MIN);
    let h = clock.div_euclid(MS_PER_HOUR);
    match (w, previous) {
        (Window::M5, false) => Span::Minutes(m - 4, i64::MAX),
        (Window::M5, true) => Span::Minutes(m - 9, m - 5),
        (Window::H1, false) => Span::Minutes(m - 59, i64::MAX),
        (Window::H1, true) => Span::Minutes(m - 119, m - 60),
        (Window::H24, false) => Span::Hours(h - 23, i64::MAX),
        (Window::H24, true) => Span::Hours(h - 47, h - 24),
        (Window::All, _) => Span::All,
    }
}

impl BrandState {
    pub fn new(name: Box<str>) -> Self {
        BrandState {
            name,
            minutes: BTreeMap::new(),
            hours: BTreeMap::new(),
            all: Counters::default(),
            all_reach: Hll::new(),
            recent_photos: VecDeque::new(),
            activity: VecDeque::new(),
            last_spike_check_sec: i64::MIN,
            last_alert_ms: None,
        }
    }

    /// Adds `c` at time `t`; `reach` adds the reached users to one sketch and is called
    /// for each sketch the event lands in. Returns true if the event was too old for
    /// every retained bucket.
    pub fn add(
        &mut self,
        t: Millis,
        clock: Millis,
        c: Counters,
        cfg: &ProcessorConfig,
        mut reach: impl FnMut(&mut Hll),
    ) -> bool {
        let minute = t.div_euclid(MS_PER_MIN);
        let hour = t.div_euclid(MS_PER_HOUR);
        let clock_minute = clock.div_euclid(MS_PER_MIN);
        let clock_hour = clock.div_euclid(MS_PER_HOUR);
        let mut late = true;
        if minute >= clock_minute - cfg.minute_retention_minutes {
            let b = self.minutes.entry(minute).or_insert(MinuteBucket {
                counters: Counters::default(),
                reach: None,
            });
            b.counters += c;
            if minute >= clock_minute - cfg.minute_sketch_retention_minutes {
                reach(b.reach.get_or_insert_with(Hll::new));
            }
            late = false;
        }
        if hour >= clock_hour - cfg.hour_retention_hours {
            let b = self.hours.entry(hour).or_insert(HourBucket {
                counters: Counters::default(),
                reach: Hll::new(),
            });
            b.counters += c;
            reach(&mut b.reach);
            late = false;
        }
        self.all += c;
        reach(&mut self.all_reach);
        late
    }

    pub fn evict(&mut self, clock_minute: i64, cfg: &ProcessorConfig) {
        self.minutes = self
            .minutes
            .split_off(&(clock_minute - cfg.minute_retention_minutes));
        let sketch_horizon = clock_minute - cfg.minute_sketch_retention_minutes;
        for (_, b) in self.minutes.range_mut(..sketch_horizon).rev() {
            if b.reach.is_none() {
                break; // everything older was dropped at an earlier eviction
            }
            b.reach = None;
        }
        let clock_hour = clock_minute.div_euclid(60);
        self.hours = self
            .hours
            .split_off(&(clock_hour - cfg.hour_retention_hours));
    }

    /// Counters and reach over a span of buckets.
    pub fn merged(&self, span: Span) -> Windowed {
        let mut out = Windowed::default();
        match span {
            Span::Minutes(a, b) => {
                for (_, m) in self.minutes.range(a..=b) {
                    out.counters += m.counters;
                    if let Some(r) = &m.reach {
                        out.reach.merge(r);
                    }
                }
            }
            Span::Hours(a, b) => {
                for (_, h) in self.hours.range(a..=b) {
                    out.counters += h.counters;
                    out.reach.merge(&h.reach);
                }
            }
            Span::All => {
                out.counters = self.all;
                out.reach = self.all_reach.clone();
            }
        }
        out
    }

    /// Counters alone over a span (cheap: no sketches).
    pub fn counters(&self, span: Span) -> Counters {
        let mut out = Counters::default();
        match span {
            Span::Minutes(a, b) => self
                .minutes
                .range(a..=b)
                .for_each(|(_, m)| out += m.counters),
            Span::Hours(a, b) => self.hours.range(a..=b).for_each(|(_, h)| out += h.counters),
            Span::All => out = self.all,
        }
        out
    }

    /// Per-step counters across the window, oldest first, with zero-filled gaps:
    /// minutes for 5m and 1h, hours for 24h and all. Returns (step in ms, points).
    pub fn series(&self, w: Window, clock: Millis) -> (Millis, Vec<(Millis, Counters)>) {
        let m = clock.div_euclid(MS_PER_MIN);
        let h = clock.div_euclid(MS_PER_HOUR);
        match w {
            Window::M5 | Window::H1 => {
                let n = if w == Window::M5 { 5 } else { 60 };
                let pts = (m - n + 1..=m)
                    .map(|k| {
                        (
                            k * MS_PER_MIN,
                            self.minutes.get(&k).map(|b| b.counters).unwrap_or_default(),
                        )
                    })
                    .collect();
                (MS_PER_MIN, pts)
            }
            Window::H24 | Window::All => {
                let first = match w {
                    Window::H24 => h - 23,
                    _ => self.hours.keys().next().copied().unwrap_or(h).max(h - 47),
                };
                let pts = (first..=h)
                    .map(|k| {
                        (
                            k * MS_PER_HOUR,
                            self.hours.get(&k).map(|b| b.counters).unwrap_or_default(),
                        )
                    })
                    .collect();
                (MS_PER_HOUR, pts)
            }
        }
    }

    /// Up to 30 activity points across the window, for a sparkline.
    pub fn spark(&self, w: Window, clock: Millis) -> Vec<u64> {
        let (_, pts) = self.series(w, clock);
        let per = pts.len().div_ceil(30).max(1);
        let mut out: Vec<u64> = pts
            .chunks(per)
            .map(|c| c.iter().map(|(_, x)| x.activity()).sum())
            .collect();
        if out.len() > 30 {
            out.drain(..out.len() - 30);
        }
        out
    }

    /// Counts activity per second over the last `keep_secs` (recent span + baseline).
    pub(super) fn note_activity(&mut self, t: Millis, now: Millis, keep_secs: i64) {
        let sec = t.div_euclid(MS_PER_SEC);
        let now_sec = now.div_euclid(MS_PER_SEC);
        if sec > now_sec - keep_secs {
            match self.activity.back_mut() {
                Some((s, n)) if *s == sec => *n += 1,
                Some((s, _)) if *s > sec => {
                    // A late event: find its second (rare, so a search is fine).
                    let pos = self.activity.partition_point(|(s, _)| *s < sec);
                    match self.activity.get_mut(pos) {
                        Some((s, n)) if *s == sec => *n += 1,
                        _ => self.activity.insert(pos, (sec, 1)),
                    }
                }
                _ => self.activity.push_back((sec, 1)),
            }
        }
        while self
            .activity
            .front()
            .is_some_and(|(s, _)| *s <= now_sec - keep_secs)
        {
            self.activity.pop_front();
        }
    }

    /// (recent rate, baseline rate), both per minute, or None without enough history.
    /// History is the stream's, not the brand's: a brand silent until a campaign has a
    /// baseline of zero, and its burst is a spike.
    pub(super) fn spike_rates(
        &self,
        now: Millis,
        stream_start: Millis,
        cfg: &SpikeConfig,
    ) -> Option<(f64, f64)> {
        let now_sec = now.div_euclid(MS_PER_SEC);
        let split = now_sec - cfg.recent_secs;
        let first = stream_start.div_euclid(MS_PER_SEC);
        // The baseline runs from its span's start (or the brand's first activity) to the split.
        let history = (split - first.max(split - cfg.baseline_secs)).max(0);
        if history < cfg.min_history_secs.max(1) {
            return None;
        }
        let (mut recent, mut base) = (0u64, 0u64);
        for &(s, c) in &self.activity {
            if s > split {
                recent += c as u64;
            } else if s > split - cfg.baseline_secs {
                base += c as u64;
            }
        }
        Some((
            recent as f64 * 60.0 / cfg.recent_secs.max(1) as f64,
            base as f64 * 60.0 / history as f64,
        ))
    }
}
