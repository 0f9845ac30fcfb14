//! `GET /api/build`: an id of what this server is serving, so a wall screen left
//! running for days can notice a new build and reload itself.
//!
//! The id changes when either half of a deployment changes: the dashboard (Trunk
//! writes a new `index.html` naming the new hashed wasm and script, so its bytes are
//! read on each request and a `dist/` rebuilt under a running server counts) or the
//! server binary (its modification time, read once at start, since a restarted server
//! with the same files serves the same build).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::State;
use instabrand_shared::api::BuildInfo;

use super::AppState;

pub async fn build(State(state): State<Arc<AppState>>) -> Json<BuildInfo> {
    let index = tokio::fs::read(state.config.static_dir.join("index.html"))
        .await
        .unwrap_or_default();
    Json(BuildInfo {
        id: build_id(&index, binary_stamp()),
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// The server binary's modification time in nanoseconds (0 when unknown).
fn binary_stamp() -> u128 {
    static STAMP: OnceLock<u128> = OnceLock::new();
    *STAMP.get_or_init(|| {
        std::env::current_exe()
            .and_then(|p| p.metadata())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    })
}

/// 16 hex digits over the dashboard's index and the binary's stamp. Not a security
/// hash: it only has to differ between two builds, which any change of either does.
fn build_id(index_html: &[u8], binary_stamp: u128) -> String {
    let mut h = DefaultHasher::new();
    index_html.hash(&mut h);
    binary_stamp.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_dashboard_or_a_new_binary_is_a_new_build() {
        let page = b"<script src=/app-1f2e.js>";
        let id = build_id(page, 7);
        assert_eq!(id.len(), 16);
        assert_eq!(build_id(page, 7), id, "the same files are the same build");
        assert_ne!(build_id(b"<script src=/app-9a8b.js>", 7), id);
        assert_ne!(build_id(page, 8), id);
    }
}
