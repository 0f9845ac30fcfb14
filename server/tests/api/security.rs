//! Closed to other sites: origins, headers, tokens, exports and search bounds.

use instabrand_shared::api::{UserProfile, Window};
use instabrand_shared::ws::{Frame, Topic};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, http};

use crate::helpers::*;

async fn ws_with_origin(app: &TestApp, origin: &str) -> Result<Ws, tungstenite::Error> {
    let mut req = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert(http::header::ORIGIN, origin.parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(s, _)| Ws(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_gets_403_and_the_own_origin_is_served() {
    let app = spawn_app_with(|c| {
        c.security.allowed_origins = vec!["https://intranet.example".into()];
    })
    .await;
    app.ingest(&[photo("a", "Nike", 0)]).await;

    match ws_with_origin(&app, "http://evil.example").await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        Err(e) => panic!("expected 403, got {e}"),
        Ok(_) => panic!("a foreign origin was accepted"),
    }
    // Same host, another port is another origin.
    let other_port = format!("http://127.0.0.1:{}", app.addr.port() + 1);
    assert!(ws_with_origin(&app, &other_port).await.is_err());

    for origin in [
        format!("http://{}", app.addr),
        "https://intranet.example".into(),
    ] {
        let mut ws = ws_with_origin(&app, &origin)
            .await
            .unwrap_or_else(|e| panic!("{origin} refused: {e}"));
        ws.subscribe(Topic::leaderboard(Window::All)).await;
        let m = ws.next().await;
        let Frame::Leaderboard(lb) = m.frame else {
            panic!("{m:?}")
        };
        assert_eq!(lb.rows[0].brand, "Nike");
    }
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing on {}", res.url()))
        .to_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers_and_assets_cache_by_hash() {
    let dist = tempfile::tempdir().unwrap();
    let script = "import init from '/app-0123456789abcdef.js'; await init();";
    std::fs::write(
        dist.path().join("index.html"),
        format!("<!doctype html><script type=\"module\">{script}</script>"),
    )
    .unwrap();
    std::fs::write(
        dist.path().join("app-0123456789abcdef.js"),
        "export default 1",
    )
    .unwrap();
    std::fs::write(dist.path().join("land-110m.json"), "{}").unwrap();
    let static_dir = dist.path().to_path_buf();
    let app = spawn_app_with(move |c| {
        c.static_dir = static_dir;
        c.security.frame_ancestors = "https://wall.example".into();
    })
    .await;

    // printf '%s' "$script" | openssl dgst -sha256 -binary | base64
    let script_hash = "'sha256-A3MTJxU2N8RQ1quZedsafrtD6fMB/MvDSPZo+6aB55M='";
    for path in [
        "/",
        "/brands/Nike",
        "/api/health",
        "/api/nothing",
        "/metrics",
    ] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        let csp = header(&res, "content-security-policy");
        assert!(csp.contains("'wasm-unsafe-eval'"), "{path}: {csp}");
        assert!(csp.contains(script_hash), "{path}: {csp}");
        assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
        assert!(
            csp.contains("frame-ancestors https://wall.example"),
            "{csp}"
        );
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
        assert_eq!(header(&res, "referrer-policy"), "no-referrer");
    }
    for page in ["/", "/brands/Nike"] {
        let res = app.http.get(app.url(page)).send().await.unwrap();
        assert_eq!(header(&res, "cache-control"), "no-store", "{page}");
    }
    let res = app
        .http
        .get(app.url("/app-0123456789abcdef.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&res, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let res = app
        .http
        .get(app.url("/land-110m.json"))
        .send()
        .await
        .unwrap();
    assert!(
        !res.headers()
            .get("cache-control")
            .is_some_and(|v| v.to_str().unwrap().contains("immutable")),
        "an unhashed file is never immutable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_listing_needs_its_token_and_is_off_without_one() {
    let app = spawn_app().await;
    app.ingest(&["not json"]).await;
    let url = app.url("/api/dead-letters");
    let res = app.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .get(&url)
        .bearer_auth(DEAD_LETTERS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("not json"));

    let off = spawn_app_with(|c| c.security.dead_letters_token = None).await;
    let res = off
        .http
        .get(off.url("/api/dead-letters"))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_cell_starting_with_a_formula_sign_comes_out_as_text() {
    let app = spawn_app().await;
    let brand = "=HYPERLINK(\"http://evil.example\",\"click\")";
    let report = app.ingest(&[photo("a", brand, 0)]).await;
    assert_eq!(report.accepted, 1);
    let path = format!("/api/brands/{}/series.csv", url_escape(brand));
    let res = app.http.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(body.as_bytes());
    let cells: Vec<String> = rows.records().map(|r| r.unwrap()[1].to_string()).collect();
    assert!(!cells.is_empty(), "{body}");
    for c in cells {
        assert_eq!(c, format!("'{brand}"));
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_search_is_bounded_and_ranks_by_followers() {
    let app = spawn_app().await;
    app.ingest(&[
        user("billy", 0),
        user("Bilbo", 1),
        user("anna", 2),
        follow("anna", "Bilbo", 3),
    ])
    .await;
    let found: Vec<UserProfile> = app.get("/api/users?prefix=BIL").await;
    let names: Vec<_> = found.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["Bilbo", "billy"], "most followed first");
    let found: Vec<UserProfile> = app.get("/api/users?prefix=bil&limit=1").await;
    assert_eq!(found.len(), 1);
    let long = "b".repeat(65);
    let res = app
        .http
        .get(app.url(&format!("/api/users?prefix={long}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_closed_and_a_live_one_is_not() {
    use futures_util::{SinkExt, StreamExt};
    use instabrand_shared::ws::ClientMessage;
    use tokio_tungstenite::tungstenite::Message;

    let app = spawn_app_with(|c| {
        c.live.ping_interval_ms = 200;
        c.live.idle_timeout_ms = 600;
    })
    .await;
    let mut silent = app.ws().await;
    let mut live = app.ws().await;
    silent.subscribe(Topic::Alerts).await;
    live.subscribe(Topic::Alerts).await;
    // `live` keeps reading (tungstenite answers pings as it reads); `silent` does not.
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(100), live.0.next()).await;
    }
    assert_eq!(app.state.hub.connections(), 1, "the silent one was dropped");

    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match silent.0.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "the server closed the silent connection");

    let ping = serde_json::to_string(&ClientMessage::Ping).unwrap();
    live.0.send(Message::Text(ping.into())).await.unwrap();
    let pong = live.next().await;
    assert_eq!(pong.topic, Topic::Connection);
    assert_eq!(pong.frame, Frame::Pong { interval_ms: 200 });
}
