//! The brand leaderboard table: one row per brand with photos, likes, comments,
//! unique reach, engagement rate, share of voice and a sparkline of recent activity.

use instabrand_shared::ws::{SortKey, TableRow};
use leptos::prelude::*;

use crate::charts::sparkline;
use crate::context::{HistoryMode, ctx};
use crate::format;
use crate::live::LeaderboardState;
use crate::palette::brand_color;
use crate::route::Route;

#[component]
pub fn LeaderboardTable(
    board: RwSignal<LeaderboardState>,
    /// False until the first frame arrived: "waiting" differs from "no brands".
    loaded: RwSignal<bool>,
    #[prop(default = usize::MAX)] limit: usize,
    /// The order the rows come in (marked on its column).
    #[prop(into, default = Signal::derive(SortKey::default))]
    sort: Signal<SortKey>,
    /// Column heads are buttons that put their order into the URL (`?sort=reach`).
    #[prop(default = false)]
    sortable: bool,
    /// Brands ticked for a comparison; `None`: no tick boxes.
    #[prop(optional)]
    picked: Option<RwSignal<Vec<String>>>,
) -> impl IntoView {
    let ctx = ctx();
    // A column head: a button when the table can be re-sorted, `aria-sort` on the
    // column it is ordered by.
    let head = move |key: SortKey, label: &'static str, title: &'static str| {
        let aria = move || (sort.get() == key).then_some("descending");
        let inner = if sortable {
            view! {
                <button class="sort" data-sort=key.as_str()
                    on:click=move |_| {
                        let value = (key != SortKey::default()).then_some(key.as_str());
                        let search = ctx.search.with_untracked(|s| {
                            let s = crate::route::set_param(s, "sort", value);
                            crate::route::set_param(&s, "page", None)
                        });
                        ctx.go_to_search(&search, HistoryMode::Push);
                    }>{label}</button>
            }
            .into_any()
        } else {
            label.into_any()
        };
        view! { <th class="num" title=title aria-sort=aria>{inner}</th> }
    };
    // "All time" has no previous period to rise against.
    let rising_shown = move || ctx.window.get() != instabrand_shared::api::Window::All;
    // Rows are keyed by brand and update their own cells in place, so ten frames a
    // second change text, not DOM rows: re-creating every changed row leaked memory
    // on a wall screen and cost layout work.
    let brands = Memo::new(move |_| {
        board.with(|b| {
            b.rows
                .iter()
                .take(limit)
                .map(|r| r.brand.clone())
                .collect::<Vec<_>>()
        })
    });
    view! {
        <Show
            when=move || loaded.get() && board.with(|b| !b.rows.is_empty())
            fallback=move || {
                if loaded.get() {
                    view! { <p class="empty" data-test="leaderboard-empty">"No photos in this window yet. Brands appear here as soon as someone posts one."</p> }.into_any()
                } else {
                    view! { <p class="empty">"Waiting for the first numbers…"</p> }.into_any()
                }
            }
        >
            <div class="table-wrap">
                <table class="leaderboard" data-test="leaderboard">
                    <thead>
                        <tr>
                            {picked.map(|_| view! { <th class="pick"><span class="sr-only">"Compare"</span></th> })}
                            <th class="num">"#"</th>
                            <th>"Brand"</th>
                            {head(SortKey::Photos, "Photos", "Photos tagged with the brand")}
                            {head(SortKey::Likes, "Likes", "Likes on the brand's photos")}
                            {head(SortKey::Comments, "Comments", "Comments on the brand's photos")}
                            {head(SortKey::Reach, "Reach", "Distinct users reached (estimate)")}
                            {head(SortKey::Engagement, "Engagement", "(likes + comments) / reach")}
                            <Show when=rising_shown>
                                {head(SortKey::Rising, "Rising", "Photos against the previous period of the same length")}
                            </Show>
                            <th title="Brand photos / all photos in the window">"Share of voice"</th>
                            <th class="spark-col">"Activity"</th>
                        </tr>
                    </thead>
                    <tbody>
                        <For
                            each=move || brands.get()
                            key=|brand| brand.clone()
                            children=move |brand| view! { <Row board=board brand=brand rising=rising_shown picked=picked/> }
                        />
                    </tbody>
                </table>
            </div>
        </Show>
    }
}

/// The closed steps fill this much of the sparkline's 100 units; the rest is the
/// step in progress, drawn dashed.
const CLOSED_WIDTH: f64 = 94.0;

/// How long an arrow shows that a row moved up or down the table.
const MOVED_SHOWN_MS: f64 = 30_000.0;

#[component]
fn Row(
    board: RwSignal<LeaderboardState>,
    brand: String,
    rising: impl Fn() -> bool + Send + Sync + Copy + 'static,
    picked: Option<RwSignal<Vec<String>>>,
) -> impl IntoView {
    let ctx = ctx();
    let row = {
        let brand = brand.clone();
        Memo::new(move |_| {
            board.with(|b| {
                b.rows
                    .iter()
                    .position(|r| r.brand == brand)
                    .map(|i| (b.offset as usize + i + 1, b.rows[i].clone()))
            })
        })
    };
    let cell = move |f: fn(&TableRow) -> String| {
        move || row.with(|r| r.as_ref().map(|(_, m)| f(m)).unwrap_or_default())
    };
    let value = move |f: fn(&TableRow) -> u64| {
        move || {
            row.with(|r| {
                r.as_ref()
                    .map(|(_, m)| f(m).to_string())
                    .unwrap_or_default()
            })
        }
    };
    // Places gained (positive) or lost since the rank before, and when: an arrow
    // beside the rank for a while after a live frame moved the row.
    let moved = RwSignal::new(None::<(i64, f64)>);
    let last_rank = StoredValue::new(None::<usize>);
    Effect::new(move |_| {
        let Some(rank) = row.with(|r| r.as_ref().map(|(rank, _)| *rank)) else {
            return;
        };
        if let Some(before) = last_rank.get_value()
            && before != rank
        {
            moved.set(Some((before as i64 - rank as i64, crate::dom::now_ms())));
        }
        last_rank.set_value(Some(rank));
    });
    let arrow = move || match moved.get() {
        Some((d, at)) if ctx.now.get() - at < MOVED_SHOWN_MS => {
            let (class, text) = if d > 0 {
                ("moved up", format!("▲{d}"))
            } else {
                ("moved down", format!("▼{}", -d))
            };
            Some(view! { <span class=class data-test="rank-move">{text}</span> })
        }
        _ => None,
    };
    let change = move || row.with(|r| r.as_ref().map_or(0, |(_, m)| m.rising));
    let change_text = move || {
        let c = change();
        match c.signum() {
            1 => format!("▲ +{}", format::compact(c.unsigned_abs())),
            -1 => format!("▼ −{}", format::compact(c.unsigned_abs())),
            _ => "±0".to_string(),
        }
    };
    let change_class = move || match change().signum() {
        1 => "num rising up",
        -1 => "num rising down",
        _ => "num rising",
    };
    let color = brand_color(&brand);
    let href = Route::Brand(brand.clone()).href();
    let share_width = move || {
        row.with(|r| {
            let share = r.as_ref().map_or(0.0, |(_, m)| m.share_of_voice);
            format!("{:.1}%", (share * 100.0).clamp(0.0, 100.0))
        })
    };
    let points = move || {
        row.with(|r| {
            r.as_ref()
                .map(|(_, m)| sparkline::polyline(&m.spark, CLOSED_WIDTH, 24.0))
                .unwrap_or_default()
        })
    };
    // The step in progress: a dashed stub level with the last closed step.
    let partial = move || {
        row.with(|r| {
            r.as_ref()
                .and_then(|(_, m)| sparkline::end_point(&m.spark, CLOSED_WIDTH, 24.0))
                .map(|(x, y)| format!("{x:.1},{y:.1} 100,{y:.1}"))
                .unwrap_or_default()
        })
    };
    view! {
        <tr data-brand=brand.clone()>
            {picked.map(|picked| {
                let b = brand.clone();
                let checked = {
                    let b = b.clone();
                    move || picked.with(|p| p.contains(&b))
                };
                view! {
                    <td class="pick">
                        <input type="checkbox" data-test="pick" aria-label=format!("Compare {brand}")
                            prop:checked=checked
                            on:change=move |_| picked.update(|p| {
                                if let Some(i) = p.iter().position(|x| *x == b) {
                                    p.remove(i);
                                } else if p.len() < crate::playlist::MAX_COMPARED {
                                    p.push(b.clone());
                                }
                            })/>
                    </td>
                }
            })}
            <td class="num rank">{move || row.with(|r| r.as_ref().map(|(rank, _)| *rank).unwrap_or(0))}{arrow}</td>
            <td class="brand">
                <span class="swatch" style:background=color.clone()></span>
                <a href=href>{brand.clone()}</a>
            </td>
            <td class="num photos" data-value=value(|m| m.photos)>{cell(|m| format::compact(m.photos))}</td>
            <td class="num likes" data-value=value(|m| m.likes)>{cell(|m| format::compact(m.likes))}</td>
            <td class="num comments" data-value=value(|m| m.comments)>{cell(|m| format::compact(m.comments))}</td>
            <td class="num reach" data-value=value(|m| m.reach)>{cell(|m| format::compact(m.reach))}</td>
            <td class="num engagement">{cell(|m| format::percent(m.engagement_rate))}</td>
            <Show when=rising>
                <td class=change_class data-value=move || change().to_string()
                    title="photos against the previous period of the same length">{change_text}</td>
            </Show>
            <td class="share">
                <div class="share-cell">
                    <span class="bar"><span style:width=share_width style:background=color.clone()></span></span>
                    <span class="num">{cell(|m| format::percent(m.share_of_voice))}</span>
                </div>
            </td>
            <td class="spark-col">
                <svg class="spark" viewBox="0 0 100 24" preserveAspectRatio="none" aria-hidden="true">
                    <polyline points=points fill="none" stroke=color.clone() stroke-width="1.5" vector-effect="non-scaling-stroke"></polyline>
                    <polyline class="partial" points=partial fill="none" stroke=color stroke-width="1.5" stroke-dasharray="2 2" vector-effect="non-scaling-stroke">
                        <title>"this minute is still in progress"</title>
                    </polyline>
                </svg>
            </td>
        </tr>
    }
}
