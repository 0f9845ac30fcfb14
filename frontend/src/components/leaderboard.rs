//! The brand leaderboard table: one row per brand with photos, likes, comments,
//! unique reach, engagement rate, share of voice and a sparkline of recent activity.

use instabrand_shared::ws::TableRow;
use leptos::prelude::*;

use crate::charts::sparkline;
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
) -> impl IntoView {
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
                            <th class="num">"#"</th>
                            <th>"Brand"</th>
                            <th class="num" title="Photos tagged with the brand">"Photos"</th>
                            <th class="num">"Likes"</th>
                            <th class="num">"Comments"</th>
                            <th class="num" title="Distinct users reached (estimate)">"Reach"</th>
                            <th class="num" title="(likes + comments) / reach">"Engagement"</th>
                            <th title="Brand photos / all photos in the window">"Share of voice"</th>
                            <th class="spark-col">"Activity"</th>
                        </tr>
                    </thead>
                    <tbody>
                        <For
                            each=move || brands.get()
                            key=|brand| brand.clone()
                            children=move |brand| view! { <Row board=board brand=brand/> }
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

#[component]
fn Row(board: RwSignal<LeaderboardState>, brand: String) -> impl IntoView {
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
            <td class="num rank">{move || row.with(|r| r.as_ref().map(|(rank, _)| *rank).unwrap_or(0))}</td>
            <td class="brand">
                <span class="swatch" style:background=color.clone()></span>
                <a href=href>{brand.clone()}</a>
            </td>
            <td class="num photos" data-value=value(|m| m.photos)>{cell(|m| format::compact(m.photos))}</td>
            <td class="num likes" data-value=value(|m| m.likes)>{cell(|m| format::compact(m.likes))}</td>
            <td class="num comments" data-value=value(|m| m.comments)>{cell(|m| format::compact(m.comments))}</td>
            <td class="num reach" data-value=value(|m| m.reach)>{cell(|m| format::compact(m.reach))}</td>
            <td class="num engagement">{cell(|m| format::percent(m.engagement_rate))}</td>
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
