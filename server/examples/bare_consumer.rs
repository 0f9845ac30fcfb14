//! The benchmark's yardstick: a bare rdkafka consumer that reads the event topics in a
//! fresh consumer group and only counts messages, so `scripts/bench-kafka.sh` can put
//! the server's consume-and-apply rate next to what the broker and librdkafka deliver
//! at most on the same machine, from the same topics, in the same run.
//!
//! `cargo run --release -p instabrand-server --example bare_consumer -- BROKERS GROUP EXPECTED`
//! prints one JSON line: `{"messages": N, "seconds": S, "per_sec": R}`, timed from the
//! first message to the EXPECTED-th (joining the group is not counted).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const TOPICS: [&str; 6] = [
    "create-user",
    "photo-upload",
    "follow",
    "unfollow",
    "like",
    "comment",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, group, expected] = &args[..] else {
        eprintln!("usage: bare_consumer BROKERS GROUP EXPECTED");
        std::process::exit(2);
    };
    let expected: u64 = expected.parse().expect("EXPECTED is a number");
    // The server's consumer settings that matter for throughput, nothing else.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    consumer.subscribe(&TOPICS).expect("subscribe");
    let mut count = 0u64;
    let mut first = None;
    let give_up = Instant::now() + Duration::from_secs(300);
    while count < expected && Instant::now() < give_up {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                first.get_or_insert_with(Instant::now);
                count += 1;
            }
            Some(Err(e)) => eprintln!("bare_consumer: {e}"),
            None => {}
        }
    }
    let seconds = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    println!(
        "{{\"messages\": {count}, \"seconds\": {seconds:.3}, \"per_sec\": {:.0}}}",
        count as f64 / seconds.max(1e-9)
    );
}
