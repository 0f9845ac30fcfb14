//! Read side of the processor: its state rendered as the API's bodies.

use instabrand_shared::Millis;
use instabrand_shared::api::{
    BrandDetail, BrandMetrics, BrandSeries, CommentView, FeedPage, Influencer, Leaderboard,
    MapPoint, OriginalBrandMetric, PhotoView, RangePoint, RangeTotals, Resolution,
    SeriesComparison, SeriesPoint, UserFeeds, UserProfile, Window,
};
use instabrand_shared::time::{MS_PER_MIN, format_naive};
use rustc_hash::FxHashMap;

use super::feeds::{Cursor, format_cursor};
use super::metrics::{Horizons, RangeSum, Span, Windowed, span, window_bounds};
use super::{BrandId, BrandState, PhotoId, Processor, ProcessorConfig, UserId};

/// A range query: `from` and `to` in event time (inclusive; `to` absent: the stream's
/// clock), at a resolution or, absent, the finest that covers the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeRequest {
    pub from: Millis,
    pub to: Option<Millis>,
    pub resolution: Option<Resolution>,
    /// Most buckets one series may have.
    pub max_points: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeError {
    /// The request cannot be served as asked (the message says why).
    Bad(String),
    NotFound(String),
}

/// Which buckets a range request reads: `first..=last` at `res` (empty if first > last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangePlan {
    pub res: Resolution,
    pub first: i64,
    pub last: i64,
    pub horizons: Horizons,
    pub clock: Option<Millis>,
    /// The covered span `[from_ms, to_ms)`: the buckets', or the request's when empty.
    pub from_ms: Millis,
    pub to_ms: Millis,
}

/// RFC 3339 (UTC) for messages.
fn rfc3339(ms: Millis) -> String {
    format_naive(ms).replacen(' ', "T", 1) + "Z"
}

/// Chooses the buckets for `req` with the stream's clock at `clock`. Auto takes
/// minutes while every minute of the range still has its reach sketch, then hours,
/// then days; from before the oldest day it starts at the oldest day. An explicit
/// resolution must cover `from`. Either way at most `max_points` buckets. All bucket
/// arithmetic is checked or saturating: year 1 or year 9999 is an error or an empty
/// range, never an overflow.
pub fn plan_range(
    req: &RangeRequest,
    clock: Option<Millis>,
    cfg: &ProcessorConfig,
) -> Result<RangePlan, RangeError> {
    if let Some(to) = req.to
        && req.from > to
    {
        return Err(RangeError::Bad(format!(
            "from ({}) is after to ({})",
            rfc3339(req.from),
            rfc3339(to)
        )));
    }
    let empty = |res: Resolution, horizons: Horizons| RangePlan {
        res,
        first: 0,
        last: -1,
        horizons,
        clock,
        from_ms: req.from,
        to_ms: req.to.or(clock).unwrap_or(req.from).max(req.from),
    };
    let Some(c) = clock else {
        // Nothing applied yet: every range is empty.
        let h = Horizons::at(0, cfg);
        return Ok(empty(req.resolution.unwrap_or(Resolution::Hour), h));
    };
    let to = req.to.map_or(c, |t| t.min(c));
    let h = Horizons::at(c.div_euclid(MS_PER_MIN), cfg);
    let max = i64::try_from(req.max_points).unwrap_or(i64::MAX);
    let buckets = |res: Resolution| {
        let step = res.step_ms();
        (req.from.div_euclid(step), to.div_euclid(step))
    };
    let count = |first: i64, last: i64| {
        if first > last {
            0
        } else {
            last.checked_sub(first)
                .and_then(|d| d.checked_add(1))
                .unwrap_or(i64::MAX)
        }
    };
    let (res, first, last) = match req.resolution {
        Some(res) => {
            let (first, last) = buckets(res);
            let oldest = h.oldest(res);
            if first <= last && first < oldest {
                return Err(RangeError::Bad(format!(
                    "{res} buckets are kept from {} on, and from ({}) is older: \
             use a coarser resolution, resolution=auto, or a later from",
                    rfc3339(oldest.saturating_mul(res.step_ms())),
                    rfc3339(req.from)
                )));
            }
            let n = count(first, last);
            if n > max {
                return Err(RangeError::Bad(format!(
                    "{n} {res} buckets are more than the limit of {max} a series may have: \
             use a coarser resolution or a shorter range"
                )));
            }
            (res, first, last)
        }
        None => {
            let fine = [Resolution::Minute, Resolution::Hour]
                .into_iter()
                .find_map(|res| {
                    let (first, last) = buckets(res);
                    // Minutes only while every one still has its reach sketch.
                    let oldest = match res {
                        Resolution::Minute => h.minute_sketch,
                        _ => h.oldest(res),
                    };
                    (first >= oldest && count(first, last) <= max).then_some((res, first, last))
                });
            match fine {
                Some(f) => f,
                None => {
                    let (first, last) = buckets(Resolution::Day);
                    let first = first.max(h.day);
                    let n = count(first, last);
                    if n > max {
                        return Err(RangeError::Bad(format!(
                            "{n} day buckets are more than the limit of {max} a series may have: \
             use a shorter range"
                        )));
                    }
                    (Resolution::Day, first, last)
                }
            }
        }
    };
    if first > last {
        return Ok(empty(res, h));
    }
    let step = res.step_ms();
    Ok(RangePlan {
        res,
        first,
        last,
        horizons: h,
        clock,
        from_ms: first.saturating_mul(step),
        to_ms: last.saturating_add(1).saturating_mul(step),
    })
}

fn engagement(likes: u64, comments: u64, reach: Option<u64>) -> Option<f64> {
    reach.map(|r| ratio(likes + comments, r))
}

/// The wire form of one brand's range, share of voice against `all`.
fn brand_series(name: &str, plan: &RangePlan, sum: &RangeSum, all: &RangeSum) -> BrandSeries {
    let points = sum
        .buckets
        .iter()
        .zip(&all.buckets)
        .map(|(b, a)| {
            let c = &b.counters;
            let reach = b.reach.map(|r| r as u64);
            RangePoint {
                time_ms: b.at,
                photos: c.photos,
                likes: c.likes,
                comments: c.comments,
                impressions: c.impressions,
                reach,
                engagement_rate: engagement(c.likes, c.comments, reach),
                share_of_voice: ratio(c.photos, a.counters.photos),
            }
        })
        .collect();
    let c = &sum.counters;
    let reach = sum.reach.as_ref().map(|r| r.estimate() as u64);
    BrandSeries {
        brand: name.to_string(),
        resolution: plan.res,
        step_ms: plan.res.step_ms(),
        from_ms: plan.from_ms,
        to_ms: plan.to_ms,
        clock_ms: plan.clock,
        points,
        totals: RangeTotals {
            photos: c.photos,
            likes: c.likes,
            comments: c.comments,
            impressions: c.impressions,
            reach,
            engagement_rate: engagement(c.likes, c.comments, reach),
            share_of_voice: ratio(c.photos, all.counters.photos),
        },
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

pub(super) fn metrics_row(name: &str, w: &Windowed, total_photos: u64) -> BrandMetrics {
    let reach = w.reach.estimate() as u64;
    let c = &w.counters;
    BrandMetrics {
        brand: name.to_string(),
        photos: c.photos,
        likes: c.likes,
        comments: c.comments,
        reach,
        like_rate: ratio(c.likes, reach),
        comment_rate: ratio(c.comments, reach),
        engagement_rate: ratio(c.likes + c.comments, reach),
        share_of_voice: ratio(c.photos, total_photos),
        impressions: c.impressions,
        previous_photos: 0,
        spark: Vec::new(),
    }
}

/// How long a window is (`None` for "all", which has no previous period).
fn window_length_ms(w: Window) -> Option<i64> {
    use instabrand_shared::time::{MS_PER_HOUR, MS_PER_MIN};
    match w {
        Window::M5 => Some(5 * MS_PER_MIN),
        Window::H1 => Some(60 * MS_PER_MIN),
        Window::H24 => Some(24 * MS_PER_HOUR),
        Window::All => None,
    }
}

impl Processor {
    fn clock_or_zero(&self) -> i64 {
        self.clock().unwrap_or(0)
    }

    fn plan(&self, req: &RangeRequest) -> Result<RangePlan, RangeError> {
        plan_range(req, self.clock(), &self.cfg)
    }

    /// The all-brands totals over a plan's buckets (counters only: they keep no reach).
    fn totals_range(&self, plan: &RangePlan) -> RangeSum {
        self.totals
            .range(plan.res, plan.first, plan.last, &plan.horizons, false)
    }

    fn brand_range(
        &self,
        name: &str,
        plan: &RangePlan,
        all: &RangeSum,
    ) -> Result<BrandSeries, RangeError> {
        let b = self
            .brand_id(name)
            .ok_or_else(|| RangeError::NotFound(format!("no photos of {name:?} yet")))?;
        let sum = self
            .brand(b)
            .range(plan.res, plan.first, plan.last, &plan.horizons, true);
        Ok(brand_series(name, plan, &sum, all))
    }

    /// One brand over a range of event time (`GET /api/brands/{brand}/series`).
    pub fn brand_range_series(
        &self,
        name: &str,
        req: &RangeRequest,
    ) -> Result<BrandSeries, RangeError> {
        let plan = self.plan(req)?;
        let all = self.totals_range(&plan);
        self.brand_range(name, &plan, &all)
    }

    /// Several brands and all brands together over one range (`GET /api/series`).
    pub fn compare_range_series(
        &self,
        names: &[&str],
        req: &RangeRequest,
    ) -> Result<SeriesComparison, RangeError> {
        let plan = self.plan(req)?;
        let all = self.totals_range(&plan);
        let brands = names
            .iter()
            .map(|n| self.brand_range(n, &plan, &all))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SeriesComparison {
            resolution: plan.res,
            step_ms: plan.res.step_ms(),
            from_ms: plan.from_ms,
            to_ms: plan.to_ms,
            clock_ms: plan.clock,
            brands,
            all: brand_series("*", &plan, &all, &all),
        })
    }

    /// One brand over one window (or the period before it).
    pub fn brand_metrics(&self, b: BrandId, w: Window, previous: bool) -> BrandMetrics {
        let clock = self.clock_or_zero();
        let s = span(w, clock, previous);
        let total = self.totals.counters(s).photos;
        let bs = self.brand(b);
        metrics_row(&bs.name, &bs.merged(s), total)
    }

    pub fn leaderboard(&self, w: Window) -> Leaderboard {
        leaderboard_of(self.brands.iter(), &self.totals, self.clock_or_zero(), w)
    }

    /// The original `/brand-metrics`: top 20 by engagement rate, rates in percent.
    pub fn original_brand_metrics(&self, w: Window) -> Vec<OriginalBrandMetric> {
        original_brand_metrics_of(self.leaderboard(w))
    }

    pub fn brand_detail(
        &self,
        name: &str,
        w: Window,
        posters: usize,
        points: usize,
    ) -> Option<BrandDetail> {
        let b = self.brand_id(name)?;
        let clock = self.clock_or_zero();
        let (from_ms, to_ms) = window_bounds(w, clock);
        let bs = self.brand(b);
        let (step, pts) = bs.series(w, clock);
        let as_points = |pts: Vec<(i64, super::metrics::Counters)>| -> Vec<SeriesPoint> {
            pts.into_iter()
                .map(|(t, c)| SeriesPoint {
                    minute_ms: t,
                    photos: c.photos,
                    likes: c.likes,
                    comments: c.comments,
                })
                .collect()
        };
        let series = as_points(pts);
        // The previous period is the same window ending one window length earlier:
        // the series of a clock moved back by that length.
        let previous_series = match window_length_ms(w) {
            Some(len) => as_points(bs.series(w, clock - len).1),
            None => Vec::new(),
        };
        let in_window: Vec<PhotoId> = bs
            .recent_photos
            .iter()
            .copied()
            .filter(|p| w == Window::All || self.photo(*p).created >= from_ms)
            .collect();
        let mut by_owner: FxHashMap<UserId, (u64, u64, u64)> = FxHashMap::default();
        for &p in &in_window {
            let ph = self.photo(p);
            let e = by_owner.entry(ph.owner).or_default();
            e.0 += 1;
            e.1 += ph.likes as u64;
            e.2 += ph.comments as u64;
        }
        let mut top: Vec<Influencer> = by_owner
            .into_iter()
            .map(|(u, (up, l, c))| self.influencer(u, up, l, c))
            .collect();
        sort_influencers(&mut top);
        top.truncate(posters);
        let recent_points = in_window
            .iter()
            .rev()
            .take(points)
            .rev()
            .flat_map(|&p| self.map_points_of(p).filter(|m| m.brand == name))
            .collect();
        Some(BrandDetail {
            window: w,
            from_ms: if w == Window::All { 0 } else { from_ms },
            to_ms,
            current: self.brand_metrics(b, w, false),
            previous: (w != Window::All).then(|| self.brand_metrics(b, w, true)),
            series,
            series_step_ms: step,
            previous_series,
            top_posters: top,
            recent_points,
        })
    }

    /// The brand's series over `w` with each step's unique reach (its own sketch:
    /// minutes for 5m and 1h, hours for 24h and all), for the CSV export. Minutes
    /// older than the sketch retention have no sketch left and report 0.
    pub fn series_with_reach(&self, name: &str, w: Window) -> Option<Vec<(SeriesPoint, u64)>> {
        use instabrand_shared::time::{MS_PER_HOUR, MS_PER_MIN};
        let bs = self.brand(self.brand_id(name)?);
        let (step, pts) = bs.series(w, self.clock_or_zero());
        Some(
            pts.into_iter()
                .map(|(t, c)| {
                    let k = t.div_euclid(step);
                    let one = if step == MS_PER_HOUR {
                        Span::Hours(k, k)
                    } else {
                        debug_assert_eq!(step, MS_PER_MIN);
                        Span::Minutes(k, k)
                    };
                    let reach = bs.merged(one).reach.estimate() as u64;
                    let point = SeriesPoint {
                        minute_ms: t,
                        photos: c.photos,
                        likes: c.likes,
                        comments: c.comments,
                    };
                    (point, reach)
                })
                .collect(),
        )
    }

    fn influencer(&self, u: UserId, uploads: u64, likes: u64, comments: u64) -> Influencer {
        let user = self.user(u);
        Influencer {
            username: user.name.to_string(),
            uploads,
            likes_received: likes,
            comments_received: comments,
            score: uploads + likes + comments,
            followers: user.followers.len() as u64,
        }
    }

    /// Top users by uploads plus likes and comments received, over the window.
    pub fn influencers(&self, w: Window, limit: usize) -> Vec<Influencer> {
        let clock = self.clock_or_zero();
        let mut scores: FxHashMap<UserId, u64> = FxHashMap::default();
        match span(w, clock, false) {
            Span::Minutes(a, b) => {
                for (_, m) in self.influence_minutes.range(a..=b) {
                    for (u, s) in m {
                        *scores.entry(*u).or_default() += *s as u64;
                    }
                }
            }
            Span::Hours(a, b) => {
                for (_, m) in self.influence_hours.range(a..=b) {
                    for (u, s) in m {
                        *scores.entry(*u).or_default() += *s as u64;
                    }
                }
            }
            Span::All => {
                for (i, u) in self.users.iter().enumerate() {
                    let s = u.uploads + u.likes_received + u.comments_received;
                    if s > 0 {
                        scores.insert(UserId(i as u32), s);
                    }
                }
            }
        }
        let mut ranked: Vec<(UserId, u64)> = scores.into_iter().collect();
        // Equal scores by name, as shown: user ids differ between instances.
        ranked.sort_unstable_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| self.user(a.0).name.cmp(&self.user(b.0).name))
        });
        ranked.truncate(limit);
        // Within a window we know the total score; the split into uploads, likes and
        // comments is shown all-time, which is what a profile shows too.
        let mut out: Vec<Influencer> = ranked
            .into_iter()
            .map(|(u, s)| {
                let user = self.user(u);
                let mut i =
                    self.influencer(u, user.uploads, user.likes_received, user.comments_received);
                i.score = s;
                i
            })
            .collect();
        sort_influencers(&mut out);
        out
    }

    pub fn profile(&self, u: UserId) -> UserProfile {
        let user = self.user(u);
        UserProfile {
            username: user.name.to_string(),
            full_name: user.full_name.as_deref().map(str::to_string),
            registered: user.created.is_some(),
            created_ms: user.created,
            followers: user.followers.len() as u64,
            following: user.following.len() as u64,
            photos: user.photos.len() as u64,
            likes_received: user.likes_received,
            comments_received: user.comments_received,
            celebrity: self.is_celebrity(u),
        }
    }

    pub fn photo_view(&self, p: PhotoId) -> PhotoView {
        let ph = self.photo(p);
        PhotoView {
            owner: self.user(ph.owner).name.to_string(),
            created_ms: ph.created,
            brands: ph
                .brands
                .iter()
                .map(|b| self.brand(*b).name.to_string())
                .collect(),
            photo_link: ph.link.to_string(),
            latitude: ph.latitude,
            longitude: ph.longitude,
            likes: ph.likes as u64,
            comments: ph.comments as u64,
            recent_comments: ph
                .recent_comments
                .iter()
                .map(|c| CommentView {
                    username: self.user(c.user).name.to_string(),
                    text: c.text.to_string(),
                    created_ms: c.created,
                })
                .collect(),
        }
    }

    fn feed_page(&self, u: UserId, (ids, next): (Vec<PhotoId>, Option<Cursor>)) -> FeedPage {
        FeedPage {
            username: self.user(u).name.to_string(),
            items: ids.into_iter().map(|p| self.photo_view(p)).collect(),
            next: next.map(format_cursor),
        }
    }

    pub fn profile_feed(&self, u: UserId, before: Option<Cursor>, limit: usize) -> FeedPage {
        self.feed_page(u, self.profile_page(u, before, limit))
    }

    pub fn home_timeline(&self, u: UserId, before: Option<Cursor>, limit: usize) -> FeedPage {
        self.feed_page(u, self.timeline_page(u, before, limit))
    }

    pub fn user_feeds(&self, u: UserId, limit: usize) -> UserFeeds {
        UserFeeds {
            profile: self.profile(u),
            photos: self.profile_feed(u, None, limit),
            timeline: self.home_timeline(u, None, limit),
        }
    }

    /// Users whose name starts with `prefix` (case-insensitive), most followed first.
    pub fn search_users(&self, prefix: &str, limit: usize) -> Vec<UserProfile> {
        let prefix = prefix.to_lowercase();
        let mut hits: Vec<UserId> = self
            .users
            .iter()
            .enumerate()
            .filter(|(_, u)| u.name.to_lowercase().starts_with(&prefix))
            .map(|(i, _)| UserId(i as u32))
            .collect();
        hits.sort_by(|a, b| {
            self.user(*b)
                .followers
                .len()
                .cmp(&self.user(*a).followers.len())
                .then_with(|| self.user(*a).name.cmp(&self.user(*b).name))
        });
        hits.into_iter()
            .take(limit)
            .map(|u| self.profile(u))
            .collect()
    }

    /// One point per brand of the photo.
    pub fn map_points_of(&self, p: PhotoId) -> impl Iterator<Item = MapPoint> + '_ {
        let ph = self.photo(p);
        ph.brands.iter().map(move |b| MapPoint {
            owner: self.user(ph.owner).name.to_string(),
            created_ms: ph.created,
            brand: self.brand(*b).name.to_string(),
            latitude: ph.latitude,
            longitude: ph.longitude,
        })
    }

    /// The newest uploads, oldest first.
    pub fn map_points(&self, limit: usize, brand: Option<&str>) -> Vec<MapPoint> {
        let mut out: Vec<MapPoint> = self
            .recent_photos
            .iter()
            .rev()
            .flat_map(|&p| self.map_points_of(p))
            .filter(|m| brand.is_none_or(|b| m.brand == b))
            .take(limit)
            .collect();
        out.reverse();
        out
    }
}

/// The leaderboard of `brands` over window `w` ending at `clock`: one processor's
/// brands, or the brands merged across partitions (`partitioned.rs`), alike.
pub fn leaderboard_of<'a>(
    brands: impl Iterator<Item = &'a BrandState>,
    totals: &BrandState,
    clock: Millis,
    w: Window,
) -> Leaderboard {
    let (from_ms, to_ms) = window_bounds(w, clock);
    let s = span(w, clock, false);
    let previous = (w != Window::All).then(|| span(w, clock, true));
    let total = totals.counters(s).photos;
    let mut rows: Vec<BrandMetrics> = brands
        .filter(|b| b.counters(s).activity() > 0)
        .map(|b| {
            let mut row = metrics_row(&b.name, &b.merged(s), total);
            row.spark = b.spark(w, clock);
            // Counters only (no sketch merge) for the "rising" order: at most 60
            // minute buckets or 24 hour buckets per brand.
            if let Some(prev) = previous {
                row.previous_photos = b.counters(prev).photos;
            }
            row
        })
        .collect();
    rows.sort_by(|a, b| {
        b.photos
            .cmp(&a.photos)
            .then(b.engagement_rate.total_cmp(&a.engagement_rate))
            .then_with(|| a.brand.cmp(&b.brand))
    });
    Leaderboard {
        window: w,
        from_ms: if w == Window::All { 0 } else { from_ms },
        to_ms,
        total_photos: total,
        rows,
    }
}

/// The original `/brand-metrics` from a leaderboard: top 20 by engagement rate, rates
/// in percent.
pub fn original_brand_metrics_of(board: Leaderboard) -> Vec<OriginalBrandMetric> {
    let mut rows = board.rows;
    rows.sort_by(|a, b| {
        b.engagement_rate
            .total_cmp(&a.engagement_rate)
            .then_with(|| a.brand.cmp(&b.brand))
    });
    rows.into_iter()
        .take(20)
        .map(|r| OriginalBrandMetric {
            tag: r.brand,
            reach: r.reach,
            comment_frequency: r.comments,
            like_frequency: r.likes,
            comment_rate: r.comment_rate * 100.0,
            like_rate: r.like_rate * 100.0,
            engagement_rate: r.engagement_rate * 100.0,
        })
        .collect()
}

/// Influencers by score, then name: the order shown, and the one that decides who of
/// equal scores makes the cut, so instances (whose user ids differ) agree.
pub fn sort_influencers(v: &mut [Influencer]) {
    v.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.username.cmp(&b.username))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use instabrand_shared::time::{MS_PER_DAY, MS_PER_HOUR, parse_time};

    const CLOCK: Millis = 1_700_000_000_000;

    fn req(from: Millis, to: Option<Millis>, resolution: Option<Resolution>) -> RangeRequest {
        RangeRequest {
            from,
            to,
            resolution,
            max_points: 3_000,
        }
    }

    fn plan(r: RangeRequest) -> Result<RangePlan, RangeError> {
        plan_range(&r, Some(CLOCK), &ProcessorConfig::default())
    }

    fn bad(r: RangeRequest) -> String {
        match plan(r) {
            Err(RangeError::Bad(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn auto_takes_the_finest_resolution_that_covers_the_range() {
        let res = |back: Millis| plan(req(CLOCK - back, None, None)).unwrap().res;
        assert_eq!(res(5 * MS_PER_MIN), Resolution::Minute);
        assert_eq!(res(2 * MS_PER_HOUR), Resolution::Minute);
        assert_eq!(res(3 * MS_PER_HOUR), Resolution::Hour, "past minute reach");
        assert_eq!(res(7 * MS_PER_DAY), Resolution::Hour);
        assert_eq!(res(89 * MS_PER_DAY), Resolution::Hour);
        assert_eq!(res(120 * MS_PER_DAY), Resolution::Day);
        let p = plan(req(CLOCK - 7 * MS_PER_DAY, None, None)).unwrap();
        assert_eq!(p.last - p.first + 1, 7 * 24 + 1);
        assert_eq!(
            p.from_ms,
            (CLOCK - 7 * MS_PER_DAY).div_euclid(MS_PER_HOUR) * MS_PER_HOUR
        );
        assert_eq!(p.to_ms, (CLOCK.div_euclid(MS_PER_HOUR) + 1) * MS_PER_HOUR);
        // From before the oldest day: starts at the oldest day kept.
        let p = plan(req(CLOCK - 3_000 * MS_PER_DAY, None, None)).unwrap();
        assert_eq!((p.res, p.last - p.first + 1), (Resolution::Day, 731));
    }

    #[test]
    fn bad_ranges_are_refused_with_a_reason() {
        let m = bad(req(CLOCK, Some(CLOCK - 1), None));
        assert!(m.contains("is after to"), "{m}");
        let m = bad(req(CLOCK - 3 * MS_PER_DAY, None, Some(Resolution::Minute)));
        assert!(m.contains("minute buckets are kept from"), "{m}");
        let m = bad(req(CLOCK - 100 * MS_PER_DAY, None, Some(Resolution::Hour)));
        assert!(m.contains("hour buckets are kept from"), "{m}");
        let m = bad(req(CLOCK - 800 * MS_PER_DAY, None, Some(Resolution::Day)));
        assert!(m.contains("day buckets are kept from"), "{m}");
        let mut r = req(CLOCK - 20 * MS_PER_HOUR, None, Some(Resolution::Minute));
        r.max_points = 100;
        let m = bad(r);
        assert!(m.contains("more than the limit of 100"), "{m}");
        assert!(plan(req(CLOCK - 3 * MS_PER_DAY, None, Some(Resolution::Day))).is_ok());
    }

    /// The ends of the time line: an error or an empty range, never an overflow.
    #[test]
    fn year_one_and_far_future_ranges_are_errors_or_empty() {
        let year1 = parse_time("0001-01-01T00:00:00Z").unwrap();
        let year9999 = parse_time("9999-12-31T23:59:59Z").unwrap();
        for res in Resolution::ALL {
            assert!(bad(req(year1, None, Some(res))).contains("kept from"));
            assert!(bad(req(i64::MIN, Some(i64::MAX), Some(res))).contains("kept from"));
            let p = plan(req(year9999, None, Some(res))).unwrap();
            assert!(p.first > p.last, "in the future: empty");
            let p = plan(req(i64::MAX, Some(i64::MAX), Some(res))).unwrap();
            assert!(p.first > p.last);
        }
        let p = plan(req(year1, Some(year9999), None)).unwrap();
        assert_eq!((p.res, p.last - p.first + 1), (Resolution::Day, 731));
        let p = plan(req(i64::MIN, Some(i64::MAX), None)).unwrap();
        assert_eq!((p.res, p.last - p.first + 1), (Resolution::Day, 731));
        let p = plan(req(i64::MIN, Some(year1), None)).unwrap();
        assert!(p.first > p.last, "wholly before the oldest day: empty");
        // A clock at either end of the line, and no clock at all.
        let cfg = ProcessorConfig::default();
        for clock in [i64::MIN, i64::MAX, year1] {
            for res in [None, Some(Resolution::Day)] {
                let _ = plan_range(&req(i64::MIN, Some(i64::MAX), res), Some(clock), &cfg);
            }
        }
        let p = plan_range(&req(0, None, None), None, &cfg).unwrap();
        assert!(p.first > p.last);
    }
}
