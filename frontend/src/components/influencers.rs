//! Top influencers for a window, each linking to their feed (as the original
//! dashboard did).

use instabrand_shared::api::Influencer;
use instabrand_shared::ws::{Frame, Topic};
use leptos::prelude::*;

use crate::context::ctx;
use crate::format;
use crate::route::Route;
use crate::ws;

#[component]
pub fn InfluencersPanel(#[prop(default = 20)] limit: usize) -> impl IntoView {
    let ctx = ctx();
    let list = RwSignal::new(None::<Vec<Influencer>>);
    ws::use_topic(
        move || {
            Some(Topic::Influencers {
                window: ctx.window.get(),
            })
        },
        move |msg| {
            if let Frame::Influencers(rows) = &msg.frame {
                list.set(Some(rows.clone()));
            }
        },
    );
    view! {
        <section class="panel influencers" data-test="influencers">
            <h2>"Top influencers"</h2>
            {move || match list.get() {
                None => view! { <p class="empty">"Waiting for the stream…"</p> }.into_any(),
                Some(rows) if rows.is_empty() => view! { <p class="empty">"Nobody has posted in this window yet."</p> }.into_any(),
                Some(rows) => view! {
                    <table>
                        <thead><tr><th>"User"</th><th class="num">"Score"</th><th class="num">"Uploads"</th><th class="num">"Followers"</th></tr></thead>
                        <tbody>
                            {rows.into_iter().take(limit).map(|i| {
                                let href = Route::Feed(Some(i.username.clone())).href();
                                view! {
                                    <tr>
                                        <td><a href=href>{i.username.clone()}</a></td>
                                        <td class="num">{format::compact(i.score)}</td>
                                        <td class="num">{format::compact(i.uploads)}</td>
                                        <td class="num" title=format::grouped(i.followers)>{format::compact(i.followers)}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
        </section>
    }
}
