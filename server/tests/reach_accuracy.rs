//! Unique reach by HyperLogLog against the exact distinct count, on a generated network
//! of 100,000 users: for the busiest brands and every window, the estimate must stay
//! within 2 % of the exact number of distinct followers of the posters and engagers,
//! taken as they were when each event was applied.

use std::collections::{HashMap, HashSet};

use instabrand_generator::{Config as GenConfig, Generator};
use instabrand_server::processor::{Processor, ProcessorConfig};
use instabrand_shared::api::Window;
use instabrand_shared::time::{MS_PER_HOUR, MS_PER_MIN};
use instabrand_shared::{Event, Millis};

const USERS: u32 = 100_000;
const STEADY_EVENTS: u64 = 600_000;

fn generator() -> Generator {
    Generator::new(GenConfig {
        seed: 7,
        users: USERS,
        mean_follows: 12.0,
        rate: 400.0,
        ..GenConfig::default()
    })
}

/// Whether an event at `t` falls in window `w` ending at `clock` (same rules as the
/// processor's: whole minutes for 5m and 1h, whole hours for 24h).
fn in_window(w: Window, t: Millis, clock: Millis) -> bool {
    let (m, h) = (clock.div_euclid(MS_PER_MIN), clock.div_euclid(MS_PER_HOUR));
    match w {
        Window::M5 => t.div_euclid(MS_PER_MIN) >= m - 4,
        Window::H1 => t.div_euclid(MS_PER_MIN) >= m - 59,
        Window::H24 => t.div_euclid(MS_PER_HOUR) >= h - 23,
        Window::All => true,
    }
}

#[test]
fn reach_estimates_stay_within_two_percent_of_the_exact_count() {
    // Pass 1: where does the stream's clock end?
    let mut g = generator();
    let total = g.bootstrap_len() + STEADY_EVENTS;
    let mut last = 0;
    for _ in 0..total {
        last = g.next_event().time();
    }
    let mut p = Processor::new(ProcessorConfig::default());
    // Pass 2: the same stream into the processor and into exact sets (bitsets by user).
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut id = |name: &str| {
        let n = ids.len();
        *ids.entry(name.to_string()).or_insert(n)
    };
    let mut followers: Vec<HashSet<usize>> = Vec::new();
    let mut photo_brands: HashMap<(usize, Millis), Vec<String>> = HashMap::new();
    let mut exact: HashMap<(String, Window), Bits> = HashMap::new();
    let mut g = generator();
    let clock = last - p.config().allowed_lateness_secs * 1000;
    for _ in 0..total {
        let ev = g.next_event();
        p.apply(&ev, b"");
        let (who, brands, t) = match &ev {
            Event::Follow(e) | Event::Unfollow(e) => {
                let (a, b) = (id(&e.followed), id(&e.follower));
                if followers.len() <= a {
                    followers.resize_with(a + 1, HashSet::new);
                }
                if matches!(ev, Event::Follow(_)) {
                    followers[a].insert(b);
                } else {
                    followers[a].remove(&b);
                }
                continue;
            }
            Event::PhotoUpload(ph) => {
                let b: Vec<String> = ph.brands.iter().map(|b| b.to_string()).collect();
                let owner = id(&ph.username);
                photo_brands.insert((owner, ph.created), b.clone());
                (owner, b, ph.created)
            }
            Event::Like(e) | Event::Comment(e) => {
                match photo_brands.get(&(id(&e.owner), e.photo)) {
                    Some(b) => (id(&e.actor), b.clone(), e.created),
                    None => continue,
                }
            }
            Event::CreateUser(_) => continue,
        };
        let Some(fs) = followers.get(who) else {
            continue;
        };
        for b in brands {
            for w in Window::ALL {
                if in_window(w, t, clock) {
                    let bits = exact.entry((b.clone(), w)).or_default();
                    fs.iter().for_each(|&f| bits.insert(f));
                }
            }
        }
    }
    let lb = p.leaderboard(Window::All);
    let busiest: Vec<String> = lb.rows.iter().take(6).map(|r| r.brand.clone()).collect();
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for b in &busiest {
        for w in Window::ALL {
            let truth = exact.get(&(b.clone(), w)).map_or(0, Bits::count) as f64;
            let est = p.brand_metrics(p.brand_id(b).unwrap(), w, false).reach as f64;
            if truth < 1000.0 {
                continue; // too small to say anything about a percentage
            }
            let err = (est - truth).abs() / truth;
            worst = worst.max(err);
            println!(
                "{b:>14} {w:>3}: exact {truth:>7} estimate {est:>7} error {:.3}%",
                err * 100.0
            );
            assert!(err <= 0.02, "{b} {w}: estimate {est} vs exact {truth}");
            checked += 1;
        }
    }
    println!(
        "worst error {:.3}% over {checked} brand-windows",
        worst * 100.0
    );
    assert!(
        checked >= 12,
        "enough brand-windows with a meaningful reach: {checked}"
    );
}

/// A growable bitset of user ids.
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn insert(&mut self, i: usize) {
        if self.0.len() <= i / 64 {
            self.0.resize(i / 64 + 1, 0);
        }
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}
