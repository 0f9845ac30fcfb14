//! The benchmark's yardstick: a bare rdkafka consumer that reads the event topics in a
//! fresh consumer group and only counts messages, so `scripts/bench-kafka.sh` can put
//! the server's consume-and-apply rate next to what the broker and librdkafka deliver
//! at most on the same machine, from the same topics, in the same run.
//!
//! `cargo run --release -p instabrand-server --example bare_consumer -- BROKERS GROUP EXPECTED`
//! prints one JSON line: `{"messages": N, "seconds": S, "per_sec": R, "ends": {...}}`,
//! timed from the first message to the EXPECTED-th (joining the group is not counted);
//! `ends` maps each `topic/partition` to its last offset read + 1, which the benchmark
//! uses to tell when the server has committed everything.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

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
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    consumer.subscribe(&TOPICS).expect("subscribe");
    let mut count = 0u64;
    // Last offset + 1 per topic and partition (up to 64 partitions): a few
    // nanoseconds a message, so the yardstick stays a bare count.
    let mut ends = [[0i64; 64]; TOPICS.len()];
    let mut first = None;
    let give_up = Instant::now() + Duration::from_secs(300);
    while count < expected && Instant::now() < give_up {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                count += 1;
                if let (Some(t), Ok(p)) = (
                    TOPICS.iter().position(|t| *t == m.topic()),
                    usize::try_from(m.partition()),
                ) && p < 64
                {
                    ends[t][p] = ends[t][p].max(m.offset() + 1);
                }
            }
            Some(Err(e)) => eprintln!("bare_consumer: {e}"),
            None => {}
        }
    }
    let seconds = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let ends: BTreeMap<String, i64> = TOPICS
        .iter()
        .enumerate()
        .flat_map(|(t, name)| (0..64).map(move |p| (t, name, p)))
        .filter(|&(t, _, p)| ends[t][p] > 0)
        .map(|(t, name, p)| (format!("{name}/{p}"), ends[t][p]))
        .collect();
    let ends: Vec<String> = ends.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    println!(
        "{{\"messages\": {count}, \"seconds\": {seconds:.3}, \"per_sec\": {:.0}, \"ends\": {{{}}}}}",
        count as f64 / seconds.max(1e-9),
        ends.join(", ")
    );
}
