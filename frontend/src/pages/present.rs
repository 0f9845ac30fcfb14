//! Presentation mode for a wall screen or a live demo: dark, large type, full screen
//! (key `p`), rotating through the views its URL names at its pace:
//!
//! `/present?views=overview,map:Nike,brand:Adidas,compare:Nike+Adidas&every=20`
//!
//! (syntax in [`crate::playlist`]; without `views`: leaderboard, map, alerts). Space
//! pauses and resumes, the arrow keys (and PageUp/PageDown) step, Escape leaves. It
//! asks the browser to keep the screen awake, and reloads itself when the server
//! reports a new build (`/api/build`, checked every minute or every `buildcheck`
//! seconds), so a wall screen never runs last week's dashboard.
//!
//! The leaderboard stays subscribed throughout (the bar shows its numbers); the other
//! views mount when shown, so a playlist of many brands holds one brand's
//! subscription at a time, and every buffer behind them is bounded (see
//! [`crate::live`]), so memory stays flat however long it runs.

use instabrand_shared::ws::SortKey;
use leptos::ev;
use leptos::prelude::*;

use crate::components::alerts::AlertsPanel;
use crate::components::compare_table::CompareTable;
use crate::components::header::ConnBadge;
use crate::components::influencers::InfluencersPanel;
use crate::components::leaderboard::LeaderboardTable;
use crate::components::live_map::{LiveMap, MapReadout};
use crate::context::ctx;
use crate::live::LeaderboardState;
use crate::pages::brand::BrandPage;
use crate::pages::map::Legend;
use crate::pages::overview::use_leaderboard;
use crate::playlist::{self, View};
use crate::route::{query_param, raw_param};
use crate::{api, dom, format};

/// Seconds between two looks at the server's build id, unless `?buildcheck=` says.
const BUILD_CHECK_SECS: u32 = 60;
/// Seconds between two wake lock requests while none is held.
const WAKE_RETRY_SECS: u32 = 10;

#[component]
pub fn Present() -> impl IntoView {
    let ctx = ctx();
    let search = ctx.search.get_untracked();
    let (views, refused) = raw_param(&search, "views")
        .map(playlist::parse)
        .unwrap_or_else(|| (playlist::default_views(), Vec::new()));
    let views = if views.is_empty() {
        playlist::default_views()
    } else {
        views
    };
    let every = playlist::every_secs(query_param(&search, "every").as_deref());
    let build_every = query_param(&search, "buildcheck")
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(BUILD_CHECK_SECS)
        .max(1);
    let count = views.len();
    let views = StoredValue::new(views);
    let current = RwSignal::new(0usize);
    let since = RwSignal::new(0u32);
    let paused = RwSignal::new(false);
    let build = RwSignal::new(None::<String>);
    let ticks = StoredValue::new(0u32);

    let ticker = set_interval_with_handle(
        move || {
            ticks.update_value(|t| *t += 1);
            let t = ticks.get_value();
            if t % WAKE_RETRY_SECS == 1 {
                dom::keep_screen_awake();
            }
            if t.is_multiple_of(build_every) {
                check_build(build);
            }
            if paused.get_untracked() {
                return;
            }
            since.update(|s| *s += 1);
            if since.get_untracked() >= every {
                since.set(0);
                current.update(|c| *c = (*c + 1) % count);
            }
        },
        std::time::Duration::from_secs(1),
    )
    .ok();
    dom::keep_screen_awake();
    check_build(build);
    let keys = window_event_listener(ev::keydown, move |e: web_sys::KeyboardEvent| {
        let step = match e.key().as_str() {
            " " => {
                e.prevent_default();
                paused.update(|p| *p = !*p);
                return;
            }
            "ArrowRight" | "PageDown" => 1,
            "ArrowLeft" | "PageUp" => count - 1,
            _ => return,
        };
        e.prevent_default();
        since.set(0);
        current.update(|c| *c = (*c + step) % count);
    });
    on_cleanup(move || {
        if let Some(t) = ticker {
            t.clear();
        }
        keys.remove();
        dom::release_screen();
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
    let view_of = move |i: usize| views.with_value(|v| v[i].clone());

    view! {
        <div class="present-root" data-test="present"
            data-view=move || current.get().to_string()
            data-view-name=move || view_of(current.get()).name()
            data-views=count
            data-paused=move || paused.get().to_string()>
            <div class="present-bar">
                <span class="logo">"Instabrand"</span>
                <span class="title" data-test="present-title">{move || view_of(current.get()).title()}</span>
                <span class="big-stat" data-test="present-rate">{move || format::rate(board.with(|b| b.events_per_sec))}</span>
                <span class="big-stat">{move || format!("{} photos · {}", format::grouped(board.with(|b| b.total_photos)), ctx.window.get().label())}</span>
                <span class="step">{move || format!("{}/{count}", current.get() + 1)}</span>
                <Show when=move || paused.get()>
                    <span class="paused" data-test="present-paused">"paused · space resumes"</span>
                </Show>
                <ConnBadge/>
                <span class="progress" aria-hidden="true">
                    <span style:width=move || format!("{:.1}%", f64::from(since.get()) / f64::from(every) * 100.0)></span>
                </span>
            </div>
            {(!refused.is_empty()).then(|| view! {
                <p class="panel error" role="alert" data-test="present-refused">
                    {format!("Left out of the playlist (not a view): {}", refused.join(", "))}
                </p>
            })}
            {move || {
                let view = view_of(current.get());
                match view {
                    View::Overview => view! {
                        <section class="present-view active">
                            <LeaderboardTable board=board loaded=loaded limit=10/>
                        </section>
                    }.into_any(),
                    View::Map(filter) => view! {
                        <section class="present-view map-wrap active">
                            <LiveMap filter=Signal::derive(move || filter.clone()) readout=readout/>
                            <Legend readout=readout/>
                        </section>
                    }.into_any(),
                    View::Brand(brand) => view! {
                        <section class="present-view active"><BrandPage brand=brand/></section>
                    }.into_any(),
                    View::Compare(brands) => view! {
                        <section class="present-view active"><CompareTable brands=brands/></section>
                    }.into_any(),
                    View::Alerts => view! {
                        <section class="present-view split active">
                            <AlertsPanel limit=8/>
                            <InfluencersPanel limit=10/>
                        </section>
                    }.into_any(),
                }
            }}
        </div>
    }
}

/// Remembers the first build id seen and reloads the page when the server reports
/// another; a failed request (the server restarting) is tried again next time.
fn check_build(seen: RwSignal<Option<String>>) {
    leptos::task::spawn_local(async move {
        let Ok(info) = api::build().await else {
            return;
        };
        match seen.get_untracked() {
            None => seen.set(Some(info.id)),
            Some(id) if id != info.id => {
                tracing::info!(from = %id, to = %info.id, "new build: reloading");
                let _ = dom::window().location().reload();
            }
            Some(_) => {}
        }
    });
}
