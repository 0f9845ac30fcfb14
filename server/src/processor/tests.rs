//! One test per rule of docs/semantics.md, each driven by a small table of events
//! written in the original JSON shape.

use instabrand_shared::api::Window;
use instabrand_shared::time::parse_time;
use instabrand_shared::{DecodeLimits, Millis, Reason, decode};

use super::*;

/// `"2017-06-12 10:MM:SS"` as event time; `at(m, s)`.
pub(super) fn at(min: i64, sec: i64) -> String {
    instabrand_shared::time::format_naive(base() + min * MS_PER_MIN + sec * MS_PER_SEC)
}

pub(super) fn base() -> Millis {
    parse_time("2017-06-12 10:00:00").unwrap()
}

pub(super) fn user(name: &str, t: &str) -> String {
    format!(
        r#"{{"username":"{name}","full_name":"{name} Full","created_time":"{t}","event":"create-user"}}"#
    )
}

pub(super) fn photo(owner: &str, brand: &str, t: &str) -> String {
    format!(
        r#"{{"username":"{owner}","tags":"{brand}","photo_link":"https://x.example/{owner}.jpg","created_time":"{t}","latitude":"46.265","longitude":"26.623","event":"photo-upload"}}"#
    )
}

pub(super) fn follow(follower: &str, followed: &str, t: &str) -> String {
    format!(
        r#"{{"followed_username":"{followed}","follower_username":"{follower}","created_time":"{t}","event":"follow"}}"#
    )
}

pub(super) fn unfollow(follower: &str, followed: &str, t: &str) -> String {
    format!(
        r#"{{"followed_username":"{followed}","follower_username":"{follower}","created_time":"{t}","event":"unfollow"}}"#
    )
}

pub(super) fn like(actor: &str, owner: &str, photo_t: &str, t: &str) -> String {
    format!(
        r#"{{"followed_username":"{owner}","follower_username":"{actor}","photo_id":"{photo_t}","created_time":"{t}","event":"like"}}"#
    )
}

pub(super) fn comment(actor: &str, owner: &str, photo_t: &str, text: &str, t: &str) -> String {
    format!(
        r#"{{"followed_username":"{owner}","follower_username":"{actor}","photo_id":"{photo_t}","text":"{text}","created_time":"{t}","event":"comment"}}"#
    )
}

pub(super) struct Sim {
    pub(super) p: Processor,
    pub(super) dead: Vec<(Reason, Vec<u8>)>,
    pub(super) alerts: Vec<u64>,
}

impl Sim {
    pub(super) fn new() -> Self {
        Self::with(ProcessorConfig::default())
    }

    pub(super) fn with(cfg: ProcessorConfig) -> Self {
        Sim {
            p: Processor::new(cfg),
            dead: Vec::new(),
            alerts: Vec::new(),
        }
    }

    pub(super) fn feed<S: AsRef<str>>(&mut self, lines: &[S]) -> &mut Self {
        for l in lines {
            let raw = l.as_ref().as_bytes();
            let ev = decode(raw, None, &DecodeLimits::default())
                .unwrap_or_else(|e| panic!("{}: {e}", l.as_ref()));
            for d in self.p.apply(&ev, raw) {
                match d {
                    Delta::DeadLetter { reason, raw, .. } => self.dead.push((reason, raw.into())),
                    Delta::Alert(id) => self.alerts.push(id),
                    _ => {}
                }
            }
        }
        self
    }

    pub(super) fn uid(&self, name: &str) -> UserId {
        self.p
            .user_id(name)
            .unwrap_or_else(|| panic!("no user {name}"))
    }

    pub(super) fn timeline(&self, name: &str) -> Vec<(String, Millis)> {
        let page = self.p.home_timeline(self.uid(name), None, 1000);
        page.items
            .into_iter()
            .map(|p| (p.owner, p.created_ms))
            .collect()
    }

    pub(super) fn row(&self, brand: &str, w: Window) -> instabrand_shared::api::BrandMetrics {
        self.p
            .brand_metrics(self.p.brand_id(brand).unwrap(), w, false)
    }
}

#[test]
fn follow_and_unfollow_are_idempotent_set_operations() {
    let mut s = Sim::new();
    s.feed(&[
        follow("b", "a", &at(0, 1)),
        follow("b", "a", &at(0, 2)),
        follow("c", "a", &at(0, 3)),
    ]);
    assert_eq!(s.p.profile(s.uid("a")).followers, 2);
    assert_eq!(s.p.stats.duplicates, 1);
    s.feed(&[unfollow("b", "a", &at(0, 4)), unfollow("b", "a", &at(0, 5))]);
    assert_eq!(s.p.profile(s.uid("a")).followers, 1);
    assert_eq!(s.p.profile(s.uid("b")).following, 0);
    assert_eq!(s.p.stats.duplicates, 2);
}

#[test]
fn an_unfollow_read_before_its_follow_cancels_it() {
    // Follows and unfollows come on separate topics: a consumer can read the unfollow
    // of 0:05 before the follow of 0:01 it undoes.
    let mut s = Sim::new();
    s.feed(&[
        unfollow("b", "a", &at(0, 5)),
        follow("b", "a", &at(0, 1)),
        follow("c", "a", &at(0, 2)),
    ]);
    assert_eq!(s.p.profile(s.uid("a")).followers, 1);
    assert_eq!(s.p.profile(s.uid("b")).following, 0);
    // The early unfollow is counted as applied; the stale follow as superseded, not
    // as a duplicate (it was never applied before).
    assert_eq!(s.p.stats.applied_by_kind[EventKind::Unfollow as usize], 1);
    assert_eq!(s.p.stats.superseded, 1);
    assert_eq!(s.p.stats.duplicates, 0);
}

#[test]
fn a_refollow_read_before_the_unfollow_it_follows_stands() {
    let mut s = Sim::new();
    s.feed(&[
        follow("b", "a", &at(0, 1)),
        follow("b", "a", &at(0, 9)),
        unfollow("b", "a", &at(0, 5)),
    ]);
    assert_eq!(s.p.profile(s.uid("a")).followers, 1);
    assert_eq!(s.p.profile(s.uid("b")).following, 1);
}

#[test]
fn on_an_edge_the_newest_event_wins_in_any_order_and_unfollow_wins_a_tie() {
    let events = [
        follow("b", "a", &at(0, 1)),
        unfollow("b", "a", &at(0, 3)),
        follow("b", "a", &at(0, 3)),
        follow("c", "a", &at(0, 2)),
        unfollow("c", "a", &at(0, 4)),
        follow("c", "a", &at(0, 6)),
    ];
    // Every order of the six: b ends unfollowed (tie at 0:03), c following.
    let mut order: Vec<usize> = (0..events.len()).collect();
    let mut orders = 0;
    loop {
        let mut s = Sim::new();
        s.feed(&order.iter().map(|&i| events[i].clone()).collect::<Vec<_>>());
        assert_eq!(s.p.profile(s.uid("b")).following, 0, "order {order:?}");
        assert_eq!(s.p.profile(s.uid("c")).following, 1, "order {order:?}");
        assert_eq!(s.p.profile(s.uid("a")).followers, 1, "order {order:?}");
        orders += 1;
        if !next_permutation(&mut order) {
            break;
        }
    }
    assert_eq!(orders, 720);
}

/// Steps `v` to its next lexicographic permutation; false after the last.
fn next_permutation(v: &mut [usize]) -> bool {
    let Some(i) = (1..v.len()).rev().find(|&i| v[i - 1] < v[i]) else {
        return false;
    };
    let j = (i..v.len())
        .rev()
        .find(|&j| v[j] > v[i - 1])
        .expect("exists");
    v.swap(i - 1, j);
    v[i..].reverse();
    true
}

#[test]
fn edges_are_remembered_for_the_hold_and_at_most_recent_edges_max() {
    // Past the hold (10 min of event time), an old follow read late applies again.
    let mut s = Sim::new();
    s.feed(&[
        unfollow("b", "a", &at(0, 5)),
        user("z", &at(20, 0)),
        user("y", &at(20, 1)),
        follow("b", "a", &at(0, 1)),
    ]);
    assert_eq!(s.p.profile(s.uid("b")).following, 1);
    // Beyond the cap the oldest edge is forgotten first.
    let cfg = ProcessorConfig {
        recent_unfollows_max: 1,
        ..ProcessorConfig::default()
    };
    let mut s = Sim::with(cfg);
    s.feed(&[
        unfollow("b", "a", &at(0, 5)),
        unfollow("c", "a", &at(0, 6)),
        follow("c", "a", &at(0, 2)),
        follow("b", "a", &at(0, 1)),
    ]);
    assert_eq!(s.p.profile(s.uid("b")).following, 1);
    assert_eq!(s.p.profile(s.uid("c")).following, 0);
}

#[test]
fn users_named_without_create_user_are_accepted_and_counted() {
    let mut s = Sim::new();
    s.feed(&[user("a", &at(0, 0)), follow("ghost", "a", &at(0, 1))]);
    assert_eq!(s.p.user_count(), 2);
    assert_eq!(s.p.stats.implicit_users, 1);
    assert!(!s.p.profile(s.uid("ghost")).registered);
    assert!(s.p.profile(s.uid("a")).registered);
    // A later create-user registers the implicit user.
    s.feed(&[user("ghost", &at(0, 2))]);
    assert_eq!(s.p.implicit_user_count(), 0);
    assert_eq!(
        s.p.profile(s.uid("ghost")).full_name.as_deref(),
        Some("ghost Full")
    );
}

#[test]
fn a_repeated_like_counts_once() {
    let mut s = Sim::new();
    let pt = at(0, 0);
    s.feed(&[
        photo("a", "Nike", &pt),
        like("b", "a", &pt, &at(0, 5)),
        like("b", "a", &pt, &at(0, 6)),
        like("c", "a", &pt, &at(0, 7)),
    ]);
    let photo = s.p.photo_id(s.uid("a"), base()).unwrap();
    assert_eq!(s.p.photo(photo).likes, 2);
    assert_eq!(s.row("Nike", Window::All).likes, 2);
    assert_eq!(s.p.profile(s.uid("a")).likes_received, 2);
}

#[test]
fn every_comment_counts_and_its_text_is_kept_verbatim() {
    let mut s = Sim::new();
    let pt = at(0, 0);
    s.feed(&[
        photo("a", "Nike", &pt),
        comment("b", "a", &pt, "nice", &at(0, 1)),
        comment("b", "a", &pt, "nice", &at(0, 1)),
        comment("c", "a", &pt, "<script>alert(1)</script>", &at(0, 2)),
    ]);
    let v = s.p.photo_view(s.p.photo_id(s.uid("a"), base()).unwrap());
    assert_eq!(v.comments, 3);
    assert_eq!(
        v.recent_comments.last().unwrap().text,
        "<script>alert(1)</script>"
    );
    assert_eq!(s.row("Nike", Window::All).comments, 3);
}

#[test]
fn an_engagement_before_its_photo_is_held_then_applied_when_the_photo_arrives() {
    let mut s = Sim::new();
    let pt = at(0, 0);
    s.feed(&[
        like("b", "a", &pt, &at(0, 5)),
        comment("c", "a", &pt, "first!", &at(0, 6)),
    ]);
    assert_eq!(s.p.pending_count(), 2);
    assert!(s.dead.is_empty());
    s.feed(&[photo("a", "Nike", &pt)]);
    assert_eq!(s.p.pending_count(), 0);
    let v = s.p.photo_view(s.p.photo_id(s.uid("a"), base()).unwrap());
    assert_eq!((v.likes, v.comments), (1, 1));
    assert_eq!(s.row("Nike", Window::All).likes, 1);
}

#[test]
fn an_engagement_whose_photo_never_arrives_is_dead_lettered_after_the_hold() {
    let mut s = Sim::with(ProcessorConfig {
        pending_hold_secs: 60,
        ..ProcessorConfig::default()
    });
    let orphan = like("b", "a", &at(0, 0), &at(0, 1));
    s.feed(std::slice::from_ref(&orphan));
    s.feed(&[user("x", &at(0, 50))]);
    assert!(s.dead.is_empty(), "still within the hold");
    s.feed(&[user("y", &at(2, 0))]);
    assert_eq!(
        s.dead,
        vec![(Reason::OrphanEngagement, orphan.into_bytes())]
    );
    assert_eq!(s.p.pending_count(), 0);
    assert_eq!(s.p.stats.dead_letters[&Reason::OrphanEngagement], 1);
}

#[test]
fn the_holding_area_is_bounded_and_overflow_is_dead_lettered() {
    let mut s = Sim::with(ProcessorConfig {
        pending_max: 2,
        ..ProcessorConfig::default()
    });
    s.feed(&[
        like("b", "a", &at(0, 0), &at(0, 1)),
        like("c", "a", &at(0, 0), &at(0, 2)),
        like("d", "a", &at(0, 0), &at(0, 3)),
    ]);
    assert_eq!(s.p.pending_count(), 2);
    assert_eq!(s.dead.len(), 1);
    assert_eq!(s.dead[0].0, Reason::PendingOverflow);
    assert!(String::from_utf8_lossy(&s.dead[0].1).contains(r#""follower_username":"b""#));
}

#[test]
fn the_profile_feed_holds_own_photos_newest_first() {
    let mut s = Sim::new();
    s.feed(&[
        photo("a", "Nike", &at(0, 1)),
        photo("a", "Adidas", &at(0, 3)),
        photo("a", "Nike", &at(0, 2)),
        photo("b", "Nike", &at(0, 4)),
    ]);
    let page = s.p.profile_feed(s.uid("a"), None, 10);
    let times: Vec<_> = page.items.iter().map(|p| p.created_ms).collect();
    assert_eq!(times, [base() + 3000, base() + 2000, base() + 1000]);
}

#[test]
fn the_home_timeline_has_own_and_followed_photos_newest_first_with_live_counts() {
    let mut s = Sim::new();
    s.feed(&[
        follow("reader", "a", &at(0, 0)),
        follow("reader", "b", &at(0, 0)),
        photo("a", "Nike", &at(0, 1)),
        photo("stranger", "Nike", &at(0, 2)),
        photo("b", "Nike", &at(0, 3)),
        photo("reader", "Nike", &at(0, 4)),
        like("x", "a", &at(0, 1), &at(0, 5)),
    ]);
    let tl = s.timeline("reader");
    let owners: Vec<_> = tl.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(owners, ["reader", "b", "a"]);
    let page = s.p.home_timeline(s.uid("reader"), None, 10);
    assert_eq!(page.items[2].likes, 1);
}

#[test]
fn timelines_are_capped_and_page_with_a_cursor() {
    let mut s = Sim::with(ProcessorConfig {
        timeline_cap: 5,
        ..ProcessorConfig::default()
    });
    s.feed(&[follow("reader", "a", &at(0, 0))]);
    s.p.note_reader(s.uid("reader"));
    let events: Vec<_> = (0..8).map(|i| photo("a", "Nike", &at(1, i))).collect();
    s.feed(&events);
    let materialized = s.p.materialized_timeline(s.uid("reader"));
    assert_eq!(materialized.map(Timeline::len), Some(5));
    let first = s.p.home_timeline(s.uid("reader"), None, 3);
    assert_eq!(first.items.len(), 3);
    let cursor = feeds::parse_cursor(first.next.as_deref().unwrap());
    let second = s.p.home_timeline(s.uid("reader"), cursor, 3);
    let times: Vec<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|p| p.created_ms)
        .collect();
    let expected: Vec<_> = (3..8)
        .rev()
        .map(|i| base() + MS_PER_MIN + i * MS_PER_SEC)
        .collect();
    assert_eq!(times, expected);
    assert_eq!(second.next, None);
}

#[test]
fn celebrities_are_not_fanned_out_but_merged_when_read() {
    let mut s = Sim::with(ProcessorConfig {
        celebrity_threshold: 2,
        ..ProcessorConfig::default()
    });
    s.feed(&[
        follow("f1", "star", &at(0, 0)),
        follow("f2", "star", &at(0, 0)),
        follow("f3", "star", &at(0, 0)),
    ]);
    s.p.note_reader(s.uid("f1"));
    s.feed(&[photo("star", "Nike", &at(0, 1))]);
    assert!(s.p.is_celebrity(s.uid("star")));
    let materialized = s.p.materialized_timeline(s.uid("f1"));
    assert!(materialized.is_some_and(Timeline::is_empty), "no fan-out");
    assert_eq!(s.timeline("f1"), vec![("star".to_string(), base() + 1000)]);
}

/// A home timeline is the newest photos of everyone followed now, so a follow brings
/// all of the followee's that fit under the cap (`backfill` no longer limits it: a
/// timeline built on read could not know which photos came before the follow).
#[test]
fn follow_backfills_recent_photos_and_unfollow_removes_them() {
    let mut s = Sim::with(ProcessorConfig {
        timeline_cap: 3,
        ..ProcessorConfig::default()
    });
    s.feed(&[photo("reader", "Nike", &at(0, 0))]);
    s.p.note_reader(s.uid("reader"));
    s.feed(&[
        photo("a", "Nike", &at(0, 1)),
        photo("a", "Nike", &at(0, 2)),
        photo("a", "Nike", &at(0, 3)),
        photo("b", "Nike", &at(0, 4)),
        follow("reader", "b", &at(0, 5)),
        follow("reader", "a", &at(0, 6)),
    ]);
    let times: Vec<_> = s
        .timeline("reader")
        .into_iter()
        .map(|(o, t)| (o, (t - base()) / 1000))
        .collect();
    assert_eq!(times, [("b".into(), 4), ("a".into(), 3), ("a".into(), 2)]);
    // Unfollowing frees room under the cap: the reader's own photo, pushed out by a's,
    // is back, exactly as a timeline built now would have it.
    s.feed(&[unfollow("reader", "a", &at(0, 7))]);
    assert_eq!(
        s.timeline("reader"),
        [("b".into(), base() + 4000), ("reader".into(), base())]
    );
    let materialized = s.p.materialized_timeline(s.uid("reader")).unwrap();
    assert_eq!(materialized.len(), 2);
}

#[test]
fn windows_slide_with_the_stream_clock_over_minute_buckets() {
    let mut s = Sim::new();
    s.feed(&[
        photo("a", "Nike", &at(0, 0)),
        photo("b", "Nike", &at(10, 0)),
        photo("c", "Nike", &at(70, 0)),
        photo("d", "Nike", &at(73, 0)),
        // Moves the clock to minute 74 (+ lateness).
        user("z", &at(74, 10)),
    ]);
    assert_eq!(s.row("Nike", Window::M5).photos, 2, "minutes 70..=74");
    assert_eq!(s.row("Nike", Window::H1).photos, 2, "minutes 15..=74");
    assert_eq!(s.row("Nike", Window::H24).photos, 4);
    assert_eq!(s.row("Nike", Window::All).photos, 4);
    let lb = s.p.leaderboard(Window::M5);
    assert_eq!(
        lb.to_ms,
        base() + 74 * MS_PER_MIN + 8_000,
        "ends at the clock, held back 2 s"
    );
    assert_eq!(lb.from_ms, base() + 70 * MS_PER_MIN);
}

#[test]
fn late_events_land_in_their_bucket_and_too_old_ones_count_only_all_time() {
    // Photos kept forever here: a photo older than the photo retention is dead-lettered
    // on arrival (`retention_tests`), which is not what this is about.
    let mut s = Sim::with(ProcessorConfig {
        photo_retention_secs: 0,
        ..ProcessorConfig::default()
    });
    s.feed(&[photo("a", "Nike", &at(100, 0))]);
    s.feed(&[photo("b", "Nike", &at(97, 0))]); // late but within 5 minutes
    assert_eq!(s.row("Nike", Window::M5).photos, 2);
    s.feed(&[photo("c", "Nike", &at(100 - 3000, 0))]); // two days late
    assert_eq!(s.row("Nike", Window::H24).photos, 2);
    assert_eq!(s.row("Nike", Window::All).photos, 3);
    assert_eq!(
        s.p.stats.late_events, 0,
        "kept in its hour's rollup and its day"
    );
    let nike = &s.p.brands[0];
    assert_eq!(
        nike.rolled_hours
            .values()
            .map(|b| b.counters.photos)
            .sum::<u64>(),
        1
    );
    assert_eq!(
        nike.days.values().map(|b| b.counters.photos).sum::<u64>(),
        3
    );
    s.feed(&[photo("d", "Nike", &at(100 - 3 * 365 * 24 * 60, 0))]); // three years late
    assert_eq!(s.row("Nike", Window::All).photos, 4);
    assert_eq!(s.p.stats.late_events, 1, "older than the oldest day kept");
}

#[test]
fn reach_counts_distinct_followers_of_posters_and_engagers() {
    let mut s = Sim::new();
    let mut ev = Vec::new();
    for f in ["f1", "f2", "f3"] {
        ev.push(follow(f, "poster", &at(0, 0)));
    }
    for f in ["f3", "f4"] {
        ev.push(follow(f, "fan", &at(0, 0)));
    }
    ev.push(follow("f9", "outsider", &at(0, 0)));
    ev.push(photo("poster", "Nike", &at(1, 0)));
    ev.push(like("fan", "poster", &at(1, 0), &at(1, 5)));
    s.feed(&ev);
    let r = s.row("Nike", Window::M5);
    assert_eq!(r.reach, 4, "f1 f2 f3 f4; f3 once");
    assert_eq!(r.impressions, 3, "the poster's follower count");
    assert!((r.like_rate - 0.25).abs() < 1e-9);
    assert!((r.engagement_rate - 0.25).abs() < 1e-9);
}

#[test]
fn reach_uses_the_followers_at_the_time_of_the_event() {
    let mut s = Sim::with(ProcessorConfig {
        follower_sketch_threshold: 2, // exercise the follower-sketch path too
        ..ProcessorConfig::default()
    });
    s.feed(&[
        follow("f1", "p", &at(0, 0)),
        follow("f2", "p", &at(0, 0)),
        photo("p", "Nike", &at(0, 1)),
        follow("f3", "p", &at(0, 2)),
    ]);
    assert_eq!(s.row("Nike", Window::M5).reach, 2);
    s.feed(&[photo("p", "Nike", &at(0, 3))]);
    assert_eq!(s.row("Nike", Window::M5).reach, 3);
}

#[test]
fn share_of_voice_divides_by_all_photos_in_the_window() {
    let mut s = Sim::new();
    s.feed(&[
        photo("a", "Nike", &at(0, 0)),
        photo("b", "Nike", &at(0, 1)),
        photo("c", "Apple, Inc.", &at(0, 2)),
        photo("d", "Adidas", &at(0, 3)),
    ]);
    assert!((s.row("Nike", Window::M5).share_of_voice - 0.5).abs() < 1e-9);
    assert!((s.row("Apple, Inc.", Window::M5).share_of_voice - 0.25).abs() < 1e-9);
    let lb = s.p.leaderboard(Window::M5);
    assert_eq!(lb.rows[0].brand, "Nike");
    assert_eq!(lb.total_photos, 4);
}

#[test]
fn a_photo_tagged_with_several_brands_counts_for_each() {
    let mut s = Sim::new();
    let raw = format!(
        r#"{{"username":"a","tags":["Nike","Apple, Inc."],"photo_link":"x","created_time":"{}","latitude":1,"longitude":2,"event":"photo-upload"}}"#,
        at(0, 0)
    );
    s.feed(&[raw]);
    assert_eq!(s.row("Nike", Window::All).photos, 1);
    assert_eq!(s.row("Apple, Inc.", Window::All).photos, 1);
    assert_eq!(s.p.map_points(10, None).len(), 2);
}

#[test]
fn a_repeated_photo_changes_nothing() {
    let mut s = Sim::new();
    s.feed(&[photo("a", "Nike", &at(0, 0)), photo("a", "Nike", &at(0, 0))]);
    assert_eq!(s.p.photo_count(), 1);
    assert_eq!(s.row("Nike", Window::All).photos, 1);
    assert_eq!(s.p.stats.duplicates, 1);
}

#[test]
fn influencers_rank_uploads_plus_engagement_received() {
    let mut s = Sim::new();
    let pt = at(0, 0);
    s.feed(&[
        follow("x", "b", &at(0, 0)),
        photo("a", "Nike", &pt),
        photo("b", "Nike", &pt),
        like("x", "b", &pt, &at(0, 1)),
        comment("y", "b", &pt, "wow", &at(0, 2)),
    ]);
    let top = s.p.influencers(Window::M5, 10);
    assert_eq!(top[0].username, "b");
    assert_eq!(top[0].score, 3);
    assert_eq!(top[0].followers, 1);
    assert_eq!(top[1].username, "a");
    assert_eq!(top.len(), 2);
}

#[test]
fn a_burst_far_above_the_baseline_raises_one_alert() {
    let mut s = Sim::new();
    let mut ev = Vec::new();
    // Ten quiet minutes: 10 photos a minute for Nike (the burst must beat 2.5× that).
    for m in 0..10 {
        for i in 0..10 {
            ev.push(photo(&format!("u{i}"), "Nike", &at(m, i * 6)));
        }
    }
    s.feed(&ev);
    assert!(s.alerts.is_empty(), "steady activity raises nothing");
    let burst: Vec<_> = (0..120)
        .map(|i| photo(&format!("burst{i}"), "Nike", &at(10, i / 4)))
        .collect();
    s.feed(&burst);
    assert_eq!(s.alerts.len(), 1, "one alert, then the cooldown");
    let a = s.p.alerts().back().unwrap();
    assert_eq!(a.brand, "Nike");
    assert!(a.factor >= 2.5, "{a:?}");
}

#[test]
fn the_same_events_give_the_same_state() {
    let events: Vec<String> = (0..200)
        .flat_map(|i| {
            let u = format!("u{}", i % 17);
            let v = format!("u{}", (i * 7) % 17);
            let t = at(i / 20, i % 60);
            let mut e = vec![photo(
                &u,
                if i % 3 == 0 { "Nike" } else { "Apple, Inc." },
                &t,
            )];
            if u != v {
                e.push(follow(&v, &u, &t));
                e.push(like(&v, &u, &t, &t));
            }
            e
        })
        .collect();
    let run = || {
        let mut s = Sim::new();
        s.feed(&events);
        let lb = serde_json::to_string(&s.p.leaderboard(Window::All)).unwrap();
        let tl = serde_json::to_string(&s.p.home_timeline(s.uid("u3"), None, 50)).unwrap();
        (lb, tl)
    };
    assert_eq!(run(), run());
}

#[test]
fn the_original_brand_metrics_are_top_20_by_engagement_in_percent() {
    let mut s = Sim::new();
    let mut ev = vec![follow("f", "a", &at(0, 0)), follow("g", "a", &at(0, 0))];
    for i in 0..25 {
        let t = at(0, i);
        ev.push(photo("a", &format!("Brand{i:02}"), &t));
        if i % 2 == 0 {
            ev.push(like("f", "a", &t, &t));
        }
    }
    s.feed(&ev);
    let m = s.p.original_brand_metrics(Window::M5);
    assert_eq!(m.len(), 20);
    assert!(
        (m[0].engagement_rate - 50.0).abs() < 1e-9,
        "1 like / reach 2 = 50 %"
    );
    let json = serde_json::to_value(&m[0]).unwrap();
    let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "Comment Frequency",
            "Comment Rate",
            "Engagement Rate",
            "Like Frequency",
            "Like Rate",
            "Reach",
            "Tag"
        ]
    );
}

#[test]
fn a_restored_snapshot_continues_exactly_as_if_never_stopped() {
    let first: Vec<String> = vec![
        follow("reader", "a", &at(0, 0)),
        photo("a", "Nike", &at(0, 1)),
        like("b", "a", &at(0, 1), &at(0, 2)),
        like("c", "a", &at(9, 0), &at(0, 3)), // waits for a photo that comes later
        comment("d", "a", &at(0, 1), "<b>hi</b>", &at(0, 4)),
    ];
    let second: Vec<String> = vec![
        photo("a", "Nike", &at(9, 0)),
        like("b", "a", &at(0, 1), &at(9, 1)), // a repeat: still counts once
        unfollow("reader", "a", &at(9, 2)),
        photo("reader", "Apple, Inc.", &at(9, 3)),
    ];
    let mut whole = Sim::new();
    whole.feed(&first).feed(&second);
    let mut before = Sim::new();
    before.feed(&first);
    let bytes = before.p.snapshot().unwrap();
    let mut after = Sim {
        p: Processor::restore(&bytes, ProcessorConfig::default()).unwrap(),
        dead: Vec::new(),
        alerts: Vec::new(),
    };
    after.feed(&second);
    let view = |s: &Sim| {
        (
            serde_json::to_string(&s.p.leaderboard(Window::All)).unwrap(),
            serde_json::to_string(&s.p.user_feeds(s.uid("reader"), 50)).unwrap(),
            serde_json::to_string(&s.p.user_feeds(s.uid("a"), 50)).unwrap(),
            s.p.stats.clone(),
            s.p.pending_count(),
        )
    };
    assert_eq!(view(&after), view(&whole));
}

#[test]
fn a_burst_for_a_brand_silent_until_now_is_a_spike_once_the_stream_has_history() {
    let mut s = Sim::new();
    // Five minutes of other brands' activity: the stream has history, Tesla has none.
    let quiet: Vec<_> = (0..300)
        .map(|i| photo(&format!("u{}", i % 50), "Nike", &at(i / 60, i % 60)))
        .collect();
    s.feed(&quiet);
    assert!(s.alerts.is_empty());
    let burst: Vec<_> = (0..40)
        .map(|i| photo(&format!("fan{i}"), "Tesla", &at(5, i / 4)))
        .collect();
    s.feed(&burst);
    assert_eq!(s.alerts.len(), 1);
    assert_eq!(s.p.alerts().back().unwrap().brand, "Tesla");
}

#[test]
fn a_late_follow_adds_its_follower_to_the_reach_of_the_photos_posted_since() {
    let mut s = Sim::new();
    s.feed(&[
        photo("a", "Nike", &at(0, 10)),
        photo("a", "Lego", &at(0, 20)),
        photo("z", "Nike", &at(0, 50)),
    ]);
    assert_eq!(s.row("Nike", Window::All).reach, 0);
    // Read late (a lagging follow topic): b followed a at 0:15, between the two photos.
    s.feed(&[follow("b", "a", &at(0, 15))]);
    assert_eq!(s.p.stats.late_by_kind[EventKind::Follow as usize], 1);
    assert_eq!(
        s.row("Lego", Window::All).reach,
        1,
        "the photo after the follow"
    );
    assert_eq!(s.row("Lego", Window::M5).reach, 1);
    assert_eq!(
        s.row("Nike", Window::All).reach,
        0,
        "the photo before it is not"
    );
    // The same follow in its turn gives the same numbers.
    let mut inorder = Sim::new();
    inorder.feed(&[
        photo("a", "Nike", &at(0, 10)),
        follow("b", "a", &at(0, 15)),
        photo("a", "Lego", &at(0, 20)),
        photo("z", "Nike", &at(0, 50)),
    ]);
    for (brand, w) in [
        ("Lego", Window::All),
        ("Nike", Window::All),
        ("Lego", Window::M5),
    ] {
        assert_eq!(
            s.row(brand, w).reach,
            inorder.row(brand, w).reach,
            "{brand} {w:?}"
        );
    }
}

#[test]
fn late_events_are_applied_and_counted_by_how_they_were_handled() {
    let mut s = Sim::new();
    s.feed(&[
        follow("b", "a", &at(0, 1)),
        photo("a", "Nike", &at(10, 0)),
        // Each of these is minutes behind the newest applied event.
        user("late", &at(1, 0)),
        photo("c", "Nike", &at(2, 0)),
        like("d", "a", &at(10, 0), &at(3, 0)),
        unfollow("b", "a", &at(4, 0)),
    ]);
    let late = late_by_handling(&s.p.stats);
    assert_eq!(late["create_user_exact"], 1);
    assert_eq!(late["photo_followers_now"], 1);
    assert_eq!(late["like_followers_now"], 1);
    assert_eq!(late["unfollow_reach_kept"], 1);
    assert_eq!(late["follow_repaired"], 0);
    // All applied: late is a label, not a loss.
    assert_eq!(s.row("Nike", Window::All).photos, 2);
    assert_eq!(s.row("Nike", Window::All).likes, 1);
    assert_eq!(s.p.profile(s.uid("a")).followers, 0);
    // An event within the allowed lateness (2 s) is not late; one beyond it is.
    s.feed(&[user("ontime", &at(9, 59))]);
    assert_eq!(late_by_handling(&s.p.stats)["create_user_exact"], 1);
    s.feed(&[user("later", &at(9, 57))]);
    assert_eq!(late_by_handling(&s.p.stats)["create_user_exact"], 2);
}

#[test]
fn every_event_is_applied_a_duplicate_superseded_held_or_dead_lettered() {
    let mut s = Sim::with(ProcessorConfig {
        pending_hold_secs: 60,
        ..ProcessorConfig::default()
    });
    let lines = [
        user("a", &at(0, 0)),
        user("a", &at(0, 0)), // duplicate
        photo("a", "Nike", &at(0, 5)),
        like("b", "a", &at(0, 5), &at(0, 6)),
        like("b", "a", &at(0, 5), &at(0, 7)),  // duplicate like
        like("c", "a", &at(0, 30), &at(0, 8)), // held: its photo comes later
        like("c", "a", &at(0, 30), &at(0, 9)), // held, then a duplicate on arrival
        unfollow("d", "a", &at(0, 12)),
        follow("d", "a", &at(0, 11)), // superseded by the newer unfollow
        like("e", "a", &at(0, 40), &at(0, 20)), // held; its photo never comes
        photo("a", "Nike", &at(0, 30)),
        comment("f", "a", &at(9, 0), "?", &at(0, 35)), // held, pending at the end
        user("g", &at(1, 30)),                         // expires e's like: dead-lettered
    ];
    s.feed(&lines);
    let st = &s.p.stats;
    let applied: u64 = st.applied_by_kind.iter().sum();
    let dead: u64 = st.dead_letters.values().sum();
    assert_eq!(st.duplicates, 3);
    assert_eq!(st.superseded, 1);
    assert_eq!(dead, 1);
    assert_eq!(s.p.pending_count(), 1);
    assert_eq!(
        applied + st.duplicates + st.superseded + dead + s.p.pending_count() as u64,
        lines.len() as u64,
        "{st:?}"
    );
}

/// Every page of a user's home timeline, with the cursor that leads to the next.
pub(super) fn all_pages(
    p: &Processor,
    u: UserId,
    limit: usize,
) -> Vec<(Vec<PhotoId>, Option<Cursor>)> {
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let (items, next) = p.timeline_page(u, before, limit);
        pages.push((items, next));
        match next {
            Some(c) => before = Some(c),
            None => return pages,
        }
    }
}

/// Random tables of events over a dozen users (follows, unfollows, re-follows, photos in order and late, accounts crossing the celebrity threshold
/// both ways, timelines over their cap) applied to two processors: one whose users read
/// at random moments (so timelines are materialized, expire, are pushed out by newer
/// readers, and come back), one where nobody ever reads (every timeline built on
/// read). Every user's timeline reads alike in both, page by page and cursor by
/// cursor, and every materialized timeline holds what one built now would.
#[test]
fn a_timeline_built_on_read_equals_the_materialized_one() {
    let cfg = ProcessorConfig {
        timeline_cap: 7,
        celebrity_threshold: 3,
        reader_ttl_secs: 40,
        home_timelines_max: 4,
        ..ProcessorConfig::default()
    };
    for seed in 1..=12u64 {
        let mut read = Sim::with(cfg.clone());
        let mut unread = Sim::with(cfg.clone());
        let mut x = seed;
        let mut rnd = |n: u64| {
            x = crate::hll::hash64(x);
            x % n
        };
        let name = |i: u64| format!("u{i}");
        let mut materialized = 0;
        for step in 0..600i64 {
            let t = at(0, step);
            let (a, b) = (name(rnd(12)), name(rnd(6)));
            let event = match rnd(10) {
                _ if a == b => photo(&b, "Nike", &t),
                0..=2 => follow(&a, &b, &t),
                3 => unfollow(&a, &b, &t),
                4..=7 => photo(&b, "Nike", &t),
                // A photo up to 50 s late, at a distinct millisecond-free second.
                8 => photo(&a, "Nike", &at(0, (step - 1 - rnd(50) as i64).max(0))),
                _ => like(&a, &b, &t, &t),
            };
            read.feed(&[&event]);
            unread.feed(&[&event]);
            if rnd(4) == 0
                && let Some(u) = read.p.user_id(&name(rnd(12)))
            {
                read.p.note_reader(u);
            }
            materialized += read.p.home_feeds().active_readers();
            if step % 37 == 0 || step == 599 {
                for i in 0..12 {
                    let Some(u) = read.p.user_id(&name(i)) else {
                        continue;
                    };
                    assert_eq!(
                        all_pages(&read.p, u, 2),
                        all_pages(&unread.p, u, 2),
                        "seed {seed} step {step} user u{i}"
                    );
                    if let Some(tl) = read.p.materialized_timeline(u) {
                        let built = read.p.build_timeline(u);
                        assert_eq!(
                            tl.newest_first().collect::<Vec<_>>(),
                            built.newest_first().collect::<Vec<_>>(),
                            "seed {seed} step {step} user u{i}"
                        );
                    }
                }
            }
        }
        assert!(materialized > 600, "readers were active: {materialized}");
        // A restart forgets who read; what they see is the same.
        let restored = Processor::restore(&read.p.snapshot().unwrap(), cfg.clone()).unwrap();
        assert_eq!(restored.home_feeds().active_readers(), 0);
        for i in 0..12 {
            if let Some(u) = unread.p.user_id(&name(i)) {
                assert_eq!(all_pages(&restored, u, 3), all_pages(&unread.p, u, 3));
            }
        }
    }
}

#[test]
fn uploads_fan_out_only_to_followers_who_read_recently() {
    let mut s = Sim::with(ProcessorConfig {
        reader_ttl_secs: 60,
        ..ProcessorConfig::default()
    });
    s.feed(&[
        follow("active", "poster", &at(0, 0)),
        follow("idle", "poster", &at(0, 0)),
    ]);
    s.p.note_reader(s.uid("active"));
    s.feed(&[photo("poster", "Nike", &at(0, 1))]);
    let (active, idle) = (s.uid("active"), s.uid("idle"));
    assert_eq!(
        s.p.materialized_timeline(active).map(Timeline::len),
        Some(1)
    );
    assert!(
        s.p.materialized_timeline(idle).is_none(),
        "not materialized"
    );
    // Both read the photo all the same.
    assert_eq!(s.timeline("idle"), s.timeline("active"));
    // A minute of event time without a read: no longer kept.
    s.feed(&[photo("poster", "Nike", &at(1, 5))]);
    assert!(s.p.materialized_timeline(active).is_none(), "expired");
    assert_eq!(s.p.home_feeds().active_readers(), 0);
    assert_eq!(s.timeline("active").len(), 2);
}

#[test]
fn at_most_home_timelines_max_are_kept_and_the_least_recent_reader_goes() {
    let mut s = Sim::with(ProcessorConfig {
        home_timelines_max: 2,
        ..ProcessorConfig::default()
    });
    s.feed(&[
        user("a", &at(0, 0)),
        user("b", &at(0, 1)),
        user("c", &at(0, 2)),
    ]);
    s.p.note_reader(s.uid("a"));
    s.feed(&[user("d", &at(0, 3))]);
    s.p.note_reader(s.uid("b"));
    s.feed(&[user("e", &at(0, 4))]);
    s.p.note_reader(s.uid("a")); // a read again: b is now the least recent
    s.p.note_reader(s.uid("c"));
    assert_eq!(s.p.home_feeds().active_readers(), 2);
    assert!(s.p.materialized_timeline(s.uid("a")).is_some());
    assert!(s.p.materialized_timeline(s.uid("b")).is_none());
    assert!(s.p.materialized_timeline(s.uid("c")).is_some());
}

#[test]
fn readers_noted_through_the_log_enter_between_batches() {
    let mut s = Sim::new();
    s.feed(&[follow("reader", "poster", &at(0, 0))]);
    let log = ReaderLog::default();
    log.note(s.uid("reader"));
    log.note(s.uid("reader"));
    assert_eq!(s.p.home_feeds().active_readers(), 0, "not before the drain");
    log.drain_into(&mut s.p);
    assert_eq!(s.p.home_feeds().active_readers(), 1);
    s.feed(&[photo("poster", "Nike", &at(0, 1))]);
    let materialized = s.p.materialized_timeline(s.uid("reader"));
    assert_eq!(materialized.map(Timeline::len), Some(1));
}
