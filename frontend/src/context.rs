//! The state every page and component shares, [`Ctx`], and how it follows the URL.
//!
//! It sits below the app shell that provides it and the pages and components that
//! read it, so they need nothing from the shell and the shell only composes them.
//!
//! The view's state lives in the URL's query string, so a copied link reopens the same
//! view and back and forward step through changes: `window` on every page, and per
//! page `sort` and `page` (overview), `brand` (map), `views` and `every` (present),
//! `brands` and `metric` (compare), and a range, `range=7d` or `from=…&to=…` (brand and
//! compare, see [`crate::range`]).
//! Pages read those from [`Ctx::search`] and change them with [`Ctx::set_query`]. The
//! window is also kept while moving between pages (a link to `/map` does not carry
//! it), so the app writes it back into every URL it lands on
//! ([`Ctx::name_window_in_url`]).

use instabrand_shared::api::Window;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use crate::dom;
use crate::live::{ALERT_CAPACITY, AlertLog};
use crate::range::Range;
use crate::route::{Route, query_param, set_param};
use crate::ws::ConnState;

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

/// The context the app shell provided.
pub fn ctx() -> Ctx {
    expect_context::<Ctx>()
}

impl Ctx {
    /// The state at start: the route and query of the page's URL, the window it names
    /// or the one remembered on this machine, no alerts yet.
    pub fn from_location() -> Self {
        Ctx {
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
        }
    }

    /// Moves to `href` without reloading the page.
    pub fn navigate(&self, href: &str) {
        if let Ok(history) = dom::window().history() {
            let _ = history.push_state_with_url(&JsValue::NULL, "", Some(href));
        }
        self.sync_from_location();
        dom::window().scroll_to_with_x_and_y(0.0, 0.0);
    }

    /// Reads the route, query and window back from the browser's URL (after a
    /// navigation, or the back and forward buttons).
    pub fn sync_from_location(&self) {
        self.route.set(Route::parse(&dom::location_path()));
        let search = dom::location_search();
        if let Some(w) = window_in(&search) {
            self.window.set(w);
        }
        self.search.set(search);
    }

    /// Writes the window shown into the URL when it names another or none, so copying
    /// the URL from any page keeps the window; a replacement, not a step of history.
    /// Run in an effect, it tracks the window and the query.
    pub fn name_window_in_url(&self) {
        let w = self.window.get();
        let search = self.search.get();
        if window_in(&search) != Some(w) {
            self.go_to_search(
                &set_param(&search, "window", Some(w.as_str())),
                HistoryMode::Replace,
            );
        }
    }

    /// A window chosen by the user: a new history entry, so back returns to the last
    /// one; the table starts again at its first page.
    pub fn set_window(&self, w: Window) {
        dom::storage_set(WINDOW_KEY, w.as_str());
        // A window chosen drops any range, so the buttons work as before on the
        // pages that also take a range.
        let search = self.search.with_untracked(|s| {
            let s = set_param(s, "window", Some(w.as_str()));
            Range::write(None, &set_param(&s, "page", None))
        });
        self.go_to_search(&search, HistoryMode::Push);
        self.window.set(w);
    }

    /// The range in the URL, if any (brand and compare pages).
    pub fn range(&self) -> Memo<Option<Range>> {
        let search = self.search;
        Memo::new(move |_| search.with(|s| Range::from_search(s)))
    }

    /// A range chosen (or with `None`, dropped): a step of history like a window.
    pub fn set_range(&self, range: Option<&Range>) {
        let search = self.search.with_untracked(|s| Range::write(range, s));
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
