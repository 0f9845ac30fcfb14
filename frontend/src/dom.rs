//! Small helpers over web-sys for what several pages need: the clock, local storage,
//! the URL, timers and the canvas' device-pixel size. Failures here (no storage in a
//! private window, say) degrade to "nothing stored" instead of panicking.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

pub fn window() -> web_sys::Window {
    web_sys::window().expect("the dashboard runs in a browser window")
}

pub fn document() -> web_sys::Document {
    window().document().expect("a window has a document")
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// High-resolution milliseconds since page load, for frame and latency measurements.
pub fn perf_now() -> f64 {
    window()
        .performance()
        .map(|p| p.now())
        .unwrap_or_else(now_ms)
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

pub fn storage_get(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

pub fn storage_set(key: &str, value: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(key, value);
    }
}

pub fn storage_remove(key: &str) {
    if let Some(s) = storage() {
        let _ = s.remove_item(key);
    }
}

pub fn location_path() -> String {
    window()
        .location()
        .pathname()
        .unwrap_or_else(|_| "/".into())
}

pub fn location_search() -> String {
    window().location().search().unwrap_or_default()
}

/// Runs `f` once after `ms` milliseconds.
pub fn set_timeout(ms: i32, f: impl FnOnce() + 'static) {
    let cb = Closure::once_into_js(f);
    let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), ms);
}

/// Runs `f` before the next repaint.
pub fn request_animation_frame(f: impl FnOnce() + 'static) {
    let cb = Closure::once_into_js(f);
    let _ = window().request_animation_frame(cb.unchecked_ref());
}

/// Sizes the canvas' backing store to its CSS box times the device pixel ratio (sharp
/// on a 4K wall) and returns its 2D context with the transform reset to CSS pixels,
/// plus the CSS width and height. `None` while the canvas is hidden (zero-sized), so
/// hidden views cost nothing.
pub fn prepare_canvas(canvas: &HtmlCanvasElement) -> Option<(CanvasRenderingContext2d, f64, f64)> {
    let width = f64::from(canvas.client_width());
    let height = f64::from(canvas.client_height());
    if width < 2.0 || height < 2.0 {
        return None;
    }
    let ratio = window().device_pixel_ratio().clamp(1.0, 3.0);
    let (px_w, px_h) = (
        (width * ratio).round() as u32,
        (height * ratio).round() as u32,
    );
    if canvas.width() != px_w || canvas.height() != px_h {
        canvas.set_width(px_w);
        canvas.set_height(px_h);
    }
    let ctx = canvas
        .get_context("2d")
        .ok()
        .flatten()?
        .dyn_into::<CanvasRenderingContext2d>()
        .ok()?;
    let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
    Some((ctx, width, height))
}

/// Records a named measurement where the end-to-end tests and the benchmark read it:
/// a `data-<name>` attribute on `<body>`, and the console.
pub fn report_metric(name: &str, value: f64) {
    if let Some(body) = document().body() {
        let _ = body.set_attribute(&format!("data-{name}"), &format!("{value:.2}"));
    }
    tracing::info!(metric = name, value, "measurement");
}

/// Publishes the wasm linear memory size (`data-wasm-memory-bytes`): it only ever
/// grows, so a value that stops growing shows the page's memory is bounded. Read by
/// the benchmark's soak run.
pub fn report_wasm_memory() {
    let bytes = wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map(|m| {
            m.buffer()
                .unchecked_into::<js_sys::ArrayBuffer>()
                .byte_length()
        })
        .unwrap_or(0);
    if let Some(body) = document().body() {
        let _ = body.set_attribute("data-wasm-memory-bytes", &bytes.to_string());
    }
}

thread_local! {
    /// The screen wake lock while one is held (a `WakeLockSentinel`).
    static WAKE_LOCK: std::cell::RefCell<Option<JsValue>> = const { std::cell::RefCell::new(None) };
}

/// Asks the browser to keep the screen on (the Screen Wake Lock API) where it can, and
/// again after the browser let it go (it does when the tab is hidden). The outcome is
/// published as `data-wake-lock` on `<body>`: `held`, `refused` or `unavailable`.
///
/// Through `Reflect` rather than web-sys' `WakeLock`: web-sys marks that API unstable,
/// and enabling `web_sys_unstable_apis` would be a build-wide flag for one call.
pub fn keep_screen_awake() {
    let held = WAKE_LOCK.with_borrow(|s| {
        s.as_ref().is_some_and(|sentinel| {
            !js_sys::Reflect::get(sentinel, &"released".into())
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(true)
        })
    });
    if held || document().hidden() {
        return;
    }
    // `navigator` through Reflect too: web-sys' `Navigator` feature pulls in bindings
    // for all of it.
    let navigator =
        js_sys::Reflect::get(&window(), &"navigator".into()).unwrap_or(JsValue::UNDEFINED);
    let lock = js_sys::Reflect::get(&navigator, &"wakeLock".into()).unwrap_or(JsValue::UNDEFINED);
    let request = js_sys::Reflect::get(&lock, &"request".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let Some(request) = request.filter(|_| !lock.is_undefined()) else {
        mark_wake_lock("unavailable");
        return;
    };
    let Ok(promise) = request
        .call1(&lock, &"screen".into())
        .and_then(|p| p.dyn_into::<js_sys::Promise>())
    else {
        mark_wake_lock("refused");
        return;
    };
    wasm_bindgen_futures::spawn_local(async move {
        match wasm_bindgen_futures::JsFuture::from(promise).await {
            Ok(sentinel) => {
                WAKE_LOCK.set(Some(sentinel));
                mark_wake_lock("held");
            }
            // Refused: no user activation yet, a battery saver, a permissions policy.
            Err(_) => mark_wake_lock("refused"),
        }
    });
}

/// Lets the screen sleep again (leaving presentation mode).
pub fn release_screen() {
    if let Some(sentinel) = WAKE_LOCK.take()
        && let Some(release) = js_sys::Reflect::get(&sentinel, &"release".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
    {
        let _ = release.call0(&sentinel);
    }
    if let Some(body) = document().body() {
        let _ = body.remove_attribute("data-wake-lock");
    }
}

fn mark_wake_lock(state: &str) {
    if let Some(body) = document().body() {
        let _ = body.set_attribute("data-wake-lock", state);
    }
}

/// Downloads what a canvas shows as a PNG named `filename` (a data URL on a
/// temporary link: no server round trip, and the chart as drawn, at device pixels).
pub fn download_canvas_png(canvas: &HtmlCanvasElement, filename: &str) {
    let Ok(url) = canvas.to_data_url_with_type("image/png") else {
        return;
    };
    let Ok(link) = document()
        .create_element("a")
        .map(|e| e.unchecked_into::<web_sys::HtmlAnchorElement>())
    else {
        return;
    };
    link.set_href(&url);
    link.set_download(filename);
    link.click();
}

/// A file name made of what it holds, spelled as the server's CSV names are: ASCII
/// letters, digits, `-` and `.` kept, anything else `_` (quotes, slashes and commas in
/// brand names would break the name or the path).
pub fn file_stem(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}
