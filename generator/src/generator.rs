//! The network model and its event stream.
//!
//! Users get a popularity from a Zipf-like law over a random ranking (so a handful of
//! celebrities hold a large share of all follows while the median account has a few
//! followers), an activity that grows with popularity (celebrities post more), and a
//! home city drawn by population. Every random choice comes from one PCG stream seeded
//! by [`Config::seed`], and no hash map is ever iterated, so a config fixes the stream.

use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use instabrand_shared::Millis;
use instabrand_shared::event::{CreateUser, Edge, Engagement, Event, PhotoUpload};
use instabrand_shared::time::MS_PER_SEC;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::weighted::WeightedAliasIndex;
use rand_distr::{Distribution, LogNormal, Normal};
use rand_pcg::Pcg64Mcg;
use rustc_hash::FxHashSet;

use crate::data::{brand_index, brands, cities, city_index, fold};
use crate::graph::Graph;
use crate::recent::{RecentPhoto, RecentPhotos};
use crate::words::{COMMENTS, FIRST_NAMES, LAST_NAMES};

/// The model's knobs. Constants rather than configuration: the stream's believability
/// depends on them together, and a seed should mean the same network everywhere.
mod tune {
    use super::Step;

    /// Steady-state mix, in parts per thousand.
    pub const MIX: [(Step, u32); 6] = [
        (Step::Photo, 200),
        (Step::Like, 450),
        (Step::Comment, 150),
        (Step::Follow, 120),
        (Step::Unfollow, 40),
        (Step::Join, 40),
    ];
    /// Popularity of the account ranked r is r^-ZIPF: 0.9 gives 100,000 users about ten
    /// accounts above 10,000 followers and a median of about five.
    pub const ZIPF: f64 = 0.9;
    /// Log-normal noise on popularity, so ranks are not a perfect staircase.
    pub const POPULARITY_NOISE: f64 = 0.25;
    /// Activity (how often one posts) = popularity^ACTIVITY_FROM_POPULARITY × noise.
    pub const ACTIVITY_FROM_POPULARITY: f64 = 0.35;
    pub const ACTIVITY_NOISE: f64 = 0.8;
    /// Spread of how many accounts a user follows (log-normal sigma).
    pub const FOLLOWS_SIGMA: f64 = 1.0;
    /// Instagram's own cap on how many accounts one may follow.
    pub const MAX_FOLLOWS: usize = 7_500;
    /// Share of follows that go to a random neighbour (same home city) rather than to
    /// an account picked by popularity: friends, not celebrities.
    pub const LOCAL_FOLLOWS: f64 = 0.15;
    /// Share of photos taken away from home.
    pub const TRAVEL: f64 = 0.07;
    /// Standard deviation, in degrees, of a photo's distance from its city's centre.
    pub const JITTER_DEG: f64 = 0.04;
    /// Share of likes and comments that come from the owner's followers.
    pub const FROM_FOLLOWERS: f64 = 0.85;
    /// Remembered (photo, liker) pairs, so a like rarely repeats (power of two).
    /// 2^16 slots cover the likes made while a photo stays reachable and fit in L2.
    pub const LIKE_MEMORY: usize = 1 << 16;
    /// Share of steady-state follows made by someone who just joined, while any are
    /// still settling in, and how many follows each newcomer makes (inclusive range).
    /// Newcomers ask for fewer follows than that share supplies (4% joins × 2 follows
    /// < 12% follows × 75%), so the queue of newcomers stays short.
    pub const NEWCOMER_FOLLOWS_SHARE: f64 = 0.75;
    pub const NEWCOMER_FOLLOWS: (u32, u32) = (1, 3);
    /// The network grows to at most this many times its bootstrap size (users and
    /// edges), then joins stop and follows balance unfollows: a demo left running for
    /// days keeps flat memory.
    pub const MAX_GROWTH: usize = 3;
    /// Extra likes each campaign photo draws: 2 + exponential with this mean, capped,
    /// arriving after a delay that is 1 s + exponential with this mean.
    pub const CAMPAIGN_LIKES_MEAN: f64 = 6.0;
    pub const CAMPAIGN_LIKES_MAX: u32 = 60;
    pub const CAMPAIGN_LIKE_DELAY_MEAN_S: f64 = 30.0;
    /// Tries before a choice that keeps colliding (same-second photo, duplicate edge,
    /// repeated like) gives way to another kind of event.
    pub const TRIES: usize = 8;
}

/// 2017-06-12 00:00:00 UTC, a week before the original system's sample payloads.
const DEFAULT_START_MS: Millis = 1_497_225_600_000;

/// What network to fabricate and how fast its clock runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub seed: u64,
    /// Users created by the bootstrap (at least 2). More join in the steady state.
    pub users: u32,
    /// Mean number of accounts each bootstrap user follows.
    pub mean_follows: f64,
    /// Event time of the first event.
    pub start_ms: Millis,
    /// Events per second of event time in [`Generator::next_event`]; a value that is
    /// not a positive number falls back to the default.
    pub rate: f64,
    /// Who posts and whose photos draw engagement.
    pub shape: Shape,
}

/// Who posts and whose photos draw engagement, relative to who gets followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// Everyone posts at a rate of their own that grows only slowly with popularity
    /// (popularity^0.35 × noise), and a photo draws engagement by its owner's reach
    /// (followers^0.8) and recency: posting is spread over the whole network.
    #[default]
    Activity,
    /// Who posts is drawn by the same Zipf popularity as who gets followed, and every
    /// recent photo is equally likely to be engaged with (by recency alone), so who is
    /// engaged with follows that popularity too: a few popular accounts post most and
    /// each upload reaches many followers, as on a real network. The shape that makes
    /// fan-out on write expensive.
    Popular,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Shape::Activity => "activity",
            Shape::Popular => "popular",
        })
    }
}

/// A shape named on a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown shape {0:?}: one of activity (the default; also \"uniform\") or popular")]
pub struct UnknownShape(String);

impl std::str::FromStr for Shape {
    type Err = UnknownShape;

    fn from_str(s: &str) -> Result<Self, UnknownShape> {
        match s.to_ascii_lowercase().as_str() {
            // "uniform": what the benchmarks called the default shape.
            "activity" | "uniform" | "default" => Ok(Shape::Activity),
            "popular" => Ok(Shape::Popular),
            _ => Err(UnknownShape(s.to_owned())),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 42,
            users: 20_000,
            mean_follows: 20.0,
            start_ms: DEFAULT_START_MS,
            rate: 200.0,
            shape: Shape::Activity,
        }
    }
}

/// Why a campaign could not be scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    #[error(
        "unknown brand {0:?}: campaigns use the bundled brand list (for example \"Nike\" or \"Apple, Inc.\")"
    )]
    UnknownBrand(String),
    #[error(
        "unknown city {0:?}: campaigns use the bundled cities of over 300,000 people (for example \"Paris\", \"São Paulo\" or \"London, CA\")"
    )]
    UnknownCity(String),
    #[error("a campaign needs at least one photo")]
    NoPhotos,
    #[error("a campaign of {0} photos is over the limit of {max}", max = Generator::MAX_CAMPAIGN_PHOTOS)]
    TooManyPhotos(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Photo,
    Like,
    Comment,
    Follow,
    Unfollow,
    Join,
}

struct User {
    /// The username is `names[name_at..name_at + name_len]`: one arena rather than a
    /// box per user, so naming a user in an event touches one cache line, not two.
    name_at: u32,
    name_len: u8,
    /// Indices into FIRST_NAMES and LAST_NAMES, which spell the full name.
    first: u8,
    last: u8,
    city: u32,
    popularity: f64,
    activity: f64,
    /// Whole second of this user's last upload: a photo is identified by its owner and
    /// its second, so no user may post twice in one second.
    last_photo_sec: i64,
    photos: u32,
}

#[derive(Clone, Copy)]
struct CampaignPlan {
    brand: u16,
    city: Option<u32>,
    photos: u32,
    seconds: u32,
}

#[derive(Clone, Copy)]
enum Action {
    CampaignPhoto { brand: u16, city: Option<u32> },
    ExtraLike(RecentPhoto),
}

/// An event due at a moment of event time; `seq` keeps equal times in schedule order.
struct Scheduled {
    due: Millis,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// The network and its clock. See the crate documentation.
pub struct Generator {
    rng: Pcg64Mcg,
    users: Vec<User>,
    names: String,
    taken_usernames: FxHashSet<Box<str>>,
    by_city: Vec<Vec<u32>>,
    graph: Graph,
    /// Samplers over `users[..sampled_users]`, rebuilt as users join.
    by_popularity: WeightedAliasIndex<f64>,
    by_activity: WeightedAliasIndex<f64>,
    shape: Shape,
    sampled_users: usize,
    brand_pick: WeightedAliasIndex<f64>,
    city_pick: WeightedAliasIndex<f64>,
    popularity_noise: LogNormal<f64>,
    activity_noise: LogNormal<f64>,
    jitter: Normal<f64>,
    recent: RecentPhotos,
    /// Direct-mapped memory of (photo, liker) pairs: a lossy set, enough to make a
    /// repeated like rare without growing forever.
    liked: Vec<u64>,
    /// Users who joined in the steady state and still have follows to make.
    newcomers: VecDeque<(u32, u32)>,
    pending: BinaryHeap<Reverse<Scheduled>>,
    scheduled: u64,
    /// Campaigns asked for during the bootstrap start when the steady state does.
    deferred: Vec<CampaignPlan>,
    bootstrap_users: u64,
    bootstrap_len: u64,
    max_users: usize,
    max_edges: usize,
    emitted: u64,
    /// File-mode clock: event k after `file_base_ms` is at base + k/rate.
    file_base_ms: Millis,
    file_count: u64,
    step_ms: f64,
    last_ms: Millis,
}

impl Generator {
    /// The largest campaign: each scheduled photo holds memory until it is emitted.
    pub const MAX_CAMPAIGN_PHOTOS: u32 = 100_000;

    /// Builds the whole initial network (users and follow graph) up front, so
    /// [`Generator::bootstrap_len`] is known before the first event.
    pub fn new(cfg: Config) -> Self {
        let rate = if cfg.rate.is_finite() && cfg.rate > 0.0 {
            cfg.rate
        } else {
            Config::default().rate
        };
        let n = cfg.users.max(2) as usize;
        let city_weights = cities().iter().map(|c| c.population as f64).collect();
        let brand_weights = brands().iter().map(|b| b.weight).collect();
        let follows_per_user =
            (cfg.mean_follows.is_finite() && cfg.mean_follows > 0.0).then(|| {
                let sigma = tune::FOLLOWS_SIGMA;
                LogNormal::new(cfg.mean_follows.ln() - sigma * sigma / 2.0, sigma)
                    .expect("finite log-normal parameters")
            });
        let mut g = Generator {
            rng: Pcg64Mcg::seed_from_u64(cfg.seed),
            users: Vec::with_capacity(n),
            names: String::with_capacity(n * 16),
            taken_usernames: FxHashSet::default(),
            by_city: vec![Vec::new(); cities().len()],
            graph: Graph::default(),
            // Placeholders until the users exist.
            by_popularity: WeightedAliasIndex::new(vec![1.0]).expect("one weight"),
            by_activity: WeightedAliasIndex::new(vec![1.0]).expect("one weight"),
            sampled_users: 0,
            brand_pick: WeightedAliasIndex::new(brand_weights).expect("brand weights"),
            city_pick: WeightedAliasIndex::new(city_weights).expect("city populations"),
            popularity_noise: LogNormal::new(0.0, tune::POPULARITY_NOISE).expect("sigma"),
            activity_noise: LogNormal::new(0.0, tune::ACTIVITY_NOISE).expect("sigma"),
            jitter: Normal::new(0.0, tune::JITTER_DEG).expect("sigma"),
            recent: RecentPhotos::new(match cfg.shape {
                Shape::Activity => crate::recent::REACH_EXPONENT,
                Shape::Popular => 0.0,
            }),
            shape: cfg.shape,
            liked: vec![0; tune::LIKE_MEMORY],
            newcomers: VecDeque::new(),
            pending: BinaryHeap::new(),
            scheduled: 0,
            deferred: Vec::new(),
            bootstrap_users: n as u64,
            bootstrap_len: 0,
            max_users: n * tune::MAX_GROWTH,
            max_edges: 0,
            emitted: 0,
            file_base_ms: cfg.start_ms,
            file_count: 0,
            step_ms: 1000.0 / rate,
            last_ms: cfg.start_ms,
        };

        // A random ranking, so the celebrities are spread through the creation order.
        let mut ranks: Vec<u32> = (1..=n as u32).collect();
        ranks.shuffle(&mut g.rng);
        for rank in ranks {
            let popularity = f64::from(rank).powf(-tune::ZIPF);
            g.add_user(popularity);
        }
        g.rebuild_samplers();

        let expected_edges = (n as f64 * cfg.mean_follows.max(0.0)) as usize;
        g.graph = Graph::with_capacity(n, expected_edges);
        let cap = (n - 1).min(tune::MAX_FOLLOWS);
        // No initial graph at all when mean_follows is not positive.
        if let Some(dist) = follows_per_user {
            for follower in 0..n as u32 {
                let want = (dist.sample(&mut g.rng).round() as usize).min(cap);
                let mut made = 0;
                // Popular targets repeat; a few extra draws cover the duplicates.
                for _ in 0..want * 3 + 10 {
                    if made == want {
                        break;
                    }
                    let target = g.pick_follow_target(follower);
                    if g.graph.follow(follower, target) {
                        made += 1;
                    }
                }
            }
        }
        g.bootstrap_len = n as u64 + g.graph.len() as u64;
        g.max_edges = g.graph.len().max(n) * tune::MAX_GROWTH;
        g
    }

    /// Next event, its time advancing by 1/rate s from `start_ms` (file mode). The
    /// bootstrap advances the clock too. Never ends.
    pub fn next_event(&mut self) -> Event<'static> {
        let t = self.file_base_ms + (self.file_count as f64 * self.step_ms) as Millis;
        self.file_count += 1;
        self.emit(t.max(self.last_ms))
    }

    /// Next event stamped at `now_ms` (live mode), or at the last event's time if
    /// `now_ms` is earlier: event time never runs backwards.
    pub fn next_event_at(&mut self, now_ms: Millis) -> Event<'static> {
        let t = now_ms.max(self.last_ms);
        // A later `next_event` continues one step after this one.
        self.file_base_ms = t;
        self.file_count = 1;
        self.emit(t)
    }

    /// Continues with a different random stream from here on (same network). A server
    /// restarting from a checkpoint replays the bootstrap (which does not depend on
    /// time) and then reseeds: the steady state's choices depend on event times, which a
    /// fast-forward cannot reproduce, so it starts a fresh stream instead.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = Pcg64Mcg::seed_from_u64(seed);
    }

    /// True while still emitting the bootstrap (all create-users and the initial
    /// follow graph).
    pub fn in_bootstrap(&self) -> bool {
        self.emitted < self.bootstrap_len
    }

    /// Events in the bootstrap: one create-user per user plus one follow per edge.
    pub fn bootstrap_len(&self) -> u64 {
        self.bootstrap_len
    }

    pub fn events_emitted(&self) -> u64 {
        self.emitted
    }

    /// The time of the last event emitted (`start_ms` before the first).
    pub fn clock_ms(&self) -> Millis {
        self.last_ms
    }

    /// Users so far, including those who joined after the bootstrap.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Follow edges in the network as it stands after the events emitted so far
    /// (the whole initial graph from the start, as it is built up front).
    pub fn follow_count(&self) -> usize {
        self.graph.len()
    }

    /// Schedules a campaign burst: `photos` uploads of `brand` spread over `seconds`
    /// of event time from the current clock (from the end of the bootstrap if called
    /// during it), at `city` or at cities drawn by population, by users drawn by
    /// popularity, each drawing a few extra likes. Campaign events take their turn in
    /// the stream like any other, so the overall rate stays as configured. Brand and
    /// city names are matched ignoring case (and, for cities, accents; `"London, CA"`
    /// picks a country).
    pub fn campaign(
        &mut self,
        brand: &str,
        city: Option<&str>,
        photos: u32,
        seconds: u32,
    ) -> Result<(), CampaignError> {
        let brand_at =
            brand_index(brand).ok_or_else(|| CampaignError::UnknownBrand(brand.to_owned()))?;
        let city_at = match city {
            Some(name) => {
                Some(city_index(name).ok_or_else(|| CampaignError::UnknownCity(name.to_owned()))?)
            }
            None => None,
        };
        if photos == 0 {
            return Err(CampaignError::NoPhotos);
        }
        if photos > Self::MAX_CAMPAIGN_PHOTOS {
            return Err(CampaignError::TooManyPhotos(photos));
        }
        let plan = CampaignPlan {
            brand: brand_at as u16,
            city: city_at.map(|c| c as u32),
            photos,
            seconds,
        };
        if self.in_bootstrap() {
            self.deferred.push(plan);
        } else {
            self.schedule_campaign(plan, self.last_ms);
        }
        Ok(())
    }

    fn emit(&mut self, t: Millis) -> Event<'static> {
        self.last_ms = t;
        // The wire carries whole seconds; stamping whole seconds keeps a photo's time
        // and the photo_id that engagements quote identical.
        let at = t - t.rem_euclid(MS_PER_SEC);
        let i = self.emitted;
        self.emitted += 1;
        if i < self.bootstrap_users {
            return self.create_user(i as u32, at);
        }
        if i < self.bootstrap_len {
            let (follower, followed) = self.graph.edge((i - self.bootstrap_users) as usize);
            return Event::Follow(self.edge(follower, followed, at));
        }
        self.steady(t, at)
    }

    fn steady(&mut self, t: Millis, at: Millis) -> Event<'static> {
        if !self.deferred.is_empty() {
            for plan in std::mem::take(&mut self.deferred) {
                self.schedule_campaign(plan, t);
            }
        }
        if self.pending.peek().is_some_and(|Reverse(s)| s.due <= t) {
            let Reverse(s) = self.pending.pop().expect("peeked");
            if let Some(e) = self.run(s, at) {
                return e;
            }
        }
        let mut roll = self.rng.random_range(0..1000);
        let mut step = Step::Photo;
        for (s, parts) in tune::MIX {
            if roll < parts {
                step = s;
                break;
            }
            roll -= parts;
        }
        if step == Step::Join && self.users.len() >= self.max_users {
            step = Step::Like;
        }
        // At the edge cap, half the follows become unfollows, so the graph shrinks back
        // below it and then grows again: it hovers at the cap.
        if step == Step::Follow && self.graph.len() >= self.max_edges && self.rng.random_bool(0.5) {
            step = Step::Unfollow;
        }
        let e = match step {
            Step::Photo => self.photo(at),
            Step::Like => self.like(at),
            Step::Comment => self.comment(at),
            Step::Follow => self.follow(at),
            Step::Unfollow => self.unfollow(at),
            Step::Join => Some(self.join(at)),
        };
        // A choice that kept colliding gives way to an upload, and that to a new user,
        // which always succeeds.
        e.or_else(|| self.photo(at))
            .unwrap_or_else(|| self.join(at))
    }

    fn run(&mut self, s: Scheduled, at: Millis) -> Option<Event<'static>> {
        match s.action {
            Action::CampaignPhoto { brand, city } => {
                let owner = self.free_owner(at, |g| g.by_popularity.sample(&mut g.rng));
                let Some(owner) = owner else {
                    // Everyone picked already posted this second: try again next second.
                    self.push(s.due + MS_PER_SEC, s.action);
                    return None;
                };
                let city = city.unwrap_or_else(|| self.city_pick.sample(&mut self.rng) as u32);
                let (e, photo) = self.upload(owner, usize::from(brand), city, at);
                let likes = (2.0
                    + self.rng.sample::<f64, _>(rand_distr::Exp1) * tune::CAMPAIGN_LIKES_MEAN)
                    as u32;
                for _ in 0..likes.min(tune::CAMPAIGN_LIKES_MAX) {
                    let delay = 1.0
                        + self.rng.sample::<f64, _>(rand_distr::Exp1)
                            * tune::CAMPAIGN_LIKE_DELAY_MEAN_S;
                    self.push(at + (delay * 1000.0) as Millis, Action::ExtraLike(photo));
                }
                Some(e)
            }
            Action::ExtraLike(photo) => self.like_photo(photo, at),
        }
    }

    fn schedule_campaign(&mut self, plan: CampaignPlan, start: Millis) {
        let span = f64::from(plan.seconds.max(1)) * 1000.0 / f64::from(plan.photos);
        for i in 0..plan.photos {
            // One upload in each equal slice of the span, at a random point within it.
            let offset = (f64::from(i) + self.rng.random::<f64>()) * span;
            self.push(
                start + offset as Millis,
                Action::CampaignPhoto {
                    brand: plan.brand,
                    city: plan.city,
                },
            );
        }
    }

    fn push(&mut self, due: Millis, action: Action) {
        self.scheduled += 1;
        self.pending.push(Reverse(Scheduled {
            due,
            seq: self.scheduled,
            action,
        }));
    }

    fn photo(&mut self, at: Millis) -> Option<Event<'static>> {
        let owner = match self.shape {
            Shape::Activity => self.free_owner(at, |g| g.by_activity.sample(&mut g.rng))?,
            Shape::Popular => self.free_owner(at, |g| g.by_popularity.sample(&mut g.rng))?,
        };
        let brand = self.brand_pick.sample(&mut self.rng);
        let city = if self.rng.random_bool(tune::TRAVEL) {
            self.city_pick.sample(&mut self.rng) as u32
        } else {
            self.users[owner as usize].city
        };
        Some(self.upload(owner, brand, city, at).0)
    }

    /// A user drawn by `pick` who has not posted in this second yet.
    fn free_owner(&mut self, at: Millis, pick: impl Fn(&mut Self) -> usize) -> Option<u32> {
        let sec = at.div_euclid(MS_PER_SEC);
        for _ in 0..tune::TRIES {
            let u = pick(self);
            if self.users[u].last_photo_sec != sec {
                return Some(u as u32);
            }
        }
        None
    }

    fn upload(
        &mut self,
        owner: u32,
        brand: usize,
        city: u32,
        at: Millis,
    ) -> (Event<'static>, RecentPhoto) {
        let (latitude, longitude) = self.place(city);
        let u = &mut self.users[owner as usize];
        u.last_photo_sec = at.div_euclid(MS_PER_SEC);
        u.photos += 1;
        let number = u.photos;
        let username = self.username(owner);
        // Built by hand: `format!` was a visible share of the steady state's time.
        const PREFIX: &str = "https://photos.instabrand.example/";
        let mut photo_link = String::with_capacity(PREFIX.len() + username.len() + 16);
        photo_link.push_str(PREFIX);
        photo_link.push_str(&username);
        photo_link.push('/');
        photo_link.push_str(itoa(number, &mut [0; 10]));
        photo_link.push_str(".jpg");
        let followers = self.graph.followers(owner).len();
        let photo = self.recent.push(owner, at, followers);
        let e = Event::PhotoUpload(PhotoUpload {
            username,
            brands: vec![Cow::Borrowed(brands()[brand].name.as_str())],
            photo_link: Cow::Owned(photo_link),
            created: at,
            latitude,
            longitude,
        });
        (e, photo)
    }

    /// A point near `city`'s centre, rounded to 4 decimals (about 11 m) as a phone's
    /// geotag would be, which also makes the written coordinate read back exactly.
    fn place(&mut self, city: u32) -> (f64, f64) {
        let c = &cities()[city as usize];
        let lat = (c.latitude + self.jitter.sample(&mut self.rng)).clamp(-89.9999, 89.9999);
        // Degrees of longitude shrink towards the poles; widen the jitter to match.
        let stretch = 1.0 / lat.to_radians().cos().max(0.2);
        let mut lon = c.longitude + self.jitter.sample(&mut self.rng) * stretch;
        if lon > 180.0 {
            lon -= 360.0;
        } else if lon < -180.0 {
            lon += 360.0;
        }
        let round = |v: f64| (v * 1e4).round() / 1e4;
        (round(lat), round(lon))
    }

    /// Usually one of the owner's followers; otherwise anyone (explore page, hashtags).
    fn pick_actor(&mut self, owner: u32) -> u32 {
        let followers = self.graph.followers(owner);
        if !followers.is_empty() && self.rng.random_bool(tune::FROM_FOLLOWERS) {
            followers[self.rng.random_range(0..followers.len())]
        } else {
            self.rng.random_range(0..self.users.len() as u32)
        }
    }

    fn like(&mut self, at: Millis) -> Option<Event<'static>> {
        (0..tune::TRIES).find_map(|_| {
            let photo = self.recent.sample(&mut self.rng)?;
            self.like_photo(photo, at)
        })
    }

    fn like_photo(&mut self, photo: RecentPhoto, at: Millis) -> Option<Event<'static>> {
        for _ in 0..tune::TRIES {
            let actor = self.pick_actor(photo.owner);
            if actor != photo.owner && self.remember_like(photo.seq, actor) {
                return Some(Event::Like(self.engagement(photo, actor, at, None)));
            }
        }
        None
    }

    /// False if this (photo, liker) pair was seen recently.
    fn remember_like(&mut self, photo_seq: u64, actor: u32) -> bool {
        // +1 keeps the pair (0, 0) apart from an empty slot.
        let key = ((photo_seq << 32) | u64::from(actor)).wrapping_add(1);
        let slot = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % tune::LIKE_MEMORY;
        if self.liked[slot] == key {
            return false;
        }
        self.liked[slot] = key;
        true
    }

    fn comment(&mut self, at: Millis) -> Option<Event<'static>> {
        let photo = self.recent.sample(&mut self.rng)?;
        let actor = (0..tune::TRIES)
            .map(|_| self.pick_actor(photo.owner))
            .find(|&a| a != photo.owner)?;
        let text = COMMENTS[self.rng.random_range(0..COMMENTS.len())];
        Some(Event::Comment(self.engagement(
            photo,
            actor,
            at,
            Some(Cow::Borrowed(text)),
        )))
    }

    fn engagement(
        &self,
        photo: RecentPhoto,
        actor: u32,
        at: Millis,
        text: Option<Cow<'static, str>>,
    ) -> Engagement<'static> {
        Engagement {
            owner: self.username(photo.owner),
            actor: self.username(actor),
            photo: photo.created,
            created: at,
            text,
        }
    }

    fn follow(&mut self, at: Millis) -> Option<Event<'static>> {
        for _ in 0..tune::TRIES {
            let follower = match self.newcomers.front_mut() {
                Some((user, left)) if self.rng.random_bool(tune::NEWCOMER_FOLLOWS_SHARE) => {
                    let user = *user;
                    *left -= 1;
                    if *left == 0 {
                        self.newcomers.pop_front();
                    }
                    user
                }
                _ => self.rng.random_range(0..self.users.len() as u32),
            };
            let followed = self.pick_follow_target(follower);
            if self.graph.follow(follower, followed) {
                return Some(Event::Follow(self.edge(follower, followed, at)));
            }
        }
        None
    }

    fn unfollow(&mut self, at: Millis) -> Option<Event<'static>> {
        if self.graph.len() == 0 {
            return None;
        }
        let i = self.rng.random_range(0..self.graph.len());
        let (follower, followed) = self.graph.remove_at(i);
        Some(Event::Unfollow(self.edge(follower, followed, at)))
    }

    fn join(&mut self, at: Millis) -> Event<'static> {
        // A newcomer's rank is uniform over the bootstrap's, so joiners follow the same
        // popularity law and rarely arrive as celebrities.
        let rank = 1.0 + self.rng.random::<f64>() * (self.bootstrap_users as f64 - 1.0);
        let user = self.add_user(rank.powf(-tune::ZIPF));
        self.graph.add_user();
        let (lo, hi) = tune::NEWCOMER_FOLLOWS;
        let follows = self.rng.random_range(lo..=hi);
        self.newcomers.push_back((user, follows));
        // Rebuilding the samplers costs O(users); doing it every 5% of growth keeps
        // newcomers reachable at a negligible amortised cost.
        if self.users.len() >= self.sampled_users + (self.sampled_users / 20).max(64) {
            self.rebuild_samplers();
        }
        self.create_user(user, at)
    }

    fn create_user(&self, user: u32, at: Millis) -> Event<'static> {
        let u = &self.users[user as usize];
        let (first, last) = (
            FIRST_NAMES[usize::from(u.first)],
            LAST_NAMES[usize::from(u.last)],
        );
        Event::CreateUser(CreateUser {
            username: self.username(user),
            full_name: Cow::Owned(format!("{first} {last}")),
            created: at,
        })
    }

    fn username(&self, user: u32) -> Cow<'static, str> {
        let u = &self.users[user as usize];
        let at = u.name_at as usize;
        Cow::Owned(self.names[at..at + usize::from(u.name_len)].to_owned())
    }

    fn add_user(&mut self, base_popularity: f64) -> u32 {
        let rng = &mut self.rng;
        let first_at = rng.random_range(0..FIRST_NAMES.len());
        let last_at = rng.random_range(0..LAST_NAMES.len());
        let (first, last) = (FIRST_NAMES[first_at], LAST_NAMES[last_at]);
        let stem: String = fold(&format!("{first}{last}"))
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        // `billyjoel219`: a number as the original's usernames had, with more digits
        // once the short ones run out for a popular name pair.
        let mut limit: u64 = 1_000;
        let username = 'found: loop {
            for _ in 0..4 {
                let candidate = format!("{stem}{}", rng.random_range(1..limit));
                if !self.taken_usernames.contains(candidate.as_str()) {
                    break 'found candidate;
                }
            }
            limit = limit.saturating_mul(10);
        };
        let name_at = self.names.len() as u32;
        self.names.push_str(&username);
        self.taken_usernames.insert(username.into_boxed_str());
        let city = self.city_pick.sample(rng) as u32;
        let popularity = base_popularity * self.popularity_noise.sample(rng);
        let activity =
            popularity.powf(tune::ACTIVITY_FROM_POPULARITY) * self.activity_noise.sample(rng);
        let id = self.users.len() as u32;
        self.users.push(User {
            name_at,
            name_len: (self.names.len() - name_at as usize) as u8,
            first: first_at as u8,
            last: last_at as u8,
            city,
            popularity,
            activity,
            last_photo_sec: i64::MIN,
            photos: 0,
        });
        self.by_city[city as usize].push(id);
        id
    }

    fn rebuild_samplers(&mut self) {
        let popularity = self.users.iter().map(|u| u.popularity).collect();
        let activity = self.users.iter().map(|u| u.activity).collect();
        self.by_popularity = WeightedAliasIndex::new(popularity).expect("positive popularity");
        self.by_activity = WeightedAliasIndex::new(activity).expect("positive activity");
        self.sampled_users = self.users.len();
    }

    fn pick_follow_target(&mut self, follower: u32) -> u32 {
        if self.rng.random_bool(tune::LOCAL_FOLLOWS) {
            let neighbours = &self.by_city[self.users[follower as usize].city as usize];
            neighbours[self.rng.random_range(0..neighbours.len())]
        } else {
            self.by_popularity.sample(&mut self.rng) as u32
        }
    }

    fn edge(&self, follower: u32, followed: u32, at: Millis) -> Edge<'static> {
        Edge {
            followed: self.username(followed),
            follower: self.username(follower),
            created: at,
        }
    }
}

/// The generator never ends, so it is also an iterator that never returns `None`.
impl Iterator for Generator {
    type Item = Event<'static>;

    fn next(&mut self) -> Option<Event<'static>> {
        Some(self.next_event())
    }
}

/// `n` in decimal, written into `buf`.
fn itoa(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use instabrand_shared::time::parse_time;

    use super::*;

    #[test]
    fn the_default_start_is_2017_06_12_at_midnight_utc() {
        assert_eq!(
            Config::default().start_ms,
            parse_time("2017-06-12 00:00:00").unwrap()
        );
    }

    #[test]
    fn a_like_pair_is_remembered() {
        let mut g = Generator::new(Config {
            users: 10,
            ..Config::default()
        });
        assert!(g.remember_like(0, 0));
        assert!(!g.remember_like(0, 0));
        assert!(g.remember_like(0, 1));
        assert!(g.remember_like(1, 0));
    }
}
