//! Integration tests: the real application on port 0, driven over HTTP and WebSocket.

mod exports;
mod helpers;
mod security;
mod series;

use std::time::Duration;

use helpers::*;
use instabrand_shared::api::Window;
use instabrand_shared::api::{
    DeadLetterView, FeedPage, Health, Leaderboard, OriginalBrandMetric, UserFeeds,
};
use instabrand_shared::ws::{Frame, Topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_gets_a_snapshot_then_live_leaderboard_deltas() {
    let app = spawn_app().await;
    app.ingest(&[photo("a", "Nike", 0)]).await;
    let mut ws = app.ws().await;
    ws.subscribe(Topic::leaderboard(Window::All)).await;
    let first = ws.next().await;
    assert!(first.snapshot);
    let Frame::Leaderboard(lb) = first.frame else {
        panic!("{first:?}")
    };
    assert_eq!(lb.rows.len(), 1);
    assert_eq!((lb.rows[0].brand.as_str(), lb.rows[0].photos), ("Nike", 1));

    app.ingest(&[photo("b", "Nike", 1), photo("c", "Apple, Inc.", 2)])
        .await;
    let delta = ws.next().await;
    assert!(!delta.snapshot, "after the snapshot come deltas");
    assert!(delta.seq > first.seq);
    let Frame::Leaderboard(d) = delta.frame else {
        panic!("{delta:?}")
    };
    let entered: Vec<_> = d
        .rows
        .iter()
        .map(|r| (r.brand.as_str(), r.photos))
        .collect();
    assert_eq!(entered, [("Apple, Inc.", 1)], "a new row goes whole");
    let changed: Vec<_> = d
        .changed
        .iter()
        .map(|p| (p.brand.as_str(), p.photos))
        .collect();
    assert_eq!(
        changed,
        [("Nike", Some(2))],
        "a row already shown gets the values that changed"
    );
    assert_eq!(d.total_photos, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_timeline_over_rest_matches_what_the_events_imply() {
    let app = spawn_app().await;
    let report = app
        .ingest(&[
            user("reader", 0),
            follow("reader", "alice", 1),
            follow("reader", "bob", 2),
            photo("alice", "Nike", 10),
            photo("carol", "Nike", 11),
            photo("bob", "Adidas", 12),
            photo("reader", "Zara", 13),
            comment("carol", "alice", 10, "<img src=x onerror=alert(1)>", 14),
        ])
        .await;
    assert_eq!((report.accepted, report.rejected), (8, 0));
    let tl: FeedPage = app.get("/api/users/reader/timeline").await;
    let got: Vec<_> = tl
        .items
        .iter()
        .map(|p| (p.owner.as_str(), p.brands[0].as_str()))
        .collect();
    assert_eq!(
        got,
        [("reader", "Zara"), ("bob", "Adidas"), ("alice", "Nike")]
    );
    assert_eq!(tl.items[2].comments, 1);
    assert_eq!(
        tl.items[2].recent_comments[0].text,
        "<img src=x onerror=alert(1)>"
    );

    let page1: FeedPage = app.get("/api/users/reader/timeline?limit=2").await;
    let next = page1.next.expect("a second page");
    let page2: FeedPage = app
        .get(&format!("/api/users/reader/timeline?limit=2&before={next}"))
        .await;
    assert_eq!(page2.items.len(), 1);
    assert_eq!(page2.items[0].owner, "alice");

    let feeds: UserFeeds = app.get("/api/users/alice").await;
    assert_eq!(feeds.profile.followers, 1);
    assert!(!feeds.profile.registered, "alice never sent create-user");
    let res = app
        .http
        .get(app.url("/api/users/nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("nobody"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_counted_by_reason_kept_with_its_bytes_and_good_events_around_it_apply() {
    let app = spawn_app_with(|c| c.limits.max_message_bytes = 400).await;
    let oversized = format!(
        r#"{{"event":"create-user","username":"{}"}}"#,
        "x".repeat(500)
    );
    let lines = vec![
        user("u1", 0),
        "this is not json".to_string(),
        user("u2", 1),
        r#"{"event":"poke","username":"u1"}"#.to_string(),
        r#"{"event":"create-user","username":"u3","created_time":"2017-06-12 10:00:00"}"#.to_string(),
        r#"{"event":"create-user","username":"u4","full_name":"U","created_time":"2017-02-30 10:00:00"}"#.to_string(),
        r#"{"event":"photo-upload","username":"u1","tags":"Nike","photo_link":"","created_time":"2017-06-12 10:00:00","latitude":"95","longitude":"0"}"#.to_string(),
        r#"{"event":"create-user","username":7,"full_name":"U","created_time":"2017-06-12 10:00:00"}"#.to_string(),
        r#"{"username":"u5"}"#.to_string(),
        oversized.clone(),
        user("u6", 2),
    ];
    let report = app.ingest(&lines).await;
    assert_eq!(report.accepted, 3);
    assert_eq!(report.rejected, 8);
    let reasons: Vec<_> = report
        .errors
        .iter()
        .map(|e| (e.line, e.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            (2, "not_json"),
            (4, "unknown_event"),
            (5, "missing_field"),
            (6, "invalid_time"),
            (7, "invalid_coordinates"),
            (8, "invalid_field"),
            (9, "missing_event"),
            (10, "oversized")
        ]
    );
    let health: Health = app.get("/api/health").await;
    assert_eq!(health.users, 3, "u1, u2 and u6 applied");
    assert_eq!(health.dead_letters, 8);
    assert_eq!(health.dead_letters_by_reason["not_json"], 1);
    let dl: Vec<DeadLetterView> = app
        .get_authorized("/api/dead-letters", DEAD_LETTERS_TOKEN)
        .await;
    assert_eq!(dl[0].raw, oversized, "newest first, original bytes");
    assert_eq!(dl[0].source, "ingest:line 10");
    let file = std::fs::read_to_string(app.dir.path().join("dead-letters.ndjson")).unwrap();
    assert_eq!(file.lines().count(), 8);
    assert!(file.contains("this is not json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_presenter_controls_refuse_requests_without_their_token() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/api/ingest"))
        .body(user("x", 0))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .post(app.url("/api/ingest"))
        .bearer_auth("wrong")
        .body(user("x", 0))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .post(app.url("/api/control/campaign"))
        .json(&serde_json::json!({"brand": "Nike"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let health: Health = app.get("/api/health").await;
    assert_eq!(health.users, 0, "nothing got in");

    let closed = spawn_app_with(|c| c.ingest_token = None).await;
    let res = closed
        .http
        .post(closed.url("/api/ingest"))
        .bearer_auth(INGEST_TOKEN)
        .body(user("x", 0))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no token configured: ingest is off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_brand_metrics_endpoint_keeps_its_shape() {
    let app = spawn_app().await;
    app.ingest(&[follow("f", "a", 0), photo("a", "Apple, Inc.", 1)])
        .await;
    let raw: serde_json::Value = app.get("/brand-metrics").await;
    let first = &raw.as_array().unwrap()[0];
    assert_eq!(first["Tag"], "Apple, Inc.");
    assert_eq!(first["Reach"], 1);
    let _: Vec<OriginalBrandMetric> = serde_json::from_value(raw).unwrap();
    let lb: Leaderboard = app.get("/api/leaderboard?window=24h").await;
    assert_eq!(lb.rows[0].share_of_voice, 1.0);
    let res = app
        .http
        .get(app.url("/api/leaderboard?window=3d"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("instabrand_events_applied_total{type=\"photo-upload\"} 1"),
        "{metrics}"
    );
    // The state by part: the one photo, in entries and in bytes.
    assert!(
        metrics.contains("instabrand_state_entries{part=\"photos\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("instabrand_state_bytes{part=\"follow_edges\"}"),
        "{metrics}"
    );
    let health: Health = app.get("/api/health").await;
    let photos = health.state.iter().find(|s| s.name == "photos").unwrap();
    assert_eq!(photos.entries, 1);
    assert!(photos.bytes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_websocket_client_does_not_delay_another_and_is_resynced() {
    let app = spawn_app_with(|c| {
        c.live.queue_frames = 4;
        c.live.send_timeout_secs = 30;
    })
    .await;
    // The stalled client: a tiny receive buffer and it never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let (mut stalled, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", app.addr), stream)
        .await
        .unwrap();
    {
        use futures_util::SinkExt;
        let m = serde_json::to_string(&instabrand_shared::ws::ClientMessage::Subscribe {
            topic: Topic::Map,
        })
        .unwrap();
        stalled
            .send(tokio_tungstenite::tungstenite::Message::Text(m.into()))
            .await
            .unwrap();
    }
    let mut live = app.ws().await;
    live.subscribe(Topic::Map).await;
    assert!(live.next().await.snapshot);

    // About 8 MB of frames: more than the kernel buffers (4 MB at most for a send
    // buffer here) can hide, so the stalled connection really blocks.
    let owners: Vec<String> = (0..1000)
        .map(|i| format!("user{i:04}-{}", "x".repeat(50)))
        .collect();
    let mut sent = 0;
    let mut seen = std::collections::HashSet::new();
    for round in 0..60u32 {
        let batch: Vec<String> = owners.iter().map(|o| photo(o, "Nike", round)).collect();
        app.ingest(&batch).await;
        sent += batch.len();
        // The live client keeps up, round after round, while the other never reads.
        while seen.len() < sent {
            let m = live.next().await;
            if let Frame::MapPoints(pts) = m.frame {
                for p in pts {
                    seen.insert((p.owner, p.created_ms));
                }
            }
        }
    }
    assert_eq!(seen.len(), 60_000);
    // When the stalled client finally reads, it finds a snapshot among its frames.
    let mut got_snapshot = false;
    for _ in 0..200 {
        use futures_util::StreamExt;
        match tokio::time::timeout(Duration::from_secs(5), stalled.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                let m: instabrand_shared::ws::ServerMessage = serde_json::from_str(&t).unwrap();
                if m.snapshot && m.seq > 0 {
                    got_snapshot = true;
                    break;
                }
            }
            // The server's heartbeat pings arrive among the frames.
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Ping(_)))) => {}
            _ => break,
        }
    }
    assert!(
        got_snapshot,
        "the slow client was resynced with a fresh snapshot"
    );
    assert!(app.state.hub.resync_count() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_subscription_shows_a_newly_posted_photo() {
    let app = spawn_app().await;
    app.ingest(&[user("reader", 0), follow("reader", "alice", 1)])
        .await;
    let mut ws = app.ws().await;
    ws.subscribe(Topic::Feed {
        username: "reader".into(),
    })
    .await;
    let snap = ws.next().await;
    let Frame::Feed(f) = snap.frame else {
        panic!("{snap:?}")
    };
    assert!(f.timeline.items.is_empty());
    app.ingest(&[photo("alice", "Nike", 5)]).await;
    let delta = ws.next().await;
    let Frame::Feed(f) = delta.frame else {
        panic!("{delta:?}")
    };
    assert_eq!(f.timeline.items.len(), 1);
    assert_eq!(f.timeline.items[0].owner, "alice");
    ws.subscribe(Topic::Feed {
        username: "nobody".into(),
    })
    .await;
    let err = ws.next().await;
    assert!(matches!(err.frame, Frame::Error { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archiver_archives_and_dead_letters_but_applies_nothing() {
    let app = spawn_app_with(|c| {
        c.pipeline.apply = false;
        // Without the spool, `flush` publishes the files the check below reads.
        c.archive.spool = false;
    })
    .await;
    let lines = vec![
        user("u1", 0),
        "this is not json".to_string(),
        photo("u1", "Nike", 1),
        follow("u2", "u1", 2),
    ];
    let report = app.ingest(&lines).await;
    assert_eq!((report.accepted, report.rejected), (3, 1));
    let health: Health = app.get("/api/health").await;
    assert_eq!(health.events_applied, 0, "nothing applied");
    assert_eq!((health.users, health.photos), (0, 0));
    assert_eq!(
        health.events_ingested, 3,
        "every valid event counted as ingested"
    );
    assert_eq!(health.dead_letters, 1, "bad input still dead-lettered");
    // Every valid event is in the archive, with its original bytes, in order.
    app.state
        .archive
        .as_ref()
        .expect("the archive is on by default")
        .flush()
        .unwrap();
    let root = app.dir.path().join("archive");
    let raw: Vec<String> = instabrand_server::archive::ArchiveReader::open(&root)
        .unwrap()
        .map(|r| String::from_utf8(r.unwrap().raw.to_vec()).unwrap())
        .collect();
    assert_eq!(raw, [lines[0].clone(), lines[2].clone(), lines[3].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_future_event_is_dead_lettered_and_cannot_move_the_stream_clock() {
    let app = spawn_app().await;
    let future = r#"{"username":"bad","full_name":"Bad Clock","created_time":"9999-12-31 23:59:59","event":"create-user"}"#.to_string();
    // First event of the stream, then in the middle of it.
    let report = app
        .ingest(&[
            future.clone(),
            user("u1", 0),
            photo("u1", "Nike", 5),
            future,
            user("u2", 9),
        ])
        .await;
    assert_eq!(report.accepted, 3);
    let reasons: Vec<_> = report
        .errors
        .iter()
        .map(|e| (e.line, e.reason.as_str()))
        .collect();
    assert_eq!(reasons, [(1, "future_time"), (4, "future_time")]);
    let health: Health = app.get("/api/health").await;
    assert_eq!(health.dead_letters_by_reason["future_time"], 2);
    assert_eq!(
        health.order.applied_time_ms,
        Some(instabrand_shared::time::parse_time(&t(9)).unwrap()),
        "the clock is the stream's, not year 9999"
    );
    let lb: Leaderboard = app.get("/api/leaderboard?window=5m").await;
    assert_eq!(
        lb.rows[0].photos, 1,
        "the 5-minute window still holds 2017's photo"
    );
    // Every ingested event is accounted for, and the input is listed with its watermark.
    assert_eq!(health.events_ingested, 3);
    assert_eq!(
        health.events_applied + health.duplicates + health.superseded,
        3
    );
    let ingest = health
        .order
        .inputs
        .iter()
        .find(|i| i.name == "ingest")
        .unwrap();
    assert_eq!(ingest.watermark_ms, health.order.applied_time_ms);
    assert_eq!(ingest.trails_ms, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_data_far_behind_the_wall_clock_is_applied() {
    // 2017 is years behind the wall clock: replays of old data pass the future guard.
    let app = spawn_app().await;
    let report = app.ingest(&[user("u1", 0), user("u2", 1)]).await;
    assert_eq!((report.accepted, report.rejected), (2, 0));
}

/// The next leaderboard frame that carries rows (rate-only frames have none).
async fn next_rows(ws: &mut Ws) -> (bool, Vec<String>, instabrand_shared::ws::LeaderboardFrame) {
    loop {
        let m = ws.next().await;
        let Frame::Leaderboard(lb) = m.frame else {
            continue;
        };
        if !lb.rows.is_empty() || !lb.changed.is_empty() || !lb.removed.is_empty() {
            let brands = lb
                .rows
                .iter()
                .map(|r| r.brand.clone())
                .chain(lb.changed.iter().map(|p| p.brand.clone()))
                .collect();
            return (m.snapshot, brands, lb);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaderboard_delta_after_a_change_to_one_brand_carries_that_row_only() {
    let app = spawn_app().await;
    let photos: Vec<String> = (0..25)
        .map(|i| photo(&format!("u{i:02}"), &format!("b{i:02}"), i))
        .collect();
    app.ingest(&photos).await;
    let mut ws = app.ws().await;
    ws.subscribe(Topic::Leaderboard {
        window: Window::All,
        sort: instabrand_shared::ws::SortKey::Photos,
        offset: 0,
        rows: 5,
    })
    .await;
    let (snapshot, brands, lb) = next_rows(&mut ws).await;
    assert!(snapshot);
    assert_eq!(brands, ["b00", "b01", "b02", "b03", "b04"], "the page only");
    assert_eq!(lb.total_brands, 25, "the table knows how many there are");

    // A change below the page is not on screen: no row goes out for it.
    app.ingest(&[comment("fan", "u20", 20, "nice", 30)]).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A change to one brand on the page: that row, and only it.
    app.ingest(&[comment("fan", "u01", 1, "nice", 31)]).await;
    let (snapshot, brands, lb) = next_rows(&mut ws).await;
    assert!(!snapshot);
    assert_eq!(brands, ["b01"]);
    let patch = &lb.changed[0];
    assert_eq!(patch.comments, Some(1));
    assert_eq!(
        (patch.photos, patch.likes),
        (None, None),
        "only the values that changed"
    );
    assert!(lb.removed.is_empty());
}
