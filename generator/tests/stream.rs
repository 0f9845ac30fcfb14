//! The generated stream, checked as the server will see it: through the public API and,
//! where it matters, through the JSON the server decodes.

use std::collections::{BTreeMap, HashMap, HashSet};

use instabrand_generator::{
    CampaignError, Config, Generator, Shape, brands, cities, find_city, write_original_json,
};
use instabrand_shared::{DecodeLimits, Event, EventKind, Millis, decode};

fn small(seed: u64) -> Config {
    Config {
        seed,
        users: 2_000,
        mean_follows: 15.0,
        ..Config::default()
    }
}

/// The bootstrap plus `steady` events of the steady state.
fn stream(cfg: Config, steady: u64) -> Vec<Event<'static>> {
    let mut g = Generator::new(cfg);
    let n = g.bootstrap_len() + steady;
    (0..n).map(|_| g.next_event()).collect()
}

fn skip_bootstrap(g: &mut Generator) {
    while g.in_bootstrap() {
        g.next_event();
    }
}

fn bytes(events: &[Event<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        write_original_json(e, &mut out);
    }
    out
}

fn near_a_city(lat: f64, lon: f64, within_deg: f64) -> bool {
    cities().iter().any(|c| {
        (c.latitude - lat).abs() < within_deg && (c.longitude - lon).abs() < within_deg * 5.0
    })
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_differs() {
    let run = |seed| {
        let mut g = Generator::new(small(seed));
        g.campaign("Nike", Some("Paris"), 50, 30).unwrap();
        let events: Vec<_> = (0..g.bootstrap_len() + 20_000)
            .map(|_| g.next_event())
            .collect();
        bytes(&events)
    };
    let a = run(7);
    assert_eq!(a, run(7), "same seed, same bytes");
    assert_ne!(a, run(8), "another seed, another network");
}

#[test]
fn every_event_round_trips_through_decode() {
    let events = stream(small(1), 60_000);
    let mut line = Vec::new();
    let mut kinds = HashSet::new();
    for e in &events {
        line.clear();
        write_original_json(e, &mut line);
        let back = decode(&line, None, &DecodeLimits::default()).unwrap_or_else(|err| {
            panic!("{err}: {}", String::from_utf8_lossy(&line));
        });
        assert_eq!(&back, e, "{}", String::from_utf8_lossy(&line));
        kinds.insert(e.kind());
    }
    assert_eq!(kinds.len(), 6, "all six kinds appear: {kinds:?}");
}

#[test]
fn follows_never_duplicate_an_edge_or_follow_oneself_and_unfollows_remove_existing_edges() {
    let mut edges = HashSet::new();
    let (mut follows, mut unfollows) = (0, 0);
    for e in stream(small(2), 100_000) {
        match e {
            Event::Follow(f) => {
                assert_ne!(f.follower, f.followed, "self-follow");
                assert!(
                    edges.insert((f.follower.clone(), f.followed.clone())),
                    "duplicate follow {f:?}"
                );
                follows += 1;
            }
            Event::Unfollow(f) => {
                assert!(
                    edges.remove(&(f.follower.clone(), f.followed.clone())),
                    "unfollow of a missing edge {f:?}"
                );
                unfollows += 1;
            }
            _ => {}
        }
    }
    assert!(unfollows > 1_000, "{unfollows} unfollows");
    assert!(follows > unfollows);
}

/// Follower counts after the bootstrap, largest first.
fn follower_counts(users: u32) -> Vec<usize> {
    let mut g = Generator::new(Config {
        users,
        ..Config::default()
    });
    let mut followers: HashMap<String, usize> = HashMap::new();
    while g.in_bootstrap() {
        match g.next_event() {
            Event::CreateUser(u) => {
                followers.insert(u.username.into_owned(), 0);
            }
            Event::Follow(f) => *followers.get_mut(&*f.followed).expect("created") += 1,
            other => panic!("the bootstrap holds only users and follows: {other:?}"),
        }
    }
    let mut counts: Vec<usize> = followers.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    counts
}

#[test]
fn follower_counts_are_heavy_tailed() {
    let counts = follower_counts(20_000);
    let (max, median) = (counts[0], counts[counts.len() / 2]);
    let total: usize = counts.iter().sum();
    assert!(
        (total as f64 / 20_000.0 - 20.0).abs() < 3.0,
        "mean follows {}",
        total as f64 / 20_000.0
    );
    assert!(max > 5_000, "max {max}");
    assert!((1..=12).contains(&median), "median {median}");
}

#[test]
fn follower_counts_are_heavy_tailed_at_100k_users() {
    let counts = follower_counts(100_000);
    eprintln!(
        "top {:?}, median {}, p90 {}",
        &counts[..12],
        counts[counts.len() / 2],
        counts[counts.len() / 10]
    );
    let (max, median) = (counts[0], counts[counts.len() / 2]);
    assert!(max > 10_000, "max {max}");
    assert!(
        counts[4] > 10_000,
        "several celebrities, not one: {:?}",
        &counts[..10]
    );
    assert!((1..=12).contains(&median), "median {median}");
}

#[test]
fn brand_frequencies_follow_the_weights() {
    let mut seen: HashMap<String, f64> = HashMap::new();
    let mut photos = 0.0;
    for e in stream(small(3), 300_000) {
        if let Event::PhotoUpload(p) = e {
            assert_eq!(p.brands.len(), 1, "a tag is one brand");
            *seen.entry(p.brands[0].to_string()).or_default() += 1.0;
            photos += 1.0;
        }
    }
    let total_weight: f64 = brands().iter().map(|b| b.weight).sum();
    let mut distance = 0.0;
    for b in brands() {
        let want = b.weight / total_weight;
        let got = seen.get(&b.name).copied().unwrap_or(0.0) / photos;
        distance += (want - got).abs() / 2.0;
    }
    assert_eq!(seen.len(), brands().len(), "every brand appears");
    assert!(distance < 0.02, "total variation distance {distance}");
    assert!(seen["Apple, Inc."] > 10.0 * seen["Dr. Martens"]);
}

#[test]
fn photos_are_placed_near_a_bundled_city() {
    let mut photos = 0;
    for e in stream(small(4), 50_000) {
        if let Event::PhotoUpload(p) = e {
            assert!(
                p.latitude.abs() <= 90.0 && p.longitude.abs() <= 180.0,
                "{p:?}"
            );
            assert!(near_a_city(p.latitude, p.longitude, 0.5), "{p:?}");
            assert!(
                p.photo_link.starts_with(&format!(
                    "https://photos.instabrand.example/{}/",
                    p.username
                )),
                "{p:?}"
            );
            photos += 1;
        }
    }
    assert!(photos > 5_000);
}

#[test]
fn no_owner_posts_two_photos_in_one_second() {
    // Few users and a fast clock, so the same owners keep coming up within a second.
    let mut g = Generator::new(Config {
        users: 50,
        rate: 5_000.0,
        ..small(5)
    });
    g.campaign("Nike", None, 2_000, 5).unwrap();
    let mut seen = HashSet::new();
    for _ in 0..g.bootstrap_len() + 50_000 {
        if let Event::PhotoUpload(p) = g.next_event() {
            assert_eq!(p.created % 1000, 0, "photos are stamped at whole seconds");
            assert!(seen.insert((p.username.clone(), p.created)), "{p:?}");
        }
    }
}

#[test]
fn engagements_reference_photos_already_emitted() {
    let mut photos: HashMap<(String, Millis), u32> = HashMap::new();
    let (mut likes, mut comments, mut repeats) = (0, 0, 0);
    let mut liked = HashSet::new();
    let mut last = Millis::MIN;
    for e in stream(small(6), 200_000) {
        assert!(e.time() >= last, "event time never runs backwards");
        last = e.time();
        match &e {
            Event::PhotoUpload(p) => {
                photos.insert((p.username.to_string(), p.created), 0);
            }
            Event::Like(x) | Event::Comment(x) => {
                let key = (x.owner.to_string(), x.photo);
                let n = photos
                    .get_mut(&key)
                    .unwrap_or_else(|| panic!("unknown photo {x:?}"));
                *n += 1;
                assert!(x.created >= x.photo, "{x:?}");
                assert_ne!(x.owner, x.actor, "{x:?}");
                if e.kind() == EventKind::Like {
                    likes += 1;
                    if !liked.insert((key, x.actor.to_string())) {
                        repeats += 1;
                    }
                } else {
                    comments += 1;
                }
            }
            _ => {}
        }
    }
    assert!(
        likes > 50_000 && comments > 20_000,
        "{likes} likes, {comments} comments"
    );
    assert!(repeats * 200 < likes, "{repeats} repeated likes of {likes}");
    // Engagement concentrates: the busiest tenth of photos draws most of it.
    let mut per_photo: Vec<u32> = photos.into_values().collect();
    per_photo.sort_unstable_by(|a, b| b.cmp(a));
    let top: u32 = per_photo[..per_photo.len() / 10].iter().sum();
    let all: u32 = per_photo.iter().sum();
    assert!(top * 2 > all, "top 10% of photos drew {top} of {all}");
}

#[test]
fn the_steady_state_mix_is_as_designed() {
    let mut g = Generator::new(small(7));
    skip_bootstrap(&mut g);
    let mut counts: BTreeMap<EventKind, f64> = BTreeMap::new();
    let n = 100_000;
    for _ in 0..n {
        *counts.entry(g.next_event().kind()).or_default() += 1.0;
    }
    for (kind, want) in [
        (EventKind::PhotoUpload, 0.20),
        (EventKind::Like, 0.45),
        (EventKind::Comment, 0.15),
        (EventKind::Follow, 0.12),
        (EventKind::Unfollow, 0.04),
        (EventKind::CreateUser, 0.04),
    ] {
        let got = counts[&kind] / f64::from(n);
        assert!((got - want).abs() < 0.02, "{kind}: {got} (want {want})");
    }
    assert_eq!(
        g.user_count(),
        2_000 + counts[&EventKind::CreateUser] as usize
    );
}

#[test]
fn usernames_are_unique_and_in_the_original_style() {
    let mut names = HashSet::new();
    for e in stream(small(8), 50_000) {
        if let Event::CreateUser(u) = e {
            let digits = u
                .username
                .trim_start_matches(|c: char| c.is_ascii_lowercase());
            assert!(
                !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()),
                "{}",
                u.username
            );
            assert!(u.full_name.contains(' '), "{}", u.full_name);
            assert!(names.insert(u.username.clone()), "duplicate {}", u.username);
        }
    }
    assert!(names.len() > 2_000);
}

#[test]
fn a_campaign_posts_the_brands_photos_at_the_requested_city() {
    let mut g = Generator::new(small(9));
    skip_bootstrap(&mut g);
    let start = g.clock_ms();
    g.campaign("dr. martens", Some("nairobi"), 300, 60).unwrap();
    let nairobi = find_city("Nairobi").unwrap();
    let mut campaign_photos = HashSet::new();
    let mut last_campaign_photo = start;
    let mut extra_likes = 0;
    // 120 s of event time at 200 events/s.
    for _ in 0..24_000 {
        match g.next_event() {
            Event::PhotoUpload(p)
                if p.brands[0] == "Dr. Martens"
                    && (p.latitude - nairobi.latitude).abs() < 0.5
                    && (p.longitude - nairobi.longitude).abs() < 0.5 =>
            {
                last_campaign_photo = p.created;
                campaign_photos.insert((p.username.into_owned(), p.created));
            }
            Event::Like(l) if campaign_photos.contains(&(l.owner.to_string(), l.photo)) => {
                extra_likes += 1;
            }
            _ => {}
        }
    }
    assert!(
        campaign_photos.len() >= 300,
        "{} photos",
        campaign_photos.len()
    );
    assert!(
        last_campaign_photo - start <= 62_000,
        "spread over the requested minute"
    );
    assert!(extra_likes > 300, "{extra_likes} likes on campaign photos");
}

#[test]
fn a_campaign_with_an_unknown_brand_or_city_is_refused() {
    let mut g = Generator::new(small(10));
    let err = g.campaign("Nkie", None, 10, 10).unwrap_err();
    assert_eq!(err, CampaignError::UnknownBrand("Nkie".into()));
    assert!(err.to_string().contains("unknown brand \"Nkie\""), "{err}");
    let err = g.campaign("Nike", Some("Atlantis"), 10, 10).unwrap_err();
    assert_eq!(err, CampaignError::UnknownCity("Atlantis".into()));
    assert!(err.to_string().contains("Atlantis"), "{err}");
    assert_eq!(
        g.campaign("Nike", None, 0, 10),
        Err(CampaignError::NoPhotos)
    );
    let err = g.campaign("Nike", None, 1_000_000, 10).unwrap_err();
    assert_eq!(err, CampaignError::TooManyPhotos(1_000_000));
    assert!(err.to_string().contains("limit of 100000"), "{err}");
    assert_eq!(g.campaign("Apple, Inc.", Some("São Paulo"), 1, 1), Ok(()));
}

#[test]
fn a_campaign_asked_for_during_the_bootstrap_starts_with_the_steady_state() {
    let mut g = Generator::new(small(11));
    g.campaign("Ferrari", Some("Tokyo"), 100, 10).unwrap();
    let mut in_bootstrap = 0;
    while g.in_bootstrap() {
        if let Event::PhotoUpload(_) = g.next_event() {
            in_bootstrap += 1;
        }
    }
    assert_eq!(in_bootstrap, 0, "the bootstrap holds no photos");
    let ferraris = (0..4_000)
        .filter(|_| matches!(g.next_event(), Event::PhotoUpload(p) if p.brands[0] == "Ferrari"))
        .count();
    assert!(ferraris >= 100, "{ferraris}");
}

#[test]
fn live_mode_stamps_the_given_time_and_never_goes_back() {
    let mut g = Generator::new(small(12));
    let t0 = 1_700_000_000_000;
    let bootstrap = g.bootstrap_len();
    for _ in 0..bootstrap {
        assert_eq!(g.next_event_at(t0).time(), t0);
    }
    assert!(!g.in_bootstrap());
    assert_eq!(g.events_emitted(), bootstrap);
    assert_eq!(
        g.next_event_at(t0 + 1_500).time(),
        t0 + 1_000,
        "whole seconds"
    );
    assert_eq!(
        g.next_event_at(t0).time(),
        t0 + 1_000,
        "an earlier now is ignored"
    );
    // File mode continues one step (5 ms at 200/s) after the live clock.
    assert_eq!(g.next_event().time(), t0 + 1_000);
    assert_eq!(g.events_emitted(), bootstrap + 3);
}

#[test]
fn file_mode_advances_by_one_over_rate() {
    let mut g = Generator::new(Config {
        rate: 2.0,
        ..small(13)
    });
    let start = Config::default().start_ms;
    let times: Vec<Millis> = (0..5).map(|_| g.next_event().time()).collect();
    assert_eq!(
        times,
        [start, start, start + 1_000, start + 1_000, start + 2_000]
    );
}

#[test]
fn a_tiny_network_without_initial_follows_still_streams_valid_events() {
    let mut g = Generator::new(Config {
        users: 0,
        mean_follows: 0.0,
        rate: f64::NAN,
        ..small(14)
    });
    assert_eq!(
        g.bootstrap_len(),
        2,
        "at least two users, no initial follows"
    );
    let mut line = Vec::new();
    for _ in 0..20_000 {
        let e = g.next_event();
        line.clear();
        write_original_json(&e, &mut line);
        assert_eq!(decode(&line, None, &DecodeLimits::default()).unwrap(), e);
    }
    assert!(g.user_count() > 2, "people join");
    assert_eq!(
        g.clock_ms() - Config::default().start_ms,
        (20_000 - 1) * 5,
        "an unusable rate falls back to 200/s"
    );
}

#[test]
fn a_long_run_stops_growing_so_memory_stays_flat() {
    let mut g = Generator::new(Config {
        users: 300,
        mean_follows: 10.0,
        ..small(15)
    });
    skip_bootstrap(&mut g);
    let edges = g.follow_count();
    for _ in 0..300_000 {
        g.next_event();
    }
    assert_eq!(
        g.user_count(),
        900,
        "joins stop at three times the bootstrap"
    );
    // Hovering at the cap: a random walk with a downward drift above it.
    let now = g.follow_count();
    assert!(
        now <= edges * 3 + 50 && now > edges * 2,
        "{now} edges from {edges}"
    );
}

/// Share of the steady state's uploads, and of its likes and comments received, that
/// go to the 1 % most followed accounts (by followers after the bootstrap).
fn top_percent_shares(shape: Shape) -> (f64, f64) {
    let mut g = Generator::new(Config { shape, ..small(3) });
    let mut followers: HashMap<String, usize> = HashMap::new();
    while g.in_bootstrap() {
        if let Event::Follow(f) = g.next_event() {
            *followers.entry(f.followed.into_owned()).or_default() += 1;
        }
    }
    let mut ranked: Vec<_> = followers.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let top: HashSet<String> = ranked.into_iter().take(20).map(|(u, _)| u).collect();
    let (mut uploads, mut top_uploads, mut engaged, mut top_engaged) = (0, 0, 0, 0);
    for _ in 0..100_000 {
        match g.next_event() {
            Event::PhotoUpload(p) => {
                uploads += 1;
                top_uploads += usize::from(top.contains(p.username.as_ref()));
            }
            Event::Like(e) | Event::Comment(e) => {
                engaged += 1;
                top_engaged += usize::from(top.contains(e.owner.as_ref()));
            }
            _ => {}
        }
    }
    (
        top_uploads as f64 / uploads as f64,
        top_engaged as f64 / engaged as f64,
    )
}

#[test]
fn in_the_popular_shape_the_most_followed_accounts_post_most_and_draw_most_engagement() {
    let (spread_uploads, spread_engaged) = top_percent_shares(Shape::Activity);
    let (popular_uploads, popular_engaged) = top_percent_shares(Shape::Popular);
    // The activity shape spreads uploads nearly evenly (popularity^0.35): the top 1 %
    // post about 1.5 %. Drawn by popularity they post ten times that (Zipf 0.9 gives
    // them a third of all draws; one photo per account per second caps the busiest).
    assert!(spread_uploads < 0.03, "activity shape: {spread_uploads}");
    assert!(popular_uploads > 0.1, "popular shape: {popular_uploads}");
    // Engagement: by recency alone in the popular shape, so it goes where uploads go;
    // by reach (followers^0.8) in the activity shape, so it concentrates anyway.
    assert!(
        (popular_engaged - popular_uploads).abs() < 0.03,
        "popular shape: {popular_engaged} engaged vs {popular_uploads} uploads"
    );
    assert!(spread_engaged > 0.1, "activity shape: {spread_engaged}");
}

#[test]
fn the_popular_shape_is_deterministic_per_seed_and_differs_from_the_default() {
    let run = |shape| bytes(&stream(Config { shape, ..small(4) }, 20_000));
    let popular = run(Shape::Popular);
    assert_eq!(popular, run(Shape::Popular));
    assert_ne!(popular, run(Shape::Activity));
}

#[test]
fn shapes_are_named_on_the_command_line() {
    assert_eq!("popular".parse(), Ok(Shape::Popular));
    assert_eq!("uniform".parse(), Ok(Shape::Activity));
    assert_eq!(Shape::Popular.to_string().parse(), Ok(Shape::Popular));
    assert!("zipf".parse::<Shape>().is_err());
}
