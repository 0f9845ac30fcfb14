//! Topic creation. Our broker for tests and demos (tansu) does not auto-create topics,
//! and neither should a production cluster, so the server and the generator create the
//! topics they use when `kafka.create_topics` is on; topics that already exist are
//! left as they are.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use tracing::{info, instrument};

use super::{KafkaConfig, KafkaError, client_config, logging::LoggingContext};

/// How long one attempt may wait for the broker: short, because the consumer retries.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates those of `topics` that do not exist yet, with `cfg.partitions` partitions.
#[instrument(skip(cfg))]
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[&str]) -> Result<(), KafkaError> {
    let admin: AdminClient<LoggingContext> = client_config(cfg)?
        .create_with_context(LoggingContext::new("admin"))
        .map_err(|source| KafkaError::Client {
            what: "admin client",
            source,
        })?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                cfg.partitions.max(1),
                TopicReplication::Fixed(cfg.replication_factor.max(1)),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(|e| KafkaError::CreateTopics(e.to_string()))?;
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(t) => info!(topic = %t, partitions = cfg.partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => failed.push(format!("{t}: {code}")),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(KafkaError::CreateTopics(failed.join("; ")))
    }
}
