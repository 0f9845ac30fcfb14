//! Prints a stretch of the stream as NDJSON, to eyeball it or to pipe into a tool.
//!
//! `cargo run -p instabrand-generator --example sample [users] [skip] [count]` skips
//! `skip` steady-state events after the bootstrap, then prints `count`.

use std::io::Write;

use instabrand_generator::{Config, Generator, write_original_json};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let users = args.next().unwrap_or(2_000) as u32;
    let skip = args.next().unwrap_or(10_000);
    let count = args.next().unwrap_or(40);
    let mut g = Generator::new(Config {
        users,
        ..Config::default()
    });
    for _ in 0..g.bootstrap_len() + skip {
        g.next_event();
    }
    let mut out = Vec::new();
    for _ in 0..count {
        write_original_json(&g.next_event(), &mut out);
    }
    std::io::stdout().write_all(&out).expect("stdout");
}
