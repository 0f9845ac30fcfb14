//! The live upload map as a component: holds the bounded point buffer, feeds it from
//! the `map` topic, and repaints on the next animation frame after new points arrive
//! (and twice a second so points keep fading). Used by the map page and the
//! presentation; `bench` swaps the live feed for synthetic points and measures frames.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use instabrand_shared::api::MapPoint;
use instabrand_shared::time::MS_PER_MIN;
use instabrand_shared::ws::{Frame, Topic};
use leptos::html::Canvas;
use leptos::prelude::*;

use crate::charts::worldmap::{self, DrawOptions, LandLayer};
use crate::dom;
use crate::geo::Ring;
use crate::live::{MAP_CAPACITY, MapBuffer};
use crate::ws;

/// Points fade over this much event time.
const FADE_MS: i64 = 10 * MS_PER_MIN;
const IDLE_REDRAW_MS: f64 = 500.0;

/// What the map reports to its page: the legend and the frame time.
#[derive(Clone, Default, PartialEq)]
pub struct MapReadout {
    pub points: usize,
    pub drawn: usize,
    pub frame_ms: f64,
    pub per_brand: Vec<(String, usize)>,
}

#[component]
pub fn LiveMap(
    /// Show only this brand's points.
    #[prop(into)]
    filter: Signal<Option<String>>,
    readout: RwSignal<MapReadout>,
    /// Synthetic points to draw instead of the live feed (the benchmark); 0: live.
    #[prop(default = 0)]
    bench: usize,
) -> impl IntoView {
    let canvas_ref = NodeRef::<Canvas>::new();
    let buffer = Rc::new(RefCell::new(MapBuffer::new(MAP_CAPACITY)));
    let land: Rc<RefCell<Option<Rc<Vec<Ring>>>>> = Rc::new(RefCell::new(None));
    let dirty = Rc::new(Cell::new(true));
    let alive = Arc::new(AtomicBool::new(true));

    let bench = (bench > 0).then_some(bench);
    if let Some(n) = bench {
        buffer.borrow_mut().apply(true, synthetic_points(n));
    } else {
        let (buffer, dirty) = (buffer.clone(), dirty.clone());
        ws::use_topic(
            || Some(Topic::Map),
            move |msg| {
                if let Frame::MapPoints(points) = &msg.frame {
                    buffer.borrow_mut().apply(msg.snapshot, points.clone());
                    dirty.set(true);
                }
            },
        );
    }

    {
        let (land, dirty) = (land.clone(), dirty.clone());
        leptos::task::spawn_local(async move {
            match worldmap::land().await {
                Ok(rings) => {
                    *land.borrow_mut() = Some(rings);
                    dirty.set(true);
                }
                Err(e) => tracing::warn!(%e, "map drawn without land"),
            }
        });
    }

    {
        let dirty = dirty.clone();
        Effect::new(move |_| {
            filter.track();
            dirty.set(true);
        });
    }

    let layer = Rc::new(RefCell::new(LandLayer::default()));
    let frame = {
        let (buffer, land, dirty, layer) =
            (buffer.clone(), land.clone(), dirty.clone(), layer.clone());
        move || -> Option<f64> {
            let canvas = canvas_ref.get_untracked()?;
            let filter = filter.get_untracked();
            let buffer = buffer.borrow();
            let land = land.borrow().clone();
            let start = dom::perf_now();
            let stats = worldmap::draw(
                &canvas,
                &mut layer.borrow_mut(),
                land.as_deref().map(Vec::as_slice),
                buffer.iter(),
                &DrawOptions {
                    filter: filter.as_deref(),
                    now_ms: buffer.newest_ms().unwrap_or(0),
                    fade_ms: FADE_MS,
                    highlight_ms: 4_000,
                    point_size: if canvas.client_width() > 1600 {
                        3.0
                    } else {
                        2.2
                    },
                },
            )?;
            let elapsed = dom::perf_now() - start;
            dirty.set(false);
            let next = MapReadout {
                points: buffer.len(),
                drawn: stats.drawn,
                frame_ms: elapsed,
                per_brand: stats.per_brand.into_iter().take(10).collect(),
            };
            readout.set(next);
            Some(elapsed)
        }
    };

    match bench {
        Some(n) => run_bench(n, frame, alive.clone()),
        None => run_loop(frame, dirty, alive.clone()),
    }
    on_cleanup(move || alive.store(false, Ordering::Relaxed));

    view! {
        <canvas node_ref=canvas_ref class="map-canvas" data-test="map-canvas"
            data-points=move || readout.with(|r| r.points.to_string())
            role="img" aria-label="World map of recent uploads, coloured by brand"></canvas>
    }
}

/// Repaints when something changed, at most once per animation frame, and every
/// `IDLE_REDRAW_MS` so ages keep fading; stops when the component goes away.
fn run_loop(
    frame: impl Fn() -> Option<f64> + 'static,
    dirty: Rc<Cell<bool>>,
    alive: Arc<AtomicBool>,
) {
    let frame = Rc::new(frame);
    let last = Rc::new(Cell::new(0.0));
    fn tick(
        frame: Rc<dyn Fn() -> Option<f64>>,
        dirty: Rc<Cell<bool>>,
        last: Rc<Cell<f64>>,
        alive: Arc<AtomicBool>,
    ) {
        if !alive.load(Ordering::Relaxed) {
            return;
        }
        let now = dom::perf_now();
        if (dirty.get() || now - last.get() > IDLE_REDRAW_MS) && frame().is_some() {
            last.set(now);
        }
        dom::request_animation_frame(move || tick(frame, dirty, last, alive));
    }
    tick(frame, dirty, last, alive);
}

/// Draws 120 frames of the synthetic points back to back and reports the median, 95th
/// percentile and worst frame time (body `data-map-frame-*` attributes and console).
fn run_bench(n: usize, frame: impl Fn() -> Option<f64> + 'static, alive: Arc<AtomicBool>) {
    let frame = Rc::new(frame);
    let times = Rc::new(RefCell::new(Vec::<f64>::new()));
    fn tick(
        n: usize,
        frame: Rc<dyn Fn() -> Option<f64>>,
        times: Rc<RefCell<Vec<f64>>>,
        alive: Arc<AtomicBool>,
    ) {
        if !alive.load(Ordering::Relaxed) {
            return;
        }
        if let Some(ms) = frame() {
            times.borrow_mut().push(ms);
        }
        if times.borrow().len() >= 120 {
            let mut t = times.borrow().clone();
            t.sort_by(f64::total_cmp);
            dom::report_metric("map-points", n as f64);
            dom::report_metric("map-frame-median-ms", t[t.len() / 2]);
            dom::report_metric("map-frame-p95-ms", t[t.len() * 95 / 100]);
            dom::report_metric("map-frame-max-ms", t[t.len() - 1]);
            return;
        }
        dom::request_animation_frame(move || tick(n, frame, times, alive));
    }
    // Let the land arrive first so measured frames include it.
    dom::set_timeout(600, move || tick(n, frame, times, alive));
}

/// `n` deterministic uploads around real cities, spread over the fade window so every
/// age band is drawn.
fn synthetic_points(n: usize) -> Vec<MapPoint> {
    const CITIES: [(f64, f64); 16] = [
        (40.71, -74.0),
        (51.5, -0.12),
        (48.85, 2.35),
        (35.68, 139.69),
        (-23.55, -46.63),
        (19.43, -99.13),
        (28.61, 77.2),
        (-33.87, 151.2),
        (55.75, 37.61),
        (30.04, 31.24),
        (1.35, 103.82),
        (34.05, -118.24),
        (6.52, 3.37),
        (-34.6, -58.38),
        (39.9, 116.4),
        (52.52, 13.4),
    ];
    const BRANDS: [&str; 12] = [
        "Nike",
        "Adidas",
        "Apple, Inc.",
        "Samsung",
        "Coca-Cola",
        "Lego",
        "L'Oréal",
        "Zara",
        "Ben & Jerry's",
        "Toyota",
        "Sony",
        "IKEA",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let now = 1_700_000_000_000_i64;
    (0..n)
        .map(|i| {
            let (lat, lon) = CITIES[(next() * CITIES.len() as f64) as usize % CITIES.len()];
            MapPoint {
                owner: format!("bench{i}"),
                created_ms: now - (next() * FADE_MS as f64 * 1.2) as i64,
                brand: BRANDS[(next() * BRANDS.len() as f64) as usize % BRANDS.len()].to_string(),
                latitude: (lat + (next() - 0.5) * 8.0).clamp(-80.0, 80.0),
                longitude: (lon + (next() - 0.5) * 12.0).clamp(-179.0, 179.0),
            }
        })
        .collect()
}
