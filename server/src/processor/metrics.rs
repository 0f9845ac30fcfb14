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
    /// Minutes from here on keep their reach in their own sketch only; older minutes
    /// are also folded into their hour's sketch and `all_reach`. Folding once, when the
    /// clock leaves a minute, instead of merging every event into three sketches cuts
    /// the hot path's sketch work by two thirds. Not stored: a restored state sets it
    /// to the processor's clock minute (merges are idempotent, so folding a minute
    /// twice, or reading it both folded and open, gives the same registers).
    #[serde(skip, default = "open_from_start")]
    pub(super) open_from: i64,
    /// Newest photos of the brand, oldest first (bounded).
    pub recent_photos: VecDeque<PhotoId>,
    /// Activity per second over the spike detector's spans: (second, count), oldest first.
    activity: VecDeque<(i64, u32)>,
    pub last_spike_check_sec: i64,
    pub last_alert_ms: Option<Millis>,
}

fn open_from_start() -> i64 {
    i64::MIN
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
            open_from: i64::MIN,
            recent_photos: VecDeque::new(),
            activity: VecDeque::new(),
            last_spike_check_sec: i64::MIN,
            last_alert_ms: None,
        }
    }

    /// Adds `c` at time `t`; `reach` adds the reached users to one sketch and is called
    /// for each sketch the event lands in: the minute's alone while that minute is
    /// open (see `open_from`), else also the hour's and the all-time one. Returns true
    /// if the event was too old for every retained bucket.
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
        let mut deferred = false;
        if minute >= clock_minute - cfg.minute_retention_minutes {
            let b = self.minutes.entry(minute).or_insert(MinuteBucket {
                counters: Counters::default(),
                reach: None,
            });
            b.counters += c;
            if minute >= clock_minute - cfg.minute_sketch_retention_minutes {
                reach(b.reach.get_or_insert_with(Hll::new));
                deferred = minute >= self.open_from;
            }
            late = false;
        }
        if hour >= clock_hour - cfg.hour_retention_hours {
            let b = self.hours.entry(hour).or_insert(HourBucket {
                counters: Counters::default(),
                reach: Hll::new(),
            });
            b.counters += c;
            if !deferred {
                reach(&mut b.reach);
            }
            late = false;
        }
        self.all += c;
        if !deferred {
            reach(&mut self.all_reach);
        }
        late
    }

    /// Folds the reach of every open minute before `through` into its hour's sketch
    /// and the all-time one, and closes those minutes.
    pub fn fold(&mut self, through: i64) {
        if through <= self.open_from {
            return;
        }
        for (&m, b) in self.minutes.range(self.open_from..through) {
            let Some(r) = &b.reach else { continue };
            if let Some(h) = self.hours.get_mut(&m.div_euclid(60)) {
                h.reach.merge(r);
            }
            self.all_reach.merge(r);
        }
        self.open_from = through;
    }

    /// Sets where the open minutes start, for a state just restored.
    pub(super) fn reopen_from(&mut self, minute: i64) {
        self.open_from = minute;
    }

    /// Drops what the windows no longer need, after folding the minutes the clock
    /// has left (a minute's sketch must reach its hour before it is dropped).
    pub fn evict(&mut self, clock_minute: i64, cfg: &ProcessorConfig) {
        self.fold(clock_minute);
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
                let last = b.saturating_mul(60).saturating_add(59);
                self.merge_open(a.saturating_mul(60), last, &mut out.reach);
            }
            Span::All => {
                out.counters = self.all;
                out.reach = self.all_reach.clone();
                self.merge_open(self.open_from, i64::MAX, &mut out.reach);
            }
        }
        out
    }

    /// Merges the sketches of the open minutes in `[first, last]` (not yet in their
    /// hour's sketch nor the all-time one).
    fn merge_open(&self, first: i64, last: i64, into: &mut Hll) {
        let first = first.max(self.open_from);
        if first > last {
            return;
        }
        for (_, m) in self.minutes.range(first..=last) {
            if let Some(r) = &m.reach {
                into.merge(r);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hll::hash64;

    /// Folding open minutes into hours and the all-time sketch must give exactly the
    /// registers of merging every event everywhere: for every window, before and after
    /// folds, with late events, and across a snapshot and restore.
    #[test]
    fn folded_reach_equals_every_event_merged_everywhere() {
        let cfg = ProcessorConfig::default();
        let mut b = BrandState::new("Nike".into());
        let start: Millis = 1_700_000_000_000;
        let mut events: Vec<(Millis, u64)> = Vec::new();
        let (mut clock, mut evicted) = (start, i64::MIN);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for i in 0..20_000u64 {
            rng = hash64(rng);
            // Mostly forward in ~0.5 s steps; one in eight up to 90 minutes late.
            let t = if rng.is_multiple_of(8) {
                clock - (rng >> 8) as i64 % (90 * MS_PER_MIN)
            } else {
                clock + (rng >> 8) as i64 % 1_000
            };
            clock = clock.max(t);
            let minute = clock.div_euclid(MS_PER_MIN);
            if minute > evicted {
                evicted = minute;
                b.evict(minute, &cfg);
            }
            // Up to 40 users reached, from a pool of 5,000.
            let reached: Vec<u64> = (0..rng % 40).map(|k| hash64((i * 7 + k) % 5_000)).collect();
            b.add(t, clock, Counters::default(), &cfg, |s| {
                reached.iter().for_each(|&h| s.insert_hash(h))
            });
            events.extend(reached.iter().map(|&h| (t, h)));
            if i == 12_345 {
                // What a checkpoint and restart does (open_from is not stored).
                let bytes = postcard::to_stdvec(&b).unwrap();
                b = postcard::from_bytes(&bytes).unwrap();
                assert_eq!(b.open_from, i64::MIN);
                b.reopen_from(evicted);
            }
            if i.is_multiple_of(997) || i == 19_999 {
                let expect = |keep: &dyn Fn(Millis) -> bool| {
                    let mut s = Hll::new();
                    events
                        .iter()
                        .filter(|e| keep(e.0))
                        .for_each(|e| s.insert_hash(e.1));
                    s
                };
                let h = clock.div_euclid(MS_PER_HOUR);
                let m = clock.div_euclid(MS_PER_MIN);
                assert_eq!(
                    b.merged(Span::All).reach,
                    expect(&|_| true),
                    "all, event {i}"
                );
                for a in [h - 3, h - 1, h] {
                    let got = b.merged(Span::Hours(a, i64::MAX)).reach;
                    assert_eq!(
                        got,
                        expect(&|t| t.div_euclid(MS_PER_HOUR) >= a),
                        "{a}.., {i}"
                    );
                }
                let got = b.merged(Span::Hours(h - 2, h - 1)).reach;
                let want = expect(&|t| (h - 2..=h - 1).contains(&t.div_euclid(MS_PER_HOUR)));
                assert_eq!(got, want, "closed hours, event {i}");
                let got = b.merged(Span::Minutes(m - 59, i64::MAX)).reach;
                assert_eq!(
                    got,
                    expect(&|t| t.div_euclid(MS_PER_MIN) >= m - 59),
                    "1h, {i}"
                );
            }
        }
        assert!(
            b.open_from > start.div_euclid(MS_PER_MIN),
            "minutes were folded"
        );
    }
}
