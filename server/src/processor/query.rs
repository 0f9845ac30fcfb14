//! Read side of the processor: its state rendered as the API's bodies.

use instabrand_shared::api::{
    BrandDetail, BrandMetrics, CommentView, FeedPage, Influencer, Leaderboard, MapPoint,
    OriginalBrandMetric, PhotoView, SeriesPoint, UserFeeds, UserProfile, Window,
};
use rustc_hash::FxHashMap;

use super::feeds::{Cursor, format_cursor};
use super::metrics::{Span, Windowed, span, window_bounds};
use super::{BrandId, PhotoId, Processor, UserId};

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

    /// One brand over one window (or the period before it).
    pub fn brand_metrics(&self, b: BrandId, w: Window, previous: bool) -> BrandMetrics {
        let clock = self.clock_or_zero();
        let s = span(w, clock, previous);
        let total = self.totals.counters(s).photos;
        let bs = self.brand(b);
        metrics_row(&bs.name, &bs.merged(s), total)
    }

    pub fn leaderboard(&self, w: Window) -> Leaderboard {
        let clock = self.clock_or_zero();
        let (from_ms, to_ms) = window_bounds(w, clock);
        let s = span(w, clock, false);
        let previous = (w != Window::All).then(|| span(w, clock, true));
        let total = self.totals.counters(s).photos;
        let mut rows: Vec<BrandMetrics> = self
            .brands
            .iter()
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

    /// The original `/brand-metrics`: top 20 by engagement rate, rates in percent.
    pub fn original_brand_metrics(&self, w: Window) -> Vec<OriginalBrandMetric> {
        let mut rows = self.leaderboard(w).rows;
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
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
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

fn sort_influencers(v: &mut [Influencer]) {
    v.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.username.cmp(&b.username))
    });
}
