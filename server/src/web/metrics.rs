//! Prometheus `/metrics`, via the `prometheus-client` crate (the Prometheus project's
//! own Rust client). The numbers live where they are kept (processor, hub, pipeline,
//! sources); a scrape copies them into the registry's families and encodes it, so the
//! hot path never touches a metrics lock.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use instabrand_shared::EventKind;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::ApiErr;
use super::AppState;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    applied: Family<Labels, Counter>,
    dead_letters: Family<Labels, Counter>,
    late: Family<Labels, Counter>,
    frames: Counter,
    resyncs: Counter,
    gauges: Family<Labels, Gauge<f64, AtomicU64>>,
    lag: Family<Labels, Gauge>,
    state_entries: Family<Labels, Gauge>,
    state_bytes: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("instabrand");
        let applied = Family::<Labels, Counter>::default();
        registry.register("events_applied", "Events applied, by type", applied.clone());
        let dead_letters = Family::<Labels, Counter>::default();
        registry.register(
            "dead_letters",
            "Records dead-lettered, by reason",
            dead_letters.clone(),
        );
        let late = Family::<Labels, Counter>::default();
        registry.register(
            "events_late",
            "Events applied behind the newest applied time by more than the allowed lateness, by how they were handled",
            late.clone(),
        );
        let frames = Counter::default();
        registry.register("ws_frames", "WebSocket frames broadcast", frames.clone());
        let resyncs = Counter::default();
        registry.register(
            "ws_resyncs",
            "Slow WebSocket subscribers resynced with a snapshot",
            resyncs.clone(),
        );
        let gauges = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "state",
            "Current figures: users, photos, pending, clock, rates, connections",
            gauges.clone(),
        );
        let lag = Family::<Labels, Gauge>::default();
        registry.register(
            "kafka_consumer_lag",
            "Kafka consumer lag in messages, by topic/partition",
            lag.clone(),
        );
        let state_entries = Family::<Labels, Gauge>::default();
        registry.register(
            "state_entries",
            "Entries held by each part of the processor's state (users, follow_edges, photos, likes, timelines, sketches, pending…)",
            state_entries.clone(),
        );
        let state_bytes = Family::<Labels, Gauge>::default();
        registry.register(
            "state_bytes",
            "Estimated memory of each part of the processor's state, in bytes",
            state_bytes.clone(),
        );
        Metrics {
            registry,
            state_entries,
            state_bytes,
            applied,
            dead_letters,
            late,
            frames,
            resyncs,
            gauges,
            lag,
        }
    }
}

fn catch_up(c: &Counter, value: u64) {
    let now = c.get();
    if value > now {
        c.inc_by(value - now);
    }
}

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

pub async fn prometheus(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiErr> {
    static METRICS: Mutex<Option<Metrics>> = Mutex::new(None);
    let h = state.health();
    // Always shown, also when checkpoints are off (then all zero).
    let cp = state.stats.checkpoint_health();
    let mut guard = METRICS
        .lock()
        .map_err(|_| ApiErr::Internal(anyhow::anyhow!("metrics lock poisoned")))?;
    let m = guard.get_or_insert_with(Metrics::default);
    for k in EventKind::ALL {
        catch_up(
            &m.applied.get_or_create(&label("type", k.as_str())),
            h.events_by_kind.get(k.as_str()).copied().unwrap_or(0),
        );
    }
    for (reason, n) in &h.dead_letters_by_reason {
        catch_up(&m.dead_letters.get_or_create(&label("reason", reason)), *n);
    }
    for (handling, n) in &h.late_by_handling {
        catch_up(&m.late.get_or_create(&label("handling", handling)), *n);
    }
    catch_up(&m.frames, state.hub.frames_sent());
    catch_up(&m.resyncs, state.hub.resync_count());
    for (name, v) in [
        ("users", h.users as f64),
        ("implicit_users", h.implicit_users as f64),
        ("photos", h.photos as f64),
        ("pending_engagements", h.pending_engagements as f64),
        ("late_events", h.late_events as f64),
        ("duplicates", h.duplicates as f64),
        ("superseded", h.superseded as f64),
        ("held_for_order", h.order.held as f64),
        ("released_early", h.order.released_early as f64),
        (
            "applied_time_seconds",
            h.order.applied_time_ms.unwrap_or(0) as f64 / 1000.0,
        ),
        ("stream_clock_seconds", h.stream_clock_ms as f64 / 1000.0),
        ("events_per_second", h.events_per_sec),
        ("websocket_connections", h.websocket_clients as f64),
        ("uptime_seconds", h.uptime_ms as f64 / 1000.0),
        ("checkpoints", cp.taken as f64),
        ("last_checkpoint_bytes", cp.last_bytes as f64),
        ("last_checkpoint_seconds", cp.last_ms as f64 / 1000.0),
        (
            "last_checkpoint_pause_seconds",
            cp.last_pause_us as f64 / 1e6,
        ),
        ("store_base_bytes", cp.base_bytes as f64),
        ("store_changelog_bytes", cp.changelog_bytes as f64),
        ("store_changelog_entries", cp.changelog_entries as f64),
        ("store_file_bytes", cp.file_bytes as f64),
        ("store_compactions", cp.compactions as f64),
        (
            "store_last_compaction_seconds",
            cp.last_compaction_ms as f64 / 1000.0,
        ),
    ] {
        m.gauges.get_or_create(&label("figure", name)).set(v);
    }
    for s in &h.state {
        let part = label("part", &s.name);
        m.state_entries
            .get_or_create(&part)
            .set(i64::try_from(s.entries).unwrap_or(i64::MAX));
        m.state_bytes
            .get_or_create(&part)
            .set(i64::try_from(s.bytes).unwrap_or(i64::MAX));
    }
    for i in &h.order.inputs {
        for (figure, v) in [
            (
                "input_watermark_seconds",
                i.watermark_ms.unwrap_or(0) as f64 / 1000.0,
            ),
            (
                "input_trails_seconds",
                i.trails_ms.unwrap_or(0) as f64 / 1000.0,
            ),
            ("input_held", i.held as f64),
        ] {
            m.gauges
                .get_or_create(&vec![
                    ("figure".to_string(), figure.to_string()),
                    ("input".to_string(), i.name.clone()),
                ])
                .set(v);
        }
    }
    for s in &h.sources {
        m.gauges
            .get_or_create(&vec![
                ("figure".to_string(), "source_connected".to_string()),
                ("source".to_string(), s.kind.clone()),
            ])
            .set(if s.connected { 1.0 } else { 0.0 });
        for (tp, lag) in &s.lag {
            m.lag.get_or_create(&label("partition", tp)).set(*lag);
        }
    }
    let mut body = String::new();
    encode(&mut body, &m.registry).map_err(|e| ApiErr::Internal(e.into()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    ))
}
