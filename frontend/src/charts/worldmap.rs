//! The world map chart: Natural Earth land on a dark ocean, and upload points coloured
//! by brand, fading with age, the newest ringed. `draw` paints one frame.
//!
//! Drawing 20,000 points inside a 16 ms frame rules out one canvas call per point with
//! its own style: points are grouped by (brand, age band) and each group is one path
//! of small squares filled once. The land does not change, so it is rasterised once per
//! canvas size into an offscreen canvas and copied in with one `drawImage`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use instabrand_shared::Millis;
use instabrand_shared::api::MapPoint;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::dom;
use crate::geo::{self, Projection, Ring};
use crate::palette::brand_color;

const OCEAN: &str = "#0b1420";
const LAND: &str = "#1f2c3b";
const COAST: &str = "#2f4257";
const GRATICULE: &str = "rgba(120,150,180,0.10)";

/// Opacity per age band, newest first; the oldest band keeps a faint trail rather
/// than vanishing, so the map shows where a brand lives, not only what just happened.
const BAND_ALPHA: [f64; 4] = [1.0, 0.7, 0.42, 0.16];

thread_local! {
    static LAND_RINGS: RefCell<Option<Rc<Vec<Ring>>>> = const { RefCell::new(None) };
    static COLORS: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// Fetches and decodes the bundled land outline once per page.
pub async fn land() -> Result<Rc<Vec<Ring>>, String> {
    if let Some(rings) = LAND_RINGS.with_borrow(Clone::clone) {
        return Ok(rings);
    }
    let text = crate::api::land_topojson()
        .await
        .map_err(|e| e.to_string())?;
    let decoded = geo::decode_rings(&text, "land").map_err(|e| e.to_string())?;
    let rings = Rc::new(geo::rings_for_flat_map(&decoded));
    LAND_RINGS.with_borrow_mut(|slot| *slot = Some(rings.clone()));
    Ok(rings)
}

/// The land outline if [`land`] already fetched it.
pub fn cached_land() -> Option<Rc<Vec<Ring>>> {
    LAND_RINGS.with_borrow(Clone::clone)
}

fn color_of(brand: &str) -> String {
    COLORS.with_borrow_mut(|colors| {
        if colors.len() > 2_000 {
            colors.clear(); // bounded: brands come from the stream
        }
        colors
            .entry(brand.to_string())
            .or_insert_with(|| brand_color(brand))
            .clone()
    })
}

/// The land raster for one canvas size.
#[derive(Default)]
pub struct LandLayer {
    raster: Option<(HtmlCanvasElement, u32, u32)>,
    has_land: bool,
}

impl LandLayer {
    fn ensure(
        &mut self,
        land: Option<&[Ring]>,
        px_w: u32,
        px_h: u32,
        ratio: f64,
        proj: &Projection,
    ) -> Option<&HtmlCanvasElement> {
        let fresh = match &self.raster {
            Some((_, w, h)) => *w != px_w || *h != px_h || (land.is_some() && !self.has_land),
            None => true,
        };
        if fresh {
            let canvas: HtmlCanvasElement = dom::document()
                .create_element("canvas")
                .ok()?
                .dyn_into()
                .ok()?;
            canvas.set_width(px_w);
            canvas.set_height(px_h);
            let ctx: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
            let _ = ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0);
            paint_land(
                &ctx,
                land,
                f64::from(px_w) / ratio,
                f64::from(px_h) / ratio,
                proj,
            );
            self.has_land = land.is_some();
            self.raster = Some((canvas, px_w, px_h));
        }
        self.raster.as_ref().map(|(c, _, _)| c)
    }
}

fn paint_land(
    ctx: &CanvasRenderingContext2d,
    land: Option<&[Ring]>,
    width: f64,
    height: f64,
    proj: &Projection,
) {
    ctx.set_fill_style_str(OCEAN);
    ctx.fill_rect(0.0, 0.0, width, height);
    ctx.set_stroke_style_str(GRATICULE);
    ctx.set_line_width(1.0);
    ctx.begin_path();
    for lon in (-180..=180).step_by(30) {
        let (x, y0) = proj.project(f64::from(lon), geo::NORTH);
        let (_, y1) = proj.project(f64::from(lon), geo::SOUTH);
        ctx.move_to(x, y0);
        ctx.line_to(x, y1);
    }
    for lat in (-30..=60).step_by(30) {
        let (x0, y) = proj.project(-180.0, f64::from(lat));
        let (x1, _) = proj.project(180.0, f64::from(lat));
        ctx.move_to(x0, y);
        ctx.line_to(x1, y);
    }
    ctx.stroke();
    let Some(rings) = land else { return };
    // Clip to the map's own rectangle: rings repeated past ±180° must not show in the
    // margins of a screen wider than the map.
    let (map_w, map_h) = proj.size();
    ctx.save();
    ctx.begin_path();
    ctx.rect(proj.left, proj.top, map_w, map_h);
    ctx.clip();
    ctx.begin_path();
    for ring in rings {
        let mut first = true;
        for &[lon, lat] in ring {
            let (x, y) = proj.project(lon, lat);
            if first {
                ctx.move_to(x, y);
                first = false;
            } else {
                ctx.line_to(x, y);
            }
        }
        ctx.close_path();
    }
    ctx.set_fill_style_str(LAND);
    // Even-odd: lakes and inland seas are holes in the land rings.
    ctx.fill_with_canvas_winding_rule(web_sys::CanvasWindingRule::Evenodd);
    ctx.set_stroke_style_str(COAST);
    ctx.set_line_width(0.6);
    ctx.stroke();
    ctx.restore();
}

pub struct DrawOptions<'a> {
    /// Only this brand's points, when set.
    pub filter: Option<&'a str>,
    /// Event time the ages are measured from (the newest point held).
    pub now_ms: Millis,
    /// Age at which a point reaches the faintest band.
    pub fade_ms: Millis,
    /// Points younger than this get a ring: "just happened".
    pub highlight_ms: Millis,
    /// Square side in CSS pixels.
    pub point_size: f64,
}

/// What a frame drew, for the legend and the frame-time readout.
pub struct FrameStats {
    pub drawn: usize,
    pub per_brand: Vec<(String, usize)>,
}

/// Paints one frame. `None` when the canvas is hidden or has no 2D context.
pub fn draw<'p>(
    canvas: &HtmlCanvasElement,
    layer: &mut LandLayer,
    land: Option<&[Ring]>,
    points: impl Iterator<Item = &'p MapPoint>,
    opts: &DrawOptions,
) -> Option<FrameStats> {
    let (ctx, width, height) = dom::prepare_canvas(canvas)?;
    let ratio = f64::from(canvas.width()) / width;
    let proj = Projection::fit(width, height);
    let raster = layer.ensure(land, canvas.width(), canvas.height(), ratio, &proj)?;
    let _ = ctx.draw_image_with_html_canvas_element_and_dw_and_dh(raster, 0.0, 0.0, width, height);

    // Group by brand, then by age band: one fill per group instead of per point.
    let mut groups: HashMap<&str, [Vec<(f64, f64)>; 4]> = HashMap::new();
    let mut fresh: Vec<(f64, f64, &str)> = Vec::new();
    let fade = opts.fade_ms.max(1) as f64;
    let mut drawn = 0usize;
    for p in points {
        if opts.filter.is_some_and(|f| f != p.brand) {
            continue;
        }
        let age = (opts.now_ms - p.created_ms).max(0) as f64 / fade;
        let band = match age {
            a if a < 0.1 => 0,
            a if a < 0.35 => 1,
            a if a < 0.7 => 2,
            _ => 3,
        };
        let xy = proj.project(p.longitude, p.latitude);
        groups.entry(p.brand.as_str()).or_default()[band].push(xy);
        if opts.now_ms - p.created_ms < opts.highlight_ms {
            fresh.push((xy.0, xy.1, p.brand.as_str()));
        }
        drawn += 1;
    }
    let s = opts.point_size;
    let half = s / 2.0;
    // Oldest bands first, so fresh points sit on top.
    for band in (0..4).rev() {
        ctx.set_global_alpha(BAND_ALPHA[band]);
        for (brand, bands) in &groups {
            let pts = &bands[band];
            if pts.is_empty() {
                continue;
            }
            ctx.set_fill_style_str(&color_of(brand));
            ctx.begin_path();
            for &(x, y) in pts {
                ctx.rect(x - half, y - half, s, s);
            }
            ctx.fill();
        }
    }
    ctx.set_global_alpha(0.9);
    ctx.set_line_width(1.5);
    for &(x, y, brand) in fresh.iter().rev().take(300) {
        ctx.set_stroke_style_str(&color_of(brand));
        ctx.begin_path();
        let _ = ctx.arc(x, y, s * 2.5, 0.0, std::f64::consts::TAU);
        ctx.stroke();
    }
    ctx.set_global_alpha(1.0);

    let mut per_brand: Vec<(String, usize)> = groups
        .iter()
        .map(|(b, bands)| (b.to_string(), bands.iter().map(Vec::len).sum()))
        .collect();
    per_brand.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Some(FrameStats { drawn, per_brand })
}
