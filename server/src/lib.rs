//! The Instabrand server as a library: the processor (a pure, deterministic state
//! machine over the six events), the sources that feed it (embedded generator, HTTP
//! ingest), the dead-letter store, the live hub that turns its deltas into WebSocket
//! frames, and the axum application serving REST, WebSocket and the dashboard.
//! `main.rs` only parses the command line and calls in here.

pub mod hll;
pub mod processor;
