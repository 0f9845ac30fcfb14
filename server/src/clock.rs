//! The wall clock in the stream's unit (milliseconds since the Unix epoch). Event time
//! comes from the events; the wall clock only names files, paces sources and bounds how
//! far ahead of it an event may claim to be.

use std::time::{SystemTime, UNIX_EPOCH};

use instabrand_shared::Millis;

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn wall_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}
