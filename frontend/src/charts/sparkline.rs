//! The per-brand sparkline: an SVG polyline computed here and rendered by the
//! leaderboard. SVG rather than a canvas because sixty small lines that change ten
//! times a second are cheaper as attribute updates than as sixty canvas redraws, and
//! they scale crisply on a 4K wall.

/// `points` attribute for an SVG polyline filling `width`×`height`, oldest value on the
/// left. The lowest baseline is zero, so a flat busy brand does not look like a spike.
pub fn polyline(values: &[u64], width: f64, height: f64) -> String {
    if values.is_empty() {
        return String::new();
    }
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 {
        width / (values.len() - 1) as f64
    } else {
        0.0
    };
    // Keep a one-pixel margin so the stroke is not clipped at the top and bottom.
    let usable = (height - 2.0).max(0.0);
    let mut out = String::with_capacity(values.len() * 12);
    for (i, &v) in values.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let x = i as f64 * step;
        let y = 1.0 + usable * (1.0 - v as f64 / max);
        out.push_str(&format!("{x:.1},{y:.1}"));
    }
    out
}

/// Where the series as drawn by [`polyline`] ends, as `(x, y)`: the step in progress
/// is drawn from there as a dashed stub (it is partial, not a drop).
pub fn end_point(values: &[u64], width: f64, height: f64) -> Option<(f64, f64)> {
    let last = *values.last()?;
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let x = if values.len() > 1 { width } else { 0.0 };
    Some((x, 1.0 + (height - 2.0).max(0.0) * (1.0 - last as f64 / max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_stub_starts_where_the_line_ends() {
        assert_eq!(end_point(&[0, 5, 10], 94.0, 22.0), Some((94.0, 1.0)));
        assert_eq!(end_point(&[], 94.0, 22.0), None);
    }

    #[test]
    fn the_peak_touches_the_top_and_zero_the_bottom() {
        assert_eq!(
            polyline(&[0, 5, 10], 100.0, 22.0),
            "0.0,21.0 50.0,11.0 100.0,1.0"
        );
    }

    #[test]
    fn empty_and_flat_series_draw_without_dividing_by_zero() {
        assert_eq!(polyline(&[], 100.0, 20.0), "");
        assert_eq!(polyline(&[0, 0], 100.0, 22.0), "0.0,21.0 100.0,21.0");
        assert_eq!(polyline(&[3], 100.0, 22.0), "0.0,1.0");
    }
}
