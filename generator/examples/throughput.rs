//! Measures generation speed: building a network, emitting its bootstrap, and the steady
//! state with each event written as original JSON.
//!
//! `cargo run --release -p instabrand-generator --example throughput [users] [events]`

use std::time::Instant;

use instabrand_generator::{Config, Generator, write_original_json};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let users = args.next().unwrap_or(100_000) as u32;
    let events = args.next().unwrap_or(5_000_000);

    let t = Instant::now();
    let mut g = Generator::new(Config {
        users,
        ..Config::default()
    });
    let built = t.elapsed();

    let mut out = Vec::with_capacity(1 << 20);
    let mut bytes = 0;
    let t = Instant::now();
    while g.in_bootstrap() {
        write_original_json(&g.next_event(), &mut out);
        if out.len() > 1 << 19 {
            bytes += out.len();
            out.clear();
        }
    }
    let bootstrap = t.elapsed();
    println!(
        "{users} users: network built in {built:.2?}, bootstrap of {} events written in {bootstrap:.2?}",
        g.bootstrap_len()
    );

    let t = Instant::now();
    for _ in 0..events {
        write_original_json(&g.next_event(), &mut out);
        if out.len() > 1 << 19 {
            bytes += out.len();
            out.clear();
        }
    }
    let steady = t.elapsed();
    bytes += out.len();
    println!(
        "steady state: {events} events in {steady:.2?} = {:.0} events/s ({} MB of NDJSON in all)",
        events as f64 / steady.as_secs_f64(),
        bytes >> 20
    );
}
