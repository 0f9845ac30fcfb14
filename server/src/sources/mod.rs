//! Sources that feed the pipeline. The embedded generator lives here; Kafka has its
//! own module; HTTP ingest is a route in `web`.

pub mod file;
pub mod generator;
pub mod replay;
