//! Feeds: find a user by name prefix, then see their profile and home timeline (or
//! their own photos), newest first, with like and comment counts that update live.

use instabrand_shared::api::UserProfile;
use instabrand_shared::ws::{Frame, Topic};
use leptos::prelude::*;

use crate::api;
use crate::components::photo::PhotoCard;
use crate::context::ctx;
use crate::dom;
use crate::format;
use crate::live::FeedState;
use crate::route::Route;
use crate::ws;

#[component]
pub fn FeedsPage(user: Option<String>) -> impl IntoView {
    view! {
        <div class="page feeds">
            <div class="page-head">
                <h1>"Feeds"</h1>
                <UserSearch/>
            </div>
            {match user {
                Some(u) => view! { <UserFeed username=u/> }.into_any(),
                None => view! {
                    <p class="panel empty">"Type the start of a username to find someone, or pick a top influencer on the overview."</p>
                }.into_any(),
            }}
        </div>
    }
}

/// Prefix search with a short debounce, so typing "bil" sends one request, not three.
#[component]
fn UserSearch() -> impl IntoView {
    let ctx = ctx();
    let query = RwSignal::new(String::new());
    let results = RwSignal::new(None::<Result<Vec<UserProfile>, String>>);
    let generation = RwSignal::new(0u64);
    let search = move |q: String| {
        generation.update(|g| *g += 1);
        let mine = generation.get_untracked();
        if q.trim().is_empty() {
            results.set(None);
            return;
        }
        dom::set_timeout(200, move || {
            if generation.get_untracked() != mine {
                return;
            }
            leptos::task::spawn_local(async move {
                let r = api::users(q.trim(), 20).await.map_err(|e| e.to_string());
                if generation.get_untracked() == mine {
                    results.set(Some(r));
                }
            });
        });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let q = query.get_untracked();
        // Enter opens the first match, or the typed name itself.
        let first = results.with_untracked(|r| match r {
            Some(Ok(list)) => list.first().map(|u| u.username.clone()),
            _ => None,
        });
        let target = first.unwrap_or_else(|| q.trim().to_string());
        if !target.is_empty() {
            results.set(None);
            ctx.navigate(&Route::Feed(Some(target)).href());
        }
    };
    view! {
        <form class="search" role="search" on:submit=submit>
            <input type="search" placeholder="Find a user…" aria-label="Find a user by name"
                data-test="user-search" autocomplete="off"
                prop:value=move || query.get()
                on:input=move |e| { let v = event_target_value(&e); query.set(v.clone()); search(v); }/>
            {move || results.get().map(|r| match r {
                Err(e) => view! { <p class="error">{e}</p> }.into_any(),
                Ok(list) if list.is_empty() => view! { <p class="empty">"No user starts with that."</p> }.into_any(),
                Ok(list) => view! {
                    <ul class="results" data-test="user-results">
                        {list.into_iter().map(|u| {
                            let href = Route::Feed(Some(u.username.clone())).href();
                            view! {
                                <li>
                                    <a href=href on:click=move |_| results.set(None)>{u.username.clone()}</a>
                                    <span class="muted">{u.full_name.clone().unwrap_or_default()}</span>
                                    <span class="num">{format!("{} followers", format::compact(u.followers))}</span>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            })}
        </form>
    }
}

#[component]
fn UserFeed(username: String) -> impl IntoView {
    let feed = RwSignal::new(FeedState::default());
    let loaded = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let show_timeline = RwSignal::new(true);
    let loading_more = RwSignal::new(false);
    {
        let username = username.clone();
        ws::use_topic(
            move || {
                Some(Topic::Feed {
                    username: username.clone(),
                })
            },
            move |msg| match &msg.frame {
                Frame::Feed(f) => {
                    feed.update(|s| s.apply(msg.snapshot, f.clone()));
                    loaded.set(true);
                    error.set(None);
                }
                Frame::Error { message } => {
                    error.set(Some(message.clone()));
                    loaded.set(true);
                }
                _ => {}
            },
        );
    }
    let older = {
        let username = username.clone();
        move |_| {
            let timeline = show_timeline.get_untracked();
            let cursor = feed.with_untracked(|f| {
                if timeline {
                    f.timeline_next.clone()
                } else {
                    f.photos_next.clone()
                }
            });
            let Some(cursor) = cursor else { return };
            let username = username.clone();
            loading_more.set(true);
            leptos::task::spawn_local(async move {
                match api::feed_page(&username, timeline, &cursor).await {
                    Ok(page) => feed.update(|f| f.append_page(timeline, page)),
                    Err(e) => error.set(Some(e.to_string())),
                }
                loading_more.set(false);
            });
        }
    };
    view! {
        {move || error.get().map(|e| view! { <p class="panel error" role="alert" data-test="feed-error">{e}</p> })}
        <Show when=move || loaded.get() fallback=|| view! { <p class="panel empty">"Loading the feed…"</p> }>
            {move || feed.with(|f| f.profile.clone()).map(|p| view! { <Profile profile=p/> })}
        </Show>
        <section class="panel">
            <div class="tabs" role="tablist">
                <button role="tab" aria-selected=move || show_timeline.get().to_string() data-test="tab-timeline"
                    on:click=move |_| show_timeline.set(true)>"Home timeline"</button>
                <button role="tab" aria-selected=move || (!show_timeline.get()).to_string() data-test="tab-photos"
                    on:click=move |_| show_timeline.set(false)>"Own photos"</button>
            </div>
            <div class="photo-grid" data-test="feed-photos">
                {move || {
                    let items = feed.with(|f| if show_timeline.get() { f.timeline.clone() } else { f.photos.clone() });
                    if items.is_empty() && loaded.get() {
                        view! { <p class="empty">"No photos here yet."</p> }.into_any()
                    } else {
                        items.into_iter().map(|p| view! { <PhotoCard photo=p/> }).collect_view().into_any()
                    }
                }}
            </div>
            <Show when=move || feed.with(|f| if show_timeline.get() { f.timeline_next.is_some() } else { f.photos_next.is_some() })>
                <button class="more" on:click=older.clone() disabled=move || loading_more.get()>"Older photos"</button>
            </Show>
        </section>
    }
}

#[component]
fn Profile(profile: UserProfile) -> impl IntoView {
    let stat = |label: &'static str, n: u64| {
        view! {
            <div class="stat"><span class="label">{label}</span><span class="value" title=format::grouped(n)>{format::compact(n)}</span></div>
        }
    };
    view! {
        <section class="panel profile" data-test="profile">
            <h2>
                {profile.full_name.clone().unwrap_or_else(|| profile.username.clone())}
                " "<span class="muted">"@"{profile.username.clone()}</span>
                {profile.celebrity.then(|| view! { <span class="badge" title="Photos merged into timelines when read">"celebrity"</span> })}
                {(!profile.registered).then(|| view! { <span class="badge muted" title="Named by events, never created">"implicit"</span> })}
            </h2>
            <div class="stats">
                {stat("Followers", profile.followers)}
                {stat("Following", profile.following)}
                {stat("Photos", profile.photos)}
                {stat("Likes received", profile.likes_received)}
                {stat("Comments received", profile.comments_received)}
            </div>
        </section>
    }
}
