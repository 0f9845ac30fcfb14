//! Brands overlaid on one chart: one line per brand in its own colour, over the same
//! steps; counts or fractions (share of voice, engagement rate) on the y axis.

use instabrand_shared::time::Millis;
use plotters::prelude::*;
use plotters::style::HSLColor;
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

use crate::dom;
use crate::format;
use crate::palette::{brand_hue, brand_lightness};

const BG: RGBColor = RGBColor(0x12, 0x1b, 0x26);
const INK: RGBColor = RGBColor(0xc9, 0xd6, 0xe3);
const GRID: RGBColor = RGBColor(0x2a, 0x38, 0x48);

/// One brand's line: (step start, value).
pub struct Line<'a> {
    pub brand: &'a str,
    pub points: Vec<(Millis, f64)>,
}

/// How the y axis reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Count,
    Fraction,
}

pub fn draw(canvas: &HtmlCanvasElement, lines: &[Line<'_>], scale: Scale) -> Result<(), String> {
    let Some((ctx, width, _)) = dom::prepare_canvas(canvas) else {
        return Ok(()); // hidden
    };
    // Plotters works in device pixels; text and margins scale with the ratio.
    let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
    let ratio = f64::from(canvas.width()) / width;
    let px = |v: f64| (v * ratio).round() as u32;
    let font = |size: f64| ("sans-serif", size * ratio).into_font().color(&INK);
    let backend = CanvasBackend::with_canvas_object(canvas.clone()).ok_or("no canvas context")?;
    let root = backend.into_drawing_area();
    root.fill(&BG).map_err(|e| e.to_string())?;
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let (Some(x0), Some(x1)) = (xs.clone().min(), xs.max()) else {
        return root.present().map_err(|e| e.to_string());
    };
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let y_top = match scale {
        Scale::Count => (y_max * 1.12).max(1.0),
        Scale::Fraction => (y_max * 1.12).clamp(0.01, 1.0),
    };
    let mut chart = ChartBuilder::on(&root)
        .margin(px(12.0))
        .margin_right(px(28.0))
        .x_label_area_size(px(26.0))
        .y_label_area_size(px(48.0))
        .build_cartesian_2d(x0..x1.max(x0 + 60_000), 0.0..y_top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(5)
        .x_label_formatter(&|ms| format::axis_time(*ms, x1 - x0))
        .y_label_formatter(&|v| match scale {
            Scale::Count => format::compact(v.round() as u64),
            Scale::Fraction => format::percent(*v),
        })
        .label_style(font(12.0))
        .axis_style(GRID)
        .bold_line_style(GRID.mix(0.6))
        .light_line_style(GRID.mix(0.2))
        .draw()
        .map_err(|e| e.to_string())?;
    for line in lines {
        let color = HSLColor(
            f64::from(brand_hue(line.brand)) / 360.0,
            0.78,
            f64::from(brand_lightness(line.brand)) / 100.0,
        );
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(px(2.0)),
            ))
            .map_err(|e| e.to_string())?
            .label(line.brand)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(BG.mix(0.85))
        .border_style(GRID)
        .label_font(font(12.0))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
