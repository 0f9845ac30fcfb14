//! A brand's time series over its window: photos, likes and comments per step, drawn
//! with plotters on a canvas; the previous period of the same length faintly behind
//! it (shifted onto the same axis), and the last step, still in progress, marked as
//! partial (shaded, its segment faded) so a drop there is not read as a fall.

use instabrand_shared::api::SeriesPoint;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

use crate::dom;
use crate::format;

const BG: RGBColor = RGBColor(0x12, 0x1b, 0x26);
const INK: RGBColor = RGBColor(0xc9, 0xd6, 0xe3);
const GRID: RGBColor = RGBColor(0x2a, 0x38, 0x48);
pub const PHOTOS: RGBColor = RGBColor(0x4f, 0xc3, 0xf7);
pub const LIKES: RGBColor = RGBColor(0xff, 0x7a, 0x90);
pub const COMMENTS: RGBColor = RGBColor(0xff, 0xd1, 0x66);

/// Paints the series (and `previous`, the period before, shifted by `shift_ms` onto
/// the same steps); an empty series paints an empty frame with a note. `partial`: the
/// last step is still filling (a window always; a range only when it holds the
/// stream's clock).
pub fn draw(
    canvas: &HtmlCanvasElement,
    series: &[SeriesPoint],
    previous: &[SeriesPoint],
    shift_ms: i64,
    partial: bool,
) -> Result<(), String> {
    let Some((ctx, width, _)) = dom::prepare_canvas(canvas) else {
        return Ok(()); // hidden
    };
    // Plotters works in the canvas' device pixels; scale text and margins to match.
    let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
    let ratio = f64::from(canvas.width()) / width;
    let px = |v: f64| (v * ratio).round() as u32;
    let font = |size: f64| ("sans-serif", size * ratio).into_font().color(&INK);

    let backend = CanvasBackend::with_canvas_object(canvas.clone()).ok_or("no canvas context")?;
    let root = backend.into_drawing_area();
    root.fill(&BG).map_err(|e| e.to_string())?;
    let (Some(first), Some(last)) = (series.first(), series.last()) else {
        root.draw(&Text::new(
            "No activity in this window yet",
            (px(16.0) as i32, px(24.0) as i32),
            font(14.0),
        ))
        .map_err(|e| e.to_string())?;
        return root.present().map_err(|e| e.to_string());
    };
    let x0 = first.minute_ms;
    let x1 = last.minute_ms.max(x0 + 60_000);
    let y_max = series
        .iter()
        .chain(previous)
        .map(|p| p.photos.max(p.likes).max(p.comments))
        .max()
        .unwrap_or(0)
        .max(1);
    let y_top = y_max + y_max / 8 + 1;

    let mut chart = ChartBuilder::on(&root)
        .margin(px(12.0))
        .margin_right(px(28.0)) // room for the last time label
        .x_label_area_size(px(26.0))
        .y_label_area_size(px(44.0))
        .build_cartesian_2d(x0..x1, 0u64..y_top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(5)
        .x_label_formatter(&|ms| format::axis_time(*ms, x1 - x0))
        .y_label_formatter(&|v| format::compact(*v))
        .label_style(font(12.0))
        .axis_style(GRID)
        .bold_line_style(GRID.mix(0.6))
        .light_line_style(GRID.mix(0.2))
        .draw()
        .map_err(|e| e.to_string())?;

    // The step in progress: shaded from the last closed step to the end.
    if partial && series.len() >= 2 {
        let start = series[series.len() - 2].minute_ms;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(start, 0), (x1, y_top)],
                INK.mix(0.06).filled(),
            )))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Text::new(
                "partial",
                (start, y_top),
                font(11.0).color(&INK.mix(0.6)),
            )))
            .map_err(|e| e.to_string())?;
    }
    let width_px = px(2.0);
    let closed = if partial {
        series.len().saturating_sub(1).max(1)
    } else {
        series.len()
    };
    for (name, color, pick) in [
        (
            "photos",
            PHOTOS,
            (|p: &SeriesPoint| p.photos) as fn(&SeriesPoint) -> u64,
        ),
        ("likes", LIKES, |p: &SeriesPoint| p.likes),
        ("comments", COMMENTS, |p: &SeriesPoint| p.comments),
    ] {
        // Behind: the previous period, thin and faint, on the current steps.
        if !previous.is_empty() {
            chart
                .draw_series(LineSeries::new(
                    previous
                        .iter()
                        .map(|p| (p.minute_ms + shift_ms, pick(p)))
                        .filter(|(t, _)| *t >= x0 && *t <= x1),
                    color.mix(0.3).stroke_width(px(1.0)),
                ))
                .map_err(|e| e.to_string())?;
        }
        // The partial step's segment faded: it only ever rises until the step closes.
        if partial && series.len() >= 2 {
            chart
                .draw_series(LineSeries::new(
                    series[closed - 1..].iter().map(|p| (p.minute_ms, pick(p))),
                    color.mix(0.45).stroke_width(width_px),
                ))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(LineSeries::new(
                series[..closed].iter().map(|p| (p.minute_ms, pick(p))),
                color.stroke_width(width_px),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
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
