//! One WebSocket connection: subscriptions in, frames out.
//!
//! A single task owns the socket. It reads client messages (subscribe, unsubscribe)
//! and forwards the frames of every subscribed topic from the hub's broadcast rings.
//! Each subscription first gets a snapshot. If the client reads too slowly and its
//! ring overflows, the backlog is dropped and a fresh snapshot sent instead; a send
//! that stalls past the timeout closes the connection. Either way nobody else waits.

use std::sync::Arc;
use std::time::Duration;

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
    let (mut tx, mut rx) = socket.split();
    let mut subs: StreamMap<Topic, BroadcastStream<Utf8Bytes>> = StreamMap::new();

    macro_rules! send {
        ($bytes:expr) => {
            match tokio::time::timeout(timeout, tx.send(Message::Text($bytes))).await {
                Ok(Ok(())) => {}
                _ => {
                    debug!("websocket send failed or stalled; closing");
                    return;
                }
            }
        };
    }

    loop {
        tokio::select! {
            incoming = rx.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue, // pings are answered by the library; binary is ignored
                };
                let msg: ClientMessage = match serde_json::from_str(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        send!(error_frame(Topic::Health, format!("unreadable message: {e}")));
                        continue;
                    }
                };
                match msg {
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
            Some((topic, item)) = subs.next(), if !subs.is_empty() => match item {
                Ok(bytes) => send!(bytes),
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    // Too slow: drop the backlog, start again from a snapshot.
                    debug!(?topic, missed, "subscriber lagged; resyncing");
                    state.hub.resynced();
                    let Some(snap) = start_from_snapshot(&state, &mut subs, topic).await else { return };
                    send!(snap);
                }
            },
        }
    }
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
    let st = state.clone();
    tokio::task::spawn_blocking(move || st.hub.snapshot(&st, &topic, seq))
        .await
        .ok()
}
