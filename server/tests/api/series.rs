//! Range series over REST: `/api/brands/{brand}/series` and `/api/series`.

use instabrand_shared::api::{ApiError, BrandSeries, Resolution, SeriesComparison};

use crate::helpers::*;

/// Nike: two photos by `a` (2 followers) at 10:00 and one by `b` (1 follower) at
/// 10:02; Adidas one at 10:09; Zara one at 10:10 (which moves the clock to 10:09:58).
async fn app_with_history() -> TestApp {
    let app = spawn_app().await;
    let report = app
        .ingest(&[
            follow("f1", "a", 0),
            follow("f2", "a", 0),
            follow("f1", "b", 0),
            photo("a", "Nike", 1),
            photo("a", "Nike", 30),
            photo("b", "Nike", 150),
            photo("c", "Adidas", 540),
            photo("d", "Zara", 600),
        ])
        .await;
    assert_eq!(report.rejected, 0);
    app
}

async fn status_and_error(app: &TestApp, path: &str) -> (u16, String) {
    let res = app.http.get(app.url(path)).send().await.unwrap();
    let status = res.status().as_u16();
    let body: ApiError = res.json().await.unwrap_or_default();
    (status, body.error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brand_series_covers_a_range_at_the_resolution_that_fits() {
    let app = app_with_history().await;
    let s: BrandSeries = app
        .get("/api/brands/Nike/series?from=2017-06-12T10:00:00Z&to=2017-06-12T10:04:59Z")
        .await;
    assert_eq!(s.resolution, Resolution::Minute, "auto: recent minutes");
    assert_eq!(s.step_ms, 60_000);
    assert_eq!(s.points.len(), 5);
    assert_eq!(s.to_ms - s.from_ms, 5 * 60_000);
    let photos: Vec<u64> = s.points.iter().map(|p| p.photos).collect();
    assert_eq!(photos, [2, 0, 1, 0, 0]);
    assert_eq!(s.points[0].reach, Some(2));
    assert_eq!(s.points[2].reach, Some(1));
    assert_eq!(s.points[1].reach, Some(0));
    assert_eq!(s.totals.photos, 3);
    assert_eq!(s.totals.reach, Some(2), "f1 and f2: a union, not a sum");
    assert_eq!(
        s.totals.share_of_voice, 1.0,
        "Adidas posted after the range"
    );
    assert!(s.clock_ms.is_some());

    // Hours, asked for, from milliseconds; `to` defaults to the clock.
    let from = instabrand_shared::time::parse_time("2017-06-12 09:00:00").unwrap();
    let s: BrandSeries = app
        .get(&format!(
            "/api/brands/Nike/series?from={from}&resolution=hour"
        ))
        .await;
    assert_eq!(s.resolution, Resolution::Hour);
    assert_eq!(s.points.len(), 2);
    assert_eq!((s.points[0].photos, s.points[1].photos), (0, 3));
    assert_eq!(s.points[1].reach, Some(2));
    assert_eq!(s.points[1].engagement_rate, Some(0.0));
    assert_eq!(s.totals.share_of_voice, 0.6);

    // Days, and a range from year 1 (auto starts at the oldest day kept).
    let s: BrandSeries = app
        .get("/api/brands/Nike/series?from=2017-06-12T00:00:00Z&resolution=day")
        .await;
    assert_eq!((s.points.len(), s.points[0].photos), (1, 3));
    assert_eq!(s.points[0].reach, Some(2));
    let s: BrandSeries = app
        .get("/api/brands/Nike/series?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z")
        .await;
    assert_eq!(s.resolution, Resolution::Day);
    assert_eq!(s.points.len(), 731);
    assert_eq!(s.totals.photos, 3);
    // Wholly in the future: empty.
    let s: BrandSeries = app
        .get("/api/brands/Nike/series?from=9999-01-01T00:00:00Z")
        .await;
    assert!(s.points.is_empty());
    assert_eq!(s.totals.photos, 0);
    // The existing series and its CSV still answer.
    let csv = app
        .http
        .get(app.url("/api/brands/Nike/series.csv?window=24h"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brands_compare_on_the_same_buckets_with_all_brands_together() {
    let app = app_with_history().await;
    let c: SeriesComparison = app
        .get("/api/series?brands=Nike,Adidas&from=2017-06-12T10:00:00Z&resolution=minute")
        .await;
    assert_eq!(c.resolution, Resolution::Minute);
    assert_eq!(c.brands.len(), 2);
    assert_eq!(c.all.brand, "*");
    assert_eq!(c.all.totals.photos, 4);
    assert_eq!(c.all.totals.reach, None, "all brands keep counters only");
    assert_eq!(c.brands[0].totals.share_of_voice, 0.75);
    assert_eq!(c.brands[1].totals.share_of_voice, 0.25);
    for b in &c.brands {
        assert_eq!(b.points.len(), c.all.points.len());
    }
    let nine = &c.brands[1].points[9];
    assert_eq!((nine.photos, nine.share_of_voice), (1, 1.0));
    // No brands: all brands together alone.
    let c: SeriesComparison = app.get("/api/series?from=2017-06-12T10:00:00Z").await;
    assert!(c.brands.is_empty());
    assert_eq!(c.all.totals.photos, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ranges_get_a_400_that_says_why() {
    let app = app_with_history().await;
    let nike = "/api/brands/Nike/series";
    for (query, says) in [
        ("", "from is required"),
        ("?from=yesterday", "is not a time"),
        ("?from=2017-13-01T00:00:00Z", "is not a time"),
        ("?from=99999999999999999999", "out of range"),
        (
            "?from=2017-06-12T10:05:00Z&to=2017-06-12T10:00:00Z",
            "is after to",
        ),
        (
            "?from=2017-06-12T10:00:00Z&resolution=week",
            "unknown resolution",
        ),
        (
            "?from=0001-01-01T00:00:00Z&resolution=minute",
            "minute buckets are kept from",
        ),
        (
            "?from=2016-01-01T00:00:00Z&resolution=hour",
            "hour buckets are kept from",
        ),
    ] {
        let (status, error) = status_and_error(&app, &format!("{nike}{query}")).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert!(error.contains(says), "{query}: {error:?}");
    }
    let (status, error) =
        status_and_error(&app, "/api/brands/Puma/series?from=2017-06-12T10:00:00Z").await;
    assert_eq!((status, error.contains("Puma")), (404, true));
    let (status, _) = status_and_error(
        &app,
        "/api/series?brands=Nike,Puma&from=2017-06-12T10:00:00Z",
    )
    .await;
    assert_eq!(status, 404);
    let many = (0..11)
        .map(|i| format!("b{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let (status, error) = status_and_error(
        &app,
        &format!("/api/series?brands={many}&from=2017-06-12T10:00:00Z"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error.contains("at most 10 brands"), "{error}");
}
