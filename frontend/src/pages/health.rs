//! Pipeline health: status and problems, throughput, the social graph's size, the
//! state's size by part, sources (Kafka lag, generator state) and dead letters by
//! reason with the latest ones.

use instabrand_shared::api::{DeadLetterView, Health};
use instabrand_shared::ws::{Frame, Topic};
use leptos::prelude::*;

use crate::{api, dom, format, ws};

const TOKEN_KEY: &str = "instabrand.dead_letters_token";

#[component]
pub fn HealthPage() -> impl IntoView {
    let health = RwSignal::new(None::<Health>);
    ws::use_topic(
        || Some(Topic::Health),
        move |msg| {
            if let Frame::Health(h) = &msg.frame {
                health.set(Some(h.clone()));
            }
        },
    );
    let letters = RwSignal::new(None::<Result<Vec<DeadLetterView>, String>>);
    // Raw payloads need the server's dead-letter token, kept in this browser only.
    let token = RwSignal::new(dom::storage_get(TOKEN_KEY).unwrap_or_default());
    let load_letters = move || {
        let t = token.get_untracked();
        if t.is_empty() {
            // No request without a token: it could only be refused.
            letters.set(Some(Err(
                "The original bytes of dead letters are shown to holders of the dead-letter token."
                    .into(),
            )));
            return;
        }
        leptos::task::spawn_local(async move {
            letters.set(Some(
                api::dead_letters(50, &t).await.map_err(|e| e.to_string()),
            ));
        });
    };
    let token_input = RwSignal::new(String::new());
    let save_token = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let t = token_input.get_untracked().trim().to_string();
        dom::storage_set(TOKEN_KEY, &t);
        token.set(t);
        load_letters();
    };
    load_letters();
    // Dead letters are a REST list; refresh when the count moves.
    Effect::new(move |prev: Option<u64>| {
        let n = health.with(|h| h.as_ref().map_or(0, |h| h.dead_letters));
        if prev.is_some_and(|p| p != n) {
            load_letters();
        }
        n
    });

    view! {
        <div class="page health">
            <div class="page-head"><h1>"Pipeline health"</h1></div>
            {move || match health.get() {
                None => view! { <p class="panel empty">"Waiting for the server's health report…"</p> }.into_any(),
                Some(h) => view! { <HealthView health=h/> }.into_any(),
            }}
            <section class="panel" data-test="dead-letters">
                <h2>"Latest dead letters"</h2>
                {move || match letters.get() {
                    None => view! { <p class="empty">"Loading…"</p> }.into_any(),
                    Some(Err(e)) => view! {
                        <p class="error">{e}</p>
                        <form on:submit=save_token data-test="dead-letter-token-form">
                            <label>"Dead-letter token "
                                <input type="password" autocomplete="off" data-test="dead-letter-token"
                                    prop:value=move || token_input.get()
                                    on:input=move |e| token_input.set(event_target_value(&e))/>
                            </label>
                            <button type="submit">"Show"</button>
                        </form>
                    }.into_any(),
                    Some(Ok(list)) if list.is_empty() => view! { <p class="empty">"None: every event so far was accepted."</p> }.into_any(),
                    Some(Ok(list)) => view! {
                        <div class="table-wrap"><table>
                            <thead><tr><th>"When"</th><th>"Reason"</th><th>"Source"</th><th>"Detail"</th><th>"Original bytes"</th></tr></thead>
                            <tbody>{list.into_iter().map(|d| view! {
                                <tr>
                                    <td>{format::timestamp(d.at_ms)}</td>
                                    <td><code>{d.reason}</code></td>
                                    <td>{d.source}</td>
                                    <td>{d.detail}</td>
                                    <td><pre class="raw">{d.raw}</pre></td>
                                </tr>
                            }).collect_view()}</tbody>
                        </table></div>
                    }.into_any(),
                }}
            </section>
        </div>
    }
}

#[component]
fn HealthView(health: Health) -> impl IntoView {
    let h = health;
    let ok = h.status == "ok";
    let stat = |label: &'static str, value: String| {
        view! {
            <div class="stat"><span class="label">{label}</span><span class="value">{value}</span></div>
        }
    };
    view! {
        <section class="panel" data-test="health-status">
            <h2>
                <span class=if ok { "badge ok" } else { "badge bad" }>{h.status.clone()}</span>
            </h2>
            {(!h.problems.is_empty()).then(|| view! {
                <ul class="problems">{h.problems.iter().map(|p| view! { <li>{p.clone()}</li> }).collect_view()}</ul>
            })}
            // An archiver (pipeline.apply = false) ingests without applying: say so
            // rather than show a dashboard of zeros as if nothing arrived.
            {(h.events_applied == 0 && h.events_ingested > 0).then(|| view! {
                <p class="note" data-test="archive-only">
                    {format!("Archiving only: {} events archived, none applied (pipeline.apply = false).",
                        format::grouped(h.events_ingested))}
                </p>
            })}
            <div class="stats">
                {stat("Events per second", format::rate(h.events_per_sec))}
                {stat("Events applied", format::grouped(h.events_applied))}
                {stat("Dead letters", format::grouped(h.dead_letters))}
                {stat("Uptime", format::duration(h.uptime_ms))}
                {stat("Users", format::grouped(h.users))}
                {stat("Implicit users", format::grouped(h.implicit_users))}
                {stat("Photos", format::grouped(h.photos))}
                {stat("Pending engagements", format::grouped(h.pending_engagements))}
                {stat("Beyond retention", format::grouped(h.late_events))}
                {stat("Duplicates", format::grouped(h.duplicates))}
                {stat("Superseded edges", format::grouped(h.superseded))}
                {stat("Waiting for order", format::grouped(h.order.held))}
                {stat("WebSocket clients", format::grouped(h.websocket_clients))}
                <div class="stat wide-stat">
                    <span class="label">"Stream clock (UTC)"</span>
                    <span class="value">{if h.stream_clock_ms > 0 { format::timestamp(h.stream_clock_ms) } else { "–".into() }}</span>
                </div>
            </div>
        </section>
        {(h.checkpoints.is_some() || h.archive.is_some()).then(|| view! {
            <section class="panel" data-test="durability">
                <h2>"Durability"</h2>
                <div class="stats">
                    {h.checkpoints.as_ref().map(|c| view! {
                        {stat("Checkpoints", format::grouped(c.taken))}
                        {stat("Last checkpoint", format::bytes(c.last_bytes))}
                        {stat("Written in", format!("{} ms", c.last_ms))}
                        {stat("Applying paused", format!("{:.2} ms", c.last_pause_us as f64 / 1000.0))}
                        {stat("Store base", format::bytes(c.base_bytes))}
                        {stat("Changelog", format!("{} in {}", format::bytes(c.changelog_bytes), format::grouped(c.changelog_entries)))}
                        {stat("Store file", format::bytes(c.file_bytes))}
                        {stat("Compactions", format::grouped(c.compactions))}
                    })}
                    {h.archive.as_ref().map(|a| view! {
                        {stat("Archived events", format::grouped(a.records))}
                        {stat("Archive files", format::grouped(a.files))}
                        {stat("Archive size", format::bytes(a.bytes))}
                        {stat("Waiting for a file", format::grouped(a.buffered))}
                        <div class="stat wide-stat">
                            <span class="label">"Archive"</span>
                            <span class="value"><code>{a.location.clone()}</code></span>
                        </div>
                    })}
                </div>
            </section>
        })}
        // What the state holds, part by part: what grows, and by how much.
        {(!h.state.is_empty()).then(|| {
            let total: u64 = h.state.iter().map(|s| s.bytes).sum();
            view! {
                <section class="panel" data-test="state-sizes">
                    <h2>"State by part"</h2>
                    <p class="note">{format!(
                        "About {} in all, estimated from lengths and capacities.",
                        format::bytes(total))}</p>
                    <div class="table-wrap"><table>
                        <thead><tr><th>"Part"</th><th class="num">"Entries"</th><th class="num">"Memory"</th></tr></thead>
                        <tbody>{h.state.iter().map(|s| view! {
                            <tr>
                                <td>{s.name.replace('_', " ")}</td>
                                <td class="num">{format::grouped(s.entries)}</td>
                                <td class="num">{format::bytes(s.bytes)}</td>
                            </tr>
                        }).collect_view()}</tbody>
                    </table></div>
                </section>
            }
        })}
        {(!h.order.inputs.is_empty()).then(|| view! {
            <section class="panel" data-test="inputs">
                <h2>"Inputs, in event-time order"</h2>
                <p class="note">{format!(
                    "Applied through {}. An input at the end of its log, or silent past its bound, holds no other back.",
                    h.order.applied_time_ms.map(format::timestamp).unwrap_or_else(|| "–".into()))}</p>
                <div class="table-wrap"><table>
                    <thead><tr><th>"Input"</th><th>"Watermark (UTC)"</th><th class="num">"Applying trails by"</th><th class="num">"Waiting"</th><th>"Log"</th></tr></thead>
                    <tbody>{h.order.inputs.iter().map(|i| view! {
                        <tr>
                            <td><code>{i.name.clone()}</code></td>
                            <td>{i.watermark_ms.map(format::timestamp).unwrap_or_else(|| "–".into())}</td>
                            <td class="num">{i.trails_ms.map(format::duration).unwrap_or_default()}</td>
                            <td class="num">{format::grouped(i.held)}</td>
                            <td>{format!("{}{}", i.position.replace('_', " "), if i.idle { "" } else { " · holding" })}</td>
                        </tr>
                    }).collect_view()}</tbody>
                </table></div>
            </section>
        })}
        <div class="grid thirds">
            <section class="panel" data-test="late-events">
                <h2>"Late events, by handling"</h2>
                <table><tbody>{h.late_by_handling.iter().map(|(k, n)| view! {
                    <tr><td><code>{k.clone()}</code></td><td class="num">{format::grouped(*n)}</td></tr>
                }).collect_view()}</tbody></table>
            </section>
            <section class="panel">
                <h2>"Events by kind"</h2>
                <table><tbody>{h.events_by_kind.iter().map(|(k, n)| view! {
                    <tr><td>{k.clone()}</td><td class="num">{format::grouped(*n)}</td></tr>
                }).collect_view()}</tbody></table>
            </section>
            <section class="panel" data-test="dead-letter-reasons">
                <h2>"Dead letters by reason"</h2>
                {if h.dead_letters_by_reason.is_empty() {
                    view! { <p class="empty">"None."</p> }.into_any()
                } else {
                    view! { <table><tbody>{h.dead_letters_by_reason.iter().map(|(k, n)| view! {
                        <tr><td><code>{k.clone()}</code></td><td class="num">{format::grouped(*n)}</td></tr>
                    }).collect_view()}</tbody></table> }.into_any()
                }}
            </section>
            <section class="panel">
                <h2>"Sources"</h2>
                <table>
                    <thead><tr><th>"Source"</th><th>"State"</th><th class="num">"Rate"</th><th>"Detail"</th></tr></thead>
                    <tbody>{h.sources.iter().map(|s| {
                        let state = if !s.connected { "disconnected" } else if s.paused { "paused" } else { "running" };
                        let lag: i64 = s.lag.values().sum();
                        view! {
                            <tr>
                                <td>{s.kind.clone()}</td>
                                <td>{state}</td>
                                <td class="num">{s.rate.map(format::rate).unwrap_or_default()}</td>
                                <td>{s.detail.clone()}{(!s.lag.is_empty()).then(|| format!(" · lag {lag}"))}</td>
                            </tr>
                        }
                    }).collect_view()}</tbody>
                </table>
            </section>
        </div>
    }
}
