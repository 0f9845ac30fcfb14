//! The one WebSocket of the page. Components subscribe to topics through it; it keeps
//! a single connection to `/ws` on the page's own origin, sends each topic's
//! `subscribe` once however many components want it, hands every server frame to the
//! components that asked for its topic, and shows its state in the header.
//!
//! When the connection drops it reconnects with exponential back-off and jitter
//! (0.5 s doubling to 15 s, so a restarted server is not stampeded by every wall
//! screen at once), then re-subscribes every topic: the server answers each with a
//! fresh snapshot, which the holders in [`crate::live`] treat as "replace everything",
//! so nothing missed while offline stays missing.
//!
//! Heartbeat: a page cannot see WebSocket pings, so it sends `{"op":"ping"}` every half
//! of the server's heartbeat interval (the pong says how long that is) and, when
//! nothing at all (no frame, no pong) has arrived for a whole interval, takes the link
//! for dead: a laptop that slept or a Wi-Fi that dropped leaves a socket the browser
//! still thinks open, and the page would show "live" over frozen numbers. It then
//! shows "offline" and reconnects.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use instabrand_shared::ws::{ClientMessage, Frame, ServerMessage, Topic};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::dom;
use crate::live::{Heartbeat, heartbeat, reconnect_delay_ms};

/// The heartbeat interval assumed until the server's first pong says otherwise (the
/// server's default).
const DEFAULT_HEARTBEAT_MS: f64 = 10_000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConnState {
    Connecting,
    Open,
    /// Waiting `in_ms` before attempt number `attempt`.
    Reconnecting {
        in_ms: u32,
        attempt: u32,
    },
}

type Callback = Rc<dyn Fn(&ServerMessage)>;

struct Subscription {
    id: u64,
    topic: Topic,
    callback: Callback,
}

/// The socket's event handlers. Kept here, not leaked, so a reconnecting page that
/// runs for days does not accumulate closures.
struct Handlers {
    _open: Closure<dyn FnMut()>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

#[derive(Default)]
struct Service {
    socket: Option<WebSocket>,
    handlers: Option<Handlers>,
    subscriptions: Vec<Subscription>,
    next_id: u64,
    attempt: u32,
    state: Option<RwSignal<ConnState>>,
    reconnect_scheduled: bool,
    frames: u64,
    /// When anything last arrived, and when we last pinged (`dom::now_ms`).
    heard_ms: f64,
    pinged_ms: f64,
    heartbeat_ms: f64,
}

thread_local! {
    static SERVICE: RefCell<Service> = RefCell::new(Service::default());
}

/// Opens the connection; call once when the app mounts.
pub fn start(state: RwSignal<ConnState>) {
    SERVICE.with_borrow_mut(|s| {
        s.state = Some(state);
        s.heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    });
    connect();
    dom::set_timeout(HEARTBEAT_CHECK_MS, check_heartbeat);
}

const HEARTBEAT_CHECK_MS: i32 = 250;

/// Runs every quarter second for the page's life: pings, or gives up on a dead link.
fn check_heartbeat() {
    dom::set_timeout(HEARTBEAT_CHECK_MS, check_heartbeat);
    let now = dom::now_ms();
    let verdict = SERVICE.with_borrow(|s| match &s.socket {
        Some(socket) if socket.ready_state() == WebSocket::OPEN => {
            Some(heartbeat(now, s.heard_ms, s.pinged_ms, s.heartbeat_ms))
        }
        _ => None,
    });
    match verdict {
        Some(Heartbeat::SendPing) => {
            SERVICE.with_borrow_mut(|s| s.pinged_ms = now);
            send(&ClientMessage::Ping);
        }
        Some(Heartbeat::Dead) => {
            tracing::warn!("no frame or pong within the heartbeat interval; reconnecting");
            let old = SERVICE.with_borrow_mut(|s| s.socket.take());
            if let Some(old) = old {
                detach(&old);
                let _ = old.close();
            }
            schedule_reconnect();
        }
        Some(Heartbeat::Quiet) | None => {}
    }
}

fn set_state(state: ConnState) {
    if let Some(signal) = SERVICE.with_borrow(|s| s.state) {
        signal.set(state);
    }
}

fn socket_url() -> String {
    let location = dom::window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    format!("{scheme}://{host}/ws")
}

fn connect() {
    SERVICE.with_borrow_mut(|s| {
        s.reconnect_scheduled = false;
        if let Some(old) = s.socket.take() {
            detach(&old);
            let _ = old.close();
        }
        s.handlers = None;
    });
    set_state(ConnState::Connecting);
    let socket = match WebSocket::new(&socket_url()) {
        Ok(socket) => socket,
        Err(e) => {
            tracing::warn!(error = ?e, "could not open the WebSocket");
            schedule_reconnect();
            return;
        }
    };
    let open = Closure::<dyn FnMut()>::new(on_open);
    let message = Closure::<dyn FnMut(MessageEvent)>::new(on_message);
    let close = Closure::<dyn FnMut(CloseEvent)>::new(|e: CloseEvent| {
        tracing::info!(code = e.code(), "WebSocket closed");
        schedule_reconnect();
    });
    socket.set_onopen(Some(open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(close.as_ref().unchecked_ref()));
    SERVICE.with_borrow_mut(|s| {
        s.socket = Some(socket);
        s.handlers = Some(Handlers {
            _open: open,
            _message: message,
            _close: close,
        });
    });
}

fn detach(socket: &WebSocket) {
    socket.set_onopen(None);
    socket.set_onmessage(None);
    socket.set_onclose(None);
}

fn on_open() {
    let topics = SERVICE.with_borrow_mut(|s| {
        s.attempt = 0;
        s.heard_ms = dom::now_ms();
        s.pinged_ms = 0.0;
        distinct_topics(&s.subscriptions)
    });
    set_state(ConnState::Open);
    tracing::info!(topics = topics.len(), "WebSocket open; resubscribing");
    for topic in topics {
        send(&ClientMessage::Subscribe { topic });
    }
}

fn distinct_topics(subs: &[Subscription]) -> Vec<Topic> {
    let mut topics: Vec<Topic> = subs.iter().map(|s| s.topic.clone()).collect();
    topics.sort();
    topics.dedup();
    topics
}

fn on_message(e: MessageEvent) {
    let Some(text) = e.data().as_string() else {
        return;
    };
    let msg: ServerMessage = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(err) => {
            tracing::warn!(%err, "unreadable server frame");
            return;
        }
    };
    SERVICE.with_borrow_mut(|s| s.heard_ms = dom::now_ms());
    if let Frame::Pong { interval_ms } = msg.frame {
        SERVICE.with_borrow_mut(|s| s.heartbeat_ms = interval_ms as f64);
        return;
    }
    // Callbacks may subscribe or unsubscribe (a page switching windows), so they run
    // after the service is released.
    let callbacks: Vec<Callback> = SERVICE.with_borrow_mut(|s| {
        s.frames += 1;
        s.subscriptions
            .iter()
            .filter(|sub| sub.topic == msg.topic)
            .map(|sub| sub.callback.clone())
            .collect()
    });
    for cb in callbacks {
        cb(&msg);
    }
}

fn schedule_reconnect() {
    let delay = SERVICE.with_borrow_mut(|s| {
        if s.reconnect_scheduled {
            return None;
        }
        s.reconnect_scheduled = true;
        if let Some(old) = s.socket.take() {
            detach(&old);
        }
        s.attempt = s.attempt.saturating_add(1);
        Some((
            reconnect_delay_ms(s.attempt, js_sys::Math::random()),
            s.attempt,
        ))
    });
    if let Some((in_ms, attempt)) = delay {
        set_state(ConnState::Reconnecting { in_ms, attempt });
        dom::set_timeout(in_ms as i32, connect);
    }
}

fn send(msg: &ClientMessage) {
    let text = serde_json::to_string(msg).expect("client messages serialize");
    SERVICE.with_borrow(|s| {
        if let Some(socket) = &s.socket
            && socket.ready_state() == WebSocket::OPEN
        {
            let _ = socket.send_with_str(&text);
        }
    });
}

/// Starts delivering `topic`'s frames to `callback`; returns the id to unsubscribe with.
pub fn subscribe(topic: Topic, callback: impl Fn(&ServerMessage) + 'static) -> u64 {
    let (id, held) = SERVICE.with_borrow_mut(|s| {
        let held = s.subscriptions.iter().any(|sub| sub.topic == topic);
        s.next_id += 1;
        s.subscriptions.push(Subscription {
            id: s.next_id,
            topic: topic.clone(),
            callback: Rc::new(callback),
        });
        (s.next_id, held)
    });
    if held {
        // The server ignores a repeated subscribe, but the newcomer needs a snapshot:
        // resubscribing makes the server send one, which the other holders take as a
        // resync.
        send(&ClientMessage::Unsubscribe {
            topic: topic.clone(),
        });
    }
    send(&ClientMessage::Subscribe { topic });
    id
}

pub fn unsubscribe(id: u64) {
    let gone = SERVICE.with_borrow_mut(|s| {
        let pos = s.subscriptions.iter().position(|sub| sub.id == id)?;
        let sub = s.subscriptions.remove(pos);
        let still_wanted = s.subscriptions.iter().any(|other| other.topic == sub.topic);
        (!still_wanted).then_some(sub.topic)
    });
    if let Some(topic) = gone {
        send(&ClientMessage::Unsubscribe { topic });
    }
}

/// Subscribes for as long as the calling component lives, following `topic` as it
/// changes (a window picker, a user name); `None` holds no subscription.
pub fn use_topic(
    topic: impl Fn() -> Option<Topic> + 'static,
    callback: impl Fn(&ServerMessage) + Clone + 'static,
) {
    // Shared with the cleanup, which Leptos requires to be Send; 0 means "none".
    let current = Arc::new(AtomicU64::new(0));
    let held = current.clone();
    Effect::new(move |_| {
        let wanted = topic();
        let old = held.swap(0, Ordering::Relaxed);
        if old != 0 {
            unsubscribe(old);
        }
        if let Some(t) = wanted {
            held.store(subscribe(t, callback.clone()), Ordering::Relaxed);
        }
    });
    on_cleanup(move || {
        let old = current.swap(0, Ordering::Relaxed);
        if old != 0 {
            unsubscribe(old);
        }
    });
}

/// Frames received since the page loaded (for the header's liveness hint).
pub fn frames_received() -> u64 {
    SERVICE.with_borrow(|s| s.frames)
}
