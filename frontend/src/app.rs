//! The app shell: it provides the shared state ([`crate::context::Ctx`]), runs the
//! client-side router and keyboard shortcuts, and composes the header, footer and the
//! page for the current route. Pages and components take the state from
//! [`crate::context`], not from here, so nothing below imports the shell.
//!
//! Routing is a signal holding the parsed [`Route`], changed by `history.pushState` on
//! same-origin link clicks and by the browser's back and forward buttons. A few dozen
//! lines here replace a router crate and keep the wasm small. The view's state in the
//! URL's query string is described in [`crate::context`].

use instabrand_shared::api::Window;
use instabrand_shared::ws::{Frame, Topic};
use leptos::ev;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::components::alerts::AlertBanner;
use crate::components::controls::ControlsPanel;
use crate::components::header::Header;
use crate::context::Ctx;
use crate::dom;
use crate::pages::{
    brand::BrandPage, compare::ComparePage, feeds::FeedsPage, health::HealthPage, map::MapPage,
    overview::Overview, present::Present,
};
use crate::route::Route;
use crate::ws::{self, ConnState};

pub fn start() {
    leptos::mount::mount_to_body(App);
}

#[component]
fn App() -> impl IntoView {
    let ctx = Ctx::from_location();
    provide_context(ctx);
    ws::start(ctx.conn);

    // Alerts are wanted on every page (banner, overview, presentation): one
    // subscription for the whole app.
    ws::use_topic(
        || Some(Topic::Alerts),
        move |msg| {
            if let Frame::Alerts(list) = &msg.frame {
                ctx.alerts
                    .update(|log| log.apply(msg.snapshot, list.clone()));
                if !msg.snapshot
                    && let Some(newest) = list.iter().max_by_key(|a| a.id)
                {
                    ctx.fresh_alert.set(Some((newest.clone(), dom::now_ms())));
                }
            }
        },
    );

    let tick = set_interval_with_handle(
        move || {
            ctx.now.set(dom::now_ms());
            dom::report_wasm_memory();
        },
        std::time::Duration::from_secs(1),
    )
    .ok();
    on_cleanup(move || {
        if let Some(t) = tick {
            t.clear();
        }
    });

    let _ = window_event_listener(ev::popstate, move |_| ctx.sync_from_location());
    let _ = window_event_listener(ev::click, move |e: web_sys::MouseEvent| {
        intercept_link(ctx, e)
    });
    let _ = window_event_listener(ev::keydown, move |e: web_sys::KeyboardEvent| on_key(ctx, e));

    // Every URL the app lands on names the window it shows, so copying it from any
    // page keeps the window; a replacement, not a step of history.
    Effect::new(move |_| ctx.name_window_in_url());

    // The presentation view is dark and header-less; the class lives on <body> so the
    // page background follows too.
    Effect::new(move |_| {
        let present = ctx.route.get() == Route::Present;
        if let Some(body) = dom::document().body() {
            let _ = body.class_list().toggle_with_force("present", present);
        }
    });

    // While offline the last numbers stay, dimmed, so nobody reads them as live.
    Effect::new(move |_| {
        let offline = matches!(ctx.conn.get(), ConnState::Reconnecting { .. });
        if let Some(body) = dom::document().body() {
            let _ = body.class_list().toggle_with_force("offline", offline);
        }
    });

    view! {
        <Header/>
        <AlertBanner/>
        <main id="main" tabindex="-1">
            {move || match ctx.route.get() {
                Route::Overview => view! { <Overview/> }.into_any(),
                Route::Brand(name) => view! { <BrandPage brand=name/> }.into_any(),
                Route::Map => view! { <MapPage/> }.into_any(),
                Route::Feed(user) => view! { <FeedsPage user=user/> }.into_any(),
                Route::Health => view! { <HealthPage/> }.into_any(),
                Route::Present => view! { <Present/> }.into_any(),
                Route::Compare => view! { <ComparePage/> }.into_any(),
                Route::NotFound(path) => view! {
                    <section class="panel empty" data-test="not-found">
                        <h1>"Nothing here"</h1>
                        <p>"No page at " <code>{path}</code> ". "
                           <a href="/">"Back to the overview"</a></p>
                    </section>
                }.into_any(),
            }}
        </main>
        <ControlsPanel/>
        <footer class="footer">
            <span>"Map: Natural Earth (public domain). Cities: contains data from GeoNames, CC BY 4.0."</span>
            <span class="keys">"Keys: o overview · m map · f feeds · h health · p presentation · 1–4 window · c presenter"</span>
            <button class="link" data-test="presenter-toggle"
                on:click=move |_| ctx.controls_open.update(|o| *o = !*o)>"Presenter"</button>
        </footer>
    }
}

/// Same-origin links become client-side navigations; downloads, new tabs, modified
/// clicks and the API stay with the browser.
fn intercept_link(ctx: Ctx, e: web_sys::MouseEvent) {
    if e.default_prevented()
        || e.button() != 0
        || e.ctrl_key()
        || e.meta_key()
        || e.shift_key()
        || e.alt_key()
    {
        return;
    }
    let Some(anchor) = e
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .and_then(|el| el.closest("a[href]").ok().flatten())
    else {
        return;
    };
    if anchor.has_attribute("download") || anchor.has_attribute("target") {
        return;
    }
    let href = anchor.get_attribute("href").unwrap_or_default();
    if !href.starts_with('/') || href.starts_with("//") || href.starts_with("/api/") {
        return;
    }
    e.prevent_default();
    ctx.navigate(&href);
}

fn on_key(ctx: Ctx, e: web_sys::KeyboardEvent) {
    if e.ctrl_key() || e.meta_key() || e.alt_key() {
        return;
    }
    let typing = e
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .map(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"))
        .unwrap_or(false);
    if typing {
        return;
    }
    let presenting = ctx.route.get_untracked() == Route::Present;
    match e.key().as_str() {
        "p" => {
            if presenting {
                leave_fullscreen();
                ctx.navigate("/");
            } else {
                // A key press is a user gesture, so the browser allows full screen.
                if let Some(root) = dom::document().document_element() {
                    let _ = root.request_fullscreen();
                }
                ctx.navigate("/present");
            }
        }
        "Escape" if presenting => {
            leave_fullscreen();
            ctx.navigate("/");
        }
        "o" => ctx.navigate("/"),
        "m" => ctx.navigate("/map"),
        "f" => ctx.navigate("/feed"),
        "h" => ctx.navigate("/health"),
        "c" => ctx.controls_open.update(|o| *o = !*o),
        k @ ("1" | "2" | "3" | "4") => {
            let i = k.parse::<usize>().unwrap_or(1) - 1;
            ctx.set_window(Window::ALL[i]);
        }
        _ => return,
    }
    e.prevent_default();
}

fn leave_fullscreen() {
    let doc = dom::document();
    if doc.fullscreen_element().is_some() {
        doc.exit_fullscreen();
    }
}
