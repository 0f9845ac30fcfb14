//! Spike alerts: the list on the overview and presentation, and a banner that shows a
//! freshly fired alert on any page for a little while.

use leptos::prelude::*;

use crate::context::ctx;
use crate::format;
use crate::palette::brand_color;
use crate::route::Route;

/// How long a new alert stays in the banner.
const BANNER_MS: f64 = 20_000.0;

#[component]
pub fn AlertsPanel(#[prop(default = 12)] limit: usize) -> impl IntoView {
    let ctx = ctx();
    view! {
        <section class="panel alerts" data-test="alerts">
            <h2>"Alerts"</h2>
            <Show
                when=move || ctx.alerts.with(|a| !a.is_empty())
                fallback=|| view! { <p class="empty">"No spikes yet. Alerts appear here the moment a brand's activity jumps above its baseline."</p> }
            >
                <ul>
                    {move || {
                        ctx.alerts.with(|log| {
                            log.iter()
                                .take(limit)
                                .map(|a| {
                                    let href = Route::Brand(a.brand.clone()).href();
                                    view! {
                                        <li class="alert" data-alert-id=a.id.to_string() data-brand=a.brand.clone()>
                                            <span class="swatch" style:background=brand_color(&a.brand)></span>
                                            <a href=href class="brand">{a.brand.clone()}</a>
                                            <span class="factor">{format!("×{:.1}", a.factor)}</span>
                                            <span class="msg">{a.message.clone()}</span>
                                            <span class="when">{format::clock(a.at_ms)}</span>
                                        </li>
                                    }
                                })
                                .collect_view()
                        })
                    }}
                </ul>
            </Show>
        </section>
    }
}

#[component]
pub fn AlertBanner() -> impl IntoView {
    let ctx = ctx();
    let current = move || {
        let now = ctx.now.get();
        ctx.fresh_alert
            .get()
            .filter(|(_, at)| now - at < BANNER_MS)
            .map(|(a, _)| a)
    };
    view! {
        {move || {
            current()
                .map(|a| {
                    let href = Route::Brand(a.brand.clone()).href();
                    view! {
                        <div class="banner" role="alert" data-test="alert-banner" data-brand=a.brand.clone()>
                            <strong>"Spike: "</strong>
                            <a href=href>{a.brand.clone()}</a>
                            " "
                            <span>{a.message.clone()}</span>
                            <span class="factor">{format!(" ×{:.1} vs baseline", a.factor)}</span>
                        </div>
                    }
                })
        }}
    }
}
