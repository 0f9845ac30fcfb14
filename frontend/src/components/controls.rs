//! Presenter controls for live demos: pause and resume the embedded generator, change
//! its rate, launch a campaign burst for a brand (optionally at a city).
//!
//! The panel opens from the footer, key `c` or `?presenter` in the URL; its controls
//! stay hidden until a control token is entered. The token is kept in this browser's
//! localStorage only and sent as a Bearer header; the server checks it on every call,
//! so hiding the panel is convenience, not security.

use instabrand_shared::api::{BrandInfo, CampaignRequest, GeneratorStatus};
use leptos::prelude::*;

use crate::context::ctx;
use crate::{api, dom};

const TOKEN_KEY: &str = "instabrand.control_token";

#[component]
pub fn ControlsPanel() -> impl IntoView {
    let ctx = ctx();
    let token = RwSignal::new(dom::storage_get(TOKEN_KEY).filter(|t| !t.is_empty()));
    let status = RwSignal::new(None::<GeneratorStatus>);
    let message = RwSignal::new(None::<(bool, String)>);
    let brands = RwSignal::new(Vec::<BrandInfo>::new());

    let refresh = move || {
        let Some(t) = token.get_untracked() else {
            return;
        };
        leptos::task::spawn_local(async move {
            match api::control_status(&t).await {
                Ok(s) => status.set(Some(s)),
                Err(e) => {
                    status.set(None);
                    message.set(Some((
                        false,
                        if e.status == Some(401) {
                            "The server refused this token.".to_string()
                        } else {
                            e.to_string()
                        },
                    )));
                }
            }
        });
    };
    Effect::new(move |_| {
        if ctx.controls_open.get() && token.get().is_some() {
            refresh();
            if brands.with_untracked(Vec::is_empty) {
                leptos::task::spawn_local(async move {
                    if let Ok(list) = api::brands().await {
                        brands.set(list);
                    }
                });
            }
        }
    });

    let act = move |label: &'static str,
                    call: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), api::ApiFailure>>>,
    >| {
        leptos::task::spawn_local(async move {
            match call.await {
                Ok(()) => message.set(Some((true, label.to_string()))),
                Err(e) => message.set(Some((false, e.to_string()))),
            }
            refresh();
        });
    };

    let token_input = RwSignal::new(String::new());
    let save_token = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let t = token_input.get_untracked().trim().to_string();
        if !t.is_empty() {
            dom::storage_set(TOKEN_KEY, &t);
            token.set(Some(t));
            token_input.set(String::new());
            message.set(None);
        }
    };
    let forget = move |_| {
        dom::storage_remove(TOKEN_KEY);
        token.set(None);
        status.set(None);
        message.set(None);
    };

    let rate = RwSignal::new(String::new());
    let brand = RwSignal::new(String::new());
    let city = RwSignal::new(String::new());
    let photos = RwSignal::new("300".to_string());
    let seconds = RwSignal::new("20".to_string());

    let set_rate = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(t) = token.get_untracked() else {
            return;
        };
        match rate.get_untracked().trim().parse::<f64>() {
            Ok(r) if r >= 0.0 && r.is_finite() => act(
                "Rate changed.",
                Box::pin(async move { api::control_rate(&t, r).await }),
            ),
            _ => message.set(Some((
                false,
                "The rate is a number of events per second.".into(),
            ))),
        }
    };
    let launch = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(t) = token.get_untracked() else {
            return;
        };
        let b = brand.get_untracked().trim().to_string();
        if b.is_empty() {
            message.set(Some((false, "Pick a brand for the campaign.".into())));
            return;
        }
        let c = city.get_untracked().trim().to_string();
        let req = CampaignRequest {
            brand: b,
            city: (!c.is_empty()).then_some(c),
            photos: photos.get_untracked().trim().parse().ok(),
            seconds: seconds.get_untracked().trim().parse().ok(),
        };
        act(
            "Campaign launched: watch the leaderboard, the map and the alerts.",
            Box::pin(async move { api::control_campaign(&t, &req).await }),
        );
    };

    view! {
        <Show when=move || ctx.controls_open.get()>
            <aside class="panel controls" data-test="controls" aria-label="Presenter controls">
                <header>
                    <h2>"Presenter controls"</h2>
                    <button class="link" on:click=move |_| ctx.controls_open.set(false) aria-label="Close">"×"</button>
                </header>
                {move || match token.get() {
                    None => view! {
                        <form on:submit=save_token data-test="token-form">
                            <label>"Control token"
                                <input type="password" autocomplete="off" data-test="token-input"
                                    prop:value=move || token_input.get()
                                    on:input=move |e| token_input.set(event_target_value(&e))/>
                            </label>
                            <button type="submit">"Unlock"</button>
                            <p class="hint">"Kept in this browser only. The server prints it at start-up."</p>
                        </form>
                    }.into_any(),
                    Some(t) => {
                        let (t1, t2) = (t.clone(), t);
                        view! {
                        <div class="control-body" data-test="control-body">
                            <p class="status" data-test="generator-status">{move || match status.get() {
                                Some(s) => format!("Generator {} · {:.0} events/s target · {} sent",
                                    if !s.running { "not running" } else if s.paused { "paused" } else { "running" },
                                    s.rate, s.events_sent),
                                None => "Generator status unknown.".to_string(),
                            }}</p>
                            <div class="row">
                                <button data-test="pause" on:click=move |_| { let t = t1.clone(); act("Generator paused.", Box::pin(async move { api::control_action(&t, "pause").await })) }>"Pause"</button>
                                <button data-test="resume" on:click=move |_| { let t = t2.clone(); act("Generator resumed.", Box::pin(async move { api::control_action(&t, "resume").await })) }>"Resume"</button>
                                <button class="link" on:click=forget>"Forget token"</button>
                            </div>
                            <form class="row" on:submit=set_rate>
                                <label>"Rate (events/s)"
                                    <input type="number" min="0" step="any" data-test="rate-input"
                                        prop:value=move || rate.get() on:input=move |e| rate.set(event_target_value(&e))/>
                                </label>
                                <button type="submit">"Set rate"</button>
                            </form>
                            <form class="campaign" on:submit=launch data-test="campaign-form">
                                <label>"Brand"
                                    <input list="brand-list" data-test="campaign-brand" placeholder="e.g. Nike"
                                        prop:value=move || brand.get() on:input=move |e| brand.set(event_target_value(&e))/>
                                </label>
                                <datalist id="brand-list">
                                    {move || brands.get().into_iter().map(|b| view! { <option value=b.name.clone()>{b.category}</option> }).collect_view()}
                                </datalist>
                                <label>"City (optional)"
                                    <input data-test="campaign-city" placeholder="e.g. Paris"
                                        prop:value=move || city.get() on:input=move |e| city.set(event_target_value(&e))/>
                                </label>
                                <label>"Photos"
                                    <input type="number" min="1" data-test="campaign-photos"
                                        prop:value=move || photos.get() on:input=move |e| photos.set(event_target_value(&e))/>
                                </label>
                                <label>"Seconds"
                                    <input type="number" min="1" data-test="campaign-seconds"
                                        prop:value=move || seconds.get() on:input=move |e| seconds.set(event_target_value(&e))/>
                                </label>
                                <button type="submit" data-test="campaign-launch">"Launch campaign"</button>
                            </form>
                        </div>
                    }.into_any()},
                }}
                {move || message.get().map(|(ok, text)| view! {
                    <p class=if ok { "msg ok" } else { "msg err" } role="status" data-test="control-message">{text}</p>
                })}
            </aside>
        </Show>
    }
}
