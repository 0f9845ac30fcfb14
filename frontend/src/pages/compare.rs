//! Compare 2–5 brands over the chosen window: one metric's trend overlaid (photos,
//! likes, comments, unique reach or engagement rate, step by step), share of voice
//! over time, their numbers side by side and the audience each pair shares (from
//! their reach sketches, with its error bound). Everything the view holds is in its
//! URL, `/compare?brands=Nike,Adidas&metric=reach&window=1h`, and the leaderboard
//! links here with the brands picked in it.
//!
//! Read from `/api/compare` when the brands or window change and every few seconds:
//! a comparison has no live topic, and a few merged sketches are cheap to ask for.
//!
//! With a range chosen (`range=7d`, `from=…&to=…`) the trend and share of voice are
//! read from `/api/series` instead, at the resolution the server picks, with the
//! range's totals side by side. The audience overlap stays on the window: the range
//! series carry no reach sketches to intersect, and the page says so.

use instabrand_shared::api::{BrandInfo, ComparedPoint, Comparison, RangePoint, SeriesComparison};
use leptos::html::Canvas;
use leptos::prelude::*;

use crate::charts::compare::{self, Line, Scale};
use crate::components::compare_table::summary;
use crate::components::range_picker::RangePicker;
use crate::components::window_picker::WindowPicker;
use crate::context::{HistoryMode, ctx};
use crate::playlist::MAX_COMPARED;
use crate::range::resolution_label;
use crate::route::{encode_list, list_param, query_param, set_raw_param};
use crate::{api, dom};

const REFRESH_SECS: u64 = 5;

/// What the trend chart draws, named in the URL's `metric`.
const METRICS: [(&str, &str); 5] = [
    ("photos", "Photos"),
    ("likes", "Likes"),
    ("comments", "Comments"),
    ("reach", "Unique reach"),
    ("engagement", "Engagement rate"),
];

fn value(metric: &str, p: &ComparedPoint) -> f64 {
    match metric {
        "likes" => p.likes as f64,
        "comments" => p.comments as f64,
        "reach" => p.reach as f64,
        "engagement" => p.engagement_rate,
        _ => p.photos as f64,
    }
}

/// A range bucket's value of `metric`; `None` where the server has no reach for it
/// (the point is left out of the line rather than drawn as a false zero).
fn range_value(metric: &str, p: &RangePoint) -> Option<f64> {
    match metric {
        "likes" => Some(p.likes as f64),
        "comments" => Some(p.comments as f64),
        "reach" => p.reach.map(|r| r as f64),
        "engagement" => p.engagement_rate,
        _ => Some(p.photos as f64),
    }
}

#[component]
pub fn ComparePage() -> impl IntoView {
    let ctx = ctx();
    let brands = Memo::new(move |_| ctx.search.with(|s| list_param(s, "brands")));
    let metric = Memo::new(move |_| {
        ctx.search
            .with(|s| query_param(s, "metric"))
            .filter(|m| METRICS.iter().any(|(k, _)| k == m))
            .unwrap_or_else(|| "photos".into())
    });
    let data = RwSignal::new(None::<Comparison>);
    let error = RwSignal::new(None::<String>);
    let range = ctx.range();
    let ranged = RwSignal::new(None::<SeriesComparison>);
    let range_error = RwSignal::new(None::<String>);
    // Answers to an older choice of brands or range are dropped.
    let generation = StoredValue::new(0u64);
    // The range is re-read on the same timer as the window comparison while it
    // ends now; a fixed range is read once per choice.
    let load_range = move |fresh: bool| {
        let chosen = brands.get_untracked();
        let Some(r) = range.get_untracked().filter(|_| chosen.len() >= 2) else {
            ranged.set(None);
            range_error.set(None);
            return;
        };
        if fresh {
            generation.update_value(|g| *g += 1);
            ranged.set(None);
        } else if !r.ends_now() {
            return;
        }
        let asked = generation.get_value();
        leptos::task::spawn_local(async move {
            let result = match api::range_query(&r).await {
                Ok(q) => api::series_comparison(&chosen, &q).await,
                Err(e) => Err(e),
            };
            if generation.get_value() != asked {
                return;
            }
            match result {
                Ok(c) => {
                    range_error.set(None);
                    ranged.set(Some(c));
                }
                Err(e) => {
                    ranged.set(None);
                    range_error.set(Some(e.to_string()));
                }
            }
        });
    };
    Effect::new(move |_| {
        brands.track();
        range.track();
        load_range(true);
    });
    let all_brands = RwSignal::new(Vec::<BrandInfo>::new());
    leptos::task::spawn_local(async move {
        if let Ok(list) = api::brands().await {
            all_brands.set(list);
        }
    });

    let load = move || {
        let chosen = brands.get_untracked();
        let window = ctx.window.get_untracked();
        if chosen.len() < 2 {
            data.set(None);
            return;
        }
        leptos::task::spawn_local(async move {
            match api::compare(&chosen, window).await {
                Ok(c) => {
                    error.set(None);
                    data.set(Some(c));
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    Effect::new(move |_| {
        brands.track();
        ctx.window.track();
        load();
    });
    let timer = set_interval_with_handle(
        move || {
            load();
            load_range(false);
        },
        std::time::Duration::from_secs(REFRESH_SECS),
    )
    .ok();
    on_cleanup(move || {
        if let Some(t) = timer {
            t.clear();
        }
    });

    let set_brands = move |list: Vec<String>| {
        let search = ctx
            .search
            .with_untracked(|s| set_raw_param(s, "brands", Some(&encode_list(&list))));
        ctx.go_to_search(&search, HistoryMode::Push);
    };

    let trend_ref = NodeRef::<Canvas>::new();
    let share_ref = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        let m = metric.get();
        if range.with(Option::is_some) {
            ranged.with(|c| {
                let Some(c) = c else { return };
                let lines = |pick: &dyn Fn(&RangePoint) -> Option<f64>| -> Vec<Line<'_>> {
                    c.brands
                        .iter()
                        .map(|b| Line {
                            brand: &b.brand,
                            points: b
                                .points
                                .iter()
                                .filter_map(|p| pick(p).map(|v| (p.time_ms, v)))
                                .collect(),
                        })
                        .collect()
                };
                let scale = if m == "engagement" {
                    Scale::Fraction
                } else {
                    Scale::Count
                };
                if let Some(canvas) = trend_ref.get() {
                    if let Err(e) = compare::draw(&canvas, &lines(&|p| range_value(&m, p)), scale) {
                        tracing::warn!(%e, "trend chart");
                    }
                    let _ = canvas.set_attribute("data-resolution", c.resolution.as_str());
                }
                if let Some(canvas) = share_ref.get()
                    && let Err(e) = compare::draw(
                        &canvas,
                        &lines(&|p| Some(p.share_of_voice)),
                        Scale::Fraction,
                    )
                {
                    tracing::warn!(%e, "share of voice chart");
                }
            });
            return;
        }
        data.with(|c| {
            let Some(c) = c else { return };
            let lines = |pick: &dyn Fn(&ComparedPoint) -> f64| -> Vec<Line<'_>> {
                c.brands
                    .iter()
                    .map(|b| Line {
                        brand: &b.metrics.brand,
                        points: b.series.iter().map(|p| (p.at_ms, pick(p))).collect(),
                    })
                    .collect()
            };
            let scale = if m == "engagement" {
                Scale::Fraction
            } else {
                Scale::Count
            };
            if let Some(canvas) = trend_ref.get()
                && let Err(e) = compare::draw(&canvas, &lines(&|p| value(&m, p)), scale)
            {
                tracing::warn!(%e, "trend chart");
            }
            if let Some(canvas) = share_ref.get()
                && let Err(e) =
                    compare::draw(&canvas, &lines(&|p| p.share_of_voice), Scale::Fraction)
            {
                tracing::warn!(%e, "share of voice chart");
            }
        });
    });
    // A chart as PNG, named after the brands, what it shows and the window.
    let png = move |canvas: NodeRef<Canvas>, what: &'static str| {
        move |_| {
            let Some(c) = canvas.get_untracked() else {
                return;
            };
            let to = ranged
                .with_untracked(|r| r.as_ref().map(|r| r.to_ms))
                .or_else(|| data.with_untracked(|d| d.as_ref().map(|d| d.to_ms)))
                .unwrap_or(0);
            let span = range
                .with_untracked(|r| r.as_ref().map(|r| r.file_token()))
                .unwrap_or_else(|| ctx.window.get_untracked().as_str().to_string());
            let names = brands.get_untracked().join("-vs-");
            let what = if what == "trend" {
                metric.get_untracked()
            } else {
                what.to_string()
            };
            let stem = dom::file_stem(&[
                "compare",
                &names,
                &what,
                &span,
                "to",
                &crate::format::file_time(to),
            ]);
            dom::download_canvas_png(&c, &format!("{stem}.png"));
        }
    };

    view! {
        <div class="page compare-page" data-test="compare-page">
            <div class="page-head">
                <h1>"Compare brands"</h1>
                <WindowPicker/>
                <RangePicker/>
                <a class="button" download data-test="compare-csv"
                    href=move || api::compare_csv_href(&brands.get(), ctx.window.get())>"Export CSV"</a>
            </div>
            <div class="chips" data-test="compare-brands">
                {move || brands.get().into_iter().map(|b| {
                    let remove = b.clone();
                    view! {
                        <span class="chip" data-brand=b.clone()>
                            <span class="swatch" style:background=crate::palette::brand_color(&b)></span>{b.clone()}
                            <button class="link" title="Remove" aria-label=format!("Remove {b}")
                                on:click=move |_| set_brands(brands.get_untracked().into_iter().filter(|x| *x != remove).collect())>"×"</button>
                        </span>
                    }
                }).collect_view()}
                <select data-test="compare-add" disabled=move || brands.with(|b| b.len() >= MAX_COMPARED)
                    on:change=move |e| {
                        let v = event_target_value(&e);
                        if !v.is_empty() {
                            let mut list = brands.get_untracked();
                            if !list.contains(&v) && list.len() < MAX_COMPARED {
                                list.push(v);
                                set_brands(list);
                            }
                        }
                    }>
                    <option value="" selected=true>"Add a brand…"</option>
                    {move || all_brands.get().into_iter()
                        .filter(|b| !brands.with(|l| l.contains(&b.name)))
                        .map(|b| view! { <option value=b.name.clone()>{b.name.clone()}</option> })
                        .collect_view()}
                </select>
            </div>
            {move || error.get().map(|e| view! { <p class="panel error" role="alert">{e}</p> })}
            {move || range_error.get().map(|e| view! { <p class="panel error" role="alert" data-test="range-error">{e}</p> })}
            <Show when=move || brands.with(|b| b.len() >= 2)
                fallback=|| view! { <p class="panel empty" data-test="compare-hint">"Pick 2 to 5 brands to compare: here, or tick them in the leaderboard."</p> }>
                <div class="grid">
                    <section class="panel wide">
                        <div class="panel-head">
                            <h2>"Trend"</h2>
                            {move || ranged.with(|r| r.as_ref().filter(|_| range.with(Option::is_some)).map(|c| view! {
                                <span class="badge" data-test="range-resolution" data-resolution=c.resolution.as_str()
                                    title="The bucket size the server picked for this range">{resolution_label(c.resolution)}</span>
                            }))}
                            <div class="picker" role="group" aria-label="Metric" data-test="compare-metric">
                                {METRICS.into_iter().map(|(key, label)| view! {
                                    <button aria-pressed=move || (metric.get() == key).to_string() data-metric=key
                                        on:click=move |_| ctx.set_query("metric", (key != "photos").then_some(key), HistoryMode::Push)>{label}</button>
                                }).collect_view()}
                            </div>
                            <button class="button" data-test="trend-png" on:click=png(trend_ref, "trend")>"PNG"</button>
                        </div>
                        <canvas node_ref=trend_ref class="chart" data-test="compare-trend" role="img"
                            aria-label="The chosen metric per step, one line per brand"></canvas>
                        <div class="panel-head">
                            <h2>"Share of voice over time"</h2>
                            <button class="button" data-test="share-png" on:click=png(share_ref, "share-of-voice")>"PNG"</button>
                        </div>
                        <canvas node_ref=share_ref class="chart" data-test="compare-share" role="img"
                            aria-label="Each brand's share of all photos per step"></canvas>
                    </section>
                    <section class="panel" data-test="compare-table">
                        {move || range.get().map(|r| view! {
                            <h2>{format!("Side by side, {}", r.label().to_lowercase())}</h2>
                            {move || ranged.get().map(|c| range_summary(&c))}
                            <p class="hint" data-test="overlap-note">{move || format!(
                                "The audience overlap below is over the live {} window: range series keep no reach sketches to intersect.",
                                ctx.window.get().as_str())}</p>
                        })}
                        <h2>{move || if range.with(Option::is_some) {
                            format!("Over the {} window", ctx.window.get().as_str())
                        } else {
                            "Side by side".to_string()
                        }}</h2>
                        {move || data.get().map(|c| summary(&c))}
                    </section>
                </div>
            </Show>
        </div>
    }
}

/// The range's totals per brand (reach is the union over the range, where known).
fn range_summary(c: &SeriesComparison) -> impl IntoView + use<> {
    let dash = || "–".to_string();
    view! {
        <div class="table-wrap"><table data-test="range-table">
            <thead><tr>
                <th>"Brand"</th><th class="num">"Photos"</th><th class="num">"Likes"</th>
                <th class="num">"Comments"</th><th class="num">"Reach"</th>
                <th class="num">"Engagement"</th><th class="num">"Share of voice"</th>
            </tr></thead>
            <tbody>
                {c.brands.iter().map(|b| {
                    let t = b.totals;
                    view! {
                        <tr data-brand=b.brand.clone() data-photos=t.photos>
                            <td>{b.brand.clone()}</td>
                            <td class="num">{crate::format::grouped(t.photos)}</td>
                            <td class="num">{crate::format::grouped(t.likes)}</td>
                            <td class="num">{crate::format::grouped(t.comments)}</td>
                            <td class="num">{t.reach.map_or_else(dash, crate::format::compact)}</td>
                            <td class="num">{t.engagement_rate.map_or_else(dash, crate::format::percent)}</td>
                            <td class="num">{crate::format::percent(t.share_of_voice)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table></div>
    }
}
