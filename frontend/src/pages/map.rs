//! The live map page: every upload at its coordinates as it happens, coloured by
//! brand, filterable by brand, with a legend of the busiest brands on screen.
//! `/map?bench=20000` draws 20,000 synthetic points instead and reports frame times.

use instabrand_shared::api::BrandInfo;
use leptos::prelude::*;

use crate::components::live_map::{LiveMap, MapReadout};
use crate::context::{HistoryMode, ctx};
use crate::palette::brand_color;
use crate::route::query_param;
use crate::{api, format};

#[component]
pub fn MapPage() -> impl IntoView {
    let ctx = ctx();
    let bench = ctx
        .search
        .with_untracked(|s| query_param(s, "bench"))
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n.clamp(1, 200_000));
    // The filter is the URL's `?brand=`: a copied link shows the same brand, and back
    // returns to the previous filter.
    let filter = Memo::new(move |_| {
        ctx.search
            .with(|s| query_param(s, "brand"))
            .filter(|b| !b.is_empty())
    });
    let readout = RwSignal::new(MapReadout::default());
    let brands = RwSignal::new(Vec::<BrandInfo>::new());
    leptos::task::spawn_local(async move {
        if let Ok(list) = api::brands().await {
            brands.set(list);
        }
    });

    view! {
        <div class="page map-page">
            <div class="page-head">
                <h1>"Uploads around the world"</h1>
                <label class="filter">"Brand "
                    <select data-test="map-filter" on:change=move |e| {
                        let v = event_target_value(&e);
                        ctx.set_query("brand", (!v.is_empty()).then_some(v.as_str()), HistoryMode::Push);
                    }>
                        <option value="" selected=move || filter.with(Option::is_none)>"All brands"</option>
                        {move || brands.get().into_iter().map(|b| {
                            let name = b.name.clone();
                            let selected = move || filter.with(|f| f.as_deref() == Some(name.as_str()));
                            view! { <option value=b.name.clone() selected=selected>{b.name.clone()}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <span class="readout" data-test="map-readout"
                    data-points=move || readout.with(|r| r.points.to_string())
                    data-frame-ms=move || readout.with(|r| format!("{:.2}", r.frame_ms))>
                    {move || readout.with(|r| format!("{} points · frame {:.1} ms", format::grouped(r.points as u64), r.frame_ms))}
                </span>
            </div>
            {bench.map(|n| view! { <p class="panel hint">{format!("Benchmark: {n} synthetic points, live feed off.")}</p> })}
            <div class="map-wrap">
                <LiveMap filter=filter readout=readout bench=bench.unwrap_or(0)/>
                <Legend readout=readout/>
            </div>
        </div>
    }
}

#[component]
pub fn Legend(readout: RwSignal<MapReadout>) -> impl IntoView {
    view! {
        <ul class="legend" aria-label="Busiest brands on the map">
            {move || readout.with(|r| r.per_brand.iter().map(|(brand, n)| view! {
                <li><span class="swatch" style:background=brand_color(brand)></span>{brand.clone()}" "<span class="num">{format::compact(*n as u64)}</span></li>
            }).collect_view())}
        </ul>
    }
}
