//! WebSocket messages. One connection per page; the client subscribes to topics and
//! gets, per topic, a snapshot first and then deltas, at most ~10 frames a second.
//!
//! Deltas are idempotent upserts keyed by stable ids (brand name, photo owner and time,
//! alert id), so a delta that overlaps the snapshot, or repeats, changes nothing. When
//! a client falls behind, the server drops what it queued and sends a fresh snapshot
//! (`snapshot: true`), so a client simply replaces its state whenever it sees one.

use serde::{Deserialize, Serialize};

use crate::api::{
    Alert, BrandDetail, BrandMetrics, FeedPage, Health, Influencer, MapPoint, PhotoView,
    UserProfile, Window,
};
use crate::time::Millis;

/// What a client can subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Topic {
    /// The brand leaderboard over one window.
    Leaderboard { window: Window },
    /// One brand's detail over one window.
    Brand { brand: String, window: Window },
    /// Top influencers over one window.
    Influencers { window: Window },
    /// Every upload, as it happens, for the map.
    Map,
    /// One user's profile feed and home timeline.
    Feed { username: String },
    /// Spike alerts.
    Alerts,
    /// Pipeline health.
    Health,
    /// About the connection itself (pongs, unreadable messages); not subscribable.
    Connection,
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientMessage {
    Subscribe {
        topic: Topic,
    },
    Unsubscribe {
        topic: Topic,
    },
    /// Answered at once with a [`Frame::Pong`] on [`Topic::Connection`]: a page cannot
    /// see WebSocket pings, so this is how it tells a live link from a dead one.
    Ping,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMessage {
    pub topic: Topic,
    /// Per-topic frame counter (snapshots carry the counter they were taken at).
    pub seq: u64,
    /// True: replace everything held for this topic. False: apply as upserts.
    pub snapshot: bool,
    pub frame: Frame,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Frame {
    Leaderboard(LeaderboardFrame),
    Brand(BrandDetail),
    Influencers(Vec<Influencer>),
    /// New uploads (snapshot: the most recent ones), oldest first.
    MapPoints(Vec<MapPoint>),
    Feed(FeedFrame),
    /// New alerts (snapshot: the most recent ones), oldest first.
    Alerts(Vec<Alert>),
    Health(Health),
    /// The answer to [`ClientMessage::Ping`]. `interval_ms`: the server's heartbeat
    /// interval; a page that hears nothing (no frame, no pong) for about that long
    /// should count the link as dead and reconnect.
    Pong {
        interval_ms: u64,
    },
    /// The subscription was refused or failed; the reason is for people.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LeaderboardFrame {
    pub window: Window,
    pub from_ms: Millis,
    pub to_ms: Millis,
    pub total_photos: u64,
    /// Snapshot: every row. Delta: rows that changed (upsert by brand).
    pub rows: Vec<BrandMetrics>,
    /// Brands that left the window since the last frame.
    pub removed: Vec<String>,
    /// Events applied per second over the last few seconds (all kinds).
    pub events_per_sec: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FeedFrame {
    pub profile: UserProfile,
    /// Snapshot: the first page. Delta: new or changed photos (upsert by owner+time).
    pub photos: FeedPage,
    pub timeline: FeedPage,
}

/// Applies an upsert list onto a held list keyed by `key`, keeping newest-first order
/// by `created_ms` and at most `cap` items. Shared by the dashboard and the tests.
pub fn upsert_photos(held: &mut Vec<PhotoView>, updates: &[PhotoView], cap: usize) {
    for u in updates {
        match held
            .iter_mut()
            .find(|p| p.owner == u.owner && p.created_ms == u.created_ms)
        {
            Some(p) => *p = u.clone(),
            None => held.push(u.clone()),
        }
    }
    held.sort_by(|a, b| {
        b.created_ms
            .cmp(&a.created_ms)
            .then_with(|| a.owner.cmp(&b.owner))
    });
    held.truncate(cap);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_readable_shape() {
        let m = ClientMessage::Subscribe {
            topic: Topic::Leaderboard { window: Window::H1 },
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"op":"subscribe","topic":{"type":"leaderboard","window":"1h"}}"#
        );
        let back: ClientMessage = serde_json::from_str(
            r#"{"op":"unsubscribe","topic":{"type":"feed","username":"bob"}}"#,
        )
        .unwrap();
        assert_eq!(
            back,
            ClientMessage::Unsubscribe {
                topic: Topic::Feed {
                    username: "bob".into()
                }
            }
        );
    }

    #[test]
    fn upserts_replace_by_key_and_keep_newest_first() {
        let p = |owner: &str, t: i64, likes: u64| PhotoView {
            owner: owner.into(),
            created_ms: t,
            likes,
            ..Default::default()
        };
        let mut held = vec![p("a", 3, 0), p("b", 1, 0)];
        upsert_photos(&mut held, &[p("b", 1, 5), p("c", 2, 0), p("d", 4, 0)], 3);
        let got: Vec<_> = held.iter().map(|x| (x.owner.as_str(), x.likes)).collect();
        assert_eq!(got, [("d", 0), ("a", 0), ("c", 0)]);
    }
}
