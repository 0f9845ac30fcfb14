//! The top bar: navigation and the WebSocket's connection state.

use leptos::prelude::*;

use crate::context::ctx;
use crate::route::Route;
use crate::ws::ConnState;

#[component]
pub fn Header() -> impl IntoView {
    let ctx = ctx();
    let link = move |href: &'static str, label: &'static str, is: fn(&Route) -> bool| {
        view! {
            <a href=href aria-current=move || ctx.route.with(|r| is(r).then_some("page"))>{label}</a>
        }
    };
    view! {
        <header class="header">
            <a class="logo" href="/">"Instabrand"</a>
            <nav aria-label="Pages">
                {link("/", "Overview", |r| matches!(r, Route::Overview | Route::Brand(_)))}
                {link("/map", "Map", |r| matches!(r, Route::Map))}
                {link("/compare", "Compare", |r| matches!(r, Route::Compare))}
                {link("/feed", "Feeds", |r| matches!(r, Route::Feed(_)))}
                {link("/health", "Health", |r| matches!(r, Route::Health))}
                {link("/present", "Present", |r| matches!(r, Route::Present))}
            </nav>
            <ConnBadge/>
        </header>
    }
}

/// Live, connecting, or offline with the retry countdown: a wall screen that lost its
/// server says so instead of showing stale numbers as if they were live.
#[component]
pub fn ConnBadge() -> impl IntoView {
    let ctx = ctx();
    let state = move || match ctx.conn.get() {
        ConnState::Open => "open",
        ConnState::Connecting => "connecting",
        ConnState::Reconnecting { .. } => "reconnecting",
    };
    let text = move || match ctx.conn.get() {
        ConnState::Open => "live".to_string(),
        ConnState::Connecting => "connecting…".to_string(),
        ConnState::Reconnecting { in_ms, attempt } => format!(
            "offline · retrying in {:.0} s (attempt {attempt})",
            (f64::from(in_ms) / 1000.0).ceil()
        ),
    };
    view! {
        <span class="conn" data-test="conn" data-state=state role="status" aria-live="polite">
            <span class="dot" aria-hidden="true"></span>
            {text}
        </span>
    }
}
