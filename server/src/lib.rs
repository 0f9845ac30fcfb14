//! The Instabrand server as a library: the processor (a pure, deterministic state
//! machine over the six events), the sources that feed it (embedded generator, Kafka,
//! HTTP ingest), the dead-letter store, the live hub that turns its deltas into
//! WebSocket frames, and the axum application serving REST, WebSocket and the
//! dashboard. `main.rs` only parses the command line and calls in here.

pub mod align;
pub mod archive;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deadletter;
pub mod hll;
pub mod hub;
pub mod intake;
pub mod kafka;
pub mod partition_bench;
pub mod pipeline;
pub mod processor;
pub mod rebuild;
pub mod sources;
pub mod startup;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod web;

pub use config::Config;
pub use startup::Application;
