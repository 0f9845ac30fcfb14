//! The HTTP surface: `app(state) -> Router`, so tests can drive it without a socket.
//!
//! REST under `/api`, the original `/brand-metrics`, `/healthz` and `/readyz`,
//! Prometheus `/metrics`, the WebSocket at `/ws`, and the built dashboard for every
//! other path (client-side routes fall back to `index.html`). Errors are JSON
//! `{"error": "…"}` that never carry internals; the cause is logged.

mod build;
mod control;
mod ingest;
pub mod metrics;
mod rest;
pub mod security;
pub mod state;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use instabrand_shared::api::ApiError;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// An API error: a status and a message fit for the caller.
#[derive(Debug, thiserror::Error)]
pub enum ApiErr {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiErr::NotFound(_) => StatusCode::NOT_FOUND,
            ApiErr::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiErr::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiErr::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiErr::Conflict(_) => StatusCode::CONFLICT,
            ApiErr::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiErr::Internal(e) => {
                tracing::error!(error = %e, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut res = (
            status,
            axum::Json(ApiError {
                error: self.to_string(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("static header"),
            );
        }
        res
    }
}

/// Checks `Authorization: Bearer <token>` in constant time.
pub(crate) fn require_bearer(headers: &HeaderMap, expected: &str) -> Result<(), ApiErr> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiErr::Unauthorized)?;
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= (a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    if diff == 0 {
        Ok(())
    } else {
        Err(ApiErr::Unauthorized)
    }
}

pub fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/leaderboard", get(rest::leaderboard))
        .route("/leaderboard.csv", get(rest::leaderboard_csv))
        .route("/influencers.csv", get(rest::influencers_csv))
        .route("/brands", get(rest::brands))
        .route("/compare", get(rest::compare))
        .route("/compare.csv", get(rest::compare_csv))
        .route("/brands/{brand}", get(rest::brand))
        .route("/brands/{brand}/series.csv", get(rest::brand_csv))
        .route("/brands/{brand}/series", get(rest::brand_series))
        .route("/series", get(rest::series))
        .route("/influencers", get(rest::influencers))
        .route("/users", get(rest::search_users))
        .route("/users/{username}", get(rest::user))
        .route("/users/{username}/photos", get(rest::user_photos))
        .route("/users/{username}/timeline", get(rest::user_timeline))
        .route("/map", get(rest::map))
        .route("/alerts", get(rest::alerts))
        .route("/health", get(rest::health))
        .route("/build", get(build::build))
        .route("/dead-letters", get(rest::dead_letters))
        .route(
            "/ingest",
            post(ingest::ingest).layer(DefaultBodyLimit::max(
                state.config.http.ingest_max_body_bytes,
            )),
        )
        .route("/control", get(control::status))
        .route("/control/pause", post(control::pause))
        .route("/control/resume", post(control::resume))
        .route("/control/rate", post(control::rate))
        .route("/control/campaign", post(control::campaign))
        .fallback(|| async { ApiErr::NotFound("no such API endpoint".into()) })
        .layer(axum::Extension(rest::SearchPermits(Arc::new(
            tokio::sync::Semaphore::new(state.config.security.search_concurrency.max(1)),
        ))));

    let index = state.config.static_dir.join("index.html");
    let dashboard = if index.exists() {
        Router::new().fallback_service(
            ServeDir::new(&state.config.static_dir).fallback(ServeFile::new(index)),
        )
    } else {
        Router::new().fallback(|| async { Html(NOT_BUILT) })
    };

    let headers = Arc::new(security::Headers::new(
        &state.config.security,
        &state.config.static_dir,
    ));
    Router::new()
        .nest("/api", api)
        .route("/brand-metrics", get(rest::original_brand_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(rest::ready))
        .route("/metrics", get(metrics::prometheus))
        .route("/ws", get(ws::upgrade))
        .merge(dashboard)
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            headers,
            security::headers,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

const NOT_BUILT: &str = r#"<!doctype html><meta charset="utf-8"><title>Instabrand</title>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Instabrand is running</h1>
<p>The dashboard has not been built into <code>dist/</code>. Run <code>scripts/build-frontend.sh</code>
(or <code>scripts/run.sh</code>, which builds it) and reload.</p>
<p>The API works already: <a href="/api/leaderboard?window=5m">/api/leaderboard</a>,
<a href="/brand-metrics">/brand-metrics</a>, <a href="/api/health">/api/health</a>,
<a href="/metrics">/metrics</a>.</p></body>"#;
