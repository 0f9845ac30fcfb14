//! Partition processors in one process (docs/scale-out.md): the users split into `n`
//! partitions, each with a processor of its own holding its users' state, and the brand
//! metrics of all of them merged into one view equal to what a single processor
//! computes from the same events.
//!
//! Every event goes to the partition of the user whose state it changes first:
//! create-user and photo-upload to their user's, follow and unfollow to the followed
//! user's (the follower set that reach reads) and also to the follower's (the
//! following set), a like or comment to its photo's owner's, where it is counted; its
//! reach, the engager's followers, is applied on the engager's partition from a
//! [`ReachRecord`].
//!
//! Order is what keeps the result exact. Events come in the order of
//! docs/semantics.md ("Order"): by second, and within one second create-user, follow,
//! photo-upload, like, comment, unfollow. So each second runs in steps: first every
//! partition moves its clock to the second's first event, then applies its
//! create-users and follows, then its uploads, likes and comments; then the reach
//! records of that second are applied where the engagers live, and only then the
//! unfollows. An engagement thus meets its engager's followers as they were at its
//! time, as in one processor. Across processes the same steps are kept by progress
//! marks on the repartition topic instead of by one loop.
//!
//! Counts are exact per partition and add up; reach sketches merge register by
//! register ([`BrandState::merge_from`]). Not split yet: home timelines, profiles and
//! alerts are read from one partition's processor each; the merged view covers brand
//! metrics and influence.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use instabrand_shared::api::{Influencer, Leaderboard, OriginalBrandMetric, Window};
use instabrand_shared::{Event, EventKind, Millis};
use rustc_hash::FxHashMap;

use super::query::{leaderboard_of, original_brand_metrics_of, sort_influencers};
use super::{BrandState, Half, Processor, ProcessorConfig, ReachRecord, stable_hash};

/// `n` partition processors and the loop that keeps them in step.
pub struct Partitioned {
    parts: Vec<Processor>,
}

impl Partitioned {
    pub fn new(n: usize, cfg: &ProcessorConfig) -> Partitioned {
        let parts = (0..n.max(1))
            .map(|_| {
                let mut p = Processor::new(cfg.clone());
                p.split_reach = true;
                p
            })
            .collect();
        Partitioned { parts }
    }

    /// The partition of `user`: the same user on every instance and every run.
    pub fn owner(&self, user: &str) -> usize {
        owner(user, self.parts.len())
    }

    fn targets(&self, event: &Event<'_>) -> (usize, Option<usize>) {
        targets(event, self.parts.len())
    }

    /// Applies `events` (each with its record's bytes), which must come in the order of
    /// docs/semantics.md: by second, and within a second by the tie order.
    pub fn apply_ordered<'a>(&mut self, events: &[(Event<'a>, &'a [u8])]) {
        for (start, unfollows, end) in seconds(events) {
            self.apply_second(&events[start..end], unfollows - start);
        }
    }

    /// One second's events, in the steps described in the module's doc.
    fn apply_second<'a>(&mut self, events: &[(Event<'a>, &'a [u8])], unfollows: usize) {
        let Some((first, _)) = events.first() else {
            return;
        };
        let t = first.time();
        for p in &mut self.parts {
            p.advance_to(t);
        }
        self.route(&events[..unfollows]);
        let mut reach: Vec<ReachRecord> = self
            .parts
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.reach_out))
            .collect();
        // In one order whatever partition sent them (as the parallel loop does).
        reach.sort_unstable();
        for r in &reach {
            let owner = self.owner(&r.actor);
            self.parts[owner].apply_reach(r);
        }
        self.route(&events[unfollows..]);
    }

    /// Like [`apply_ordered`](Self::apply_ordered), each partition on a thread of its
    /// own. The threads meet once per second of events, between applying the second's
    /// engagements and the reach records they produced; every other step touches only
    /// the partition's own state. Reach records travel in two mailboxes per partition,
    /// by the parity of the second, so one meeting a second is enough: a partition
    /// cannot write a second's records into a box its owner has not emptied yet, as
    /// it would first have to pass the next meeting.
    pub fn apply_ordered_parallel<'a>(&mut self, events: &[(Event<'a>, &'a [u8])]) {
        let n = self.parts.len();
        let routes: Vec<Route> = events.iter().map(|(e, _)| route(e, n)).collect();
        self.apply_routed(events, &routes);
    }

    /// [`apply_ordered_parallel`](Self::apply_ordered_parallel) with each event's
    /// partitions already worked out ([`route`], e.g. on the threads that decoded them).
    pub fn apply_routed<'a>(&mut self, events: &[(Event<'a>, &'a [u8])], routes: &[Route]) {
        let n = self.parts.len();
        if n == 1 {
            return self.apply_ordered(events);
        }
        let seconds = seconds(events);
        let boxes: Vec<[Mutex<Vec<ReachRecord>>; 2]> = (0..n).map(|_| Default::default()).collect();
        let meeting = Meeting::new(n);
        let (seconds, boxes, meeting) = (&seconds, &boxes, &meeting);
        std::thread::scope(|scope| {
            for (i, part) in self.parts.iter_mut().enumerate() {
                scope.spawn(move || {
                    let _attending = Attendance(meeting);
                    let i = i as u16;
                    // Whether event `k` is this partition's, and which half of an edge.
                    let mine = |k: usize| match routes[k] {
                        (a, u16::MAX) => (a == i).then_some(Half::Both),
                        (a, _) if a == i => Some(Half::Followers),
                        (_, b) => (b == i).then_some(Half::Following),
                    };
                    for (step, &(start, unfollows, end)) in seconds.iter().enumerate() {
                        part.advance_to(events[start].0.time());
                        for (k, (e, raw)) in events.iter().enumerate().take(unfollows).skip(start) {
                            if let Some(half) = mine(k) {
                                part.apply_as(e, raw, half);
                            }
                        }
                        for r in part.reach_out.drain(..) {
                            let to = owner(&r.actor, n);
                            boxes[to][step % 2]
                                .lock()
                                .expect("mailbox poisoned")
                                .push(r);
                        }
                        meeting.wait();
                        let mut reach = std::mem::take(
                            &mut *boxes[i as usize][step % 2]
                                .lock()
                                .expect("mailbox poisoned"),
                        );
                        reach.sort_unstable();
                        for r in &reach {
                            part.apply_reach(r);
                        }
                        for (k, (e, raw)) in events.iter().enumerate().take(end).skip(unfollows) {
                            if let Some(half) = mine(k) {
                                part.apply_as(e, raw, half);
                            }
                        }
                    }
                });
            }
        });
    }

    fn route<'a>(&mut self, events: &[(Event<'a>, &'a [u8])]) {
        for (e, raw) in events {
            let (a, b) = self.targets(e);
            match b {
                Some(b) => {
                    self.parts[a].apply_as(e, raw, Half::Followers);
                    self.parts[b].apply_as(e, raw, Half::Following);
                }
                None => {
                    self.parts[a].apply(e, raw);
                }
            }
        }
    }

    /// Every brand's state merged across the partitions, by name.
    pub fn merged_brands(&self) -> FxHashMap<Box<str>, BrandState> {
        let mut out: FxHashMap<Box<str>, BrandState> = FxHashMap::default();
        for p in &self.parts {
            for b in &p.brands {
                out.entry(b.name.clone())
                    .or_insert_with(|| empty_brand(b.name.clone()))
                    .merge_from(b);
            }
        }
        out
    }

    /// The all-brands totals merged across the partitions.
    pub fn merged_totals(&self) -> BrandState {
        let mut m = empty_brand("*".into());
        for p in &self.parts {
            m.merge_from(&p.totals);
        }
        m
    }

    /// Activity received per user per minute (influence), merged by username.
    pub fn merged_influence_minutes(&self) -> FxHashMap<(i64, Box<str>), u32> {
        let mut out = FxHashMap::default();
        for p in &self.parts {
            for (&minute, users) in &p.influence_minutes {
                for (&u, &n) in users {
                    *out.entry((minute, p.user(u).name.as_str().into()))
                        .or_default() += n;
                }
            }
        }
        out
    }

    /// The stream's clock: every partition keeps the same one (to the second).
    pub fn clock(&self) -> Option<Millis> {
        self.parts.iter().filter_map(|p| p.clock()).max()
    }

    /// The leaderboard over `w` from the merged brands: what one processor shows.
    pub fn leaderboard(&self, w: Window) -> Leaderboard {
        let brands = self.merged_brands();
        let mut brands: Vec<&BrandState> = brands.values().collect();
        brands.sort_by(|a, b| a.name.cmp(&b.name));
        leaderboard_of(
            brands.into_iter(),
            &self.merged_totals(),
            self.clock().unwrap_or(0),
            w,
        )
    }

    /// The original `/brand-metrics` from the merged brands.
    pub fn original_brand_metrics(&self, w: Window) -> Vec<OriginalBrandMetric> {
        original_brand_metrics_of(self.leaderboard(w))
    }

    /// The top `limit` influencers over `w`. A user's score is counted on the user's
    /// own partition (uploads, and likes and comments on the user's photos), so the top
    /// of the partitions' tops is the top of all.
    pub fn influencers(&self, w: Window, limit: usize) -> Vec<Influencer> {
        let mut all: Vec<Influencer> = self
            .parts
            .iter()
            .flat_map(|p| p.influencers(w, limit))
            .collect();
        sort_influencers(&mut all);
        all.truncate(limit);
        all
    }
}

/// A brand state to merge partitions' states into: no minute open of its own, so the
/// merge keeps open what the partitions have open (`merge_from` takes the earliest).
fn empty_brand(name: Box<str>) -> BrandState {
    let mut b = BrandState::new(name);
    b.reopen_from(i64::MAX);
    b
}

fn second(t: Millis) -> i64 {
    t.div_euclid(1000)
}

/// Each second's events in `events` (in the applied order), as (start, first
/// unfollow, end) indexes.
fn seconds(events: &[(Event<'_>, &[u8])]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let sec = second(events[start].0.time());
        let end = start
            + events[start..]
                .iter()
                .take_while(|(e, _)| second(e.time()) == sec)
                .count();
        let unfollows = start
            + events[start..end]
                .iter()
                .position(|(e, _)| e.kind() == EventKind::Unfollow)
                .unwrap_or(end - start);
        out.push((start, unfollows, end));
        start = end;
    }
    out
}

/// Where the partition threads meet once per second of events. A meeting is short
/// (a second's events, ~100 µs of work each), so waiting spins first: `std`'s
/// `Barrier` puts the early thread to sleep and waking it cost ~90 µs a meeting, as much
/// as the work. After a bounded spin it yields, so a machine with fewer free cores than
/// partitions still makes progress. A thread that panics abandons the meeting (see
/// [`Attendance`]): the others then panic too instead of waiting for it for ever, and
/// the scope hands the panic on.
struct Meeting {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    abandoned: AtomicBool,
}

/// Held by each partition thread for as long as it takes part: dropped while the
/// thread panics, it abandons the meeting.
struct Attendance<'a>(&'a Meeting);

impl Drop for Attendance<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandoned.store(true, Ordering::Release);
        }
    }
}

impl Meeting {
    /// Spins this many times before yielding.
    const SPINS: u32 = 20_000;

    fn new(parties: usize) -> Meeting {
        Meeting {
            parties,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            abandoned: AtomicBool::new(false),
        }
    }

    /// Returns once every party has arrived; panics if one has abandoned the meeting.
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(
                !self.abandoned.load(Ordering::Acquire),
                "another partition thread failed"
            );
            if spins < Self::SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The partitions of one event: the owner of its first effect, and for a follow or
/// unfollow also the follower's (`u16::MAX`: none).
pub type Route = (u16, u16);

/// An event's [`Route`] among `n` partitions.
pub fn route(event: &Event<'_>, n: usize) -> Route {
    let (a, b) = targets(event, n);
    (a as u16, b.map_or(u16::MAX, |b| b as u16))
}

/// The partition of `user` among `n`.
fn owner(user: &str, n: usize) -> usize {
    (stable_hash(user) % n as u64) as usize
}

/// The partitions an event goes to: the owner of its first effect, and for a follow or
/// unfollow also the follower's (when another).
fn targets(event: &Event<'_>, n: usize) -> (usize, Option<usize>) {
    match event {
        Event::CreateUser(e) => (owner(&e.username, n), None),
        Event::PhotoUpload(e) => (owner(&e.username, n), None),
        Event::Follow(e) | Event::Unfollow(e) => {
            let (a, b) = (owner(&e.followed, n), owner(&e.follower, n));
            (a, (a != b).then_some(b))
        }
        Event::Like(e) | Event::Comment(e) => (owner(&e.owner, n), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::OrderKey;
    use crate::processor::Span;
    use instabrand_generator::{Config as GenConfig, Generator, Shape};
    use instabrand_shared::{DecodeLimits, decode};
    use rustc_hash::FxHashSet;

    use crate::processor::UserId;

    /// Generated events of the popular-posting shape (who posts and who is engaged
    /// with follows popularity), as original JSON, in the order the aligner releases.
    fn stream(events: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut g = Generator::new(GenConfig {
            seed,
            users: 2_000,
            mean_follows: 8.0,
            shape: Shape::Popular,
            ..GenConfig::default()
        });
        let mut t = 1_700_000_000_000;
        let mut lines: Vec<(OrderKey, Vec<u8>)> = (0..events)
            .map(|_| {
                t += 7;
                let mut buf = Vec::new();
                instabrand_generator::write_original_json(&g.next_event_at(t), &mut buf);
                let e = decode(&buf, None, &DecodeLimits::NONE).unwrap();
                (OrderKey::of(&e, &buf), buf.clone())
            })
            .collect();
        lines.sort_by_key(|(k, _)| *k);
        lines.into_iter().map(|(_, l)| l).collect()
    }

    #[test]
    fn a_partition_thread_that_fails_stops_the_others_instead_of_leaving_them_waiting() {
        let meeting = Meeting::new(2);
        let outcome = std::panic::catch_unwind(|| {
            std::thread::scope(|scope| {
                let m = &meeting;
                scope.spawn(move || {
                    let _attending = Attendance(m);
                    panic!("a partition failed");
                });
                scope.spawn(move || {
                    let _attending = Attendance(m);
                    m.wait();
                });
            })
        });
        assert!(outcome.is_err(), "the failure reaches the caller");
        assert!(meeting.abandoned.load(Ordering::Acquire));
    }

    #[test]
    fn partitions_merge_into_the_brand_metrics_and_influence_of_one_processor() {
        let cfg = ProcessorConfig::default();
        let lines = stream(60_000, 7);
        let events: Vec<(Event<'_>, &[u8])> = lines
            .iter()
            .map(|l| (decode(l, None, &DecodeLimits::NONE).unwrap(), l.as_slice()))
            .collect();
        let mut one = Processor::new(cfg.clone());
        for (e, raw) in &events {
            one.apply(e, raw);
        }
        for (n, parallel) in [(1, false), (2, false), (3, false), (2, true), (3, true)] {
            let mut split = Partitioned::new(n, &cfg);
            if parallel {
                // In blocks, as a reader hands them over (a block may end mid-second).
                for block in events.chunks(7_001) {
                    split.apply_ordered_parallel(block);
                }
            } else {
                split.apply_ordered(&events);
            }
            let merged = split.merged_brands();
            assert_eq!(merged.len(), one.brands.len(), "{n} partitions");
            let clock = one.clock().unwrap();
            let minute = clock.div_euclid(60_000);
            let spans = [
                Span::All,
                Span::Minutes(minute - 4, i64::MAX),
                Span::Minutes(minute - 59, i64::MAX),
                Span::Hours(clock.div_euclid(3_600_000) - 23, i64::MAX),
            ];
            let mut engaged = 0;
            for b in &one.brands {
                let m = &merged[&b.name];
                engaged += b.all.likes + b.all.comments;
                for span in spans {
                    let (x, y) = (m.merged(span), b.merged(span));
                    assert_eq!(
                        x.counters, y.counters,
                        "{} {span:?}, {n} partitions",
                        b.name
                    );
                    assert_eq!(x.reach, y.reach, "{} {span:?}, {n} partitions", b.name);
                }
            }
            assert!(
                engaged > 10_000,
                "likes and comments cross partitions: {engaged}"
            );
            let totals = split.merged_totals();
            assert_eq!(totals.all, one.totals.all, "{n} partitions");
            let mut single: FxHashMap<(i64, Box<str>), u32> = FxHashMap::default();
            for (&minute, users) in &one.influence_minutes {
                for (&u, &k) in users {
                    single.insert((minute, one.user(u).name.as_str().into()), k);
                }
            }
            assert_eq!(split.merged_influence_minutes(), single, "{n} partitions");
            // Each user's follower and following sets live whole on the user's
            // partition (each edge is kept once a side, not twice).
            let names = |p: &Processor, set: &FxHashSet<UserId>| -> Vec<Box<str>> {
                let mut v: Vec<Box<str>> = set
                    .iter()
                    .map(|u| p.user(*u).name.as_str().into())
                    .collect();
                v.sort();
                v
            };
            for (i, u) in one.users.iter().enumerate() {
                let part = &split.parts[split.owner(&u.name)];
                let mine = part.user(
                    part.user_id(&u.name)
                        .expect("every user is on its partition"),
                );
                assert_eq!(
                    names(part, &mine.followers),
                    names(&one, &u.followers),
                    "user {i}"
                );
                assert_eq!(
                    names(part, &mine.following),
                    names(&one, &u.following),
                    "user {i}"
                );
            }
            let kept: u64 = split.parts.iter().map(|p| p.sizes.edges).sum();
            assert_eq!(kept, one.sizes.edges, "edges counted once, {n} partitions");
            for w in [Window::M5, Window::H1, Window::H24, Window::All] {
                assert_eq!(
                    split.leaderboard(w),
                    one.leaderboard(w),
                    "{w:?}, {n} partitions"
                );
                assert_eq!(
                    split.original_brand_metrics(w),
                    one.original_brand_metrics(w),
                    "{w:?}, {n} partitions"
                );
                assert_eq!(
                    split.influencers(w, 10),
                    one.influencers(w, 10),
                    "{w:?}, {n} partitions"
                );
            }
        }
    }
}
