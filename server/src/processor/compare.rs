//! Brands side by side over one period: their metrics, their series step by step
//! (counts, reach in the step, engagement, share of voice) and the audience overlap of
//! each pair, estimated from their reach sketches by inclusion–exclusion.
//!
//! The period is a [`Period`]: today built from a window ending at the stream's clock;
//! a date range (from–to at a chosen resolution) only needs another constructor
//! giving the span of buckets and the steps, and everything below works unchanged.

use instabrand_shared::api::{ComparedBrand, ComparedPoint, Comparison, Overlap, Window};
use instabrand_shared::time::{MS_PER_HOUR, MS_PER_MIN};

use super::metrics::{Span, span, window_bounds};
use super::{BrandId, Processor};
use crate::hll::{Hll, M};

/// Brands one comparison may hold.
pub const MIN_BRANDS: usize = 2;
pub const MAX_BRANDS: usize = 5;

/// What is compared over: the buckets merged for the totals, and the steps of the
/// series (each a span of its own).
pub struct Period {
    pub window: Window,
    pub from_ms: i64,
    pub to_ms: i64,
    pub whole: Span,
    pub step_ms: i64,
    /// Start of each step, oldest first.
    pub steps: Vec<i64>,
}

impl Period {
    /// A window ending at `clock`, stepped as the brand page's series is.
    pub fn window(p: &Processor, w: Window) -> Period {
        let clock = p.clock().unwrap_or(0);
        let (from_ms, to_ms) = window_bounds(w, clock);
        let (step_ms, pts) = p.totals.series(w, clock);
        Period {
            window: w,
            from_ms: if w == Window::All { 0 } else { from_ms },
            to_ms,
            whole: span(w, clock, false),
            step_ms,
            steps: pts.into_iter().map(|(t, _)| t).collect(),
        }
    }

    fn step_span(&self, start_ms: i64) -> Span {
        let k = start_ms.div_euclid(self.step_ms);
        if self.step_ms == MS_PER_HOUR {
            Span::Hours(k, k)
        } else {
            debug_assert_eq!(self.step_ms, MS_PER_MIN);
            Span::Minutes(k, k)
        }
    }
}

/// Why a comparison could not be made, for the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompareError {
    #[error("compare {MIN_BRANDS} to {MAX_BRANDS} different brands (got {0})")]
    Count(usize),
    #[error("no photos of {0:?} yet")]
    Unknown(String),
}

/// HyperLogLog's relative standard error at our precision: 1.04 / sqrt(m).
pub fn relative_error() -> f64 {
    1.04 / (M as f64).sqrt()
}

/// Inclusion–exclusion with its bound. The three estimates' errors are correlated
/// (the union shares registers with both), so adding two standard errors of each is
/// a bound, not a tight interval; the overlap is kept within `[0, min(a, b)]`, where
/// it must be.
pub fn overlap(a: f64, b: f64, union: f64) -> (u64, u64) {
    let raw = (a + b - union).clamp(0.0, a.min(b));
    let error = 2.0 * relative_error() * (a + b + union);
    (raw.round() as u64, error.ceil() as u64)
}

impl Processor {
    pub fn compare(&self, names: &[String], period: &Period) -> Result<Comparison, CompareError> {
        let mut ids: Vec<(BrandId, &str)> = Vec::new();
        for n in names {
            if ids.iter().any(|(_, m)| *m == n.as_str()) {
                continue;
            }
            let id = self
                .brand_id(n)
                .ok_or_else(|| CompareError::Unknown(n.clone()))?;
            ids.push((id, n));
        }
        if !(MIN_BRANDS..=MAX_BRANDS).contains(&ids.len()) {
            return Err(CompareError::Count(ids.len()));
        }
        let step_totals: Vec<u64> = period
            .steps
            .iter()
            .map(|&t| self.totals.counters(period.step_span(t)).photos)
            .collect();
        let total = self.totals.counters(period.whole).photos;
        let mut sketches: Vec<Hll> = Vec::new();
        let mut brands = Vec::new();
        for &(id, _) in &ids {
            let bs = self.brand(id);
            let whole = bs.merged(period.whole);
            let mut metrics = super::query::metrics_row(&bs.name, &whole, total);
            metrics.spark = Vec::new();
            sketches.push(whole.reach);
            let series = period
                .steps
                .iter()
                .zip(&step_totals)
                .map(|(&t, &all)| {
                    let step = bs.merged(period.step_span(t));
                    let row = super::query::metrics_row(&bs.name, &step, all);
                    ComparedPoint {
                        at_ms: t,
                        photos: row.photos,
                        likes: row.likes,
                        comments: row.comments,
                        reach: row.reach,
                        engagement_rate: row.engagement_rate,
                        share_of_voice: row.share_of_voice,
                    }
                })
                .collect();
            brands.push(ComparedBrand { metrics, series });
        }
        let mut overlaps = Vec::new();
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                let (a, b) = (sketches[i].estimate(), sketches[j].estimate());
                let mut union = sketches[i].clone();
                union.merge(&sketches[j]);
                let u = union.estimate();
                let (shared, error) = overlap(a, b, u);
                overlaps.push(Overlap {
                    a: ids[i].1.to_string(),
                    b: ids[j].1.to_string(),
                    reach_a: a.round() as u64,
                    reach_b: b.round() as u64,
                    union: u.round() as u64,
                    overlap: shared,
                    error,
                });
            }
        }
        Ok(Comparison {
            window: period.window,
            from_ms: period.from_ms,
            to_ms: period.to_ms,
            series_step_ms: period.step_ms,
            brands,
            overlaps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlap_stays_between_none_and_the_smaller_audience() {
        assert_eq!(overlap(100.0, 50.0, 120.0).0, 30);
        assert_eq!(overlap(100.0, 50.0, 160.0).0, 0, "never negative");
        assert_eq!(overlap(100.0, 50.0, 90.0).0, 50, "never above the smaller");
        let (_, error) = overlap(10_000.0, 10_000.0, 15_000.0);
        // 2 × 0.81 % × 35,000
        assert!((560..=575).contains(&error), "{error}");
    }
}
