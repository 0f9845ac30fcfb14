//! One photo in a feed: owner, time, brands, place, live like and comment counts, and
//! the newest comments.
//!
//! Everything here is user-supplied text and is rendered as text nodes, never as
//! HTML, so a comment such as `<script>…</script>` shows literally. `photo_link` is a
//! link only when it is an http(s) URL, and never an image: the page loads nothing from
//! hosts other than its own.

use instabrand_shared::api::PhotoView;
use instabrand_shared::event::is_http_url;
use leptos::prelude::*;

use crate::format;
use crate::palette::brand_color;
use crate::route::Route;

#[component]
pub fn PhotoCard(photo: PhotoView) -> impl IntoView {
    let owner_href = Route::Feed(Some(photo.owner.clone())).href();
    let link = photo.photo_link.clone();
    let link_view = if is_http_url(&link) {
        let href = link.clone();
        view! {
            <a class="photo-link" href=href target="_blank" rel="noopener noreferrer nofollow">{link}</a>
        }
        .into_any()
    } else if link.is_empty() {
        ().into_any()
    } else {
        view! { <span class="photo-ref" title="photo reference">{link}</span> }.into_any()
    };
    view! {
        <article class="photo" data-owner=photo.owner.clone() data-created=photo.created_ms.to_string()>
            <header>
                <a class="owner" href=owner_href>{photo.owner.clone()}</a>
                <time title=format::timestamp(photo.created_ms)>{format::timestamp(photo.created_ms)}" UTC"</time>
            </header>
            <div class="tags">
                {photo.brands.iter().map(|b| {
                    let href = Route::Brand(b.clone()).href();
                    view! { <a class="tag" href=href style:border-color=brand_color(b)>{b.clone()}</a> }
                }).collect_view()}
                <span class="place">{format!("{:.2}, {:.2}", photo.latitude, photo.longitude)}</span>
            </div>
            {link_view}
            <div class="counts">
                <span class="likes" data-value=photo.likes.to_string()>{format::count_of(photo.likes, "like", "likes")}</span>
                <span class="comments-count" data-value=photo.comments.to_string()>{format::count_of(photo.comments, "comment", "comments")}</span>
            </div>
            {(!photo.recent_comments.is_empty()).then(|| view! {
                <ul class="comment-list">
                    {photo.recent_comments.iter().map(|c| {
                        let href = Route::Feed(Some(c.username.clone())).href();
                        view! {
                            <li class="comment">
                                <a href=href>{c.username.clone()}</a>
                                ": "
                                <span class="text">{c.text.clone()}</span>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            })}
        </article>
    }
}
