//! The range picker beside the window buttons on the brand and compare pages: a preset
//! (last 5 min … 2 years) or from–to between two datetime inputs (read as UTC, like
//! every time on the dashboard). The choice goes into the URL (see [`crate::range`]).

use leptos::html::Input;
use leptos::prelude::*;

use crate::context::ctx;
use crate::range::{PRESETS, Range, input_value};

#[component]
pub fn RangePicker() -> impl IntoView {
    let ctx = ctx();
    let range = ctx.range();
    let from_ref = NodeRef::<Input>::new();
    let to_ref = NodeRef::<Input>::new();
    let bound = move |to: bool| {
        move || match range.get() {
            Some(Range::Between { from, to: end }) => {
                if to {
                    end.map(|t| input_value(&t)).unwrap_or_default()
                } else {
                    input_value(&from)
                }
            }
            _ => String::new(),
        }
    };
    let apply = move |_| {
        let from = from_ref
            .get_untracked()
            .map(|i| i.value())
            .unwrap_or_default();
        let to = to_ref
            .get_untracked()
            .map(|i| i.value())
            .unwrap_or_default();
        if !from.is_empty() {
            ctx.set_range(Some(&Range::Between {
                from,
                to: (!to.is_empty()).then_some(to),
            }));
        }
    };
    let selected = move |key: &'static str| {
        move || match range.get() {
            Some(Range::Last(k, _)) => k == key,
            Some(Range::Between { .. }) => key == "custom",
            None => key.is_empty(),
        }
    };
    view! {
        <div class="picker range-picker" role="group" aria-label="Date range" data-test="range-picker">
            <select data-test="range-preset" aria-label="Range"
                on:change=move |e| {
                    let v = event_target_value(&e);
                    match PRESETS.iter().find(|p| p.0 == v) {
                        Some(&(k, _, len)) => ctx.set_range(Some(&Range::Last(k, len))),
                        None if v.is_empty() => ctx.set_range(None),
                        None => {} // "from–to": waits for the inputs
                    }
                }>
                <option value="" selected=selected("")>"Live window"</option>
                {PRESETS.into_iter().map(|(k, label, _)| view! {
                    <option value=k selected=selected(k)>{label}</option>
                }).collect_view()}
                <option value="custom" selected=selected("custom")>"From – to…"</option>
            </select>
            <input type="datetime-local" node_ref=from_ref data-test="range-from" aria-label="From (UTC)" title="From, UTC" prop:value=bound(false)/>
            <input type="datetime-local" node_ref=to_ref data-test="range-to" aria-label="To (UTC), empty for now" title="To, UTC; empty: up to now" prop:value=bound(true)/>
            <button class="button" data-test="range-apply" on:click=apply>"Apply"</button>
        </div>
    }
}
