//! Wire types shared by the Instabrand server and its WebAssembly dashboard: the six
//! events of the original 2017 system with their exact JSON contract ([`event`]), the
//! REST response bodies ([`api`]) and the WebSocket messages ([`ws`]). Only serde lives
//! here: no I/O, no tokio, no web-sys, so both sides compile it.

pub mod api;
pub mod event;
pub mod time;
pub mod ws;

pub use event::{DecodeError, DecodeLimits, Event, EventKind, Reason, decode};
pub use time::Millis;
