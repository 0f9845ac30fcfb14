//! The 5m / 1h / 24h / all switch, shared by every page that shows windowed metrics
//! (keys 1–4 do the same from anywhere).

use instabrand_shared::api::Window;
use leptos::prelude::*;

use crate::context::ctx;

#[component]
pub fn WindowPicker() -> impl IntoView {
    let ctx = ctx();
    // With a range chosen no window button is lit: the range is what shows.
    let range = ctx.range();
    view! {
        <div class="picker" role="group" aria-label="Time window" data-test="window-picker">
            {Window::ALL
                .into_iter()
                .map(|w| {
                    view! {
                        <button
                            aria-pressed=move || (ctx.window.get() == w && range.with(Option::is_none)).to_string()
                            title=w.label()
                            on:click=move |_| ctx.set_window(w)
                        >
                            {w.as_str()}
                        </button>
                    }
                })
                .collect_view()}
        </div>
    }
}
