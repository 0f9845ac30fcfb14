//! The leaderboard's sort orders (rising included) and the CSV exports, over REST and
//! the WebSocket, as the dashboard and a spreadsheet read them.

use instabrand_shared::api::{Leaderboard, Window};
use instabrand_shared::ws::{Frame, SortKey, Topic};

use super::helpers::*;

/// Minute 0: Nike 3 photos, Adidas 1. Minute 8: Adidas 3, Nike 2, Lego 1. The 5m
/// window is minutes 4–8 and its previous period minutes -1–3, so Adidas gained 2,
/// Lego 1, and Nike lost 1.
async fn rising_stream(app: &TestApp) {
    let report = app
        .ingest(&[
            photo("n1", "Nike", 0),
            photo("n2", "Nike", 1),
            photo("n3", "Nike", 2),
            photo("a1", "Adidas", 3),
            photo("a2", "Adidas", 480),
            photo("a3", "Adidas", 481),
            photo("a4", "Adidas", 482),
            photo("n4", "Nike", 483),
            photo("n5", "Nike", 484),
            photo("l1", "Lego", 485),
        ])
        .await;
    assert_eq!(report.accepted, 10);
}

fn brands(lb: &Leaderboard) -> Vec<(&str, u64, u64)> {
    lb.rows
        .iter()
        .map(|r| (r.brand.as_str(), r.photos, r.previous_photos))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rising_order_ranks_by_change_against_the_previous_period() {
    let app = spawn_app().await;
    rising_stream(&app).await;
    let by_photos: Leaderboard = app.get("/api/leaderboard?window=5m").await;
    assert_eq!(
        brands(&by_photos),
        [("Adidas", 3, 1), ("Nike", 2, 3), ("Lego", 1, 0)]
    );
    let rising: Leaderboard = app.get("/api/leaderboard?window=5m&sort=rising").await;
    assert_eq!(
        brands(&rising),
        [("Adidas", 3, 1), ("Lego", 1, 0), ("Nike", 2, 3)]
    );

    let mut ws = app.ws().await;
    ws.subscribe(Topic::Leaderboard {
        window: Window::M5,
        sort: SortKey::Rising,
        offset: 0,
        rows: 20,
    })
    .await;
    let msg = ws.next().await;
    let Frame::Leaderboard(frame) = msg.frame else {
        panic!("{msg:?}")
    };
    let live: Vec<_> = frame
        .rows
        .iter()
        .map(|r| (r.brand.as_str(), r.rising))
        .collect();
    assert_eq!(live, [("Adidas", 2), ("Lego", 1), ("Nike", -1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sort_the_server_does_not_know_is_refused() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/api/leaderboard?sort=loudest"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

async fn csv_of(app: &TestApp, path: &str) -> (String, Vec<csv::StringRecord>, csv::StringRecord) {
    let res = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    let disposition = res
        .headers()
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let body = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader.headers().unwrap().clone();
    let rows = reader.records().map(Result::unwrap).collect();
    (disposition, rows, header)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaderboard_csv_holds_every_brand_in_the_order_asked_for() {
    let app = spawn_app().await;
    rising_stream(&app).await;
    app.ingest(&[photo("x", "=cmd|' /C calc'!A0", 486)]).await;
    let (name, rows, header) = csv_of(&app, "/api/leaderboard.csv?window=5m&sort=rising").await;
    assert_eq!(
        name,
        "attachment; filename=\"leaderboard-5m-by-rising-to-2017-06-12T1008Z.csv\""
    );
    assert_eq!(&header[1], "brand");
    assert_eq!(&header[9], "change");
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r[1].to_string(), r[9].to_string()))
        .collect();
    assert_eq!(
        got,
        [
            ("Adidas", "2"),
            ("'=cmd|' /C calc'!A0", "1"),
            ("Lego", "1"),
            ("Nike", "-1")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let rest: Leaderboard = app.get("/api/leaderboard?window=5m&sort=rising").await;
    for (row, r) in rows.iter().zip(&rest.rows) {
        assert_eq!(row[2].parse::<u64>().unwrap(), r.photos);
        assert_eq!(row[5].parse::<u64>().unwrap(), r.reach);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_influencer_csv_neutralises_formulas_and_the_series_csv_has_reach() {
    let app = spawn_app().await;
    app.ingest(&[
        user("@evil", 0),
        user("fan", 0),
        follow("fan", "@evil", 1),
        photo("@evil", "Nike", 2),
        comment("fan", "@evil", 2, "nice", 3),
    ])
    .await;
    let (name, rows, header) = csv_of(&app, "/api/influencers.csv?window=all").await;
    assert_eq!(
        name,
        "attachment; filename=\"influencers-all-to-2017-06-12T1000Z.csv\""
    );
    assert_eq!(&header[1], "username");
    assert_eq!(&rows[0][1], "'@evil");
    assert_eq!(&rows[0][4], "1", "comments received");

    let (name, rows, header) = csv_of(&app, "/api/brands/Nike/series.csv?window=5m").await;
    assert!(name.contains("Nike-series-5m-to-"), "{name}");
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        [
            "time_utc",
            "brand",
            "photos",
            "likes",
            "comments",
            "reach",
            "engagement_rate"
        ]
    );
    let last = rows.last().unwrap();
    assert_eq!((&last[2], &last[4]), ("1", "1"));
    // The photo reached its poster's follower: one distinct user besides the poster
    // at most, so a small positive estimate, and engagement = comments / reach.
    let reach: f64 = last[5].parse().unwrap();
    assert!(reach >= 1.0, "{last:?}");
    let engagement: f64 = last[6].parse().unwrap();
    assert!((engagement - 1.0 / reach).abs() < 1e-6, "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comparison_agrees_with_the_leaderboard_and_bounds_its_overlap() {
    use instabrand_shared::api::Comparison;
    let app = spawn_app().await;
    let mut events = vec![];
    for f in ["f1", "f2", "f3", "f4"] {
        events.push(user(f, 0));
    }
    for (poster, fans) in [("pa", ["f1", "f2", "f3"]), ("pb", ["f2", "f3", "f4"])] {
        events.push(user(poster, 0));
        for f in fans {
            events.push(follow(f, poster, 1));
        }
    }
    events.extend([
        photo("pa", "Apple, Inc.", 2),
        photo("pb", "Nike", 3),
        photo("pb", "Nike", 4),
    ]);
    app.ingest(&events).await;
    let c: Comparison = app
        .get("/api/compare?brands=Apple%2C%20Inc.,Nike&window=5m")
        .await;
    let lb: Leaderboard = app.get("/api/leaderboard?window=5m").await;
    let names: Vec<_> = c.brands.iter().map(|b| b.metrics.brand.as_str()).collect();
    assert_eq!(names, ["Apple, Inc.", "Nike"], "in the order asked for");
    for b in &c.brands {
        let row = lb.rows.iter().find(|r| r.brand == b.metrics.brand).unwrap();
        assert_eq!(
            (b.metrics.photos, b.metrics.reach, b.metrics.share_of_voice),
            (row.photos, row.reach, row.share_of_voice)
        );
        assert_eq!(b.series.len(), 5, "one point per minute of the 5m window");
        let photos: u64 = b.series.iter().map(|p| p.photos).sum();
        assert_eq!(photos, b.metrics.photos);
    }
    let o = &c.overlaps[0];
    assert_eq!((o.a.as_str(), o.b.as_str()), ("Apple, Inc.", "Nike"));
    assert_eq!(o.overlap, o.reach_a + o.reach_b - o.union);
    assert!(
        o.overlap >= 1 && o.overlap <= o.reach_a.min(o.reach_b),
        "{o:?}"
    );
    assert!(o.error >= 1, "an estimate always carries a bound: {o:?}");

    let res = app
        .http
        .get(app.url("/api/compare.csv?brands=Apple%2C%20Inc.,Nike&window=5m"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=\"compare-Apple__Inc.-vs-Nike-5m-to-2017-06-12T1000Z.csv\""
    );
    let body = res.text().await.unwrap();
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(body.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 10, "5 steps × 2 brands");
    let nike_photos: u64 = rows
        .iter()
        .filter(|r| &r[1] == "Nike")
        .map(|r| r[2].parse::<u64>().unwrap())
        .sum();
    assert_eq!(nike_photos, 2);

    for (query, status) in [
        ("brands=Nike&window=5m", 400),
        ("brands=Nike,Nike&window=5m", 400),
        ("brands=Nike,Nobody&window=5m", 404),
        ("brands=Nike,Apple%2C%20Inc.&window=2y", 400),
    ] {
        let res = app
            .http
            .get(app.url(&format!("/api/compare?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brand_detail_carries_the_previous_periods_series_for_its_chart() {
    use instabrand_shared::api::BrandDetail;
    let app = spawn_app().await;
    rising_stream(&app).await;
    let d: BrandDetail = app.get("/api/brands/Nike?window=5m").await;
    let previous = d.previous.unwrap();
    assert_eq!(d.previous_series.len(), d.series.len());
    let photos: u64 = d.previous_series.iter().map(|p| p.photos).sum();
    assert_eq!((photos, previous.photos), (3, 3));
    let gap = d.series[0].minute_ms - d.previous_series[0].minute_ms;
    assert_eq!(gap, 5 * 60_000, "the same steps, one window earlier");
    let all: BrandDetail = app.get("/api/brands/Nike?window=all").await;
    assert!(
        all.previous_series.is_empty(),
        "all time has no previous period"
    );
}
