//! `POST /api/ingest`: NDJSON events over HTTP into the same pipeline, token-protected.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use instabrand_shared::api::{IngestError, IngestReport};
use tracing::instrument;

use super::{ApiErr, require_bearer};
use crate::pipeline::{Origin, Record};
use crate::state::AppState;

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
    let mut records = Vec::new();
    let mut start = 0;
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let end = start + line.len();
        let slice = body.slice(start..end);
        start = end + 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let slice = if trimmed.len() == line.len() {
            slice
        } else {
            Bytes::copy_from_slice(trimmed)
        };
        records.push(Record::new(slice, Origin::Ingest { line: i as u64 + 1 }));
    }
    let mut report = IngestReport::default();
    let max = state.config.pipeline.max_batch_records.max(1);
    let listed = state.config.http.ingest_max_errors_listed;
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(max));
        let lines: Vec<u64> = records
            .iter()
            .map(|r| match r.origin {
                Origin::Ingest { line } => line,
                _ => 0,
            })
            .collect();
        // Answer only once the events are in a durable checkpoint: an acknowledged
        // ingest must survive a crash.
        let result = state
            .pipeline
            .submit_batch(std::mem::replace(&mut records, rest), None, true)
            .await
            .map_err(|e| ApiErr::Unavailable(e.to_string()))?;
        report.accepted += result.applied;
        report.rejected += result.rejected.len() as u64;
        for (i, e) in result.rejected {
            if report.errors.len() < listed {
                report.errors.push(IngestError {
                    line: lines[i],
                    reason: e.reason.code().into(),
                    detail: e.detail,
                });
            }
        }
    }
    Ok(Json(report))
}
