//! Event-time alignment: the order in which events reach the processor.
//!
//! The six event types arrive on separate logs (Kafka topics and their partitions, or
//! other sources), each read at its own pace. After any downtime one log can be far
//! ahead of another, and applying in arrival order would then let a photo meet a
//! follower graph that is hours behind it. The aligner restores event-time order
//! across all inputs, the way Kafka Streams synchronises a task's partitions and Flink
//! aligns watermarks (docs/semantics.md, "Order"):
//!
//! - every event gets an [`OrderKey`]: its second, then the fixed tie order within one
//!   second (create-user, follow, photo-upload, like, comment, unfollow), then its
//!   milliseconds, then a hash of its bytes, so the same events give the same order
//!   whatever order they arrived in;
//! - each input keeps a watermark, the greatest key it has delivered; events of one
//!   input are assumed to come in (near) event-time order, as a producer writes them;
//! - an event is released once every input that may still deliver something older has
//!   passed it (gone beyond its second, type and milliseconds, so that events equal in
//!   all three are all present and go in one fixed order): inputs at the end of their log do not hold the others back, and an
//!   input that has delivered nothing for a bound stops holding them back too, so a
//!   quiet topic cannot stall the stream (`idle_ms`; `behind_idle_ms` for an input
//!   known to be behind the end of its log, whose next records are surely coming);
//! - at most `max_held` events wait; past that the oldest goes early, counted.
//!
//! This module is pure (the wall clock is an argument) and generic over what it
//! holds, so its rules are tested with tables.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use instabrand_shared::time::MS_PER_SEC;
use instabrand_shared::{Event, EventKind, Millis};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The alignment's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlignConfig {
    /// An input not known to be at the end of its log that holds nothing and has
    /// delivered nothing for this long (wall time) stops holding the others back.
    /// Live, Kafka partitions are at their end after every fetch and hold nobody back;
    /// this is the most a silent input can add to the latency.
    pub idle_ms: u64,
    /// The same for an input known to be behind the end of its log (a Kafka partition
    /// with a backlog, or just assigned): its next records are coming, so it is waited
    /// for longer before the others go ahead of it (a broker stall, say).
    pub behind_idle_ms: u64,
    /// Most events waiting for the other inputs at once; past it the oldest is applied
    /// early (counted as `released_early`). Kafka partitions far ahead are paused
    /// long before this (`pause_held_per_input`).
    pub max_held: usize,
    /// A Kafka partition with this many events waiting is paused until they drain to
    /// half, so a topic far ahead in a backlog does not fill memory.
    pub pause_held_per_input: usize,
    /// An event stamped more than this ahead of both the wall clock and the newest
    /// applied event time is dead-lettered (`future_time`) instead of moving the
    /// stream's clock. Old data (replays of 2017) is behind the wall clock and passes.
    pub max_future_secs: i64,
    /// After a restart, the events the checkpoint held wait this long (wall time) for
    /// their source to come back (a Kafka group join can take a session timeout)
    /// before the others may go ahead of them, unless the source reports sooner.
    pub restore_wait_ms: u64,
}

impl Default for AlignConfig {
    fn default() -> Self {
        AlignConfig {
            idle_ms: 100,
            behind_idle_ms: 10_000,
            max_held: 2_000_000,
            pause_held_per_input: 50_000,
            max_future_secs: 86_400,
            restore_wait_ms: 60_000,
        }
    }
}

/// Where an event goes in the applied order. Ordered field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    /// The event time's second.
    pub sec: i64,
    /// The tie order within one second ([`tie_rank`]).
    pub rank: u8,
    /// The event time itself (RFC 3339 times may carry milliseconds).
    pub ms: Millis,
    /// A hash of the record's bytes: equal keys are equal records.
    pub tie: u64,
}

/// The fixed order of event types within one second: a user exists before anyone
/// follows them, a follow made in the same second as a photo counts for its reach, a
/// like follows its photo, and an unfollow in the same second comes last.
pub fn tie_rank(kind: EventKind) -> u8 {
    match kind {
        EventKind::CreateUser => 0,
        EventKind::Follow => 1,
        EventKind::PhotoUpload => 2,
        EventKind::Like => 3,
        EventKind::Comment => 4,
        EventKind::Unfollow => 5,
    }
}

impl OrderKey {
    pub fn of(event: &Event<'_>, raw: &[u8]) -> OrderKey {
        let ms = event.time();
        OrderKey {
            sec: ms.div_euclid(MS_PER_SEC),
            rank: tie_rank(event.kind()),
            ms,
            tie: rustc_hash::FxBuildHasher.hash_one(raw),
        }
    }
}

use std::hash::BuildHasher;

/// An input's index in the aligner, from [`Aligner::input`].
pub type InputId = usize;

/// Where an input stands in its log, as its source knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogPosition {
    /// Unknown: it may deliver more at any moment (held back for up to `idle_ms`).
    Open,
    /// At the end of its log: what it delivers later is live, no older than now, so it
    /// holds nobody back.
    AtEnd,
    /// Behind the end of its log: more is surely coming (held back for up to
    /// `behind_idle_ms`).
    Behind,
}

/// What the aligner knows of one input.
#[derive(Debug, Clone)]
struct Input {
    name: Box<str>,
    /// The greatest key delivered so far.
    watermark: Option<OrderKey>,
    /// Events of this input waiting.
    held: usize,
    /// Wall time of the last delivery (or of the input's creation).
    last_arrival: Millis,
    position: LogPosition,
    /// The event types it has delivered (a bit per tie rank).
    kinds: u8,
}

impl Input {
    /// Whether it holds the others back at wall time `now`.
    /// What it may still deliver as its watermark allows: a log of one event type (a
    /// Kafka partition of one topic) keeps event-time order within a second, so only
    /// the watermark's (second, type, milliseconds) may still come; one of several
    /// types (a file, the generator, HTTP ingest) writes a second's events in any
    /// order of type, so all of its current second may still come.
    fn limit(&self) -> Option<OrderKey> {
        let w = self.watermark?;
        Some(if self.kinds.count_ones() > 1 {
            OrderKey {
                sec: w.sec,
                rank: 0,
                ms: Millis::MIN,
                tie: 0,
            }
        } else {
            w
        })
    }

    fn holds_back(&self, cfg: &AlignConfig, now: Millis) -> bool {
        let patience = match self.position {
            LogPosition::AtEnd => return false,
            LogPosition::Open => cfg.idle_ms,
            LogPosition::Behind => cfg.behind_idle_ms,
        };
        now - self.last_arrival <= patience as Millis
    }
}

/// An input as the health view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct InputStatus {
    pub name: String,
    pub watermark: Option<Millis>,
    pub held: usize,
    pub position: LogPosition,
    /// Holds no other input back (at the end of its log, or silent too long).
    pub idle: bool,
}

/// Counters for the health view.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AlignStats {
    /// Events applied in aligned order.
    pub released: u64,
    /// Events applied before the other inputs had passed them, because `max_held`
    /// events were waiting.
    pub released_early: u64,
}

struct Entry<T> {
    key: OrderKey,
    /// Arrival order, for equal keys (equal records: either order gives one result).
    seq: u64,
    input: InputId,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.key, self.seq) == (other.key, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.key, self.seq).cmp(&(other.key, other.seq))
    }
}

/// How far events may be released now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Some input may still deliver anything: nothing goes.
    Nothing,
    /// Everything before this key's second, type and milliseconds: the input with this
    /// limit ([`Input::limit`]) may still deliver more events equal to it in those
    /// three (for an input of several event types, anything of its current second).
    Before(OrderKey),
    /// No input holds anything back.
    All,
}

impl Bound {
    fn admits(self, key: &OrderKey) -> bool {
        match self {
            Bound::Nothing => false,
            Bound::Before(b) => (key.sec, key.rank, key.ms) < (b.sec, b.rank, b.ms),
            Bound::All => true,
        }
    }
}

/// The k-way merge over inputs. `T` is what waits (an event and its bytes).
pub struct Aligner<T> {
    cfg: AlignConfig,
    heap: BinaryHeap<Reverse<Entry<T>>>,
    inputs: Vec<Input>,
    index: FxHashMap<Box<str>, InputId>,
    seq: u64,
    stats: AlignStats,
    /// After a restore, nothing goes until the sources report (or until this time):
    /// inputs not yet known may hold the oldest events.
    hold_all_until: Millis,
}

impl<T> Aligner<T> {
    pub fn new(cfg: AlignConfig) -> Self {
        Aligner {
            cfg,
            heap: BinaryHeap::new(),
            inputs: Vec::new(),
            index: FxHashMap::default(),
            seq: 0,
            stats: AlignStats::default(),
            hold_all_until: Millis::MIN,
        }
    }

    pub fn config(&self) -> &AlignConfig {
        &self.cfg
    }

    /// The input named `name` (a Kafka `topic/partition`, `generator`, `ingest`…),
    /// created on first use, not caught up, as if it had just delivered.
    pub fn input(&mut self, name: &str, now: Millis) -> InputId {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.inputs.len();
        self.inputs.push(Input {
            name: name.into(),
            watermark: None,
            held: 0,
            last_arrival: now,
            position: LogPosition::Open,
            kinds: 0,
        });
        self.index.insert(name.into(), id);
        id
    }

    /// An event from `input`, to be applied in its turn.
    pub fn push(&mut self, input: InputId, key: OrderKey, item: T, now: Millis) {
        let i = &mut self.inputs[input];
        i.watermark = Some(i.watermark.map_or(key, |w| w.max(key)));
        i.kinds |= 1 << key.rank.min(7);
        i.held += 1;
        i.last_arrival = now;
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            key,
            seq: self.seq,
            input,
            item,
        }));
    }

    /// An input restored from a checkpoint: its source has not started yet, so it is
    /// behind its log's end and holds the others back until `restore_wait_ms` past
    /// `now` (plus its patience), unless its source reports it first.
    pub fn restored(&mut self, input: InputId, now: Millis) {
        let until = now.saturating_add(self.cfg.restore_wait_ms as Millis);
        let i = &mut self.inputs[input];
        i.position = LogPosition::Behind;
        i.last_arrival = i.last_arrival.max(until);
        // The inputs the checkpoint knew of are not all there may be: a topic read
        // nothing of before the restart holds the oldest events of all.
        self.hold_all_until = self.hold_all_until.max(until);
    }

    /// A source delivered or reported its inputs after a restore: from now on the
    /// inputs known are the ones that count.
    pub fn sources_reported(&mut self) {
        self.hold_all_until = Millis::MIN;
    }

    /// Where `input` stands in its log, as its source knows.
    pub fn set_position(&mut self, input: InputId, position: LogPosition) {
        self.inputs[input].position = position;
    }

    /// How far events may go now.
    pub fn bound(&self, now: Millis) -> Bound {
        if now < self.hold_all_until {
            return Bound::Nothing;
        }
        let mut bound = Bound::All;
        for i in &self.inputs {
            if !i.holds_back(&self.cfg, now) {
                continue;
            }
            match (i.limit(), bound) {
                (None, _) => return Bound::Nothing,
                (Some(w), Bound::Before(b)) if b <= w => {}
                (Some(w), _) => bound = Bound::Before(w),
            }
        }
        bound
    }

    /// Hands every event that may go now to `apply`, in order.
    pub fn release(&mut self, now: Millis, mut apply: impl FnMut(OrderKey, T)) {
        while self.heap.len() > self.cfg.max_held {
            let e = self.pop();
            self.stats.released_early += 1;
            apply(e.key, e.item);
        }
        let bound = self.bound(now);
        while self
            .heap
            .peek()
            .is_some_and(|Reverse(e)| bound.admits(&e.key))
        {
            let e = self.pop();
            self.stats.released += 1;
            apply(e.key, e.item);
        }
    }

    fn pop(&mut self) -> Entry<T> {
        let Reverse(e) = self.heap.pop().expect("peeked");
        self.inputs[e.input].held -= 1;
        e
    }

    /// Events waiting.
    pub fn held(&self) -> usize {
        self.heap.len()
    }

    /// Events waiting per input, by name.
    pub fn held_by_input(&self) -> impl Iterator<Item = (&str, usize)> {
        self.inputs.iter().map(|i| (&*i.name, i.held))
    }

    /// What waits, with the name of its input (for a checkpoint), in no order.
    pub fn waiting(&self) -> impl Iterator<Item = (&str, &T)> {
        self.heap
            .iter()
            .map(|Reverse(e)| (&*self.inputs[e.input].name, &e.item))
    }

    pub fn stats(&self) -> AlignStats {
        self.stats
    }

    /// Every input, for the health view.
    pub fn status(&self, now: Millis) -> Vec<InputStatus> {
        self.inputs
            .iter()
            .map(|i| InputStatus {
                name: i.name.to_string(),
                watermark: i.watermark.map(|w| w.ms),
                held: i.held,
                position: i.position,
                idle: !i.holds_back(&self.cfg, now),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sec: i64, kind: EventKind) -> OrderKey {
        OrderKey {
            sec,
            rank: tie_rank(kind),
            ms: sec * 1000,
            tie: 0,
        }
    }

    fn cfg() -> AlignConfig {
        AlignConfig {
            idle_ms: 100,
            ..AlignConfig::default()
        }
    }

    /// Pushes `(input, second, kind, label)` rows at wall time `now`, then releases.
    fn run(
        a: &mut Aligner<&'static str>,
        rows: &[(&str, i64, EventKind, &'static str)],
        now: Millis,
    ) -> Vec<&'static str> {
        for &(input, sec, kind, label) in rows {
            let id = a.input(input, now);
            a.push(id, key(sec, kind), label, now);
        }
        let mut out = Vec::new();
        a.release(now, |_, l| out.push(l));
        out
    }

    use EventKind::*;

    #[test]
    fn a_backlog_is_applied_in_event_time_order_across_inputs() {
        let mut a = Aligner::new(cfg());
        // The photo topic is far ahead: its events wait for the follow topic.
        let out = run(
            &mut a,
            &[
                ("photo-upload/0", 10, PhotoUpload, "photo@10"),
                ("photo-upload/0", 30, PhotoUpload, "photo@30"),
                ("follow/0", 5, Follow, "follow@5"),
            ],
            0,
        );
        assert!(
            out.is_empty(),
            "the follow topic may bring more of second 5"
        );
        let out = run(&mut a, &[("follow/0", 20, Follow, "follow@20")], 1);
        assert_eq!(out, ["follow@5", "photo@10"]);
        let out = run(&mut a, &[("follow/0", 40, Follow, "follow@40")], 2);
        assert_eq!(out, ["follow@20"]);
        assert_eq!(a.held(), 2);
    }

    #[test]
    fn an_input_of_several_types_holds_its_whole_second_one_of_one_type_only_its_key() {
        // A file (several event types) sends a second's photo, then in its next batch
        // a follow of the same second: the follow still goes first.
        let mut a = Aligner::new(cfg());
        let file = a.input("file", 0);
        a.set_position(file, LogPosition::Behind);
        a.push(file, key(5, Follow), "follow@5a", 0);
        a.push(file, key(5, PhotoUpload), "photo@5", 0);
        let mut out = Vec::new();
        a.release(0, |_, s| out.push(s));
        assert!(out.is_empty(), "more of second 5 may come, of any type");
        a.push(file, key(5, CreateUser), "user@5", 1);
        a.push(file, key(6, Like), "like@6", 1);
        a.release(1, |_, s| out.push(s));
        assert_eq!(out, ["user@5", "follow@5a", "photo@5"]);
        // A partition of one topic keeps its order within a second: what is before its
        // watermark's (second, type, milliseconds) goes.
        let mut a = Aligner::new(cfg());
        let likes = a.input("like/0", 0);
        a.set_position(likes, LogPosition::Behind);
        a.push(likes, key(5, Like), "like@5", 0);
        a.push(likes, key(6, Like), "like@6", 0);
        let mut out = Vec::new();
        a.release(0, |_, s| out.push(s));
        assert_eq!(out, ["like@5"]);
    }

    #[test]
    fn within_one_second_the_tie_order_is_fixed_whatever_the_arrival() {
        let rows = [
            ("unfollow/0", 7, Unfollow, "unfollow"),
            ("comment/0", 7, Comment, "comment"),
            ("like/0", 7, Like, "like"),
            ("photo-upload/0", 7, PhotoUpload, "photo"),
            ("follow/0", 7, Follow, "follow"),
            ("create-user/0", 7, CreateUser, "create-user"),
        ];
        let expected = [
            "create-user",
            "follow",
            "photo",
            "like",
            "comment",
            "unfollow",
        ];
        for rotation in 0..rows.len() {
            let mut rows = rows;
            rows.rotate_left(rotation);
            let mut a = Aligner::new(cfg());
            let mut out = run(&mut a, &rows, 0);
            // Every input is still open: nothing beyond second 7 is known, so all wait
            // until the inputs are caught up.
            for name in [
                "unfollow/0",
                "comment/0",
                "like/0",
                "photo-upload/0",
                "follow/0",
                "create-user/0",
            ] {
                let id = a.input(name, 0);
                a.set_position(id, LogPosition::AtEnd);
            }
            a.release(0, |_, l| out.push(l));
            assert_eq!(out, expected, "arrival rotated by {rotation}");
        }
    }

    #[test]
    fn an_input_that_has_said_nothing_holds_everything_back_until_it_is_idle() {
        let mut a = Aligner::new(cfg());
        a.input("follow/0", 0);
        let out = run(&mut a, &[("photo-upload/0", 10, PhotoUpload, "photo")], 0);
        assert!(out.is_empty());
        assert_eq!(a.bound(50), Bound::Nothing);
        // 100 ms of silence from both: neither holds the photo back.
        let mut out = Vec::new();
        a.release(101, |_, l| out.push(l));
        assert_eq!(out, ["photo"]);
    }

    #[test]
    fn an_idle_input_stops_holding_the_others_back_and_holds_again_when_it_speaks() {
        let mut a = Aligner::new(cfg());
        assert!(run(&mut a, &[("unfollow/0", 1, Unfollow, "unfollow@1")], 0).is_empty());
        assert!(run(&mut a, &[("follow/0", 5, Follow, "follow@5")], 0).is_empty());
        assert!(run(&mut a, &[("follow/0", 9, Follow, "follow@9")], 60).is_empty());
        assert_eq!(a.bound(60), Bound::Before(key(1, Unfollow)));
        // The unfollow topic has been quiet for longer than idle_ms: the follows go
        // as far as their own topic allows.
        let mut out = Vec::new();
        a.release(150, |_, l| out.push(l));
        assert_eq!(out, ["unfollow@1", "follow@5"]);
        // It speaks again: it bounds the others again.
        assert!(run(&mut a, &[("unfollow/0", 6, Unfollow, "unfollow@6")], 200).is_empty());
        assert!(run(&mut a, &[("follow/0", 12, Follow, "follow@12")], 210).is_empty());
        let mut out = Vec::new();
        a.release(305, |_, l| out.push(l));
        assert_eq!(out, ["unfollow@6", "follow@9"]);
        let status = a.status(305);
        assert_eq!(status[1].held, 1);
        assert_eq!(status[1].watermark, Some(12_000));
        assert!(status[0].idle && !status[1].idle);
    }

    #[test]
    fn an_input_behind_its_log_end_is_waited_for_longer_than_an_open_one() {
        let mut a = Aligner::new(AlignConfig {
            idle_ms: 100,
            behind_idle_ms: 1_000,
            ..AlignConfig::default()
        });
        let follows = a.input("follow/0", 0);
        a.set_position(follows, LogPosition::Behind);
        let photos = a.input("photo-upload/0", 0);
        a.set_position(photos, LogPosition::AtEnd);
        let out = run(&mut a, &[("photo-upload/0", 10, PhotoUpload, "photo")], 0);
        assert!(out.is_empty());
        let mut out = Vec::new();
        a.release(500, |_, l| out.push(l));
        assert!(out.is_empty(), "a backlog's follows are still coming");
        a.set_position(follows, LogPosition::Open);
        a.release(500, |_, l| out.push(l));
        assert_eq!(out, ["photo"], "an open input silent for 500 ms is idle");
    }

    #[test]
    fn events_restored_from_a_checkpoint_wait_for_their_source_to_come_back() {
        let mut a = Aligner::new(AlignConfig {
            restore_wait_ms: 5_000,
            ..cfg()
        });
        let photos = a.input("photo-upload/0", 0);
        a.push(photos, key(10, PhotoUpload), "photo", 0);
        a.restored(photos, 0);
        let comments = a.input("comment/0", 0);
        a.push(comments, key(30, Comment), "comment", 0);
        a.restored(comments, 0);
        let mut out = Vec::new();
        a.release(4_000, |_, l| out.push(l));
        assert!(
            out.is_empty(),
            "the consumer has not rejoined its group: an unknown topic may be older"
        );
        // It rejoins: the follow topic is behind, and reads up to second 20.
        a.sources_reported();
        let follows = a.input("follow/0", 4_100);
        a.set_position(follows, LogPosition::Behind);
        a.push(follows, key(20, Follow), "follow", 4_100);
        a.set_position(photos, LogPosition::AtEnd);
        a.release(4_100, |_, l| out.push(l));
        assert_eq!(out, ["photo"]);
    }

    #[test]
    fn caught_up_inputs_hold_nobody_back_so_live_events_go_at_once() {
        let mut a = Aligner::new(cfg());
        for name in ["follow/0", "like/0", "photo-upload/0"] {
            let id = a.input(name, 0);
            a.set_position(id, LogPosition::AtEnd);
        }
        let out = run(&mut a, &[("photo-upload/0", 3, PhotoUpload, "photo")], 0);
        assert_eq!(out, ["photo"]);
    }

    #[test]
    fn past_max_held_the_oldest_goes_early_and_is_counted() {
        let mut a = Aligner::new(AlignConfig {
            max_held: 2,
            ..cfg()
        });
        a.input("follow/0", 0);
        let photos = a.input("photo-upload/0", 0);
        a.set_position(photos, LogPosition::AtEnd);
        let out = run(
            &mut a,
            &[
                ("photo-upload/0", 3, PhotoUpload, "a"),
                ("photo-upload/0", 1, PhotoUpload, "b"),
                ("photo-upload/0", 2, PhotoUpload, "c"),
                ("photo-upload/0", 4, PhotoUpload, "d"),
            ],
            0,
        );
        assert_eq!(out, ["b", "c"]);
        assert_eq!(a.stats().released_early, 2);
        assert_eq!(a.held(), 2);
    }

    #[test]
    fn the_order_key_follows_time_then_the_tie_order_then_the_bytes() {
        let ev = |json: &str| {
            instabrand_shared::decode(json.as_bytes(), None, &Default::default())
                .unwrap()
                .into_owned()
        };
        let photo = r#"{"username":"a","tags":"X","photo_link":"l","created_time":"2017-06-20 05:30:22","latitude":"1","longitude":"2","event":"photo-upload"}"#;
        let follow = r#"{"followed_username":"a","follower_username":"b","created_time":"2017-06-20 05:30:22","event":"follow"}"#;
        let later = r#"{"followed_username":"a","follower_username":"b","created_time":"2017-06-20 05:30:23","event":"unfollow"}"#;
        let k = |j: &str| OrderKey::of(&ev(j), j.as_bytes());
        assert!(
            k(follow) < k(photo),
            "a follow in the same second goes first"
        );
        assert!(k(photo) < k(later));
        assert_eq!(k(photo), k(photo));
    }
}
