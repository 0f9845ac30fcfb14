//! REST handlers: thin reads of the processor's query side.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use instabrand_shared::Millis;
use instabrand_shared::api::Comparison;
use instabrand_shared::api::{
    Alert, BrandDetail, BrandInfo, BrandSeries, DeadLetterView, FeedPage, Health, Influencer,
    Leaderboard, MapPoint, OriginalBrandMetric, Resolution, SeriesComparison, UserFeeds,
    UserProfile, Window,
};
use instabrand_shared::ws::SortKey;
use serde::Deserialize;
use tracing::instrument;

use super::ApiErr;
use super::AppState;
use crate::processor::compare::{CompareError, Period};
use crate::processor::query::{RangeError, RangeRequest};
use crate::processor::{Processor, UserId};

#[derive(Debug, Deserialize, Default)]
pub struct Params {
    window: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
    prefix: Option<String>,
    brand: Option<String>,
    sort: Option<String>,
}

/// A range series request: `from` and `to` as RFC 3339 (or `YYYY-MM-DD HH:MM:SS`,
/// UTC) or milliseconds since the epoch; `resolution` auto (default), minute, hour
/// or day; `brands` (for `/api/series`) comma-separated.
#[derive(Debug, Deserialize, Default)]
pub struct RangeParams {
    from: Option<String>,
    to: Option<String>,
    resolution: Option<String>,
    brands: Option<String>,
}

fn parse_instant(name: &str, s: &str) -> Result<Millis, ApiErr> {
    let s = s.trim();
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        return s.parse().map_err(|_| {
            ApiErr::BadRequest(format!("{name}={s:?} is out of range as milliseconds"))
        });
    }
    instabrand_shared::time::parse_time(s).map_err(|e| {
        ApiErr::BadRequest(format!(
            "{name}={s:?} is not a time ({e}): use RFC 3339 or milliseconds since the epoch"
        ))
    })
}

impl RangeParams {
    fn request(&self, state: &AppState) -> Result<RangeRequest, ApiErr> {
        let from = self
            .from
            .as_deref()
            .ok_or_else(|| ApiErr::BadRequest("from is required".into()))?;
        let resolution = match self.resolution.as_deref() {
            None | Some("auto") => None,
            Some(r) => Some(r.parse::<Resolution>().map_err(ApiErr::BadRequest)?),
        };
        Ok(RangeRequest {
            from: parse_instant("from", from)?,
            to: self
                .to
                .as_deref()
                .map(|t| parse_instant("to", t))
                .transpose()?,
            resolution,
            max_points: state.config.http.series_max_points,
        })
    }
}

impl From<RangeError> for ApiErr {
    fn from(e: RangeError) -> Self {
        match e {
            RangeError::Bad(m) => ApiErr::BadRequest(m),
            RangeError::NotFound(m) => ApiErr::NotFound(m),
        }
    }
}

impl Params {
    fn window(&self) -> Result<Window, ApiErr> {
        match &self.window {
            None => Ok(Window::M5),
            Some(w) => w.parse().map_err(ApiErr::BadRequest),
        }
    }

    /// `None`: the leaderboard's own order (photos, then engagement).
    fn sort(&self) -> Result<Option<SortKey>, ApiErr> {
        self.sort
            .as_deref()
            .map(|s| s.parse().map_err(ApiErr::BadRequest))
            .transpose()
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
    let sort = q.sort()?;
    Ok(Json(sorted_leaderboard(&read(&state), w, sort)))
}

/// The leaderboard of `w`, in `sort` order when one is asked for: the same order the
/// live table's pages are cut in ([`SortKey::compare`]), so REST and screen agree.
fn sorted_leaderboard(p: &Processor, w: Window, sort: Option<SortKey>) -> Leaderboard {
    let mut lb = p.leaderboard(w);
    if let Some(key) = sort {
        lb.rows.sort_by(|a, b| key.compare(a, b));
    }
    lb
}

/// The whole leaderboard as CSV, every brand in the window, in the order asked for.
#[instrument(skip(state))]
pub async fn leaderboard_csv(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
) -> Result<impl IntoResponse, ApiErr> {
    let w = q.window()?;
    let sort = q.sort()?;
    let lb = sorted_leaderboard(&read(&state), w, sort);
    let mut rows = vec![
        [
            "rank",
            "brand",
            "photos",
            "likes",
            "comments",
            "reach",
            "engagement_rate",
            "share_of_voice",
            "previous_photos",
            "change",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (i, r) in lb.rows.iter().enumerate() {
        rows.push(vec![
            (i + 1).to_string(),
            csv_cell(&r.brand).into_owned(),
            r.photos.to_string(),
            r.likes.to_string(),
            r.comments.to_string(),
            r.reach.to_string(),
            format!("{:.6}", r.engagement_rate),
            format!("{:.6}", r.share_of_voice),
            r.previous_photos.to_string(),
            (r.photos as i64 - r.previous_photos as i64).to_string(),
        ]);
    }
    let by = sort
        .map(|k| format!("-by-{}", k.as_str()))
        .unwrap_or_default();
    csv_response(
        &format!("leaderboard-{w}{by}-to-{}", file_time(lb.to_ms)),
        &rows,
    )
}

/// The top influencers of a window as CSV (`limit`, default 100).
#[instrument(skip(state))]
pub async fn influencers_csv(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Params>,
) -> Result<impl IntoResponse, ApiErr> {
    let w = q.window()?;
    let n = q.limit(&state, 100);
    let (list, clock) = {
        let p = read(&state);
        (p.influencers(w, n), p.clock().unwrap_or(0))
    };
    let mut rows = vec![
        [
            "rank",
            "username",
            "uploads",
            "likes_received",
            "comments_received",
            "score",
            "followers",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (i, u) in list.iter().enumerate() {
        rows.push(vec![
            (i + 1).to_string(),
            csv_cell(&u.username).into_owned(),
            u.uploads.to_string(),
            u.likes_received.to_string(),
            u.comments_received.to_string(),
            u.score.to_string(),
            u.followers.to_string(),
        ]);
    }
    csv_response(&format!("influencers-{w}-to-{}", file_time(clock)), &rows)
}

/// `GET /api/compare?brands=A,B[,…]&window=1h`: 2 to 5 brands over one window.
///
/// `brands` is read from the raw query: a brand's own comma (`Apple, Inc.`) arrives
/// percent-encoded (`Apple%2C%20Inc.`), so splitting before decoding never cuts a
/// name, while a decoded query could not tell the two apart.
#[instrument(skip(state))]
pub async fn compare(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    Query(q): Query<Params>,
) -> Result<Json<Comparison>, ApiErr> {
    let w = q.window()?;
    let brands = raw
        .as_deref()
        .and_then(|r| raw_value(r, "brands"))
        .map(decode_list)
        .unwrap_or_default();
    let p = read(&state);
    let period = Period::window(&p, w);
    p.compare(&brands, &period).map(Json).map_err(|e| match e {
        CompareError::Unknown(_) => ApiErr::NotFound(e.to_string()),
        CompareError::Count(_) => ApiErr::BadRequest(e.to_string()),
    })
}

/// The comparison's series as CSV: one row per step and brand.
#[instrument(skip(state))]
pub async fn compare_csv(
    State(state): State<Arc<AppState>>,
    raw: RawQuery,
    q: Query<Params>,
) -> Result<impl IntoResponse, ApiErr> {
    let Json(c) = compare(State(state), raw, q).await?;
    let mut rows = vec![
        [
            "time_utc",
            "brand",
            "photos",
            "likes",
            "comments",
            "reach",
            "engagement_rate",
            "share_of_voice",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for b in &c.brands {
        for p in &b.series {
            rows.push(vec![
                instabrand_shared::time::format_naive(p.at_ms),
                csv_cell(&b.metrics.brand).into_owned(),
                p.photos.to_string(),
                p.likes.to_string(),
                p.comments.to_string(),
                p.reach.to_string(),
                format!("{:.6}", p.engagement_rate),
                format!("{:.6}", p.share_of_voice),
            ]);
        }
    }
    let names: Vec<&str> = c.brands.iter().map(|b| b.metrics.brand.as_str()).collect();
    csv_response(
        &format!(
            "compare-{}-{}-to-{}",
            names.join("-vs-"),
            c.window,
            file_time(c.to_ms)
        ),
        &rows,
    )
}

fn raw_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Nike,Apple%2C%20Inc.` as `["Nike", "Apple, Inc."]`: split on `,`, then each item
/// percent-decoded (`+` as a space, as forms send it); empty items dropped.
fn decode_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .filter(|s| !s.is_empty())
        .map(|item| {
            let bytes = item.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match (bytes[i], hex) {
                    (b'%', Some(v)) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    (b'+', _) => out.push(b' '),
                    (b, _) => out.push(b),
                }
                i += 1;
            }
            String::from_utf8_lossy(&out).into_owned()
        })
        .collect()
}

/// `2026-12-03T1213Z`: the end of the window in a filename, so two exports of the
/// same table taken at different times do not overwrite each other.
fn file_time(ms: i64) -> String {
    let t = instabrand_shared::time::format_naive(ms);
    format!("{}T{}{}Z", &t[..10], &t[11..13], &t[14..16])
}

/// Only ASCII letters and digits (plus `-` and `.`) survive in a filename: brand
/// names carry quotes, slashes and commas that would break the header or the path.
fn safe_filename(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A CSV download: `rows` (already neutralised with [`csv_cell`]) as
/// `attachment; filename="<stem>.csv"`.
fn csv_response(stem: &str, rows: &[Vec<String>]) -> Result<impl IntoResponse + use<>, ApiErr> {
    let mut wr = csv::Writer::from_writer(Vec::new());
    for r in rows {
        wr.write_record(r).map_err(|e| ApiErr::Internal(e.into()))?;
    }
    let body = wr
        .into_inner()
        .map_err(|e| ApiErr::Internal(anyhow::anyhow!("{e}")))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.csv\"", safe_filename(stem)),
            ),
        ],
        body,
    ))
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

/// One brand over any retained range, at the resolution that covers it.
#[instrument(skip(state))]
pub async fn brand_series(
    State(state): State<Arc<AppState>>,
    Path(brand): Path<String>,
    Query(q): Query<RangeParams>,
) -> Result<Json<BrandSeries>, ApiErr> {
    let req = q.request(&state)?;
    Ok(Json(read(&state).brand_range_series(&brand, &req)?))
}

/// Brands side by side over one range, with all brands together (share of voice).
#[instrument(skip(state))]
pub async fn series(
    State(state): State<Arc<AppState>>,
    Query(q): Query<RangeParams>,
) -> Result<Json<SeriesComparison>, ApiErr> {
    let req = q.request(&state)?;
    let names: Vec<&str> = q
        .brands
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    let max = state.config.http.series_max_brands;
    if names.len() > max {
        return Err(ApiErr::BadRequest(format!(
            "at most {max} brands can be compared at once"
        )));
    }
    Ok(Json(read(&state).compare_range_series(&names, &req)?))
}

/// The brand's series as CSV, for a spreadsheet.
/// The brand's series as CSV, for a spreadsheet: per step (minutes for 5m and 1h,
/// hours for 24h and all) its counts, unique reach and engagement rate.
#[instrument(skip(state))]
pub async fn brand_csv(
    State(state): State<Arc<AppState>>,
    Path(brand): Path<String>,
    Query(q): Query<Params>,
) -> Result<impl IntoResponse, ApiErr> {
    let w = q.window()?;
    let (series, clock) = {
        let p = read(&state);
        let s = p
            .series_with_reach(&brand, w)
            .ok_or_else(|| ApiErr::NotFound(format!("no photos of {brand:?} yet")))?;
        (s, p.clock().unwrap_or(0))
    };
    let mut rows = vec![
        [
            "time_utc",
            "brand",
            "photos",
            "likes",
            "comments",
            "reach",
            "engagement_rate",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (p, reach) in &series {
        let engagement = if *reach == 0 {
            0.0
        } else {
            (p.likes + p.comments) as f64 / *reach as f64
        };
        rows.push(vec![
            instabrand_shared::time::format_naive(p.minute_ms),
            csv_cell(&brand).into_owned(),
            p.photos.to_string(),
            p.likes.to_string(),
            p.comments.to_string(),
            reach.to_string(),
            format!("{engagement:.6}"),
        ]);
    }
    csv_response(
        &format!("{brand}-series-{w}-to-{}", file_time(clock)),
        &rows,
    )
}

/// A cell a spreadsheet will show as text: one starting with `=`, `+`, `-`, `@`, a
/// tab or a carriage return would be run as a formula (CSV injection), so it gets a
/// leading `'`, which spreadsheets hide and treat as "this is text". Every text cell
/// the server writes into a CSV goes through here; numbers it formats itself do not
/// need to.
pub fn csv_cell(s: &str) -> std::borrow::Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}").into(),
        _ => s.into(),
    }
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

/// Users whose name starts with `prefix` (case-insensitive), most followed first.
///
/// Bounded per request: the prefix is at most `security.search_max_prefix`
/// characters, at most 50 profiles come back, one pass over the user index compares
/// bytes in place (no allocation per user) keeping only the best `limit` in a heap,
/// it runs off the async workers, and at most `security.search_concurrency` run at
/// once, so a flood of searches queues instead of holding every core and the
/// processor's read lock.
/// Searches allowed to run at once (`security.search_concurrency`).
#[derive(Clone)]
pub struct SearchPermits(pub Arc<tokio::sync::Semaphore>);

pub async fn search_users(
    State(state): State<Arc<AppState>>,
    Extension(permits): Extension<SearchPermits>,
    Query(q): Query<Params>,
) -> Result<Json<Vec<UserProfile>>, ApiErr> {
    let prefix = q.prefix.clone().unwrap_or_default();
    let max = state.config.security.search_max_prefix;
    if prefix.chars().count() > max {
        return Err(ApiErr::BadRequest(format!(
            "a search prefix is at most {max} characters"
        )));
    }
    let n = q.limit(&state, 20).min(50);
    let _turn = permits
        .0
        .acquire()
        .await
        .map_err(|e| ApiErr::Internal(e.into()))?;
    let st = state.clone();
    let found = tokio::task::spawn_blocking(move || search(&read(&st), &prefix, n))
        .await
        .map_err(|e| ApiErr::Internal(e.into()))?;
    Ok(Json(found))
}

/// One pass over the users; the best `limit` by followers (then name) kept in a heap.
fn search(p: &Processor, prefix: &str, limit: usize) -> Vec<UserProfile> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let prefix = prefix.to_lowercase();
    let mut best: BinaryHeap<(Reverse<usize>, &str, u32)> = BinaryHeap::new();
    for i in 0..p.user_count() {
        let u = p.user(UserId(i as u32));
        if !starts_with_ignoring_case(&u.name, &prefix) {
            continue;
        }
        best.push((Reverse(u.followers.len()), &u.name, i as u32));
        if best.len() > limit {
            best.pop();
        }
    }
    best.into_sorted_vec()
        .into_iter()
        .map(|(_, _, i)| p.profile(UserId(i)))
        .collect()
}

/// `name` starts with `lower_prefix` (already lower-case), compared char by char.
fn starts_with_ignoring_case(name: &str, lower_prefix: &str) -> bool {
    let mut name = name.chars().flat_map(char::to_lowercase);
    lower_prefix.chars().all(|c| name.next() == Some(c))
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

/// Raw rejected payloads: whatever anyone sent, so only for holders of
/// `security.dead_letters_token`, and off while it is unset.
pub async fn dead_letters(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Result<Json<Vec<DeadLetterView>>, ApiErr> {
    let Some(token) = &state.config.security.dead_letters_token else {
        return Err(ApiErr::Forbidden(
            "the dead-letter listing is off: set security.dead_letters_token".into(),
        ));
    };
    super::require_bearer(&headers, token)?;
    let n = q.limit(&state, 50);
    Ok(Json(state.dead_letters.recent(n)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_plain_text_is_left_alone() {
        for bad in ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            let out = csv_cell(bad);
            assert!(out.starts_with('\''), "{bad:?} -> {out:?}");
            assert_eq!(&out[1..], bad);
        }
        assert_eq!(csv_cell("Apple, Inc."), "Apple, Inc.");
        assert_eq!(csv_cell(""), "");
    }

    #[test]
    fn a_list_splits_before_it_decodes_so_commas_in_names_survive() {
        assert_eq!(
            decode_list("Nike,Apple%2C%20Inc.,,Ben+%26+Jerry's"),
            ["Nike", "Apple, Inc.", "Ben & Jerry's"]
        );
        assert_eq!(decode_list("100%"), ["100%"], "a bad escape stays as it is");
        assert_eq!(raw_value("window=1h&brands=a,b", "brands"), Some("a,b"));
    }

    #[test]
    fn a_case_insensitive_prefix_matches_without_lowercasing_names() {
        assert!(starts_with_ignoring_case("BillyJoel", "billy"));
        assert!(starts_with_ignoring_case("ÉLISE", "él"));
        assert!(!starts_with_ignoring_case("bil", "billy"));
        assert!(starts_with_ignoring_case("anything", ""));
    }
}
