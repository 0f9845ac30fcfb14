//! One brand: its metrics over the chosen window against the window before, the time
//! series chart, top posters, a map of its recent photos and the CSV export.

use instabrand_shared::api::{BrandDetail, BrandMetrics};
use instabrand_shared::ws::{Frame, Topic};
use leptos::html::Canvas;
use leptos::prelude::*;

use crate::api;
use crate::app::ctx;
use crate::charts::{series, worldmap};
use crate::components::window_picker::WindowPicker;
use crate::format;
use crate::palette::brand_color;
use crate::route::Route;
use crate::ws;

#[component]
pub fn BrandPage(brand: String) -> impl IntoView {
    let ctx = ctx();
    let detail = RwSignal::new(None::<BrandDetail>);
    let error = RwSignal::new(None::<String>);
    {
        let brand = brand.clone();
        ws::use_topic(
            move || {
                detail.set(None);
                Some(Topic::Brand {
                    brand: brand.clone(),
                    window: ctx.window.get(),
                })
            },
            move |msg| match &msg.frame {
                Frame::Brand(d) => {
                    error.set(None);
                    detail.set(Some(d.clone()));
                }
                Frame::Error { message } => error.set(Some(message.clone())),
                _ => {}
            },
        );
    }

    let chart_ref = NodeRef::<Canvas>::new();
    let map_ref = NodeRef::<Canvas>::new();
    let layer = std::rc::Rc::new(std::cell::RefCell::new(worldmap::LandLayer::default()));
    let land = RwSignal::new(false);
    leptos::task::spawn_local(async move {
        if worldmap::land().await.is_ok() {
            land.set(true);
        }
    });
    Effect::new(move |_| {
        let have_land = land.get();
        detail.with(|d| {
            let Some(d) = d else { return };
            if let Some(c) = chart_ref.get() {
                let shift = d.to_ms - d.from_ms;
                // The window's length, whole steps: the previous period lands on the
                // current steps.
                let shift = if d.previous_series.is_empty() {
                    0
                } else {
                    d.series.first().map_or(shift, |s| {
                        s.minute_ms - d.previous_series.first().map_or(0, |p| p.minute_ms)
                    })
                };
                if let Err(e) = series::draw(&c, &d.series, &d.previous_series, shift) {
                    tracing::warn!(%e, "series chart");
                }
                // For the end-to-end tests: what the chart holds.
                let _ = c.set_attribute(
                    "data-previous-photos",
                    &d.previous_series
                        .iter()
                        .map(|p| p.photos)
                        .sum::<u64>()
                        .to_string(),
                );
                let _ = c.set_attribute(
                    "data-partial-ms",
                    &d.series.last().map_or(0, |p| p.minute_ms).to_string(),
                );
            }
            if let Some(c) = map_ref.get() {
                let rings = if have_land {
                    worldmap::cached_land()
                } else {
                    None
                };
                let newest = d
                    .recent_points
                    .iter()
                    .map(|p| p.created_ms)
                    .max()
                    .unwrap_or(0);
                worldmap::draw(
                    &c,
                    &mut layer.borrow_mut(),
                    rings.as_deref().map(Vec::as_slice),
                    d.recent_points.iter(),
                    &worldmap::DrawOptions {
                        filter: None,
                        now_ms: newest,
                        fade_ms: (d.to_ms - d.from_ms).max(60_000),
                        highlight_ms: 0,
                        point_size: 4.0,
                    },
                );
            }
        });
    });

    let color = brand_color(&brand);
    let csv = move || api::series_csv_href(&brand_for_csv(&ctx), ctx.window.get());
    let title = brand.clone();
    let png_brand = brand.clone();
    view! {
        <div class="page brand" data-test="brand-page">
            <div class="page-head">
                <h1><span class="swatch big" style:background=color></span>{title}</h1>
                <WindowPicker/>
                <a class="button" href=csv download data-test="csv-link">"Export CSV"</a>
            </div>
            {move || error.get().map(|e| view! { <p class="panel error" role="alert">{e}</p> })}
            <Show when=move || detail.with(Option::is_some) fallback=|| view! { <p class="empty panel">"Loading this brand's numbers…"</p> }>
                {move || detail.get().map(|d| view! { <Cards detail=d/> })}
            </Show>
            <div class="grid">
                <section class="panel wide">
                    <div class="panel-head">
                        <h2>"Activity over the window"</h2>
                        <button class="button" data-test="chart-png" on:click=move |_| {
                            if let Some(c) = chart_ref.get_untracked() {
                                let to = detail.with_untracked(|d| d.as_ref().map_or(0, |d| d.to_ms));
                                let name = crate::dom::file_stem(&[
                                    &png_brand, "chart", ctx.window.get_untracked().as_str(), "to", &format::file_time(to),
                                ]);
                                crate::dom::download_canvas_png(&c, &format!("{name}.png"));
                            }
                        }>"Download PNG"</button>
                    </div>
                    <canvas node_ref=chart_ref class="chart" data-test="series-chart"
                        role="img" aria-label="Photos, likes and comments per step; the previous period faint behind; the last step shaded while in progress"></canvas>
                </section>
                <div class="side">
                    <section class="panel">
                        <h2>"Where it is posted"</h2>
                        <canvas node_ref=map_ref class="mini-map" data-test="brand-map"
                            role="img" aria-label="Map of the brand's recent photos"></canvas>
                    </section>
                    <section class="panel">
                        <h2>"Top posters"</h2>
                        {move || detail.with(|d| match d {
                            Some(d) if !d.top_posters.is_empty() => view! {
                                <table>
                                    <thead><tr><th>"User"</th><th class="num">"Score"</th><th class="num">"Followers"</th></tr></thead>
                                    <tbody>{d.top_posters.iter().map(|i| view! {
                                        <tr>
                                            <td><a href=Route::Feed(Some(i.username.clone())).href()>{i.username.clone()}</a></td>
                                            <td class="num">{format::compact(i.score)}</td>
                                            <td class="num">{format::compact(i.followers)}</td>
                                        </tr>
                                    }).collect_view()}</tbody>
                                </table>
                            }.into_any(),
                            Some(_) => view! { <p class="empty">"Nobody posted this brand in the window."</p> }.into_any(),
                            None => ().into_any(),
                        })}
                    </section>
                </div>
            </div>
        </div>
    }
}

fn brand_for_csv(ctx: &crate::app::Ctx) -> String {
    match ctx.route.get_untracked() {
        Route::Brand(b) => b,
        _ => String::new(),
    }
}

#[component]
fn Cards(detail: BrandDetail) -> impl IntoView {
    let cur = detail.current;
    let prev = detail.previous;
    let card = move |label: &'static str, value: String, now: f64, before: Option<f64>| {
        let delta = before.map(|b| format::change(now, b));
        let class = match before {
            Some(b) if now > b => "delta up",
            Some(b) if now < b => "delta down",
            _ => "delta",
        };
        view! {
            <div class="stat">
                <span class="label">{label}</span>
                <span class="value">{value}</span>
                {delta.map(|d| view! { <span class=class title="against the previous window">{d}" vs previous"</span> })}
            </div>
        }
    };
    let p = |f: fn(&BrandMetrics) -> f64| prev.as_ref().map(f);
    view! {
        <div class="stats" data-test="brand-cards">
            {card("Photos", format::grouped(cur.photos), cur.photos as f64, p(|m| m.photos as f64))}
            {card("Likes", format::grouped(cur.likes), cur.likes as f64, p(|m| m.likes as f64))}
            {card("Comments", format::grouped(cur.comments), cur.comments as f64, p(|m| m.comments as f64))}
            {card("Unique reach", format::compact(cur.reach), cur.reach as f64, p(|m| m.reach as f64))}
            {card("Engagement rate", format::percent(cur.engagement_rate), cur.engagement_rate, p(|m| m.engagement_rate))}
            {card("Share of voice", format::percent(cur.share_of_voice), cur.share_of_voice, p(|m| m.share_of_voice))}
            {card("Potential impressions", format::compact(cur.impressions), cur.impressions as f64, p(|m| m.impressions as f64))}
        </div>
    }
}
