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
//! Frames do not pass through this task: the hub writes them into the socket itself
//! (`hub/outlet.rs`), snapshots included, and this task only writes what the socket
//! could not take at once. So a frame costs a connection one `send`, not a wake-up.
//! The WebSocket library still reads client messages (and answers their pings and
//! closes), writing through the same outlet. A connection whose queue stalls past
//! the send timeout is closed.
//!
//! Cost: the read buffer is a few KiB (`live.read_buffer_bytes`) instead of
//! tungstenite's 128 KiB, and nothing is buffered for writing unless the socket is
//! full.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use instabrand_shared::ws::{ClientMessage, Frame, ServerMessage, Topic};
use tracing::debug;

use super::ApiErr;
use super::AppState;
use crate::hub::outlet::{Offered, Outlet, Socket, ws_frame, ws_ping};

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    ConnectInfo(Socket(outlet)): ConnectInfo<Socket>,
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
    outlet.set_limits(cfg.queue_frames, cfg.max_write_buffer_bytes);
    ws.max_message_size(cfg.max_client_message_bytes)
        .max_frame_size(cfg.max_client_message_bytes)
        .read_buffer_size(cfg.read_buffer_bytes)
        // Only the library's own answers (pongs, close) are written through it.
        .write_buffer_size(0)
        .on_upgrade(move |socket| connection(state, socket, outlet))
}

struct Open<'a>(&'a AppState, &'a Outlet);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.1.close();
        self.0.hub.connection_closed();
    }
}

/// A message for this connection alone, framed.
fn own_frame(topic: Topic, frame: Frame) -> Bytes {
    let msg = ServerMessage {
        topic,
        seq: 0,
        snapshot: false,
        frame,
    };
    ws_frame(&serde_json::to_vec(&msg).expect("frames always serialize"))
}

async fn connection(state: Arc<AppState>, mut socket: WebSocket, outlet: Arc<Outlet>) {
    state.hub.connection_opened();
    let _open = Open(&state, &outlet);
    let cfg = state.hub.config().clone();
    let timeout = Duration::from_secs(cfg.send_timeout_secs.max(1));
    let ping_every = Duration::from_millis(cfg.ping_interval_ms.max(10));
    let silent_limit = Duration::from_millis(cfg.idle_timeout_ms.max(cfg.ping_interval_ms));
    let mut topics: HashSet<Topic> = HashSet::new();
    let mut heartbeat = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();

    macro_rules! send {
        ($bytes:expr) => {
            if outlet.offer(&$bytes) == Offered::Closed {
                return;
            }
        };
    }

    loop {
        tokio::select! {
            incoming = socket.recv() => {
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
                        send!(own_frame(Topic::Connection, Frame::Error { message: format!("unreadable message: {e}") }));
                        continue;
                    }
                };
                match msg {
                    ClientMessage::Ping => {
                        send!(own_frame(Topic::Connection, Frame::Pong { interval_ms: cfg.ping_interval_ms }));
                    }
                    ClientMessage::Subscribe { topic: Topic::Connection } => {
                        send!(own_frame(Topic::Connection, Frame::Error { message: "the connection topic cannot be subscribed".into() }));
                    }
                    ClientMessage::Subscribe { topic } => {
                        // A repeated subscribe is answered like a new one: a fresh snapshot.
                        if !topics.contains(&topic) && topics.len() >= cfg.max_subscriptions {
                            let message = format!("at most {} subscriptions per connection", cfg.max_subscriptions);
                            send!(own_frame(topic, Frame::Error { message }));
                            continue;
                        }
                        // The hub sends the snapshot at its next tick, then the deltas.
                        state.hub.subscribe(&topic, &outlet);
                        topics.insert(topic);
                    }
                    ClientMessage::Unsubscribe { topic } => {
                        state.hub.unsubscribe(&topic, &outlet);
                        topics.remove(&topic);
                    }
                }
            }
            _ = outlet.wanted() => {
                // What the socket could not take at once: written as it drains.
                loop {
                    match outlet.drain() {
                        Ok(true) => break,
                        Ok(false) => match tokio::time::timeout(timeout, outlet.writable()).await {
                            Ok(Ok(())) => {}
                            _ => {
                                debug!("websocket send stalled; closing");
                                return;
                            }
                        },
                        Err(_) => return,
                    }
                }
                if outlet.is_closed() {
                    return;
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= silent_limit {
                    debug!(silent = ?last_heard.elapsed(), "websocket silent past the idle timeout; closing");
                    return;
                }
                send!(ws_ping());
            }
        }
    }
}
