//! One brand: its metrics over the chosen window against the window before, the time
//! series chart, top posters, a map of its recent photos and the CSV export. With a
//! range chosen (`range=7d`, `from=…&to=…`) the chart and cards show the range instead,
//! read from `/api/brands/{brand}/series` at the resolution the server picks; the
//! map and top posters stay on the live window.

use instabrand_shared::api::{BrandDetail, BrandMetrics, BrandSeries, RangeTotals, SeriesPoint};
use instabrand_shared::ws::{Frame, Topic};
use leptos::html::Canvas;
use leptos::prelude::*;

use crate::api;
use crate::charts::{series, worldmap};
use crate::components::range_picker::RangePicker;
use crate::components::window_picker::WindowPicker;
use crate::context::ctx;
use crate::format;
use crate::palette::brand_color;
use crate::range::resolution_label;
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

    // The range, when one is chosen: read over REST on every change, and every
    // RANGE_REFRESH while it ends now. A timer rather than the live frames' tick:
    // frames come every second or so, and a range's buckets are minutes to days wide,
    // so re-reading a few hundred of them each second would cost the server for
    // nothing; 10 s keeps the filling bucket fresh enough.
    let range = ctx.range();
    let ranged = RwSignal::new(None::<(String, BrandSeries)>);
    let range_error = RwSignal::new(None::<String>);
    // Answers to an older choice are dropped: a slow 2-year read must not land
    // after the 7-day one that replaced it.
    let generation = StoredValue::new(0u64);
    let load_range = {
        let brand = brand.clone();
        move |fresh: bool| {
            let Some(r) = range.get_untracked() else {
                ranged.set(None);
                range_error.set(None);
                return;
            };
            if fresh {
                generation.update_value(|g| *g += 1);
                ranged.set(None);
            }
            let asked = generation.get_value();
            let brand = brand.clone();
            leptos::task::spawn_local(async move {
                let result = match api::range_query(&r).await {
                    Ok(q) => api::brand_series(&brand, &q).await.map(|s| (q, s)),
                    Err(e) => Err(e),
                };
                if generation.get_value() != asked {
                    return;
                }
                match result {
                    Ok(got) => {
                        range_error.set(None);
                        ranged.set(Some(got));
                    }
                    Err(e) => {
                        ranged.set(None);
                        range_error.set(Some(e.to_string()));
                    }
                }
            });
        }
    };
    {
        let load = load_range.clone();
        Effect::new(move |_| {
            range.track();
            load(true);
        });
    }
    let timer = set_interval_with_handle(
        move || {
            if range.with_untracked(|r| r.as_ref().is_some_and(|r| r.ends_now())) {
                load_range(false);
            }
        },
        RANGE_REFRESH,
    )
    .ok();
    on_cleanup(move || {
        if let Some(t) = timer {
            t.clear();
        }
    });

    let chart_ref = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        let Some(c) = chart_ref.get() else { return };
        if range.with(Option::is_some) {
            ranged.with(|r| {
                if let Some((query, s)) = r {
                    draw_range(&c, query, s);
                }
            });
            return;
        }
        detail.with(|d| {
            let Some(d) = d else { return };
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
            if let Err(e) = series::draw(&c, &d.series, &d.previous_series, shift, true) {
                tracing::warn!(%e, "series chart");
            }
            // For the end-to-end tests: what the chart holds.
            for name in [
                "data-resolution",
                "data-query",
                "data-points",
                "data-step-ms",
            ] {
                let _ = c.remove_attribute(name);
            }
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
        });
    });

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
    let csv =
        move || api::series_csv_href(&brand_for_csv(ctx.route.get_untracked()), ctx.window.get());
    let title = brand.clone();
    let png_brand = brand.clone();
    view! {
        <div class="page brand" data-test="brand-page">
            <div class="page-head">
                <h1><span class="swatch big" style:background=color></span>{title}</h1>
                <WindowPicker/>
                <RangePicker/>
                <a class="button" href=csv download data-test="csv-link">"Export CSV"</a>
            </div>
            {move || error.get().map(|e| view! { <p class="panel error" role="alert">{e}</p> })}
            {move || range_error.get().map(|e| view! { <p class="panel error" role="alert" data-test="range-error">{e}</p> })}
            {move || match range.get() {
                Some(_) => match ranged.get() {
                    Some((_, s)) => view! { <RangeTotalsCards totals=s.totals/> }.into_any(),
                    None if range_error.with(Option::is_none) => view! { <p class="empty panel">"Loading the range…"</p> }.into_any(),
                    None => ().into_any(),
                },
                None => view! {
                    <Show when=move || detail.with(Option::is_some) fallback=|| view! { <p class="empty panel">"Loading this brand's numbers…"</p> }>
                        {move || detail.get().map(|d| view! { <Cards detail=d/> })}
                    </Show>
                }.into_any(),
            }}
            <div class="grid">
                <section class="panel wide">
                    <div class="panel-head">
                        <h2>{move || match range.get() {
                            Some(r) => format!("Activity, {}", r.label().to_lowercase()),
                            None => "Activity over the window".to_string(),
                        }}</h2>
                        {move || ranged.with(|r| r.as_ref().map(|(_, s)| view! {
                            <span class="badge" data-test="range-resolution" data-resolution=s.resolution.as_str()
                                title="The bucket size the server picked for this range">{resolution_label(s.resolution)}</span>
                        }))}
                        <button class="button" data-test="chart-png" on:click=move |_| {
                            if let Some(c) = chart_ref.get_untracked() {
                                let to = detail.with_untracked(|d| d.as_ref().map_or(0, |d| d.to_ms));
                                let span = range.with_untracked(|r| r.as_ref().map(|r| r.file_token()))
                                    .unwrap_or_else(|| ctx.window.get_untracked().as_str().to_string());
                                let to = ranged.with_untracked(|r| r.as_ref().map(|(_, s)| s.to_ms)).unwrap_or(to);
                                let name = crate::dom::file_stem(&[
                                    &png_brand, "chart", &span, "to", &format::file_time(to),
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

const RANGE_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// Draws a range's buckets, the last marked partial when it holds the stream's clock,
/// and leaves on the canvas what it drew for the end-to-end tests: the request, the
/// resolution and each bucket's photos, likes and comments.
fn draw_range(c: &web_sys::HtmlCanvasElement, query: &str, s: &BrandSeries) {
    let points: Vec<SeriesPoint> = s
        .points
        .iter()
        .map(|p| SeriesPoint {
            minute_ms: p.time_ms,
            photos: p.photos,
            likes: p.likes,
            comments: p.comments,
        })
        .collect();
    let partial_ms = s
        .points
        .last()
        .map(|p| p.time_ms)
        .filter(|&t| s.clock_ms.is_some_and(|c| c >= t && c < t + s.step_ms));
    if let Err(e) = series::draw(c, &points, &[], 0, partial_ms.is_some()) {
        tracing::warn!(%e, "range chart");
    }
    let cells = s
        .points
        .iter()
        .map(|p| format!("{}:{}:{}:{}", p.time_ms, p.photos, p.likes, p.comments))
        .collect::<Vec<_>>()
        .join(",");
    for (name, value) in [
        ("data-query", query.to_string()),
        ("data-resolution", s.resolution.as_str().to_string()),
        ("data-step-ms", s.step_ms.to_string()),
        ("data-points", cells),
        (
            "data-partial-ms",
            partial_ms.map_or(String::new(), |t| t.to_string()),
        ),
        ("data-previous-photos", "0".to_string()),
    ] {
        let _ = c.set_attribute(name, &value);
    }
}

/// A range's totals: no previous period to compare with (a range has none on the
/// server), reach the union over the range.
#[component]
fn RangeTotalsCards(totals: RangeTotals) -> impl IntoView {
    let t = totals;
    let card = |label: &'static str, key: &'static str, value: String| {
        view! {
            <div class="stat" data-metric=key>
                <span class="label">{label}</span>
                <span class="value">{value}</span>
            </div>
        }
    };
    view! {
        <div class="stats" data-test="range-cards" data-photos=t.photos data-likes=t.likes
            data-comments=t.comments data-impressions=t.impressions>
            {card("Photos", "photos", format::grouped(t.photos))}
            {card("Likes", "likes", format::grouped(t.likes))}
            {card("Comments", "comments", format::grouped(t.comments))}
            {card("Unique reach", "reach", t.reach.map_or_else(|| "–".into(), format::compact))}
            {card("Engagement rate", "engagement", t.engagement_rate.map_or_else(|| "–".into(), format::percent))}
            {card("Share of voice", "share", format::percent(t.share_of_voice))}
            {card("Potential impressions", "impressions", format::compact(t.impressions))}
        </div>
    }
}

/// The brand a CSV link names: the one in the route.
fn brand_for_csv(route: Route) -> String {
    match route {
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
