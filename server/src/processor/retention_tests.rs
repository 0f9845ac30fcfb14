//! Retention (docs/semantics.md, "Retention"), event-table style like `tests.rs`:
//! what expires and when, the `photo_expired` dead letters, the accounting, restore
//! after expiry, and state that stays flat over many retention windows.

use std::collections::BTreeMap;

use instabrand_shared::api::Window;
use instabrand_shared::time::format_naive;
use instabrand_shared::{Millis, Reason};

use super::tests::{Sim, all_pages, at, base, comment, follow, like, photo, unfollow, user};
use super::*;

/// Photos kept an hour: the horizon is the clock's minute less 60.
fn keep(secs: i64) -> ProcessorConfig {
    ProcessorConfig {
        photo_retention_secs: secs,
        ..ProcessorConfig::default()
    }
}

fn t(min: i64, sec: i64) -> Millis {
    base() + min * MS_PER_MIN + sec * MS_PER_SEC
}

/// Entries by part.
fn entries(p: &Processor) -> BTreeMap<String, u64> {
    p.state_sizes()
        .into_iter()
        .map(|s| (s.name, s.entries))
        .collect()
}

/// Every list that names photos names only kept ones, and the photos kept are exactly
/// those at or after the horizon.
fn assert_no_dangling(p: &Processor, ctx: &str) {
    for (_, ph) in p.photos.iter() {
        assert!(
            !p.past_retention(ph.created),
            "{ctx}: a photo past retention is kept"
        );
        assert_eq!(
            p.photo_id(ph.owner, ph.created)
                .map(|id| p.photo(id).created),
            Some(ph.created)
        );
    }
    let kept = |id: &PhotoId| p.try_photo(*id).is_some();
    for u in &p.users {
        assert!(
            u.photos.iter().all(kept),
            "{ctx}: profile feed of {}",
            u.name
        );
    }
    let listed: usize = p.users.iter().map(|u| u.photos.len()).sum();
    assert_eq!(
        listed,
        p.photo_count(),
        "{ctx}: every kept photo is in its owner's feed"
    );
    assert!(p.recent_photos.iter().all(kept), "{ctx}: map list");
    for b in &p.brands {
        assert!(b.recent_photos.iter().all(kept), "{ctx}: {}", b.name);
    }
    for i in 0..p.user_count() {
        if let Some(tl) = p.materialized_timeline(UserId(i as u32)) {
            assert!(
                tl.newest_first().all(|(_, id)| kept(&id)),
                "{ctx}: timeline"
            );
        }
    }
}

#[test]
fn a_photo_past_retention_goes_with_its_likes_comments_and_every_place_it_was_listed() {
    let mut s = Sim::with(ProcessorConfig {
        reader_ttl_secs: 7_200,
        ..keep(3_600)
    });
    s.feed(&[
        follow("reader", "a", &at(0, 0)),
        follow("idle", "a", &at(0, 0)),
        photo("a", "Nike", &at(0, 10)),
        like("b", "a", &at(0, 10), &at(0, 20)),
        comment("c", "a", &at(0, 10), "first", &at(0, 30)),
    ]);
    s.p.note_reader(s.uid("reader"));
    s.feed(&[
        photo("a", "Nike", &at(30, 0)),
        like("b", "a", &at(30, 0), &at(30, 1)),
        comment("c", "a", &at(30, 0), "second", &at(30, 2)),
    ]);
    let full = entries(&s.p);
    assert_eq!(
        (
            full["photos"],
            full["likes"],
            full["comments"],
            full["timelines"]
        ),
        (2, 2, 2, 2)
    );
    assert_eq!(
        s.p.materialized_timeline(s.uid("reader"))
            .map(Timeline::len),
        Some(2)
    );
    assert_no_dangling(&s.p, "before");

    // The clock reaches 61:03, minute 61: photos before 1:00 are past retention.
    s.feed(&[user("tick", &at(61, 5))]);
    assert_eq!(s.p.retained_from(), t(1, 0));
    let a = s.uid("a");
    assert_eq!(s.p.photo_count(), 1);
    assert_eq!(s.p.photo_id(a, t(0, 10)), None);
    assert!(s.p.photo_id(a, t(30, 0)).is_some());
    let profile = s.p.profile_feed(a, None, 10);
    assert_eq!(profile.items.len(), 1);
    assert_eq!(profile.items[0].created_ms, t(30, 0));
    assert_eq!(profile.items[0].recent_comments[0].text, "second");
    assert_eq!(s.p.profile(a).photos, 1);
    // Materialized (reader) or built on read (idle): the same, without the old photo.
    assert_eq!(s.timeline("reader"), vec![("a".to_string(), t(30, 0))]);
    assert_eq!(s.timeline("idle"), s.timeline("reader"));
    assert_eq!(
        s.p.materialized_timeline(s.uid("reader"))
            .map(Timeline::len),
        Some(1)
    );
    let map = s.p.map_points(100, None);
    assert_eq!(
        map.iter().map(|m| m.created_ms).collect::<Vec<_>>(),
        [t(30, 0)]
    );
    let nike = s.p.brand_detail("Nike", Window::All, 10, 10).unwrap();
    assert_eq!(nike.recent_points.len(), 1);
    assert_eq!(nike.top_posters[0].uploads, 1);
    let after = entries(&s.p);
    assert_eq!(
        (after["photos"], after["comments"], after["timelines"]),
        (1, 1, 1)
    );
    assert_no_dangling(&s.p, "after");
    // The like set goes by generations (1/16 of the window, 3 m 45 s here): the old
    // photo's like leaves once the horizon passes the end of its generation.
    assert!(after["likes"] <= 2);
    s.feed(&[user("tick2", &at(66, 0))]);
    assert_eq!(entries(&s.p)["likes"], 1);
    // Brand metrics were counted when the events came: retention leaves them be.
    let all = s.row("Nike", Window::All);
    assert_eq!((all.photos, all.likes, all.comments), (2, 2, 2));

    // An hour later nothing of them is left.
    s.feed(&[user("tick3", &at(95, 0))]);
    let empty = entries(&s.p);
    assert_eq!(
        (
            empty["photos"],
            empty["likes"],
            empty["comments"],
            empty["timelines"]
        ),
        (0, 0, 0, 0)
    );
    assert!(s.p.map_points(100, None).is_empty());
    assert!(s.timeline("reader").is_empty());
    assert_no_dangling(&s.p, "empty");
}

#[test]
fn a_like_or_comment_on_a_photo_past_retention_is_dead_lettered_photo_expired() {
    let mut s = Sim::with(keep(3_600));
    let lines = [
        photo("a", "Nike", &at(0, 10)),
        like("b", "a", &at(0, 10), &at(0, 20)),
        // Its photo (0:40) is not here yet and not past retention (horizon 0:00): held.
        like("c", "a", &at(0, 40), &at(60, 50)),
        user("tick", &at(61, 5)), // horizon 1:00: the 0:10 photo expires
        like("d", "a", &at(0, 10), &at(61, 6)),
        comment("e", "a", &at(0, 10), "too late", &at(61, 7)),
        // A photo that never came, older than the horizon, after its owner's first
        // upload: it cannot be told from one that expired.
        like("f", "a", &at(0, 15), &at(61, 8)),
        // One before its owner ever posted never was: held, then an orphan.
        like("k", "a", &at(0, 5), &at(61, 8)),
        // The held like's photo comes, past retention: both dead-lettered.
        photo("a", "Lego", &at(0, 40)),
        photo("a", "Lego", &at(61, 0)),
        like("g", "a", &at(61, 0), &at(61, 9)),
        user("tick2", &at(72, 0)), // k's hold (600 s) is over
    ];
    s.feed(&lines);
    let reasons: Vec<Reason> = s.dead.iter().map(|d| d.0).collect();
    let mut expected = vec![Reason::PhotoExpired; 5];
    expected.push(Reason::OrphanEngagement);
    assert_eq!(reasons, expected);
    // Each with its original bytes.
    let raws: Vec<&[u8]> = s.dead.iter().map(|d| &d.1[..]).collect();
    for i in [4, 5, 6, 8, 2, 7] {
        assert!(raws.contains(&lines[i].as_bytes()), "line {i}");
    }
    let st = &s.p.stats;
    assert_eq!(st.dead_letters[&Reason::PhotoExpired], 5);
    assert_eq!(Reason::PhotoExpired.code(), "photo_expired");
    // Every event is still exactly one thing.
    let applied: u64 = st.applied_by_kind.iter().sum();
    let dead: u64 = st.dead_letters.values().sum();
    assert_eq!(st.dead_letters[&Reason::OrphanEngagement], 1);
    assert_eq!(applied, 6, "{st:?}");
    assert_eq!(
        applied + st.duplicates + st.superseded + dead + s.p.pending_count() as u64,
        lines.len() as u64,
        "{st:?}"
    );
    assert_eq!(s.p.pending_count(), 0);
    // What was dead-lettered counts nowhere, and was not late-applied either.
    let lego = s.row("Lego", Window::All);
    assert_eq!((lego.photos, lego.likes), (1, 1));
    let nike = s.row("Nike", Window::All);
    assert_eq!((nike.photos, nike.likes, nike.comments), (1, 1, 0));
    // The 61:00 photo came 8 s behind the newest event (late, applied); the 0:40 one
    // was dead-lettered, so it is not counted as late-applied.
    assert_eq!(late_by_handling(&s.p.stats)["photo_followers_now"], 1);
    assert!(
        s.p.user_id("d").is_none(),
        "no user made up for a dead letter"
    );
}

/// Random tables as in `a_timeline_built_on_read_equals_the_materialized_one`, with a
/// short retention, late photos (which expire out of number order) and engagement on
/// photos of all ages: timelines read alike materialized or built on read, page by
/// page, and no list ever names an expired photo.
#[test]
fn timelines_and_lists_stay_equal_and_never_dangle_as_photos_expire() {
    let cfg = ProcessorConfig {
        timeline_cap: 7,
        celebrity_threshold: 3,
        reader_ttl_secs: 40,
        home_timelines_max: 4,
        photo_retention_secs: 120,
        map_points_kept: 25,
        brand_photos_kept: 9,
        ..ProcessorConfig::default()
    };
    let mut expired_likes = 0;
    for seed in 1..=8u64 {
        let mut read = Sim::with(cfg.clone());
        let mut unread = Sim::with(cfg.clone());
        let mut x = seed;
        let mut rnd = |n: u64| {
            x = crate::hll::hash64(x);
            x % n
        };
        let name = |i: u64| format!("u{i}");
        let mut posted: Vec<(String, i64)> = Vec::new();
        for step in 0..900i64 {
            let now = at(0, step);
            let (a, b) = (name(rnd(12)), name(rnd(6)));
            let brand = ["Nike", "Lego", "Apple, Inc."][rnd(3) as usize];
            let event = match rnd(12) {
                _ if a == b => photo(&b, brand, &now),
                0..=2 => follow(&a, &b, &now),
                3 => unfollow(&a, &b, &now),
                4..=6 => {
                    posted.push((b.clone(), step));
                    photo(&b, brand, &now)
                }
                7 => {
                    // Up to 100 s late: expires out of the order photos were numbered.
                    let s = (step - 1 - rnd(100) as i64).max(0);
                    posted.push((a.clone(), s));
                    photo(&a, brand, &at(0, s))
                }
                _ if posted.is_empty() => user(&a, &now),
                8..=9 => {
                    let (owner, s) = &posted[rnd(posted.len() as u64) as usize];
                    like(&a, owner, &at(0, *s), &now)
                }
                _ => {
                    let (owner, s) = &posted[rnd(posted.len() as u64) as usize];
                    comment(&a, owner, &at(0, *s), "hi", &now)
                }
            };
            read.feed(&[&event]);
            unread.feed(&[&event]);
            if rnd(4) == 0
                && let Some(u) = read.p.user_id(&name(rnd(12)))
            {
                read.p.note_reader(u);
            }
            if step % 29 == 0 || step == 899 {
                let ctx = format!("seed {seed} step {step}");
                assert_no_dangling(&read.p, &ctx);
                assert_no_dangling(&unread.p, &ctx);
                for i in 0..12 {
                    let Some(u) = read.p.user_id(&name(i)) else {
                        continue;
                    };
                    assert_eq!(
                        all_pages(&read.p, u, 2),
                        all_pages(&unread.p, u, 2),
                        "{ctx} u{i}"
                    );
                    if let Some(tl) = read.p.materialized_timeline(u) {
                        let built = read.p.build_timeline(u);
                        assert_eq!(
                            tl.newest_first().collect::<Vec<_>>(),
                            built.newest_first().collect::<Vec<_>>(),
                            "{ctx} u{i}"
                        );
                    }
                }
                assert_eq!(
                    serde_json::to_string(&read.p.map_points(100, None)).unwrap(),
                    serde_json::to_string(&unread.p.map_points(100, None)).unwrap()
                );
            }
        }
        assert!(
            read.p.retained_from() >= t(12, 0),
            "photos expired all along"
        );
        expired_likes += read
            .p
            .stats
            .dead_letters
            .get(&Reason::PhotoExpired)
            .copied()
            .unwrap_or(0);
        let restored = Processor::restore(&read.p.snapshot().unwrap(), cfg.clone()).unwrap();
        assert_no_dangling(&restored, "restored");
        for i in 0..12 {
            if let Some(u) = unread.p.user_id(&name(i)) {
                assert_eq!(all_pages(&restored, u, 3), all_pages(&unread.p, u, 3));
            }
        }
    }
    assert!(
        expired_likes > 100,
        "engagement on expired photos: {expired_likes}"
    );
}

#[test]
fn a_snapshot_taken_after_expiry_continues_exactly_as_if_never_stopped() {
    let cfg = keep(600);
    let first: Vec<String> = vec![
        follow("reader", "a", &at(0, 0)),
        photo("a", "Nike", &at(0, 1)),
        like("b", "a", &at(0, 1), &at(0, 2)),
        comment("d", "a", &at(0, 1), "hi", &at(0, 4)),
        photo("a", "Lego", &at(8, 0)),
        like("b", "a", &at(8, 0), &at(8, 1)),
        photo("c", "Nike", &at(9, 0)),
        photo("c", "Nike", &at(8, 30)), // late: out of number order
        user("tick", &at(18, 40)),      // horizon 8:00: the 0:01 photo expires
        like("e", "a", &at(0, 1), &at(18, 41)), // photo_expired
    ];
    let second: Vec<String> = vec![
        like("b", "a", &at(8, 0), &at(18, 42)), // a repeat: still counts once
        like("f", "c", &at(8, 30), &at(18, 43)),
        user("tick2", &at(18, 50)),
        user("tick3", &at(19, 20)), // horizon 9:00: 8:00 and the late 8:30 expire
        like("g", "c", &at(8, 30), &at(19, 21)), // photo_expired
        comment("h", "c", &at(9, 0), "still here", &at(19, 22)),
        photo("reader", "Apple, Inc.", &at(19, 30)),
    ];
    let mut whole = Sim::with(cfg.clone());
    whole.feed(&first).feed(&second);
    let mut before = Sim::with(cfg.clone());
    before.feed(&first);
    assert!(before.p.retained_from() > Millis::MIN);
    let bytes = before.p.snapshot().unwrap();
    let mut after = Sim {
        p: Processor::restore(&bytes, cfg.clone()).unwrap(),
        dead: before.dead.clone(),
        alerts: Vec::new(),
    };
    after.feed(&second);
    let view = |s: &Sim| {
        (
            serde_json::to_string(&s.p.leaderboard(Window::All)).unwrap(),
            serde_json::to_string(&s.p.user_feeds(s.uid("reader"), 50)).unwrap(),
            serde_json::to_string(&s.p.user_feeds(s.uid("a"), 50)).unwrap(),
            serde_json::to_string(&s.p.user_feeds(s.uid("c"), 50)).unwrap(),
            serde_json::to_string(&s.p.map_points(100, None)).unwrap(),
            s.p.stats.clone(),
            s.p.pending_count(),
            s.p.retained_from(),
            entries(&s.p),
            s.dead.clone(),
        )
    };
    assert_eq!(view(&after), view(&whole));
    assert_eq!(whole.p.stats.dead_letters[&Reason::PhotoExpired], 2);
    assert_eq!(whole.p.photo_count(), 2);
    // The running sums behind the sizes agree with a recount.
    assert_eq!(whole.p.sizes, sizes::SizeCounters::recount(&whole.p));
    assert_eq!(after.p.sizes, sizes::SizeCounters::recount(&after.p));
}

/// A generator-like stream over 30 days of event time with photos kept 3 days: once
/// the window has filled, the photos (and likes, comments, everything per photo) stay
/// within ±10 % of their mean, day after day, while events keep coming.
#[test]
fn state_stays_flat_over_many_retention_windows() {
    let cfg = ProcessorConfig {
        photo_retention_secs: 3 * 86_400,
        reader_ttl_secs: 6 * 3_600,
        ..ProcessorConfig::default()
    };
    let mut s = Sim::with(cfg);
    let mut x = 42u64;
    let mut rnd = |n: u64| {
        x = crate::hll::hash64(x);
        x % n
    };
    let users = 400u64;
    let start = base();
    let ts = |ms: Millis| format_naive(start + ms);
    let mut setup = Vec::new();
    for i in 0..users {
        setup.push(user(&format!("u{i}"), &ts(0)));
    }
    // Follows made, so unfollows undo real ones and the graph keeps its size.
    let mut edges: Vec<(u64, u64)> = Vec::new();
    for i in 0..users * 10 {
        let (a, b) = (rnd(users), rnd(users));
        if a != b {
            setup.push(follow(
                &format!("u{a}"),
                &format!("u{b}"),
                &ts(1_000 + i as i64),
            ));
            edges.push((a, b));
        }
    }
    s.feed(&setup);
    let brands = ["Nike", "Lego", "Apple, Inc.", "Tesla", "Adidas"];
    // Photos of the last 4 days, (owner, time), oldest first.
    let mut recent: std::collections::VecDeque<(u64, Millis)> = Default::default();
    let step = 20 * MS_PER_SEC;
    let per_day = 86_400_000 / step;
    let mut daily: Vec<BTreeMap<String, (u64, u64)>> = Vec::new();
    let mut batch = Vec::new();
    for i in 1..=30 * per_day {
        let now = 3_600_000 + i * step;
        let u = rnd(users);
        let ev = match rnd(20) {
            0..=6 => {
                recent.push_back((u, now));
                photo(&format!("u{u}"), brands[rnd(5) as usize], &ts(now))
            }
            7..=15 if !recent.is_empty() => {
                // Mostly the newest photos; now and then one days old (some expired).
                let n = recent.len() as u64;
                let k = if rnd(10) == 0 {
                    rnd(n)
                } else {
                    n - 1 - rnd(n.min(200))
                };
                let (owner, pt) = recent[k as usize];
                if rnd(4) == 0 {
                    comment(
                        &format!("u{u}"),
                        &format!("u{owner}"),
                        &ts(pt),
                        "nice",
                        &ts(now),
                    )
                } else {
                    like(&format!("u{u}"), &format!("u{owner}"), &ts(pt), &ts(now))
                }
            }
            16 => {
                let v = (u + 1 + rnd(users - 1)) % users;
                edges.push((u, v));
                follow(&format!("u{u}"), &format!("u{v}"), &ts(now))
            }
            17 if !edges.is_empty() => {
                let (a, b) = edges.swap_remove(rnd(edges.len() as u64) as usize);
                unfollow(&format!("u{a}"), &format!("u{b}"), &ts(now))
            }
            _ => user(&format!("u{u}"), &ts(now)),
        };
        batch.push(ev);
        while recent.front().is_some_and(|r| r.1 < now - 4 * 86_400_000) {
            recent.pop_front();
        }
        if i % 360 == 0 {
            s.feed(&batch);
            batch.clear();
            // A few dashboards read their home timelines.
            for r in 0..5 {
                s.p.note_reader(UserId(r));
            }
        }
        if i % per_day == 0 {
            daily.push(
                s.p.state_sizes()
                    .into_iter()
                    .map(|p| (p.name, (p.entries, p.bytes)))
                    .collect(),
            );
        }
    }
    assert!(s.p.stats.dead_letters[&Reason::PhotoExpired] > 0);
    // Filled after 3 days of retention (and a day to be sure): days 5 to 30.
    let filled = &daily[4..];
    for part in ["photos", "likes", "comments"] {
        for (what, pick) in [("entries", 0), ("bytes", 1)] {
            let v: Vec<f64> = filled
                .iter()
                .map(|d| if pick == 0 { d[part].0 } else { d[part].1 } as f64)
                .collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            for (day, x) in v.iter().enumerate() {
                assert!(
                    (x / mean - 1.0).abs() <= 0.10,
                    "{part} {what} on day {}: {x} against a mean of {mean:.0} ({v:?})",
                    day + 5
                );
            }
        }
    }
    // Everything but the users and the graph, which are not expired (and are the
    // same size here).
    let total = |d: &BTreeMap<String, (u64, u64)>| {
        d.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "users" | "follow_edges"))
            .map(|(_, v)| v.1)
            .sum::<u64>() as f64
    };
    let mean = filled.iter().map(total).sum::<f64>() / filled.len() as f64;
    for d in filled {
        assert!(
            (total(d) / mean - 1.0).abs() <= 0.10,
            "all parts: {} vs {mean:.0}",
            total(d)
        );
    }
    // And far below what keeping everything would hold: 30 days against 3.
    assert!(daily[29]["photos"].0 * 5 < s.p.stats.applied_by_kind[EventKind::PhotoUpload as usize]);
}

#[test]
fn follow_sets_keep_their_size_under_churn() {
    // 100 readers, each following 60 of 200 accounts in a window; every round each
    // drops the first account of its window and follows the one after the last: the
    // graph keeps 6,000 edges and every set about its size, while edges are removed
    // and added all the time.
    let n = 100;
    let span = 60;
    let reader = |i: usize| format!("r{i}");
    let name = |i: usize| format!("u{}", i % 200);
    let mut s = Sim::new();
    let mut ev = Vec::new();
    for i in 0..n {
        for k in 1..=span {
            ev.push(follow(&reader(i), &name(i + k), &at(0, 0)));
        }
    }
    s.feed(&ev);
    let bytes = |p: &Processor| -> u64 {
        p.state_sizes()
            .into_iter()
            .find(|s| s.name == "follow_edges")
            .map(|s| s.bytes)
            .unwrap()
    };
    let mut seen = Vec::new();
    for r in 0..600 {
        let t = at(1 + r as i64 / 60, r as i64 % 60);
        let mut ev = Vec::new();
        for i in 0..n {
            ev.push(unfollow(&reader(i), &name(i + 1 + r), &t));
            ev.push(follow(&reader(i), &name(i + 1 + r + span), &t));
        }
        s.feed(&ev);
        if r % 20 == 19 {
            seen.push(bytes(&s.p));
        }
    }
    assert_eq!(entries(&s.p)["follow_edges"], (n * span) as u64);
    let mean = seen.iter().sum::<u64>() as f64 / seen.len() as f64;
    for (i, b) in seen.iter().enumerate() {
        assert!(
            (*b as f64 / mean - 1.0).abs() <= 0.10,
            "after {} rounds: {b} bytes against a mean of {mean:.0} ({seen:?})",
            (i + 1) * 20
        );
    }
    // The running sums follow the rebuilt sets.
    assert_eq!(s.p.sizes, sizes::SizeCounters::recount(&s.p));
}
