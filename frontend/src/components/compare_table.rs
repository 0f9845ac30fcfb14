//! 2–5 brands side by side over the chosen window, with the audience overlap of each
//! pair: what the wall playlist's `compare:A+B` view shows. Read from
//! `/api/compare` every few seconds (a comparison is a handful of merged sketches,
//! cheap to ask for, and has no live topic of its own).

use instabrand_shared::api::Comparison;
use leptos::prelude::*;

use crate::context::ctx;
use crate::palette::brand_color;
use crate::{api, format};

const REFRESH_SECS: u64 = 5;

#[component]
pub fn CompareTable(brands: Vec<String>) -> impl IntoView {
    let ctx = ctx();
    let data = RwSignal::new(None::<Comparison>);
    let error = RwSignal::new(None::<String>);
    let load = {
        let brands = brands.clone();
        move || {
            let brands = brands.clone();
            let window = ctx.window.get_untracked();
            leptos::task::spawn_local(async move {
                match api::compare(&brands, window).await {
                    Ok(c) => {
                        error.set(None);
                        data.set(Some(c));
                    }
                    Err(e) => error.set(Some(e.to_string())),
                }
            });
        }
    };
    Effect::new({
        let load = load.clone();
        move |_| {
            ctx.window.track();
            load();
        }
    });
    let timer = set_interval_with_handle(load, std::time::Duration::from_secs(REFRESH_SECS)).ok();
    on_cleanup(move || {
        if let Some(t) = timer {
            t.clear();
        }
    });
    view! {
        <div class="compare" data-test="compare-table">
            {move || error.get().map(|e| view! { <p class="panel error" role="alert">{e}</p> })}
            {move || data.get().map(|c| summary(&c))}
        </div>
    }
}

/// The brands' numbers over the whole period and each pair's shared audience.
pub fn summary(c: &Comparison) -> impl IntoView + use<> {
    view! {
                <div class="table-wrap"><table>
                    <thead><tr>
                        <th>"Brand"</th><th class="num">"Photos"</th><th class="num">"Likes"</th>
                        <th class="num">"Comments"</th><th class="num">"Reach"</th>
                        <th class="num">"Engagement"</th><th class="num">"Share of voice"</th>
                    </tr></thead>
                    <tbody>
                        {c.brands.iter().map(|b| {
                            let m = &b.metrics;
                            view! {
                                <tr data-brand=m.brand.clone()>
                                    <td><span class="swatch" style:background=brand_color(&m.brand)></span>{m.brand.clone()}</td>
                                    <td class="num photos" data-value=m.photos>{format::grouped(m.photos)}</td>
                                    <td class="num">{format::grouped(m.likes)}</td>
                                    <td class="num">{format::grouped(m.comments)}</td>
                                    <td class="num reach" data-value=m.reach>{format::compact(m.reach)}</td>
                                    <td class="num">{format::percent(m.engagement_rate)}</td>
                                    <td class="num">{format::percent(m.share_of_voice)}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table></div>
                <ul class="overlaps">
                    {c.overlaps.iter().map(|o| view! {
                        <li data-test="overlap" data-value=o.overlap data-error=o.error>
                            {format!("{} ∩ {}: about {} people reached by both (± {})",
                                o.a, o.b, format::compact(o.overlap), format::compact(o.error))}
                        </li>
                    }).collect_view()}
                </ul>
    }
}
