//! The dead-letter topic: records that could not be applied, produced with their
//! original bytes as the payload (so they can be fixed and replayed as they were) and
//! why in the headers:
//!
//! | header   | value                                               |
//! | -------- | --------------------------------------------------- |
//! | `reason` | the reason code (`not_json`, `unknown_event`, …)    |
//! | `detail` | the decoder's or processor's explanation            |
//! | `source` | where it came from, e.g. `kafka:like/0@42`          |
//! | `at_ms`  | when it was dead-lettered (Unix ms, decimal)        |
//!
//! The sink runs on the pipeline's thread, which holds the batch's acknowledgement
//! (and so the consumer's commit) until `write` returns: a batch's dead letters are
//! acknowledged by the broker before the offsets that produced them are committed.
//! `write` waits at most `kafka.dead_letter_flush_timeout_ms`; past that it reports a
//! failure (counted in the health view), and librdkafka keeps retrying the records in
//! the background rather than dropping them.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::{
    CountingContext, Deliveries, KafkaConfig, KafkaError, client_config, counting_producer,
};
use crate::deadletter::{DeadLetter, DeadLetterSink};

/// Header names, for readers of the topic.
pub const REASON_HEADER: &str = "reason";
pub const DETAIL_HEADER: &str = "detail";
pub const SOURCE_HEADER: &str = "source";
pub const AT_HEADER: &str = "at_ms";

/// The headers a dead letter carries.
pub fn dead_letter_headers(d: &DeadLetter) -> OwnedHeaders {
    let at = d.at_ms.to_string();
    OwnedHeaders::new_with_capacity(4)
        .insert(Header {
            key: REASON_HEADER,
            value: Some(d.reason.code()),
        })
        .insert(Header {
            key: DETAIL_HEADER,
            value: Some(d.detail.as_str()),
        })
        .insert(Header {
            key: SOURCE_HEADER,
            value: Some(d.source.as_str()),
        })
        .insert(Header {
            key: AT_HEADER,
            value: Some(at.as_str()),
        })
}

/// Produces dead letters to `kafka.dead_letter_topic`.
pub struct KafkaDeadLetterSink {
    producer: BaseProducer<CountingContext>,
    topic: String,
    flush_timeout: Duration,
    counts: Arc<Deliveries>,
}

/// The dead-letter topic as a sink. Creating it does not contact the broker, so the
/// server starts while the broker is down; the consumer creates the topic.
pub fn dead_letter_sink(cfg: &KafkaConfig) -> Result<Box<dyn DeadLetterSink>, KafkaError> {
    Ok(Box::new(KafkaDeadLetterSink::new(cfg)?))
}

impl KafkaDeadLetterSink {
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let mut c = client_config(cfg)?;
        // Idempotence keeps retries from duplicating or reordering dead letters.
        // Retrying for ever (0) rather than the default 5 minutes: a record is only
        // given up when the process stops; the bounded queue keeps memory in check.
        c.set("message.timeout.ms", "0");
        let (producer, counts) = counting_producer(c, &cfg.client, "dead-letter producer")?;
        Ok(KafkaDeadLetterSink {
            producer,
            topic: cfg.dead_letter_topic.clone(),
            flush_timeout: Duration::from_millis(cfg.dead_letter_flush_timeout_ms),
            counts,
        })
    }
}

impl DeadLetterSink for KafkaDeadLetterSink {
    fn write(&mut self, batch: &[DeadLetter]) -> io::Result<()> {
        let deadline = Instant::now() + self.flush_timeout;
        let failed_before = self.counts.failed.load(Ordering::Relaxed);
        for d in batch {
            let mut record = BaseRecord::<(), [u8]>::to(&self.topic)
                .payload(&d.raw[..])
                .headers(dead_letter_headers(d));
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                        if Instant::now() < deadline =>
                    {
                        // The local queue is full (the broker is slow or away): serve
                        // delivery reports to make room, then try again.
                        self.producer.poll(Duration::from_millis(50));
                        record = r;
                    }
                    Err((e, _)) => {
                        return Err(io::Error::other(format!(
                            "producing a dead letter to {}: {e}",
                            self.topic
                        )));
                    }
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.producer.flush(left).map_err(|e| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} dead letters not yet acknowledged by the broker after {:?} ({e}); still retrying",
                    self.producer.in_flight_count(),
                    self.flush_timeout
                ),
            )
        })?;
        let failed = self.counts.failed.load(Ordering::Relaxed) - failed_before;
        if failed > 0 {
            return Err(io::Error::other(format!(
                "the broker refused {failed} dead letters for {}",
                self.topic
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use instabrand_shared::Reason;
    use rdkafka::message::Headers;

    use super::*;

    #[test]
    fn a_dead_letter_carries_its_reason_detail_source_and_time_in_headers() {
        let d = DeadLetter {
            reason: Reason::NotJson,
            detail: "expected value at line 1 column 1".into(),
            source: "kafka:like/2@42".into(),
            at_ms: 1_497_225_600_000,
            raw: Bytes::from_static(b"\xff not json"),
        };
        let h = dead_letter_headers(&d);
        let got: Vec<(&str, &[u8])> = h.iter().map(|h| (h.key, h.value.unwrap())).collect();
        assert_eq!(
            got,
            [
                ("reason", &b"not_json"[..]),
                ("detail", b"expected value at line 1 column 1"),
                ("source", b"kafka:like/2@42"),
                ("at_ms", b"1497225600000"),
            ]
        );
    }

    #[test]
    fn a_sink_is_made_without_reaching_the_broker() {
        // Nothing listens on port 1: making the sink must still succeed, so the server
        // starts while the broker is down.
        let cfg = KafkaConfig {
            brokers: Some("127.0.0.1:1".into()),
            ..KafkaConfig::default()
        };
        assert!(dead_letter_sink(&cfg).is_ok());
    }
}
