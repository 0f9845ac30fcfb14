//! Event-time order (docs/semantics.md, "Order"): the same events give the same numbers
//! whatever order the six topics and their partitions deliver them in. Each stream is
//! split as Kafka would hold it (a topic per event type, partitions by username) and
//! delivered in several arrival orders: live (interleaved in time), a backlog read one
//! topic after another with follows last, and random chunks. Every run goes through the
//! aligner the pipeline uses and must end in the state of the run that applies the
//! events sorted by event time.

use instabrand_generator::{Config as GenConfig, Generator, write_original_json};
use instabrand_server::align::{AlignConfig, Aligner, LogPosition, OrderKey};
use instabrand_server::processor::{Delta, Processor, ProcessorConfig};
use instabrand_shared::api::Window;
use instabrand_shared::{DecodeLimits, Event, EventKind, Reason, decode};

/// One record as a topic partition holds it.
#[derive(Clone)]
struct Rec {
    input: String,
    bytes: Vec<u8>,
}

fn ev(bytes: &[u8]) -> Event<'_> {
    decode(bytes, None, &DecodeLimits::default()).expect("test streams decode")
}

/// Splits a stream (in producer order) into `topic/partition` inputs keyed by username.
fn partitioned(lines: &[Vec<u8>], partitions: u64) -> Vec<Vec<Rec>> {
    let mut names: Vec<String> = Vec::new();
    let mut inputs: Vec<Vec<Rec>> = Vec::new();
    for line in lines {
        let e = ev(line);
        let p = instabrand_server::processor::stable_hash(e.key()) % partitions;
        let name = format!("{}/{p}", e.kind());
        let i = match names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                names.push(name.clone());
                inputs.push(Vec::new());
                names.len() - 1
            }
        };
        inputs[i].push(Rec {
            input: name,
            bytes: line.clone(),
        });
    }
    inputs
}

/// What a run ended with: everything a dashboard or `/brand-metrics` shows.
#[derive(Debug, PartialEq)]
struct Outcome {
    leaderboards: Vec<String>,
    original: String,
    influencers: String,
    timelines: Vec<String>,
    applied_by_kind: [u64; 6],
    dead: Vec<(Reason, String)>,
}

fn outcome(p: &Processor, dead: &[(Reason, String)], sample_users: &[&str]) -> Outcome {
    let json = |v: &dyn erased::Ser| v.json();
    let mut dead = dead.to_vec();
    dead.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Outcome {
        leaderboards: [Window::All, Window::H24, Window::H1]
            .iter()
            .map(|w| json(&p.leaderboard(*w)))
            .collect(),
        original: json(&p.original_brand_metrics(Window::All)),
        influencers: json(&p.influencers(Window::All, 20)),
        timelines: sample_users
            .iter()
            .filter_map(|u| p.user_id(u))
            .map(|u| json(&p.home_timeline(u, None, 50)))
            .collect(),
        applied_by_kind: p.stats.applied_by_kind,
        dead,
    }
}

mod erased {
    pub trait Ser {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap()
        }
    }
}

fn apply(p: &mut Processor, bytes: &[u8], dead: &mut Vec<(Reason, String)>) {
    for d in p.apply(&ev(bytes), bytes) {
        if let Delta::DeadLetter { reason, raw, .. } = d {
            dead.push((reason, String::from_utf8_lossy(&raw).into_owned()));
        }
    }
}

/// The reference: every event applied in event-time order.
fn sorted_run(inputs: &[Vec<Rec>], users: &[&str]) -> Outcome {
    let mut all: Vec<&Rec> = inputs.iter().flatten().collect();
    all.sort_by_key(|r| OrderKey::of(&ev(&r.bytes), &r.bytes));
    let mut p = Processor::new(ProcessorConfig::default());
    let mut dead = Vec::new();
    for r in all {
        apply(&mut p, &r.bytes, &mut dead);
    }
    outcome(&p, &dead, users)
}

/// Delivers `chunks` (input index, records) in the given order through the aligner, one
/// millisecond of wall time per chunk; an input is behind its log's end until its last
/// record is delivered.
fn aligned_run(inputs: &[Vec<Rec>], chunks: &[(usize, usize)], users: &[&str]) -> Outcome {
    let mut a: Aligner<Vec<u8>> = Aligner::new(AlignConfig::default());
    let mut p = Processor::new(ProcessorConfig::default());
    let mut dead = Vec::new();
    let mut next = vec![0usize; inputs.len()];
    let ids: Vec<_> = inputs
        .iter()
        .map(|i| {
            let id = a.input(&i[0].input, 0);
            a.set_position(id, LogPosition::Behind);
            id
        })
        .collect();
    for (now, &(i, n)) in chunks.iter().enumerate() {
        let now = now as i64;
        let end = (next[i] + n).min(inputs[i].len());
        for r in &inputs[i][next[i]..end] {
            a.push(
                ids[i],
                OrderKey::of(&ev(&r.bytes), &r.bytes),
                r.bytes.clone(),
                now,
            );
        }
        next[i] = end;
        if end == inputs[i].len() {
            a.set_position(ids[i], LogPosition::AtEnd);
        }
        a.release(now, |_, b| apply(&mut p, &b, &mut dead));
    }
    assert_eq!(
        next,
        inputs.iter().map(Vec::len).collect::<Vec<_>>(),
        "all delivered"
    );
    assert_eq!(a.held(), 0, "nothing left waiting");
    assert_eq!(a.stats().released_early, 0);
    outcome(&p, &dead, users)
}

/// Live: inputs delivered interleaved in small chunks in producer order.
fn live(inputs: &[Vec<Rec>], chunk: usize) -> Vec<(usize, usize)> {
    let most = inputs.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for _ in 0..most.div_ceil(chunk) {
        for i in 0..inputs.len() {
            out.push((i, chunk));
        }
    }
    out
}

/// A backlog: whole topics one after another in `order` (by the event type in the
/// input's name), each in chunks of `chunk`.
fn backlog(inputs: &[Vec<Rec>], order: &[EventKind], chunk: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for kind in order {
        for (i, input) in inputs.iter().enumerate() {
            if input[0].input.starts_with(&format!("{kind}/")) {
                for _ in 0..input.len().div_ceil(chunk) {
                    out.push((i, chunk));
                }
            }
        }
    }
    out
}

/// Random chunk sizes from random inputs (a small deterministic LCG).
fn random(inputs: &[Vec<Rec>], seed: u64) -> Vec<(usize, usize)> {
    let mut x = seed;
    let mut rnd = move |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let mut left: Vec<usize> = inputs.iter().map(Vec::len).collect();
    let mut out = Vec::new();
    while left.iter().any(|&n| n > 0) {
        let i = rnd(inputs.len() as u64) as usize;
        if left[i] == 0 {
            continue;
        }
        let n = (1 + rnd(2000) as usize).min(left[i]);
        left[i] -= n;
        out.push((i, n));
    }
    out
}

/// The photo, like and comment topics are read before the follows (the backlog of
/// issue 11, where reach was destroyed).
const FOLLOWS_LAST: [EventKind; 6] = [
    EventKind::PhotoUpload,
    EventKind::Like,
    EventKind::Comment,
    EventKind::CreateUser,
    EventKind::Unfollow,
    EventKind::Follow,
];

fn generated(events: u64, users: u32, seed: u64) -> Vec<Vec<u8>> {
    let mut g = Generator::new(GenConfig {
        seed,
        users,
        mean_follows: 15.0,
        rate: 300.0,
        ..GenConfig::default()
    });
    (0..events)
        .map(|_| {
            let mut buf = Vec::new();
            write_original_json(&g.next_event(), &mut buf);
            buf
        })
        .collect()
}

/// A stream shaped unlike the generator's: the accounts most followed are also the
/// ones that post and are engaged with the most (Zipf-like), follows keep arriving
/// between the photos, and unfollows undo some of them.
fn popular_posting(users: usize, events: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut x = seed;
    let mut rnd = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    // Popularity rank r gets weight 1/r: draw by inverting the harmonic sum roughly.
    let popular = |u: f64| ((users as f64).powf(u) - 1.0) as usize % users;
    let brands = ["Apple, Inc.", "Nike", "Lego", "Tesla", "Oreo"];
    let t0 = instabrand_shared::time::parse_time("2017-06-12 10:00:00").unwrap();
    let mut out = Vec::new();
    let mut photos: Vec<(usize, String)> = Vec::new();
    let mut follows: Vec<(usize, usize)> = Vec::new();
    let name = |u: usize| format!("user{u}");
    for u in 0..users {
        let t = instabrand_shared::time::format_naive(t0);
        out.push(format!(r#"{{"username": "{}", "full_name": "User {u}", "created_time": "{t}", "event": "create-user"}}"#, name(u)).into_bytes());
    }
    for i in 0..events {
        let t = instabrand_shared::time::format_naive(t0 + 1000 + (i as i64) * 700);
        let r = rnd();
        let line = if r < 0.45 {
            let (a, b) = ((rnd() * users as f64) as usize, popular(rnd()));
            if a == b {
                continue;
            }
            follows.push((a, b));
            format!(
                r#"{{"followed_username": "{}", "follower_username": "{}", "created_time": "{t}", "event": "follow"}}"#,
                name(b),
                name(a)
            )
        } else if r < 0.5 && !follows.is_empty() {
            let (a, b) = follows[(rnd() * follows.len() as f64) as usize];
            format!(
                r#"{{"followed_username": "{}", "follower_username": "{}", "created_time": "{t}", "event": "unfollow"}}"#,
                name(b),
                name(a)
            )
        } else if r < 0.65 || photos.is_empty() {
            let u = popular(rnd());
            photos.push((u, t.clone()));
            let b = brands[(rnd() * brands.len() as f64) as usize];
            format!(
                r#"{{"username": "{}", "tags": "{b}", "photo_link": "https://x.example/{u}.jpg", "created_time": "{t}", "latitude": "46.2", "longitude": "26.6", "event": "photo-upload"}}"#,
                name(u)
            )
        } else {
            // Engagement favours recent photos of popular accounts.
            let k = photos.len() - 1 - ((rnd() * rnd() * photos.len() as f64) as usize);
            let (owner, pt) = &photos[k];
            let a = (rnd() * users as f64) as usize;
            if rnd() < 0.7 {
                format!(
                    r#"{{"followed_username": "{}", "follower_username": "{}", "photo_id": "{pt}", "created_time": "{t}", "event": "like"}}"#,
                    name(*owner),
                    name(a)
                )
            } else {
                format!(
                    r#"{{"followed_username": "{}", "follower_username": "{}", "photo_id": "{pt}", "text": "nice {i}", "created_time": "{t}", "event": "comment"}}"#,
                    name(*owner),
                    name(a)
                )
            }
        };
        out.push(line.into_bytes());
    }
    out
}

fn check_every_arrival_order(lines: &[Vec<u8>], users: &[&str]) {
    for partitions in [1, 3] {
        let inputs = partitioned(lines, partitions);
        let expected = sorted_run(&inputs, users);
        let orders = [
            ("live", live(&inputs, 7)),
            (
                "backlog, follows last",
                backlog(&inputs, &FOLLOWS_LAST, 500),
            ),
            ("random chunks", random(&inputs, partitions)),
        ];
        for (name, chunks) in orders {
            let got = aligned_run(&inputs, &chunks, users);
            assert!(
                got == expected,
                "{name} with {partitions} partition(s) differs from event-time order:\n\
                 leaderboard all: {}\nexpected:        {}",
                &got.leaderboards[0][..400.min(got.leaderboards[0].len())],
                &expected.leaderboards[0][..400.min(expected.leaderboards[0].len())],
            );
        }
    }
}

#[test]
fn a_generated_stream_gives_the_same_numbers_in_every_arrival_order() {
    let lines = generated(40_000, 1_500, 11);
    check_every_arrival_order(&lines, &["user1", "user2", "user10", "user100", "user700"]);
}

#[test]
fn a_stream_where_popular_accounts_post_most_gives_the_same_numbers_in_every_arrival_order() {
    let lines = popular_posting(1_000, 30_000, 5);
    check_every_arrival_order(&lines, &["user0", "user1", "user5", "user300", "user999"]);
}

#[test]
fn arrival_order_without_alignment_would_change_reach() {
    // The check above can fail: applying the follows-last backlog in arrival order
    // (what the server did before) gives other numbers.
    let lines = popular_posting(500, 5_000, 9);
    let inputs = partitioned(&lines, 1);
    let expected = sorted_run(&inputs, &[]);
    let mut p = Processor::new(ProcessorConfig::default());
    let mut dead = Vec::new();
    for kind in FOLLOWS_LAST {
        for input in inputs
            .iter()
            .filter(|i| i[0].input.starts_with(&format!("{kind}/")))
        {
            for r in input {
                apply(&mut p, &r.bytes, &mut dead);
            }
        }
    }
    let got = outcome(&p, &[], &[]);
    assert_ne!(got.leaderboards[0], expected.leaderboards[0]);
}

/// The six example payloads of the original contract (docs/events.md).
const SEED: [&str; 6] = [
    r#"{"username": "billyjoel219", "full_name": "Billy Joel", "created_time": "2017-06-12 19:42:07", "event": "create-user"}"#,
    r#"{"username": "billyjoel219", "tags": "Apple, Inc.", "photo_link": "2017-06-12 19:42:07", "created_time": "2017-06-20 05:30:22", "latitude": "46.265", "longitude": "26.623", "event": "photo-upload"}"#,
    r#"{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "created_time": "2017-06-12 19:42:07", "event": "follow"}"#,
    r#"{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "photo_id": "2017-06-12 19:42:07", "created_time": "2017-06-22 12:49:09", "event": "like"}"#,
    r#"{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "photo_id": "2017-06-12 19:42:07", "text": "E pluribus unum", "created_time": "2017-06-22 12:49:09", "event": "comment"}"#,
    r#"{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "created_time": "2017-06-22 19:42:07", "event": "unfollow"}"#,
];

#[test]
fn the_six_seed_payloads_in_any_topic_order_give_apple_one_photo_and_a_reach_of_one() {
    let lines: Vec<Vec<u8>> = SEED.iter().map(|s| s.as_bytes().to_vec()).collect();
    let inputs = partitioned(&lines, 1);
    // Every order in which six topics can be read, one record each.
    let mut orders: Vec<Vec<usize>> = vec![vec![]];
    for _ in 0..inputs.len() {
        orders = orders
            .into_iter()
            .flat_map(|o| {
                (0..inputs.len())
                    .filter(|i| !o.contains(i))
                    .map(|i| {
                        let mut next = o.clone();
                        next.push(i);
                        next
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    assert_eq!(orders.len(), 720);
    for order in orders {
        let chunks: Vec<(usize, usize)> = order.iter().map(|&i| (i, 1)).collect();
        let got = aligned_run(&inputs, &chunks, &["neildiamond54"]);
        let lb: instabrand_shared::api::Leaderboard =
            serde_json::from_str(&got.leaderboards[0]).unwrap();
        let apple = lb.rows.iter().find(|r| r.brand == "Apple, Inc.").unwrap();
        assert_eq!((apple.photos, apple.reach), (1, 1), "topic order {order:?}");
        // The like and the comment point at a photo that was never uploaded.
        let reasons: Vec<Reason> = got.dead.iter().map(|d| d.0).collect();
        assert_eq!(
            reasons,
            [Reason::OrphanEngagement; 2],
            "topic order {order:?}"
        );
    }
}
