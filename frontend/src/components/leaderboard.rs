//! The brand leaderboard table: one row per brand with photos, likes, comments,
//! unique reach, engagement rate, share of voice and a sparkline of recent activity.

use instabrand_shared::api::BrandMetrics;
use leptos::prelude::*;

use crate::charts::sparkline;
use crate::format;
use crate::live::LeaderboardState;
use crate::palette::brand_color;
use crate::route::Route;

/// A row's identity for re-rendering: its rank and every number shown, so a row whose
/// counts changed is redrawn and an unchanged one is left alone.
type RowKey = (usize, String, u64, u64, u64, u64, u64, u64, Vec<u64>);

fn row_key(rank: usize, r: &BrandMetrics) -> RowKey {
    (
        rank,
        r.brand.clone(),
        r.photos,
        r.likes,
        r.comments,
        r.reach,
        r.engagement_rate.to_bits(),
        r.share_of_voice.to_bits(),
        r.spark.clone(),
    )
}

#[component]
pub fn LeaderboardTable(
    board: RwSignal<LeaderboardState>,
    /// False until the first frame arrived: "waiting" differs from "no brands".
    loaded: RwSignal<bool>,
    #[prop(default = usize::MAX)] limit: usize,
) -> impl IntoView {
    let rows = move || {
        board.with(|b| {
            b.rows
                .iter()
                .take(limit)
                .enumerate()
                .map(|(i, r)| (i + 1, r.clone()))
                .collect::<Vec<_>>()
        })
    };
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
                            each=rows
                            key=|(rank, r)| row_key(*rank, r)
                            children=|(rank, r)| view! { <Row rank=rank row=r/> }
                        />
                    </tbody>
                </table>
            </div>
        </Show>
    }
}

#[component]
fn Row(rank: usize, row: BrandMetrics) -> impl IntoView {
    let color = brand_color(&row.brand);
    let href = Route::Brand(row.brand.clone()).href();
    let share = (row.share_of_voice * 100.0).clamp(0.0, 100.0);
    let points = sparkline::polyline(&row.spark, 100.0, 24.0);
    view! {
        <tr data-brand=row.brand.clone()>
            <td class="num rank">{rank}</td>
            <td class="brand">
                <span class="swatch" style:background=color.clone()></span>
                <a href=href>{row.brand.clone()}</a>
            </td>
            <td class="num photos" data-value=row.photos.to_string()>{format::compact(row.photos)}</td>
            <td class="num likes" data-value=row.likes.to_string()>{format::compact(row.likes)}</td>
            <td class="num comments" data-value=row.comments.to_string()>{format::compact(row.comments)}</td>
            <td class="num reach" data-value=row.reach.to_string()>{format::compact(row.reach)}</td>
            <td class="num engagement">{format::percent(row.engagement_rate)}</td>
            <td class="share">
                <div class="share-cell">
                    <span class="bar"><span style:width=format!("{share:.1}%") style:background=color.clone()></span></span>
                    <span class="num">{format::percent(row.share_of_voice)}</span>
                </div>
            </td>
            <td class="spark-col">
                <svg class="spark" viewBox="0 0 100 24" preserveAspectRatio="none" aria-hidden="true">
                    <polyline points=points fill="none" stroke=color stroke-width="1.5" vector-effect="non-scaling-stroke"></polyline>
                </svg>
            </td>
        </tr>
    }
}
