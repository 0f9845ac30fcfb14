//! Presenter controls for live demos: pause, resume and pace the embedded generator,
//! and launch a campaign burst. Every call needs the control token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use instabrand_shared::api::{CampaignRequest, GeneratorStatus};
use serde::Deserialize;
use tracing::{info, instrument};

use super::AppState;
use super::{ApiErr, require_bearer};
use crate::sources::generator::{Command, ControlError, GeneratorControl};

fn authorized<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
) -> Result<&'a GeneratorControl, ApiErr> {
    require_bearer(headers, &state.control_token)?;
    state.generator.as_ref().ok_or_else(|| {
        ApiErr::Conflict("no embedded generator is running (another source is configured)".into())
    })
}

fn stopped(e: ControlError) -> ApiErr {
    match e {
        ControlError::Stopped => ApiErr::Unavailable(e.to_string()),
        ControlError::Refused(m) => ApiErr::BadRequest(m),
    }
}

pub async fn status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<GeneratorStatus>, ApiErr> {
    Ok(Json(authorized(&state, &headers)?.status()))
}

#[instrument(skip_all)]
pub async fn pause(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<GeneratorStatus>, ApiErr> {
    let g = authorized(&state, &headers)?;
    g.send(Command::Pause).await.map_err(stopped)?;
    info!("generator paused by presenter");
    Ok(Json(GeneratorStatus {
        paused: true,
        ..g.status()
    }))
}

#[instrument(skip_all)]
pub async fn resume(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<GeneratorStatus>, ApiErr> {
    let g = authorized(&state, &headers)?;
    g.send(Command::Resume).await.map_err(stopped)?;
    info!("generator resumed by presenter");
    Ok(Json(GeneratorStatus {
        paused: false,
        ..g.status()
    }))
}

#[derive(Deserialize)]
pub struct RateRequest {
    rate: f64,
}

#[instrument(skip_all)]
pub async fn rate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(req): Json<RateRequest>,
) -> Result<Json<GeneratorStatus>, ApiErr> {
    let g = authorized(&state, &headers)?;
    let max = state.config.generator.max_rate;
    if !(req.rate.is_finite() && req.rate > 0.0 && req.rate <= max) {
        return Err(ApiErr::BadRequest(format!(
            "rate must be above 0 and at most {max} events/s"
        )));
    }
    g.send(Command::SetRate(req.rate)).await.map_err(stopped)?;
    info!(rate = req.rate, "generator rate set by presenter");
    Ok(Json(GeneratorStatus {
        rate: req.rate,
        ..g.status()
    }))
}

#[instrument(skip_all)]
pub async fn campaign(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(req): Json<CampaignRequest>,
) -> Result<(StatusCode, Json<GeneratorStatus>), ApiErr> {
    let g = authorized(&state, &headers)?;
    let photos = req.photos.unwrap_or(300);
    let max = state.config.generator.max_campaign_photos;
    if photos == 0 || photos > max {
        return Err(ApiErr::BadRequest(format!("photos must be 1 to {max}")));
    }
    let seconds = req.seconds.unwrap_or(20).clamp(1, 3600);
    g.campaign(req.brand, req.city, photos, seconds)
        .await
        .map_err(stopped)?;
    Ok((StatusCode::ACCEPTED, Json(g.status())))
}
