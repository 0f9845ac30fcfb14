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
//!
//! History for range queries (docs/semantics.md, "History"): an hour leaving the live
//! 49 h becomes a rollup (its counters, its reach folded to `hour_rollup_precision`)
//! kept `hour_rollup_days`; every event also counts in its UTC day (reach at
//! `day_rollup_precision`), kept `day_rollup_days`. An event older than every retained
//! bucket counts in all-time totals only.

use std::collections::{BTreeMap, VecDeque};
use std::ops::AddAssign;

use instabrand_shared::Millis;
use instabrand_shared::api::{Resolution, Window};
use instabrand_shared::time::{MS_PER_HOUR, MS_PER_MIN, MS_PER_SEC};

use serde::{Deserialize, Serialize};

use super::{PhotoId, ProcessorConfig, SpikeConfig};
use crate::hll::{Folded, Hll, P};

const MINUTES_PER_DAY: i64 = 24 * 60;

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

/// An hour past the live window, or a day: counters, and reach at a lower precision.
#[derive(Serialize, Deserialize)]
pub struct RollBucket {
    pub counters: Counters,
    pub reach: Folded,
}

impl RollBucket {
    fn new(precision: u8) -> Self {
        RollBucket {
            counters: Counters::default(),
            reach: Folded::new(precision),
        }
    }
}

/// The oldest bucket kept at each resolution when the clock is in `clock_minute`
/// (bucket numbers: minutes, hours or days since the epoch). Saturating: a clock or
/// a retention at the ends of the range still gives an order, never an overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizons {
    pub minute: i64,
    pub minute_sketch: i64,
    /// Hours kept at full precision (the 24 h window and its previous period).
    pub live_hour: i64,
    /// Hours kept as rollups.
    pub rolled_hour: i64,
    pub day: i64,
}

impl Horizons {
    pub fn at(clock_minute: i64, cfg: &ProcessorConfig) -> Self {
        let hour = clock_minute.div_euclid(60);
        let day = clock_minute.div_euclid(MINUTES_PER_DAY);
        Horizons {
            minute: clock_minute.saturating_sub(cfg.minute_retention_minutes),
            minute_sketch: clock_minute.saturating_sub(cfg.minute_sketch_retention_minutes),
            live_hour: hour.saturating_sub(cfg.hour_retention_hours),
            rolled_hour: hour.saturating_sub(cfg.hour_rollup_days.saturating_mul(24)),
            day: day.saturating_sub(cfg.day_rollup_days),
        }
    }

    /// The oldest bucket a range query can read at `res`.
    pub fn oldest(&self, res: Resolution) -> i64 {
        match res {
            Resolution::Minute => self.minute,
            Resolution::Hour => self.live_hour.min(self.rolled_hour),
            Resolution::Day => self.day,
        }
    }
}

/// One bucket of a range: its start, counters and estimated reach (if kept).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeBucket {
    pub at: Millis,
    pub counters: Counters,
    pub reach: Option<f64>,
}

/// Buckets of a range and their totals (reach: the union of the buckets' sketches).
#[derive(Debug, Clone, Default)]
pub struct RangeSum {
    pub buckets: Vec<RangeBucket>,
    pub counters: Counters,
    pub reach: Option<Folded>,
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
    /// Hours older than the live `hours`, kept `hour_rollup_days`.
    pub rolled_hours: BTreeMap<i64, RollBucket>,
    /// UTC days, kept `day_rollup_days`.
    pub days: BTreeMap<i64, RollBucket>,
    /// The users one event reached, when they go to a folded sketch (late events only:
    /// live ones reach history when their minute is folded). Reused, not stored.
    #[serde(skip)]
    scratch: Hll,
}

fn open_from_start() -> i64 {
    i64::MIN
}

/// Drops the entries before `horizon`, one by one: cost per expired entry.
fn pop_before<V>(map: &mut BTreeMap<i64, V>, horizon: i64) {
    while let Some(e) = map.first_entry() {
        if *e.key() >= horizon {
            break;
        }
        e.remove();
    }
}

fn merge_into(into: &mut Option<Folded>, s: &Folded) {
    match into {
        Some(x) => x.merge(s),
        None => *into = Some(s.clone()),
    }
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
            rolled_hours: BTreeMap::new(),
            days: BTreeMap::new(),
            scratch: Hll::new(),
        }
    }

    /// Adds `c` at time `t`; `reach` adds the reached users to one sketch and is called
    /// for each sketch the event lands in: the minute's alone while that minute is
    /// open (see `open_from`), else also the hour's, the day's and the all-time one
    /// (once for all folded ones). Returns true if the event was too old for every
    /// retained bucket.
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
        let day = minute.div_euclid(MINUTES_PER_DAY);
        let h = Horizons::at(clock.div_euclid(MS_PER_MIN), cfg);
        let mut late = true;
        let mut deferred = false;
        if minute >= h.minute {
            let b = self.minutes.entry(minute).or_insert(MinuteBucket {
                counters: Counters::default(),
                reach: None,
            });
            b.counters += c;
            if minute >= h.minute_sketch {
                reach(b.reach.get_or_insert_with(Hll::new));
                deferred = minute >= self.open_from;
            }
            late = false;
        }
        let live_hour = hour >= h.live_hour;
        let rolled_hour = !live_hour && hour >= h.rolled_hour;
        let in_days = day >= h.day;
        // Folded sketches take the reached users as a sketch of their own, built once.
        let scratch = (!deferred && (rolled_hour || in_days)).then(|| {
            self.scratch.clear();
            reach(&mut self.scratch);
            &self.scratch
        });
        if live_hour {
            let b = self.hours.entry(hour).or_insert(HourBucket {
                counters: Counters::default(),
                reach: Hll::new(),
            });
            b.counters += c;
            if !deferred {
                reach(&mut b.reach);
            }
            late = false;
        } else if rolled_hour {
            let b = self
                .rolled_hours
                .entry(hour)
                .or_insert_with(|| RollBucket::new(cfg.hour_rollup_precision));
            b.counters += c;
            if let Some(s) = scratch {
                b.reach.merge_hll(s);
            }
            late = false;
        }
        if in_days {
            let b = self
                .days
                .entry(day)
                .or_insert_with(|| RollBucket::new(cfg.day_rollup_precision));
            b.counters += c;
            if let Some(s) = scratch {
                b.reach.merge_hll(s);
            }
            late = false;
        }
        self.all += c;
        if !deferred {
            reach(&mut self.all_reach);
        }
        late
    }

    /// Folds the reach of every open minute before `through` into its hour's sketch,
    /// its day's and the all-time one, and closes those minutes.
    pub fn fold(&mut self, through: i64) {
        if through <= self.open_from {
            return;
        }
        for (&m, b) in self.minutes.range(self.open_from..through) {
            let Some(r) = &b.reach else { continue };
            let hour = m.div_euclid(60);
            if let Some(h) = self.hours.get_mut(&hour) {
                h.reach.merge(r);
            } else if let Some(h) = self.rolled_hours.get_mut(&hour) {
                h.reach.merge_hll(r);
            }
            if let Some(d) = self.days.get_mut(&m.div_euclid(MINUTES_PER_DAY)) {
                d.reach.merge_hll(r);
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
    /// has left (a minute's sketch must reach its hour before it is dropped), and
    /// turns hours leaving the live window into rollups. Each step pops only what has
    /// expired, so the cost follows what expires, not what is kept.
    pub fn evict(&mut self, clock_minute: i64, cfg: &ProcessorConfig) {
        self.fold(clock_minute);
        let h = Horizons::at(clock_minute, cfg);
        self.minutes = self.minutes.split_off(&h.minute);
        for (_, b) in self.minutes.range_mut(..h.minute_sketch).rev() {
            if b.reach.is_none() {
                break; // everything older was dropped at an earlier eviction
            }
            b.reach = None;
        }
        while let Some(e) = self.hours.first_entry() {
            if *e.key() >= h.live_hour {
                break;
            }
            let (hour, b) = e.remove_entry();
            if hour < h.rolled_hour {
                continue;
            }
            // A late event may have opened the rollup before its hour was evicted
            // (the two hold different events): add, don't replace.
            let r = self
                .rolled_hours
                .entry(hour)
                .or_insert_with(|| RollBucket::new(cfg.hour_rollup_precision));
            r.counters += b.counters;
            r.reach.merge_hll(&b.reach);
        }
        pop_before(&mut self.rolled_hours, h.rolled_hour);
        pop_before(&mut self.days, h.day);
    }

    /// Adds `other`'s counters and reach into this state, bucket by bucket: counters
    /// add and sketches take the register-wise maximum, so the merge of brand states
    /// that each saw part of the events, under the same clock, is the state one would
    /// have from all of them: the same counters and the same sketch registers
    /// (docs/scale-out.md, "The merged view"). Minutes open in either stay open (a
    /// minute read both folded and open gives the same registers). Photos and the
    /// spike detector's activity are not merged here: photo ids belong to the
    /// processor that holds the photo, and spikes are judged on the merged view.
    pub fn merge_from(&mut self, other: &BrandState) {
        for (&m, b) in &other.minutes {
            let into = self.minutes.entry(m).or_insert(MinuteBucket {
                counters: Counters::default(),
                reach: None,
            });
            into.counters += b.counters;
            if let Some(r) = &b.reach {
                into.reach.get_or_insert_with(Hll::new).merge(r);
            }
        }
        for (&h, b) in &other.hours {
            let into = self.hours.entry(h).or_insert(HourBucket {
                counters: Counters::default(),
                reach: Hll::new(),
            });
            into.counters += b.counters;
            into.reach.merge(&b.reach);
        }
        for (into_map, from) in [
            (&mut self.rolled_hours, &other.rolled_hours),
            (&mut self.days, &other.days),
        ] {
            for (&k, b) in from {
                match into_map.get_mut(&k) {
                    Some(into) => {
                        into.counters += b.counters;
                        into.reach.merge(&b.reach);
                    }
                    None => {
                        into_map.insert(
                            k,
                            RollBucket {
                                counters: b.counters,
                                reach: b.reach.clone(),
                            },
                        );
                    }
                }
            }
        }
        self.all += other.all;
        self.all_reach.merge(&other.all_reach);
        self.open_from = self.open_from.min(other.open_from);
    }

    /// Buckets `first..=last` at `res` (bucket numbers since the epoch), zero-filled,
    /// with their totals. Reach comes from each bucket's sketch plus the open minutes
    /// in it (not yet folded); `with_reach` false (the all-brands totals, which keep no
    /// reach) or minutes past the sketch retention give `None`. The caller bounds the
    /// number of buckets.
    pub fn range(
        &self,
        res: Resolution,
        first: i64,
        last: i64,
        h: &Horizons,
        with_reach: bool,
    ) -> RangeSum {
        let mut out = RangeSum {
            reach: with_reach.then(|| Folded::new(P as u8)),
            ..RangeSum::default()
        };
        if first > last {
            return out;
        }
        let step = res.step_ms();
        let per = step / MS_PER_MIN; // minutes per bucket
        for k in first..=last {
            let mut counters = Counters::default();
            let mut sketch: Option<Folded> = None;
            match res {
                Resolution::Minute => {
                    if let Some(b) = self.minutes.get(&k) {
                        counters = b.counters;
                        if let Some(r) = &b.reach {
                            sketch = Some(Folded::from_hll(r, P as u8));
                        }
                    }
                }
                Resolution::Hour => {
                    if let Some(b) = self.hours.get(&k) {
                        counters += b.counters;
                        sketch = Some(Folded::from_hll(&b.reach, P as u8));
                    }
                    if let Some(b) = self.rolled_hours.get(&k) {
                        counters += b.counters;
                        merge_into(&mut sketch, &b.reach);
                    }
                }
                Resolution::Day => {
                    if let Some(b) = self.days.get(&k) {
                        counters = b.counters;
                        sketch = Some(b.reach.clone());
                    }
                }
            }
            let reach_kept = with_reach && (res != Resolution::Minute || k >= h.minute_sketch);
            let reach = reach_kept.then(|| {
                if res != Resolution::Minute {
                    let a = k.saturating_mul(per);
                    let b = a.saturating_add(per - 1);
                    for m in self.open_minutes(a, b) {
                        sketch
                            .get_or_insert_with(|| Folded::new(P as u8))
                            .merge_hll(m);
                    }
                }
                let s = sketch.unwrap_or_else(|| Folded::new(P as u8));
                let e = s.estimate();
                if let Some(total) = &mut out.reach {
                    total.merge(&s);
                }
                e
            });
            if !reach_kept {
                out.reach = None; // a union missing some buckets is no union
            }
            out.counters += counters;
            out.buckets.push(RangeBucket {
                at: k.saturating_mul(step),
                counters,
                reach,
            });
        }
        out
    }

    /// The sketches of the open minutes in `[first, last]`.
    fn open_minutes(&self, first: i64, last: i64) -> impl Iterator<Item = &Hll> {
        let first = first.max(self.open_from);
        let range = (first <= last).then(|| self.minutes.range(first..=last));
        range
            .into_iter()
            .flatten()
            .filter_map(|(_, m)| m.reach.as_ref())
    }

    /// Heap bytes of the buckets and sketches (estimated: B-tree nodes hold about
    /// two thirds of their 11 slots), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        fn node(entry: usize) -> usize {
            (entry + 8) * 3 / 2
        }
        let minutes: usize = self
            .minutes
            .values()
            .map(|b| {
                node(size_of::<(i64, MinuteBucket)>()) + b.reach.as_ref().map_or(0, Hll::heap_bytes)
            })
            .sum();
        let hours: usize = self
            .hours
            .values()
            .map(|b| node(size_of::<(i64, HourBucket)>()) + b.reach.heap_bytes())
            .sum();
        let rolled: usize = self
            .rolled_hours
            .values()
            .chain(self.days.values())
            .map(|b| node(size_of::<(i64, RollBucket)>()) + b.reach.heap_bytes())
            .sum();
        minutes + hours + rolled + self.all_reach.heap_bytes()
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

    use instabrand_shared::time::MS_PER_DAY;

    /// Feeds events as the processor does: the clock moves to the newest time seen,
    /// evicting whenever it enters a new minute.
    struct Driver {
        b: BrandState,
        cfg: ProcessorConfig,
        clock: Millis,
        evicted: i64,
    }

    impl Driver {
        fn new(cfg: ProcessorConfig, start: Millis) -> Self {
            Driver {
                b: BrandState::new("Nike".into()),
                cfg,
                clock: start,
                evicted: i64::MIN,
            }
        }

        fn add(&mut self, t: Millis, c: Counters, reached: &[u64]) -> bool {
            self.clock = self.clock.max(t);
            let minute = self.clock.div_euclid(MS_PER_MIN);
            if minute > self.evicted {
                self.evicted = minute;
                self.b.evict(minute, &self.cfg);
            }
            self.b.add(t, self.clock, c, &self.cfg, |s| {
                reached.iter().for_each(|&h| s.insert_hash(h))
            })
        }

        fn horizons(&self) -> Horizons {
            Horizons::at(self.clock.div_euclid(MS_PER_MIN), &self.cfg)
        }

        fn restart(&mut self) {
            let bytes = postcard::to_stdvec(&self.b).unwrap();
            self.b = postcard::from_bytes(&bytes).unwrap();
            self.b.reopen_from(self.evicted);
        }
    }

    fn bucket_of(t: Millis, res: Resolution) -> i64 {
        t.div_euclid(res.step_ms())
    }

    /// Every hour (live or rolled up) holds the sum of its minutes' counters and the
    /// union of their reach, every day those of its hours, and each equals what its
    /// events imply (reach register for register, at the bucket's precision): with
    /// events late by up to three days, across a restart, and for range totals.
    #[test]
    fn rollups_equal_the_finer_buckets_they_replace() {
        let cfg = ProcessorConfig::default();
        let start: Millis = 1_700_000_000_000;
        let mut d = Driver::new(cfg.clone(), start);
        let mut events: Vec<(Millis, Counters, Vec<u64>)> = Vec::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut t = start;
        for i in 0..12_000u64 {
            rng = hash64(rng);
            // Forward ~26 s a step (3.6 days in all); one in eight late by up to 3 days.
            let at = if rng.is_multiple_of(8) {
                t - (rng >> 8) as i64 % (3 * MS_PER_DAY)
            } else {
                t += (rng >> 8) as i64 % 52_000;
                t
            };
            let c = Counters {
                photos: rng % 2,
                likes: rng >> 3 & 3,
                comments: rng >> 5 & 1,
                impressions: rng >> 7 & 255,
            };
            let reached: Vec<u64> = (0..rng % 30)
                .map(|k| hash64((i * 13 + k) % 20_000))
                .collect();
            let late = d.add(at, c, &reached);
            assert!(!late, "3 days is within every rollup");
            events.push((at, c, reached));
            if i == 7_777 {
                d.restart();
            }
        }
        let h = d.horizons();
        let b = &d.b;
        assert!(
            !b.rolled_hours.is_empty(),
            "some hours left the live window"
        );
        let truth = |res: Resolution, k: i64| {
            let mut c = Counters::default();
            let mut hashes = Vec::new();
            for (at, ec, r) in &events {
                if bucket_of(*at, res) == k {
                    c += *ec;
                    hashes.extend(r.iter().copied());
                }
            }
            (c, hashes)
        };
        let oldest = events.iter().map(|e| e.0).min().unwrap();
        let last_minute = d.clock.div_euclid(MS_PER_MIN);
        let minutes = b.range(Resolution::Minute, h.minute, last_minute, &h, true);
        let last_hour = d.clock.div_euclid(MS_PER_HOUR);
        let first_hour = bucket_of(oldest, Resolution::Hour);
        let hours = b.range(Resolution::Hour, first_hour, last_hour, &h, true);
        let first_day = bucket_of(oldest, Resolution::Day);
        let last_day = bucket_of(d.clock, Resolution::Day);
        let days = b.range(Resolution::Day, first_day, last_day, &h, true);
        for (k, p) in (first_hour..).zip(&hours.buckets) {
            let (c, hashes) = truth(Resolution::Hour, k);
            assert_eq!(p.counters, c, "hour {k}");
            let precision = if k >= h.live_hour {
                P as u8
            } else {
                cfg.hour_rollup_precision
            };
            let want = Folded::from_hashes(precision, hashes.iter().copied()).estimate();
            assert_eq!(p.reach, Some(want), "hour {k} reach");
            // The hour against its minutes, where they are still kept.
            if k * 60 >= h.minute {
                let mins: Vec<&RangeBucket> = minutes
                    .buckets
                    .iter()
                    .filter(|m| m.at.div_euclid(MS_PER_HOUR) == k)
                    .collect();
                let mut sum = Counters::default();
                mins.iter().for_each(|m| sum += m.counters);
                assert_eq!(p.counters, sum, "hour {k} = its minutes");
            }
            if k * 60 >= h.minute_sketch {
                let union = b.range(Resolution::Minute, k * 60, k * 60 + 59, &h, true);
                assert_eq!(
                    union.reach.map(|r| r.estimate()),
                    p.reach,
                    "hour {k} reach = union of its minutes"
                );
            }
        }
        for (k, p) in (first_day..).zip(&days.buckets) {
            let (c, hashes) = truth(Resolution::Day, k);
            assert_eq!(p.counters, c, "day {k}");
            let want = Folded::from_hashes(cfg.day_rollup_precision, hashes.iter().copied());
            assert_eq!(p.reach, Some(want.estimate()), "day {k} reach");
            let its_hours = b.range(Resolution::Hour, k * 24, k * 24 + 23, &h, true);
            assert_eq!(p.counters, its_hours.counters, "day {k} = its hours");
            // Equal at the lower precision of the two (hours past the live window are
            // rolled up at p11, days kept at p12).
            let hours_union = its_hours.reach.unwrap();
            let p = hours_union.precision().min(want.precision());
            assert!(
                hours_union.fold(p) == want.fold(p),
                "day {k} reach = union of its hours"
            );
        }
        // Range totals: counters summed, reach the union at the lowest precision.
        let all: Vec<u64> = events.iter().flat_map(|e| e.2.iter().copied()).collect();
        let mut sum = Counters::default();
        events.iter().for_each(|e| sum += e.1);
        assert_eq!(hours.counters, sum);
        assert_eq!(
            hours.reach.unwrap(),
            Folded::from_hashes(cfg.hour_rollup_precision, all.iter().copied())
        );
        assert_eq!(days.counters, sum);
        assert_eq!(
            days.reach.unwrap(),
            Folded::from_hashes(cfg.day_rollup_precision, all.iter().copied())
        );
        // Minutes past their sketch retention have counters but no reach.
        assert!(minutes.reach.is_none());
        assert!(minutes.buckets[0].reach.is_none());
        assert!(minutes.buckets.last().unwrap().reach.is_some());
    }

    /// Each resolution keeps exactly its retention as the clock moves, events older
    /// than all of them count in all-time only, and a late event lands in every
    /// bucket still kept for its time.
    #[test]
    fn expiry_keeps_each_resolution_for_its_retention() {
        let cfg = ProcessorConfig {
            minute_retention_minutes: 30,
            minute_sketch_retention_minutes: 10,
            hour_retention_hours: 3,
            hour_rollup_days: 2,
            day_rollup_days: 5,
            ..ProcessorConfig::default()
        };
        let start: Millis = 1_700_000_000_000;
        let mut d = Driver::new(cfg.clone(), start);
        let one = Counters {
            photos: 1,
            ..Counters::default()
        };
        // An event every 7 minutes for 12 days.
        let mut t = start;
        while t < start + 12 * MS_PER_DAY {
            d.add(t, one, &[hash64(t as u64)]);
            t += 7 * MS_PER_MIN;
        }
        let h = d.horizons();
        let b = &d.b;
        fn first<V>(m: &BTreeMap<i64, V>) -> i64 {
            *m.keys().next().unwrap()
        }
        assert!(first(&b.minutes) >= h.minute && first(&b.minutes) < h.minute + 7);
        assert!(
            b.minutes
                .range(..h.minute_sketch)
                .all(|(_, m)| m.reach.is_none())
        );
        assert!(
            b.minutes
                .range(h.minute_sketch..)
                .all(|(_, m)| m.reach.is_some())
        );
        assert_eq!(first(&b.hours), h.live_hour);
        assert_eq!(first(&b.rolled_hours), h.rolled_hour);
        assert_eq!(*b.rolled_hours.keys().last().unwrap(), h.live_hour - 1);
        assert_eq!(b.rolled_hours.len() as i64, 2 * 24 - 3);
        assert_eq!(first(&b.days), h.day);
        assert_eq!(b.days.len(), 6, "five whole days and today");
        assert!(b.rolled_hours.values().all(|r| r.reach.precision() == 11));
        // Late: into a rolled-up hour and its day (not a minute), then only a day,
        // then nothing but all-time.
        let all_before = b.all.photos;
        let in_rolled = h.rolled_hour * MS_PER_HOUR + 5;
        let day_count = |d: &Driver, t: Millis| d.b.days[&bucket_of(t, Resolution::Day)].counters;
        let before = (
            b.rolled_hours[&h.rolled_hour].counters,
            day_count(&d, in_rolled),
        );
        assert!(!d.add(in_rolled, one, &[1, 2, 3]));
        assert_eq!(
            d.b.rolled_hours[&h.rolled_hour].counters.photos,
            before.0.photos + 1
        );
        assert_eq!(day_count(&d, in_rolled).photos, before.1.photos + 1);
        let only_day = h.day * MS_PER_DAY;
        let before = day_count(&d, only_day);
        assert!(!d.add(only_day, one, &[4]));
        assert_eq!(day_count(&d, only_day).photos, before.photos + 1);
        assert!(d.add(only_day - 1, one, &[5]), "older than every bucket");
        assert_eq!(d.b.all.photos, all_before + 3);
        // A clock jump of a year empties every resolution but the new minute's.
        d.add(start + 400 * MS_PER_DAY, one, &[6]);
        assert_eq!(
            (
                d.b.minutes.len(),
                d.b.hours.len(),
                d.b.rolled_hours.len(),
                d.b.days.len()
            ),
            (1, 1, 0, 1)
        );
    }

    /// Bytes per brand over full retention (default configuration: 49 live hours,
    /// 90 days of hour rollups at p11, 730 days at p12): a busy brand, whose every
    /// sketch is dense, and a quiet one, 5 reached users an hour.
    /// `cargo test -p instabrand-server --lib bytes_per_brand -- --nocapture`
    #[test]
    fn bytes_per_brand_over_full_retention() {
        let cfg = ProcessorConfig::default();
        let start: Millis = 1_700_000_000_000;
        let hours = (cfg.day_rollup_days + 1) * 24;
        // A handful of big audiences (as follower sketches), rotated.
        let audiences: Vec<Hll> = (0..6u64)
            .map(|a| {
                let mut s = Hll::new();
                (a * 40_000..a * 40_000 + 40_000).for_each(|u| s.insert_hash(hash64(u)));
                s
            })
            .collect();
        let mut busy = Driver::new(cfg.clone(), start);
        let mut quiet = Driver::new(cfg.clone(), start);
        let one = Counters {
            photos: 1,
            ..Counters::default()
        };
        for k in 0..hours {
            // Busy: an event every 10 minutes, each reaching one big audience.
            for m in (0..60).step_by(10) {
                let t = start + k * MS_PER_HOUR + m * MS_PER_MIN;
                busy.clock = busy.clock.max(t);
                let minute = busy.clock.div_euclid(MS_PER_MIN);
                if minute > busy.evicted {
                    busy.evicted = minute;
                    busy.b.evict(minute, &cfg);
                }
                let a = &audiences[((k * 6 + m / 10) % 6) as usize];
                busy.b.add(t, busy.clock, one, &cfg, |s| s.merge(a));
            }
            // Quiet: one photo an hour reaching 5 users.
            let t = start + k * MS_PER_HOUR;
            let reached: Vec<u64> = (0..5).map(|u| hash64((k * 5 + u) as u64)).collect();
            quiet.add(t, one, &reached);
        }
        let (busy_bytes, quiet_bytes) = (busy.b.heap_bytes(), quiet.b.heap_bytes());
        println!(
            "bytes per brand over full retention: busy {busy_bytes} ({:.1} MiB: {} minutes, \
             {} live hours, {} rolled hours, {} days), quiet {quiet_bytes} ({:.1} KiB)",
            busy_bytes as f64 / 1_048_576.0,
            busy.b.minutes.len(),
            busy.b.hours.len(),
            busy.b.rolled_hours.len(),
            busy.b.days.len(),
            quiet_bytes as f64 / 1024.0,
        );
        assert_eq!(busy.b.rolled_hours.len() as i64, 90 * 24 - 49);
        assert_eq!(busy.b.days.len() as i64, cfg.day_rollup_days + 1);
        // 49 × 16 KiB live + 2,112 × 2 KiB + 731 × 4 KiB + minutes and B-tree nodes.
        assert!(busy_bytes < 10 << 20, "{busy_bytes}");
        // Mostly B-tree nodes: ~130 bytes a bucket, 2,891 buckets.
        assert!(quiet_bytes < 1 << 20, "{quiet_bytes}");
    }

    /// Brand states that each saw part of the events (as partition processors do),
    /// under the same clock, merge into the state one sees from all of them: every
    /// bucket's counters and sketch registers, at every resolution, late events
    /// included, whichever way the events were split.
    #[test]
    fn partial_states_merge_into_the_state_of_all_the_events() {
        let cfg = ProcessorConfig {
            hour_retention_hours: 3,
            hour_rollup_days: 1,
            ..ProcessorConfig::default()
        };
        let mut whole = BrandState::new("Nike".into());
        let mut parts: Vec<BrandState> = (0..3).map(|_| BrandState::new("Nike".into())).collect();
        let start: Millis = 1_700_000_000_000;
        let (mut clock, mut evicted) = (start, i64::MIN);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..30_000u64 {
            rng = hash64(rng);
            // Mostly forward in ~2 s steps (so hours roll up and days pass); one in ten
            // up to 5 hours late.
            let t = if rng.is_multiple_of(10) {
                clock - (rng >> 8) as i64 % (5 * MS_PER_HOUR)
            } else {
                clock + (rng >> 8) as i64 % 4_000
            };
            clock = clock.max(t);
            let minute = clock.div_euclid(MS_PER_MIN);
            if minute > evicted {
                evicted = minute;
                whole.evict(minute, &cfg);
                parts.iter_mut().for_each(|p| p.evict(minute, &cfg));
            }
            let c = Counters {
                photos: rng % 2,
                likes: (rng >> 3) % 3,
                comments: (rng >> 5) % 2,
                impressions: (rng >> 7) % 50,
            };
            let reached: Vec<u64> = (0..rng % 30)
                .map(|k| hash64((i * 13 + k) % 7_000))
                .collect();
            let insert = |s: &mut Hll| reached.iter().for_each(|&h| s.insert_hash(h));
            whole.add(t, clock, c, &cfg, insert);
            // Counters on one part, reach on another (a like counted on its photo's
            // partition, its reach on the liker's).
            let (a, b) = ((rng >> 11) as usize % 3, (rng >> 13) as usize % 3);
            parts[a].add(t, clock, c, &cfg, |_| {});
            parts[b].add(t, clock, Counters::default(), &cfg, insert);
        }
        let mut merged = BrandState::new("Nike".into());
        merged.reopen_from(evicted);
        for p in &parts {
            merged.merge_from(p);
        }
        assert!(
            !whole.rolled_hours.is_empty() && !whole.days.is_empty(),
            "every resolution is used"
        );
        assert_eq!(merged.all, whole.all);
        assert_eq!(merged.all_reach, whole.all_reach);
        let minutes = |b: &BrandState| -> Vec<(i64, Counters, Option<Hll>)> {
            b.minutes
                .iter()
                .map(|(k, v)| (*k, v.counters, v.reach.clone()))
                .collect()
        };
        assert_eq!(minutes(&merged), minutes(&whole));
        let hours = |b: &BrandState| -> Vec<(i64, Counters, Hll)> {
            b.hours
                .iter()
                .map(|(k, v)| (*k, v.counters, v.reach.clone()))
                .collect()
        };
        assert_eq!(hours(&merged), hours(&whole));
        let rolls = |m: &BTreeMap<i64, RollBucket>| -> Vec<(i64, Counters, Folded)> {
            m.iter()
                .map(|(k, v)| (*k, v.counters, v.reach.clone()))
                .collect()
        };
        assert_eq!(rolls(&merged.rolled_hours), rolls(&whole.rolled_hours));
        assert_eq!(rolls(&merged.days), rolls(&whole.days));
        let m = clock.div_euclid(MS_PER_MIN);
        for span in [
            Span::All,
            Span::Minutes(m - 4, i64::MAX),
            Span::Minutes(m - 59, i64::MAX),
        ] {
            let (a, b) = (merged.merged(span), whole.merged(span));
            assert_eq!((a.counters, a.reach), (b.counters, b.reach), "{span:?}");
        }
    }

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
