//! The overview: the live brand leaderboard for the chosen window, headline numbers
//! (event rate, photos, brands), alerts as they fire and the top influencers.

use instabrand_shared::ws::{Frame, SortKey, Topic};
use leptos::prelude::*;

use crate::api;
use crate::components::alerts::AlertsPanel;
use crate::components::influencers::InfluencersPanel;
use crate::components::leaderboard::LeaderboardTable;
use crate::components::window_picker::WindowPicker;
use crate::context::{HistoryMode, ctx};
use crate::dom;
use crate::format;
use crate::live::LeaderboardState;
use crate::route::query_param;
use crate::ws;

/// Subscribes to the leaderboard of the app's chosen window and keeps it in `board`;
/// `loaded` turns true at the first frame. Also records, once per page load, how long
/// the first live number took (`data-first-number-ms` on `<body>`, for the benchmark).
/// Rows per page of the table: the server sends only these (and only those that
/// changed); the pager below the table asks for the others.
pub const PAGE_ROWS: u32 = 20;

pub fn use_leaderboard(
    board: RwSignal<LeaderboardState>,
    loaded: RwSignal<bool>,
    page: Signal<u32>,
    sort: Signal<SortKey>,
) {
    let ctx = ctx();
    ws::use_topic(
        move || {
            // A new window starts from its own snapshot, not the old window's rows.
            board.set(LeaderboardState::default());
            loaded.set(false);
            Some(Topic::Leaderboard {
                window: ctx.window.get(),
                sort: sort.get(),
                offset: page.get() * PAGE_ROWS,
                rows: PAGE_ROWS,
            })
        },
        move |msg| {
            if let Frame::Leaderboard(frame) = &msg.frame {
                board.update(|b| b.apply(msg.snapshot, frame.clone()));
                loaded.set(true);
                record_first_number(board);
            }
        },
    );
}

fn record_first_number(board: RwSignal<LeaderboardState>) {
    thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if DONE.get() || board.with_untracked(|b| b.rows.is_empty()) {
        return;
    }
    DONE.set(true);
    // After this frame's DOM update has painted.
    dom::request_animation_frame(|| dom::report_metric("first-number-ms", dom::perf_now()));
}

#[component]
pub fn Overview() -> impl IntoView {
    let ctx = ctx();
    let board = RwSignal::new(LeaderboardState::default());
    let loaded = RwSignal::new(false);
    // Order and page live in the URL (`?sort=reach&page=2`, pages counted from 1), so
    // a shared link opens the same slice of the table.
    let sort = Memo::new(move |_| {
        ctx.search
            .with(|s| query_param(s, "sort"))
            .and_then(|k| k.parse::<SortKey>().ok())
            .unwrap_or_default()
    });
    let page = Memo::new(move |_| {
        ctx.search
            .with(|s| query_param(s, "page"))
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(1)
            .saturating_sub(1)
    });
    let go_to_page = move |p: u32| {
        let shown = (p > 0).then(|| (p + 1).to_string());
        ctx.set_query("page", shown.as_deref(), HistoryMode::Push);
    };
    use_leaderboard(board, loaded, page.into(), sort.into());
    // Brands ticked in the table, for the compare page (at most five).
    let picked = RwSignal::new(Vec::<String>::new());
    let pages = move || board.with(|b| b.total_brands.div_ceil(u64::from(PAGE_ROWS)).max(1) as u32);
    let pager_text = move || {
        board.with(|b| {
            let first = u64::from(b.offset) + 1;
            let last = (u64::from(b.offset) + b.rows.len() as u64).max(first - 1);
            format!("{first}–{last} of {}", b.total_brands)
        })
    };

    let stat = |label: &'static str, test: &'static str, value: Signal<String>| {
        view! {
            <div class="stat" data-test=test>
                <span class="label">{label}</span>
                <span class="value">{value}</span>
            </div>
        }
    };
    view! {
        <div class="page overview">
            <div class="page-head">
                <h1>"Brands right now"</h1>
                <WindowPicker/>
            </div>
            <div class="stats">
                {stat("Events per second", "event-rate",
                    Signal::derive(move || if loaded.get() { format::rate(board.with(|b| b.events_per_sec)) } else { "–".into() }))}
                {stat("Photos in window", "total-photos",
                    Signal::derive(move || if loaded.get() { format::grouped(board.with(|b| b.total_photos)) } else { "–".into() }))}
                {stat("Brands", "brand-count",
                    Signal::derive(move || if loaded.get() { board.with(|b| b.total_brands).to_string() } else { "–".into() }))}
                {stat("Window", "window-range",
                    Signal::derive(move || {
                        let w = ctx.window.get();
                        board.with(|b| if b.to_ms > 0 && loaded.get() {
                            format!("{} · to {} UTC", w.label(), format::clock(b.to_ms))
                        } else {
                            w.label().to_string()
                        })
                    }))}
            </div>
            <div class="grid">
                <section class="panel wide">
                    <div class="panel-head">
                        <h2>"Leaderboard"</h2>
                        <Show when=move || picked.with(|p| p.len() >= 2)>
                            <a class="button" data-test="compare-picked"
                                href=move || format!("/compare?brands={}", crate::route::encode_list(&picked.get()))>
                                {move || format!("Compare {}", picked.with(Vec::len))}</a>
                        </Show>
                        <a class="button" download data-test="leaderboard-csv"
                            href=move || api::leaderboard_csv_href(ctx.window.get(), sort.get())>"Export CSV"</a>
                        <a class="button" download data-test="influencers-csv"
                            href=move || api::influencers_csv_href(ctx.window.get())>"Influencers CSV"</a>
                    </div>
                    <LeaderboardTable board=board loaded=loaded sort=sort sortable=true picked=picked/>
                    <Show when=move || { pages() > 1 }>
                        <div class="pager" data-test="pager">
                            <button disabled=move || page.get() == 0
                                on:click=move |_| go_to_page(page.get_untracked().saturating_sub(1))>"◀ Previous"</button>
                            <span class="num" data-test="pager-range">{pager_text}</span>
                            <button disabled=move || page.get() + 1 >= pages()
                                on:click=move |_| go_to_page(page.get_untracked() + 1)>"Next ▶"</button>
                        </div>
                    </Show>
                </section>
                <div class="side">
                    <AlertsPanel/>
                    <InfluencersPanel/>
                </div>
            </div>
        </div>
    }
}
