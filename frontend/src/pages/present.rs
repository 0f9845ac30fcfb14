//! Presentation mode for a wall screen or a live demo: dark, large type, full screen
//! (key `p`), rotating through the leaderboard, the map and alerts with influencers
//! every N seconds (`/present?every=20`; arrow keys step, Escape leaves).
//!
//! All views stay mounted and only the visible one is shown, so switching costs no
//! resubscription and the map keeps its trail; every buffer behind them is bounded
//! (see [`crate::live`]), so memory stays flat however long it runs.

use instabrand_shared::ws::SortKey;
use leptos::ev;
use leptos::prelude::*;

use crate::app::ctx;
use crate::components::alerts::AlertsPanel;
use crate::components::header::ConnBadge;
use crate::components::influencers::InfluencersPanel;
use crate::components::leaderboard::LeaderboardTable;
use crate::components::live_map::{LiveMap, MapReadout};
use crate::format;
use crate::live::LeaderboardState;
use crate::pages::map::Legend;
use crate::pages::overview::use_leaderboard;
use crate::route::query_param;

const VIEWS: [&str; 3] = ["Leaderboard", "Live map", "Alerts & influencers"];

#[component]
pub fn Present() -> impl IntoView {
    let ctx = ctx();
    let every = ctx
        .search
        .with_untracked(|s| query_param(s, "every"))
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(15)
        .clamp(3, 3_600);
    let current = RwSignal::new(0usize);
    let since = RwSignal::new(0u32);

    let ticker = set_interval_with_handle(
        move || {
            since.update(|s| *s += 1);
            if since.get_untracked() >= every {
                since.set(0);
                current.update(|c| *c = (*c + 1) % VIEWS.len());
            }
        },
        std::time::Duration::from_secs(1),
    )
    .ok();
    let keys = window_event_listener(ev::keydown, move |e: web_sys::KeyboardEvent| {
        let step = match e.key().as_str() {
            "ArrowRight" | "PageDown" | " " => 1,
            "ArrowLeft" | "PageUp" => VIEWS.len() - 1,
            _ => return,
        };
        e.prevent_default();
        since.set(0);
        current.update(|c| *c = (*c + step) % VIEWS.len());
    });
    on_cleanup(move || {
        if let Some(t) = ticker {
            t.clear();
        }
        keys.remove();
    });

    let board = RwSignal::new(LeaderboardState::default());
    let loaded = RwSignal::new(false);
    use_leaderboard(
        board,
        loaded,
        Signal::derive(|| 0),
        Signal::derive(SortKey::default),
    );
    let readout = RwSignal::new(MapReadout::default());
    let no_filter = Signal::derive(|| None::<String>);
    let shown = move |i: usize| move || current.get() == i;

    view! {
        <div class="present-root" data-test="present" data-view=move || current.get().to_string()>
            <div class="present-bar">
                <span class="logo">"Instabrand"</span>
                <span class="title">{move || VIEWS[current.get()]}</span>
                <span class="big-stat" data-test="present-rate">{move || format::rate(board.with(|b| b.events_per_sec))}</span>
                <span class="big-stat">{move || format!("{} photos · {}", format::grouped(board.with(|b| b.total_photos)), ctx.window.get().label())}</span>
                <ConnBadge/>
                <span class="progress" aria-hidden="true">
                    <span style:width=move || format!("{:.1}%", f64::from(since.get()) / f64::from(every) * 100.0)></span>
                </span>
            </div>
            <section class="present-view" class:active=shown(0)>
                <LeaderboardTable board=board loaded=loaded limit=10/>
            </section>
            <section class="present-view map-wrap" class:active=shown(1)>
                <LiveMap filter=no_filter readout=readout/>
                <Legend readout=readout/>
            </section>
            <section class="present-view split" class:active=shown(2)>
                <AlertsPanel limit=8/>
                <InfluencersPanel limit=10/>
            </section>
        </div>
    }
}
