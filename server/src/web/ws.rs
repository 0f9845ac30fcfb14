//! One WebSocket connection: subscriptions in, frames out.
//!
//! A single task owns the socket. It reads client messages (subscribe, unsubscribe)
//! and forwards the frames of every subscribed topic from the hub's broadcast rings.
//! Each subscription first gets a snapshot. If the client reads too slowly and its
//! ring overflows, the backlog is dropped and a fresh snapshot sent instead; a send
//! that stalls past the timeout closes the connection. Either way nobody else waits.
//!
//! Heartbeat: the server pings every `live.ping_interval_ms` and closes a connection
//! from which nothing (no message, no pong) arrived for `live.idle_timeout_ms`: a
//! half-open socket (a laptop that slept, a Wi-Fi that dropped) would otherwise hold
//! its buffers and subscriptions for ever. A page cannot see pings, so it sends
//! `{"op":"ping"}` and gets a pong frame on the `connection` topic.
//!
//! Cost: the read and write buffers are a few KiB (`live.read_buffer_bytes`,
//! `live.write_buffer_bytes`) instead of tungstenite's 128 KiB, and frames that are
//! ready together are written with one flush.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use tokio::time::Instant;

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use instabrand_shared::ws::{ClientMessage, Frame, ServerMessage, Topic};
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tracing::debug;

use super::ApiErr;
use crate::state::AppState;

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !super::security::origin_allowed(&headers, &state.config.security.allowed_origins) {
        debug!(origin = ?headers.get(header::ORIGIN), "websocket from a foreign origin refused");
        return ApiErr::Forbidden("this origin may not open the live stream".into())
            .into_response();
    }
    let cfg = state.hub.config();
    if state.hub.connections() as usize >= cfg.max_connections {
        return ApiErr::Unavailable("too many WebSocket connections".into()).into_response();
    }
    ws.max_message_size(cfg.max_client_message_bytes)
        .max_frame_size(cfg.max_client_message_bytes)
        .read_buffer_size(cfg.read_buffer_bytes)
        .write_buffer_size(cfg.write_buffer_bytes)
        .max_write_buffer_size(cfg.max_write_buffer_bytes.max(cfg.write_buffer_bytes * 2))
        .on_upgrade(move |socket| connection(state, socket))
}

struct Open<'a>(&'a AppState);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.hub.connection_closed();
    }
}

fn error_frame(topic: Topic, message: String) -> Utf8Bytes {
    let msg = ServerMessage {
        topic,
        seq: 0,
        snapshot: false,
        frame: Frame::Error { message },
    };
    Utf8Bytes::from(serde_json::to_string(&msg).expect("frames always serialize"))
}

async fn connection(state: Arc<AppState>, socket: WebSocket) {
    state.hub.connection_opened();
    let _open = Open(&state);
    let cfg = state.hub.config().clone();
    let timeout = Duration::from_secs(cfg.send_timeout_secs.max(1));
    let ping_every = Duration::from_millis(cfg.ping_interval_ms.max(10));
    let silent_limit = Duration::from_millis(cfg.idle_timeout_ms.max(cfg.ping_interval_ms));
    let (mut tx, mut rx) = socket.split();
    let mut subs: StreamMap<Topic, BroadcastStream<Utf8Bytes>> = StreamMap::new();
    let mut heartbeat = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();

    // `feed` queues a message in the socket's write buffer; `flush` writes it out.
    // Frames that are ready together go out in one write.
    macro_rules! io {
        ($op:expr) => {
            match tokio::time::timeout(timeout, $op).await {
                Ok(Ok(())) => {}
                _ => {
                    debug!("websocket send failed or stalled; closing");
                    return;
                }
            }
        };
    }
    macro_rules! send {
        ($bytes:expr) => {
            io!(tx.send(Message::Text($bytes)))
        };
    }

    loop {
        tokio::select! {
            incoming = rx.next() => {
                last_heard = Instant::now();
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    // Pongs (and pings, which the library answers) only prove the link is alive.
                    Some(Ok(_)) => continue,
                };
                let msg: ClientMessage = match serde_json::from_str(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        send!(connection_frame(Frame::Error { message: format!("unreadable message: {e}") }));
                        continue;
                    }
                };
                match msg {
                    ClientMessage::Ping => {
                        send!(connection_frame(Frame::Pong { interval_ms: cfg.ping_interval_ms }));
                    }
                    ClientMessage::Subscribe { topic: Topic::Connection } => {
                        send!(connection_frame(Frame::Error { message: "the connection topic cannot be subscribed".into() }));
                    }
                    ClientMessage::Subscribe { topic } => {
                        // A repeated subscribe is answered like a new one: a fresh snapshot.
                        if !subs.contains_key(&topic) && subs.len() >= cfg.max_subscriptions {
                            send!(error_frame(topic, format!("at most {} subscriptions per connection", cfg.max_subscriptions)));
                            continue;
                        }
                        let Some(snap) = start_from_snapshot(&state, &mut subs, topic).await else { return };
                        send!(snap);
                    }
                    ClientMessage::Unsubscribe { topic } => {
                        subs.remove(&topic);
                    }
                }
            }
            Some((topic, item)) = subs.next(), if !subs.is_empty() => {
                let mut next = Some((topic, item));
                // This frame and every other one already waiting, then one flush.
                let mut burst = 0;
                while let Some((topic, item)) = next.take() {
                    match item {
                        Ok(bytes) => io!(tx.feed(Message::Text(bytes))),
                        Err(BroadcastStreamRecvError::Lagged(missed)) => {
                            // Too slow: drop the backlog, start again from a snapshot.
                            debug!(?topic, missed, "subscriber lagged; resyncing");
                            state.hub.resynced();
                            let Some(snap) = start_from_snapshot(&state, &mut subs, topic).await else { return };
                            io!(tx.feed(Message::Text(snap)));
                        }
                    }
                    burst += 1;
                    if burst < MAX_BURST {
                        next = subs.next().now_or_never().flatten();
                    }
                }
                io!(tx.flush());
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= silent_limit {
                    debug!(silent = ?last_heard.elapsed(), "websocket silent past the idle timeout; closing");
                    return;
                }
                io!(tx.send(Message::Ping(Bytes::new())));
            }
        }
    }
}

/// Frames written per flush at most, so one connection's backlog cannot hold a worker.
const MAX_BURST: usize = 32;

fn connection_frame(frame: Frame) -> Utf8Bytes {
    let msg = ServerMessage {
        topic: Topic::Connection,
        seq: 0,
        snapshot: false,
        frame,
    };
    Utf8Bytes::from(serde_json::to_string(&msg).expect("frames always serialize"))
}

/// (Re)subscribes `topic` from the hub's current frame on, dropping any backlog, and
/// returns the snapshot to send first. `None` if the server is shutting down.
async fn start_from_snapshot(
    state: &Arc<AppState>,
    subs: &mut StreamMap<Topic, BroadcastStream<Utf8Bytes>>,
    topic: Topic,
) -> Option<Utf8Bytes> {
    let (receiver, seq) = state.hub.subscribe(&topic);
    subs.insert(topic.clone(), BroadcastStream::new(receiver));
    if let Some(bytes) = state.hub.cached_snapshot(&topic, seq) {
        return Some(bytes);
    }
    let _turn = state.hub.snapshot_permits().acquire().await.ok()?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || st.hub.snapshot(&st, &topic, seq))
        .await
        .ok()
}
