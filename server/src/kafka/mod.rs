//! Kafka: settings and clients shared by the consumer-group source
//! (`sources/kafka.rs`), the dead-letter topic (`dead_letters`), the generator's producer behind
//! `instabrand generate --kafka` (`producer`), and topic creation (`admin`).
//!
//! The topic layout is the original system's: one topic per event type, named after
//! the event (`create-user`, `photo-upload`, `follow`, `unfollow`, `like`, `comment`),
//! keyed by username; or, by option, one combined topic whose records carry their
//! `event` field. Every client here is built from [`KafkaConfig`] by [`client_config`],
//! so extra librdkafka properties (security, tuning) apply to all of them.

mod admin;
mod dead_letters;
pub(crate) mod logging;
mod producer;

use std::collections::BTreeMap;
use std::time::Duration;

use instabrand_shared::EventKind;
use rdkafka::config::ClientConfig;
use serde::{Deserialize, Serialize};

pub use admin::ensure_topics;
pub use dead_letters::{KafkaDeadLetterSink, dead_letter_sink};
pub use producer::produce;

/// Kafka settings (`[kafka]` in the TOML file, `INSTABRAND_KAFKA__*`, `--kafka`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`; set means Kafka mode.
    pub brokers: Option<String>,
    pub group_id: String,
    /// Read one combined topic instead of the six per-event topics.
    pub combined_topic: Option<String>,
    pub dead_letter_topic: String,
    /// Create missing topics at start.
    pub create_topics: bool,
    /// Partitions of the topics we create.
    pub partitions: i32,
    /// Replicas of the topics we create (1 suits a single test broker).
    pub replication_factor: i32,
    /// A partly filled batch waits at most this long while another one is applied.
    pub flush_interval_ms: u64,
    /// Applied offsets are committed this often (a crash replays at most this much).
    pub commit_interval_ms: u64,
    /// How long this instance may hold only part of its topics' partitions before that
    /// counts as a split group (docs/scale-out.md, "No silent split"): longer than the
    /// group's session timeout (librdkafka's `session.timeout.ms`, 45 s), so a restart
    /// whose killed predecessor is still listed is not taken for another instance.
    pub split_grace_ms: u64,
    /// librdkafka's `fetch.wait.max.ms`. Low, because tansu 0.6 holds a fetch for the
    /// whole wait even when records arrive meanwhile: at 100 ms the produce-to-screen
    /// p50 was 210 ms at 10,000 events/s, at 10 ms it was 72 ms. A Kafka broker answers
    /// as soon as data arrives, so this only adds idle polls there.
    pub fetch_wait_max_ms: u64,
    /// librdkafka's `fetch.queue.backoff.ms`: how long a partition whose prefetch queue
    /// is full waits before fetching again. Its 1 s default starved our backlog reads.
    pub fetch_queue_backoff_ms: u64,
    /// Batches handed to the pipeline and not yet applied, at most. More than one lets
    /// the next batch be read while the previous one is applied.
    pub batches_in_flight: usize,
    /// How long a dead-letter write waits for the broker's acknowledgement before it
    /// reports a failure (librdkafka keeps retrying the records after that).
    pub dead_letter_flush_timeout_ms: u64,
    /// Extra librdkafka properties for every client (consumer, producers, admin),
    /// e.g. `"security.protocol" = "SASL_SSL"`. They override ours.
    pub client: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: None,
            group_id: "instabrand".into(),
            combined_topic: None,
            dead_letter_topic: "instabrand-dead-letters".into(),
            create_topics: true,
            partitions: 3,
            replication_factor: 1,
            flush_interval_ms: 20,
            commit_interval_ms: 500,
            split_grace_ms: 60_000,
            fetch_wait_max_ms: 10,
            fetch_queue_backoff_ms: 10,
            batches_in_flight: 4,
            dead_letter_flush_timeout_ms: 5_000,
            client: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    pub(crate) fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms.max(1))
    }

    pub(crate) fn split_grace(&self) -> Duration {
        Duration::from_millis(self.split_grace_ms)
    }

    pub(crate) fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms.max(1))
    }
}

/// Why a Kafka client could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("no Kafka brokers configured (kafka.brokers / --kafka)")]
    NoBrokers,
    #[error("creating the Kafka {what}: {source}")]
    Client {
        what: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("creating topics: {0}")]
    CreateTopics(String),
    /// Another instance consumes with the same group id; see `sources/kafka.rs`.
    #[error("{0}")]
    SharedGroup(String),
    #[error("checking the consumer group: {0}")]
    Guard(String),
}

/// The topics the consumer reads, each with the event type its name implies.
pub fn source_topics(cfg: &KafkaConfig) -> Vec<(String, Option<EventKind>)> {
    match &cfg.combined_topic {
        Some(t) => vec![(t.clone(), None)],
        None => EventKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), Some(*k)))
            .collect(),
    }
}

/// The topic an event of `kind` is produced to.
pub fn topic_for(cfg: &KafkaConfig, kind: EventKind) -> &str {
    cfg.combined_topic.as_deref().unwrap_or(kind.as_str())
}

/// Properties shared by every client, then the user's own on top.
pub(crate) fn client_config(cfg: &KafkaConfig) -> Result<ClientConfig, KafkaError> {
    let brokers = cfg.brokers.as_deref().ok_or(KafkaError::NoBrokers)?;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", "instabrand")
        // librdkafka logs through our `ClientContext::log`, which goes to tracing.
        .set("log.connection.close", "false");
    for (k, v) in &cfg.client {
        c.set(k, v);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_layout_is_one_topic_per_event_named_after_it() {
        let cfg = KafkaConfig::default();
        let topics = source_topics(&cfg);
        let names: Vec<_> = topics.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "create-user",
                "photo-upload",
                "follow",
                "unfollow",
                "like",
                "comment"
            ]
        );
        assert!(
            topics
                .iter()
                .all(|(t, k)| k.map(|k| k.as_str()) == Some(t.as_str()))
        );
        assert_eq!(topic_for(&cfg, EventKind::Like), "like");
    }

    #[test]
    fn a_combined_topic_carries_every_event_without_a_hint() {
        let cfg = KafkaConfig {
            combined_topic: Some("events".into()),
            ..KafkaConfig::default()
        };
        assert_eq!(source_topics(&cfg), [("events".to_string(), None)]);
        assert_eq!(topic_for(&cfg, EventKind::CreateUser), "events");
    }

    #[test]
    fn user_properties_override_ours() {
        let mut cfg = KafkaConfig {
            brokers: Some("127.0.0.1:9092".into()),
            ..KafkaConfig::default()
        };
        cfg.client.insert("client.id".into(), "mine".into());
        let c = client_config(&cfg).unwrap();
        assert_eq!(c.get("client.id"), Some("mine"));
        assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert!(matches!(
            client_config(&KafkaConfig::default()),
            Err(KafkaError::NoBrokers)
        ));
    }
}

/// An idempotent producer (no duplicates or reordering on retry; 5 ms linger) from
/// `c`, with `client` (the user's `kafka.client` properties) applied last, counting
/// its deliveries under `name`.
pub(crate) fn counting_producer(
    mut c: rdkafka::ClientConfig,
    client: &BTreeMap<String, String>,
    name: &'static str,
) -> Result<
    (
        rdkafka::producer::BaseProducer<CountingContext>,
        std::sync::Arc<Deliveries>,
    ),
    KafkaError,
> {
    c.set("enable.idempotence", "true").set("linger.ms", "5");
    for (k, v) in client {
        c.set(k, v);
    }
    let counts = std::sync::Arc::new(Deliveries::default());
    let producer = c
        .create_with_context(CountingContext {
            name,
            counts: counts.clone(),
        })
        .map_err(|source| KafkaError::Client { what: name, source })?;
    Ok((producer, counts))
}

/// What a producer's broker acknowledged and refused.
#[derive(Default)]
pub(crate) struct Deliveries {
    pub delivered: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

/// A producer's callbacks: librdkafka's log and errors under the producer's name, and
/// deliveries counted (the first refusal logged; one line per refusal would flood the
/// log when the broker goes).
pub(crate) struct CountingContext {
    pub name: &'static str,
    pub counts: std::sync::Arc<Deliveries>,
}

impl rdkafka::client::ClientContext for CountingContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        logging::log(self.name, level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(%error, "{}: {reason}", self.name);
    }
}

impl rdkafka::producer::ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        use std::sync::atomic::Ordering;
        match result {
            Ok(_) => {
                self.counts.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                use rdkafka::message::Message;
                if self.counts.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(error = %e, topic = m.topic(), "{}: a record was not delivered (further failures are counted)", self.name);
                }
            }
        }
    }
}
