//! librdkafka's log lines and client errors, into `tracing`: one context for the
//! clients that need nothing else (admin, producers).

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use tracing::{debug, error, info, warn};

pub(super) struct LoggingContext {
    client: &'static str,
}

impl LoggingContext {
    pub(super) fn new(client: &'static str) -> Self {
        LoggingContext { client }
    }
}

/// Forwards a librdkafka log line at the matching level.
pub(crate) fn log(client: &str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
            error!(client, facility, "librdkafka: {message}")
        }
        // librdkafka logs every failed connection attempt as an error, and recovers
        // from them by itself: to us they are warnings (the health view says more).
        RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning => {
            warn!(client, facility, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            info!(client, facility, "librdkafka: {message}")
        }
        RDKafkaLogLevel::Debug => debug!(client, facility, "librdkafka: {message}"),
    }
}

impl ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log(self.client, level, facility, message);
    }

    // A broker that is down is reported here again and again while librdkafka
    // reconnects on its own: a warning, not an error of ours.
    fn error(&self, error: KafkaError, reason: &str) {
        warn!(client = self.client, %error, "Kafka client: {reason}");
    }
}
