//! A deterministic, seeded generator of a believable social network's event stream: the
//! six events of the original 2017 system (create-user, photo-upload, follow, unfollow,
//! like, comment) as [`instabrand_shared::Event`] values. It first emits a bootstrap
//! (every user, then the initial follow graph, whose follower counts are heavy-tailed
//! like a real network's), then a steady mix of uploads and engagement that favours
//! recent photos and popular accounts, with brands drawn by the bundled weights and
//! photos placed at real cities. Campaign bursts can be injected on demand. Its
//! [`Shape`] says who posts: everyone at a rate of their own (the default), or mostly
//! the popular accounts, drawn by the same popularity as who gets followed. The same
//! [`Config`] always yields the same stream, byte for byte, and
//! [`write_original_json`] writes it in the original JSON shape fast enough for files
//! of millions of events.

mod data;
mod generator;
mod graph;
mod json;
mod recent;
mod words;

pub use data::{Brand, City, brands, cities, find_brand, find_city};
pub use generator::{CampaignError, Config, Generator, Shape, UnknownShape};
pub use json::write_original_json;
