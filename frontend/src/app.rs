//! The app shell: shared state in one context, the client-side router, keyboard
//! shortcuts, the header and footer, and the page for the current route.
//!
//! Routing is a signal holding the parsed [`Route`], changed by `history.pushState` on
//! same-origin link clicks and by the browser's back and forward buttons. A few dozen
//! lines here replace a router crate and keep the wasm small.
//!
//! The view's state lives in the URL's query string, so a copied link reopens the same
//! view and back and forward step through changes: `window` on every page, and per
//! page `sort` and `page` (overview), `brand` (map), `views` and `every` (present),
//! `brands` and `metric` (compare), and a range, `range=7d` or `from=…&to=…` (brand and
//! compare, see [`crate::range`]).
//! Pages read those from [`Ctx::search`] and change them with [`Ctx::set_query`]. The
//! window is also kept while moving between pages (a link to `/map` does not carry
//! it), so the app writes it back into every URL it lands on.

use instabrand_shared::api::Window;
use instabrand_shared::ws::{Frame, Topic};
use leptos::ev;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::components::alerts::AlertBanner;
use crate::components::controls::ControlsPanel;
use crate::components::header::Header;
use crate::dom;
use crate::live::{ALERT_CAPACITY, AlertLog};
use crate::pages::{
    brand::BrandPage, compare::ComparePage, feeds::FeedsPage, health::HealthPage, map::MapPage,
    overview::Overview, present::Present,
};
use crate::route::{Route, query_param, set_param};
use crate::ws::{self, ConnState};

const WINDOW_KEY: &str = "instabrand.window";

/// Whether a change of the URL's state is a step back and forward can return to (a
/// choice the user made) or a correction of the same step (filling in the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryMode {
    Push,
    Replace,
}

fn window_in(search: &str) -> Option<Window> {
    query_param(search, "window").and_then(|w| w.parse().ok())
}

/// State every page may read; all fields are signals, so the struct is `Copy`.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub route: RwSignal<Route>,
    /// The query string of the current URL (`?every=20`, `?bench=20000`).
    pub search: RwSignal<String>,
    pub conn: RwSignal<ConnState>,
    /// The metrics window chosen on any page, remembered across visits.
    pub window: RwSignal<Window>,
    pub alerts: RwSignal<AlertLog>,
    /// The newest alert that arrived live, with the wall-clock time it arrived.
    pub fresh_alert: RwSignal<Option<(instabrand_shared::api::Alert, f64)>>,
    /// Wall clock, ticking once a second, for ages and timed banners.
    pub now: RwSignal<f64>,
    pub controls_open: RwSignal<bool>,
}

pub fn ctx() -> Ctx {
    expect_context::<Ctx>()
}

impl Ctx {
    /// Moves to `href` without reloading the page.
    pub fn navigate(&self, href: &str) {
        if let Ok(history) = dom::window().history() {
            let _ = history.push_state_with_url(&JsValue::NULL, "", Some(href));
        }
        self.sync_from_location();
        dom::window().scroll_to_with_x_and_y(0.0, 0.0);
    }

    fn sync_from_location(&self) {
        self.route.set(Route::parse(&dom::location_path()));
        let search = dom::location_search();
        if let Some(w) = window_in(&search) {
            self.window.set(w);
        }
        self.search.set(search);
    }

    /// A window chosen by the user: a new history entry, so back returns to the last
    /// one; the table starts again at its first page.
    pub fn set_window(&self, w: Window) {
        dom::storage_set(WINDOW_KEY, w.as_str());
        // A window chosen drops any range, so the buttons work as before on the
        // pages that also take a range.
        let search = self.search.with_untracked(|s| {
            let s = set_param(s, "window", Some(w.as_str()));
            crate::range::Range::write(None, &set_param(&s, "page", None))
        });
        self.go_to_search(&search, HistoryMode::Push);
        self.window.set(w);
    }

    /// The range in the URL, if any (brand and compare pages).
    pub fn range(&self) -> Memo<Option<crate::range::Range>> {
        let search = self.search;
        Memo::new(move |_| search.with(|s| crate::range::Range::from_search(s)))
    }

    /// A range chosen (or with `None`, dropped): a step of history like a window.
    pub fn set_range(&self, range: Option<&crate::range::Range>) {
        let search = self
            .search
            .with_untracked(|s| crate::range::Range::write(range, s));
        self.go_to_search(&search, HistoryMode::Push);
    }

    /// Sets (or with `None` removes) one query parameter of the current URL.
    pub fn set_query(&self, name: &str, value: Option<&str>, mode: HistoryMode) {
        let search = self.search.with_untracked(|s| set_param(s, name, value));
        self.go_to_search(&search, mode);
    }

    /// Replaces the query string, keeping the path.
    pub fn go_to_search(&self, search: &str, mode: HistoryMode) {
        if self.search.with_untracked(|s| s == search) {
            return;
        }
        let href = format!("{}{search}", dom::location_path());
        if let Ok(history) = dom::window().history() {
            let _ = match mode {
                HistoryMode::Push => history.push_state_with_url(&JsValue::NULL, "", Some(&href)),
                HistoryMode::Replace => {
                    history.replace_state_with_url(&JsValue::NULL, "", Some(&href))
                }
            };
        }
        self.search.set(search.to_string());
    }
}

pub fn start() {
    leptos::mount::mount_to_body(App);
}

#[component]
fn App() -> impl IntoView {
    let ctx = Ctx {
        route: RwSignal::new(Route::parse(&dom::location_path())),
        search: RwSignal::new(dom::location_search()),
        conn: RwSignal::new(ConnState::Connecting),
        // A link's window wins over the one remembered on this machine.
        window: RwSignal::new(
            window_in(&dom::location_search())
                .or_else(|| dom::storage_get(WINDOW_KEY).and_then(|w| w.parse().ok()))
                .unwrap_or_default(),
        ),
        alerts: RwSignal::new(AlertLog::new(ALERT_CAPACITY)),
        fresh_alert: RwSignal::new(None),
        now: RwSignal::new(dom::now_ms()),
        // Closed by default even with a stored token, so a wall screen shows no
        // controls; `?presenter`, the footer button or key `c` open it.
        controls_open: RwSignal::new(dom::location_search().contains("presenter")),
    };
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
    Effect::new(move |_| {
        let w = ctx.window.get();
        let search = ctx.search.get();
        if window_in(&search) != Some(w) {
            ctx.go_to_search(
                &set_param(&search, "window", Some(w.as_str())),
                HistoryMode::Replace,
            );
        }
    });

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
