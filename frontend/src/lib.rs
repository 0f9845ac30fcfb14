//! The Instabrand dashboard: a Leptos client-side app, compiled to WebAssembly and
//! served by the `instabrand` server, that shows brand metrics, the live upload map,
//! user feeds and pipeline health as they change, and runs unattended as a wall screen.
//!
//! The pure parts — TopoJSON decoding and the map projection ([`geo`]), number
//! formatting ([`format`]), applying WebSocket snapshots and deltas ([`live`]), routes
//! ([`route`]), brand colours ([`palette`]) and the sparkline — have no browser
//! dependency and are tested on the host with `cargo test -p instabrand-frontend`.
//! Everything that touches the DOM (the app shell [`app`], the state it shares with
//! pages and components [`context`], the REST client [`api`] and the single WebSocket
//! service [`ws`]) compiles for wasm32 only.

pub mod charts;
pub mod format;
pub mod geo;
pub mod live;
pub mod palette;
pub mod playlist;
pub mod range;
pub mod route;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod components;
#[cfg(target_arch = "wasm32")]
pub mod context;
#[cfg(target_arch = "wasm32")]
pub mod dom;
#[cfg(target_arch = "wasm32")]
pub mod pages;
#[cfg(target_arch = "wasm32")]
pub mod ws;
