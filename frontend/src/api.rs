//! The REST client: one function per endpoint the pages read, over same-origin
//! relative URLs (the page never talks to another host). Errors come back as text fit
//! for an error state on screen; the server's JSON `ApiError` message is used when
//! there is one.

use gloo_net::http::{Request, Response};
use instabrand_shared::api::{
    ApiError, BrandInfo, BrandSeries, BuildInfo, CampaignRequest, Comparison, DeadLetterView,
    FeedPage, GeneratorStatus, Influencer, SeriesComparison, UserFeeds, UserProfile, Window,
};
use instabrand_shared::ws::SortKey;
use serde::de::DeserializeOwned;

use crate::route::encode_component as enc;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiFailure {
    /// HTTP status, when the server answered at all.
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} (HTTP {s})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn network(e: gloo_net::Error) -> ApiFailure {
    ApiFailure {
        status: None,
        message: format!("the server could not be reached: {e}"),
    }
}

async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, ApiFailure> {
    let status = resp.status();
    if !resp.ok() {
        let message = match resp.json::<ApiError>().await {
            Ok(e) => e.error,
            Err(_) => resp.status_text(),
        };
        return Err(ApiFailure {
            status: Some(status),
            message,
        });
    }
    resp.json::<T>().await.map_err(|e| ApiFailure {
        status: Some(status),
        message: format!("unexpected response: {e}"),
    })
}

async fn get<T: DeserializeOwned>(url: &str) -> Result<T, ApiFailure> {
    decode(Request::get(url).send().await.map_err(network)?).await
}

pub async fn brands() -> Result<Vec<BrandInfo>, ApiFailure> {
    get("/api/brands").await
}

/// What the server serves now: a wall screen reloads when this changes.
pub async fn build() -> Result<BuildInfo, ApiFailure> {
    get("/api/build").await
}

/// 2 to 5 brands side by side over `window`.
pub async fn compare(brands: &[String], window: Window) -> Result<Comparison, ApiFailure> {
    get(&compare_path("/api/compare", brands, window)).await
}

/// The comparison's series as CSV, as a link target.
pub fn compare_csv_href(brands: &[String], window: Window) -> String {
    compare_path("/api/compare.csv", brands, window)
}

/// `brands` as one list parameter, each name encoded on its own so its commas stay
/// inside it (the server splits before decoding).
fn compare_path(base: &str, brands: &[String], window: Window) -> String {
    format!(
        "{base}?brands={}&window={window}",
        crate::route::encode_list(brands)
    )
}

/// The `from=…&to=…` for `range`: a preset first asks the server for its stream clock
/// (`/api/health`), since presets count back from event time, not the browser's.
pub async fn range_query(range: &crate::range::Range) -> Result<String, ApiFailure> {
    #[derive(serde::Deserialize)]
    struct Clock {
        stream_clock_ms: instabrand_shared::time::Millis,
    }
    let clock = if range.needs_clock() {
        get::<Clock>("/api/health").await?.stream_clock_ms
    } else {
        0
    };
    Ok(range.query(clock))
}

/// One brand over a range (`query` from [`range_query`]), at the server's resolution.
pub async fn brand_series(brand: &str, query: &str) -> Result<BrandSeries, ApiFailure> {
    get(&format!("/api/brands/{}/series?{query}", enc(brand))).await
}

/// Several brands over one range, on the same buckets.
pub async fn series_comparison(
    brands: &[String],
    query: &str,
) -> Result<SeriesComparison, ApiFailure> {
    get(&format!(
        "/api/series?brands={}&{query}",
        crate::route::encode_list(brands)
    ))
    .await
}

pub async fn influencers(window: Window, limit: u32) -> Result<Vec<Influencer>, ApiFailure> {
    get(&format!("/api/influencers?window={window}&limit={limit}")).await
}

pub async fn users(prefix: &str, limit: u32) -> Result<Vec<UserProfile>, ApiFailure> {
    get(&format!("/api/users?prefix={}&limit={limit}", enc(prefix))).await
}

pub async fn user_feeds(username: &str) -> Result<UserFeeds, ApiFailure> {
    get(&format!("/api/users/{}", enc(username))).await
}

/// An older page of a user's own photos or home timeline.
pub async fn feed_page(
    username: &str,
    timeline: bool,
    before: &str,
) -> Result<FeedPage, ApiFailure> {
    let list = if timeline { "timeline" } else { "photos" };
    get(&format!(
        "/api/users/{}/{list}?before={}&limit=20",
        enc(username),
        enc(before)
    ))
    .await
}

/// Raw rejected payloads: the server lists them only to holders of its dead-letter
/// token.
pub async fn dead_letters(limit: u32, token: &str) -> Result<Vec<DeadLetterView>, ApiFailure> {
    let resp = Request::get(&format!("/api/dead-letters?limit={limit}"))
        .header("Authorization", &bearer(token))
        .send()
        .await
        .map_err(network)?;
    decode(resp).await
}

/// The series CSV of one brand, as a link target (downloaded by the browser itself).
pub fn series_csv_href(brand: &str, window: Window) -> String {
    format!("/api/brands/{}/series.csv?window={window}", enc(brand))
}

/// The whole leaderboard of `window` as CSV, in the order the table shows.
pub fn leaderboard_csv_href(window: Window, sort: SortKey) -> String {
    format!(
        "/api/leaderboard.csv?window={window}&sort={}",
        sort.as_str()
    )
}

/// The window's top influencers as CSV.
pub fn influencers_csv_href(window: Window) -> String {
    format!("/api/influencers.csv?window={window}&limit=100")
}

/// The bundled Natural Earth land outline (TopoJSON text), served next to the app.
pub async fn land_topojson() -> Result<String, ApiFailure> {
    let resp = Request::get("/land-110m.json")
        .send()
        .await
        .map_err(network)?;
    if !resp.ok() {
        return Err(ApiFailure {
            status: Some(resp.status()),
            message: "the map data is missing".into(),
        });
    }
    resp.text().await.map_err(network)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub async fn control_status(token: &str) -> Result<GeneratorStatus, ApiFailure> {
    let resp = Request::get("/api/control")
        .header("Authorization", &bearer(token))
        .send()
        .await
        .map_err(network)?;
    decode(resp).await
}

/// `pause` or `resume`.
pub async fn control_action(token: &str, action: &str) -> Result<(), ApiFailure> {
    let resp = Request::post(&format!("/api/control/{action}"))
        .header("Authorization", &bearer(token))
        .send()
        .await
        .map_err(network)?;
    expect_success(resp).await
}

pub async fn control_rate(token: &str, rate: f64) -> Result<(), ApiFailure> {
    let req = Request::post("/api/control/rate")
        .header("Authorization", &bearer(token))
        .json(&serde_json::json!({ "rate": rate }))
        .map_err(network)?;
    expect_success(req.send().await.map_err(network)?).await
}

pub async fn control_campaign(token: &str, campaign: &CampaignRequest) -> Result<(), ApiFailure> {
    let req = Request::post("/api/control/campaign")
        .header("Authorization", &bearer(token))
        .json(campaign)
        .map_err(network)?;
    expect_success(req.send().await.map_err(network)?).await
}

async fn expect_success(resp: Response) -> Result<(), ApiFailure> {
    if resp.ok() {
        return Ok(());
    }
    let status = resp.status();
    let message = match resp.json::<ApiError>().await {
        Ok(e) => e.error,
        Err(_) => resp.status_text(),
    };
    Err(ApiFailure {
        status: Some(status),
        message,
    })
}
