//! `POST /api/ingest`: NDJSON events over HTTP into the same pipeline, token-protected.
//! The source itself (lines to records, durable batches) is `sources/ingest.rs`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use instabrand_shared::api::IngestReport;
use tracing::instrument;

use super::{ApiErr, AppState, require_bearer};

#[instrument(skip_all, fields(bytes = body.len()))]
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<IngestReport>, ApiErr> {
    let token = state.config.ingest_token.as_deref().ok_or_else(|| {
        ApiErr::Forbidden("ingest is disabled: set ingest_token (INSTABRAND_INGEST_TOKEN)".into())
    })?;
    require_bearer(&headers, token)?;
    crate::sources::ingest::ingest(
        &state.pipeline,
        &body,
        state.config.pipeline.max_batch_records,
        state.config.http.ingest_max_errors_listed,
    )
    .await
    .map(Json)
    .map_err(|e| ApiErr::Unavailable(e.to_string()))
}
