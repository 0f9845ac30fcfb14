//! REST handlers: thin reads of the processor's query side.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use instabrand_shared::api::{
    Alert, BrandDetail, BrandInfo, DeadLetterView, FeedPage, Health, Influencer, Leaderboard,
    MapPoint, OriginalBrandMetric, UserFeeds, UserProfile, Window,
};
use serde::Deserialize;
use tracing::instrument;

use super::ApiErr;
use crate::processor::{Processor, UserId};
use crate::state::AppState;

#[derive(Debug, Deserialize, Default)]
pub struct Params {
    window: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
    prefix: Option<String>,
    brand: Option<String>,
}

impl Params {
    fn window(&self) -> Result<Window, ApiErr> {
        match &self.window {
            None => Ok(Window::M5),
            Some(w) => w.parse().map_err(ApiErr::BadRequest),
        }
    }

    fn limit(&self, state: &AppState, default: usize) -> usize {
        self.limit
            .unwrap_or(default)
            .clamp(1, state.config.http.max_page)
    }
}

fn read(state: &AppState) -> std::sync::RwLockReadGuard<'_, Processor> {
    state.processor.read().expect("processor lock poisoned")
}

fn user_id(p: &Processor, name: &str) -> Result<UserId, ApiErr> {
    p.user_id(name)
        .ok_or_else(|| ApiErr::NotFound(format!("no user {name:?}")))
}

#[instrument(skip(state))]
pub async fn leaderboard(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
) -> Result<Json<Leaderboard>, ApiErr> {
    let w = q.window()?;
    Ok(Json(read(&state).leaderboard(w)))
}

/// The original system's endpoint, shape unchanged (default window).
#[instrument(skip(state))]
pub async fn original_brand_metrics(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
) -> Result<Json<Vec<OriginalBrandMetric>>, ApiErr> {
    let w = q.window()?;
    Ok(Json(read(&state).original_brand_metrics(w)))
}

/// The bundled brand list, then any other brand seen in the stream.
pub async fn brands(State(state): State<Arc<AppState>>) -> Json<Vec<BrandInfo>> {
    let mut out: Vec<BrandInfo> = instabrand_generator::brands()
        .iter()
        .map(|b| BrandInfo {
            name: b.name.to_string(),
            category: b.category.to_string(),
        })
        .collect();
    let p = read(&state);
    for id in p.brand_ids() {
        let name = &p.brand(id).name;
        if !out.iter().any(|b| *b.name == **name) {
            out.push(BrandInfo {
                name: name.to_string(),
                category: "other".into(),
            });
        }
    }
    Json(out)
}

#[instrument(skip(state))]
pub async fn brand(
    State(state): State<Arc<AppState>>,
    Path(brand): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<BrandDetail>, ApiErr> {
    let w = q.window()?;
    read(&state)
        .brand_detail(&brand, w, 20, q.limit(&state, 500))
        .map(Json)
        .ok_or_else(|| ApiErr::NotFound(format!("no photos of {brand:?} yet")))
}

/// The brand's series as CSV, for a spreadsheet.
#[instrument(skip(state))]
pub async fn brand_csv(
    State(state): State<Arc<AppState>>,
    Path(brand): Path<String>,
    Query(q): Query<Params>,
) -> Result<impl IntoResponse, ApiErr> {
    let w = q.window()?;
    let d = read(&state)
        .brand_detail(&brand, w, 0, 0)
        .ok_or_else(|| ApiErr::NotFound(format!("no photos of {brand:?} yet")))?;
    let mut wr = csv::Writer::from_writer(Vec::new());
    let write = |wr: &mut csv::Writer<Vec<u8>>| -> Result<(), csv::Error> {
        wr.write_record(["time_utc", "brand", "photos", "likes", "comments"])?;
        for p in &d.series {
            wr.write_record([
                instabrand_shared::time::format_naive(p.minute_ms),
                brand.clone(),
                p.photos.to_string(),
                p.likes.to_string(),
                p.comments.to_string(),
            ])?;
        }
        Ok(())
    };
    write(&mut wr).map_err(|e| ApiErr::Internal(e.into()))?;
    let body = wr
        .into_inner()
        .map_err(|e| ApiErr::Internal(anyhow::anyhow!("{e}")))?;
    let safe: String = brand
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe}-{w}.csv\""),
            ),
        ],
        body,
    ))
}

#[instrument(skip(state))]
pub async fn influencers(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
) -> Result<Json<Vec<Influencer>>, ApiErr> {
    let w = q.window()?;
    let n = q.limit(&state, 20);
    Ok(Json(read(&state).influencers(w, n)))
}

pub async fn search_users(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
) -> Json<Vec<UserProfile>> {
    let n = q.limit(&state, 20);
    Json(read(&state).search_users(q.prefix.as_deref().unwrap_or(""), n))
}

#[instrument(skip(state))]
pub async fn user(
    State(state): State<Arc<AppState>>,
    Path(username): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<UserFeeds>, ApiErr> {
    let n = q.limit(&state, state.config.live.feed_page_size);
    let p = read(&state);
    let u = user_id(&p, &username)?;
    // A reader: their home timeline is kept up to date from the next batch on.
    state.readers.note(u);
    Ok(Json(p.user_feeds(u, n)))
}

fn cursor(q: &Params) -> Result<Option<crate::processor::Cursor>, ApiErr> {
    q.before
        .as_deref()
        .map(|b| {
            crate::processor::parse_cursor(b)
                .ok_or_else(|| ApiErr::BadRequest(format!("bad cursor {b:?}")))
        })
        .transpose()
}

type FeedFn = fn(&Processor, UserId, Option<crate::processor::Cursor>, usize) -> FeedPage;

/// Which feed a page is of: reading the home timeline makes its user an active reader.
enum Feed {
    Profile,
    Home,
}

/// One page of a user's feed, `before` a cursor from the previous page.
fn feed_page(
    state: &AppState,
    username: &str,
    q: &Params,
    feed: Feed,
) -> Result<Json<FeedPage>, ApiErr> {
    let page: FeedFn = match feed {
        Feed::Profile => Processor::profile_feed,
        Feed::Home => Processor::home_timeline,
    };
    let n = q.limit(state, state.config.live.feed_page_size);
    let before = cursor(q)?;
    let p = read(state);
    let u = user_id(&p, username)?;
    if matches!(feed, Feed::Home) {
        state.readers.note(u);
    }
    Ok(Json(page(&p, u, before, n)))
}

pub async fn user_photos(
    State(state): State<Arc<AppState>>,
    Path(username): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<FeedPage>, ApiErr> {
    feed_page(&state, &username, &q, Feed::Profile)
}

pub async fn user_timeline(
    State(state): State<Arc<AppState>>,
    Path(username): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<FeedPage>, ApiErr> {
    feed_page(&state, &username, &q, Feed::Home)
}

pub async fn map(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
) -> Json<Vec<MapPoint>> {
    let n = q.limit(&state, state.config.live.map_snapshot_points);
    Json(read(&state).map_points(n, q.brand.as_deref()))
}

pub async fn alerts(State(state): State<Arc<AppState>>) -> Json<Vec<Alert>> {
    Json(read(&state).alerts().iter().cloned().collect())
}

pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(state.health())
}

pub async fn dead_letters(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
) -> Json<Vec<DeadLetterView>> {
    let n = q.limit(&state, 50);
    Json(state.dead_letters.recent(n))
}

/// Ready once every source is connected.
pub async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let down: Vec<String> = state
        .sources
        .all()
        .into_iter()
        .filter(|s| !s.connected)
        .map(|s| s.kind)
        .collect();
    if down.is_empty() {
        (StatusCode::OK, "ready".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for: {}", down.join(", ")),
        )
    }
}
