//! The six events of the original 2017 system, and their decoding.
//!
//! Payloads are accepted exactly as the original producer wrote them: string-typed
//! coordinates, naive timestamps, one brand per `tags` (commas and all), unknown extra
//! fields ignored. Decoding goes through one flat, borrowing struct rather than an
//! internally tagged enum: serde would otherwise buffer every payload before choosing a
//! variant, and a flat struct also lets us say precisely which field of which event is
//! missing or wrong.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::time::{Millis, format_naive, parse_time};

/// The six event types, named as on the wire and as the original Kafka topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    CreateUser,
    PhotoUpload,
    Follow,
    Unfollow,
    Like,
    Comment,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::CreateUser,
        EventKind::PhotoUpload,
        EventKind::Follow,
        EventKind::Unfollow,
        EventKind::Like,
        EventKind::Comment,
    ];

    /// The wire name, which is also the default Kafka topic.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CreateUser => "create-user",
            EventKind::PhotoUpload => "photo-upload",
            EventKind::Follow => "follow",
            EventKind::Unfollow => "unfollow",
            EventKind::Like => "like",
            EventKind::Comment => "comment",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateUser<'a> {
    pub username: Cow<'a, str>,
    pub full_name: Cow<'a, str>,
    pub created: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PhotoUpload<'a> {
    pub username: Cow<'a, str>,
    /// Usually exactly one brand; a JSON array in `tags` is accepted as an extension.
    pub brands: Vec<Cow<'a, str>>,
    pub photo_link: Cow<'a, str>,
    pub created: Millis,
    pub latitude: f64,
    pub longitude: f64,
}

/// `follow` and `unfollow`: `follower` starts or stops following `followed`.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge<'a> {
    pub followed: Cow<'a, str>,
    pub follower: Cow<'a, str>,
    pub created: Millis,
}

/// A like or a comment on the photo `owner` posted at `photo` (its `created_time`).
#[derive(Debug, Clone, PartialEq)]
pub struct Engagement<'a> {
    /// The photo's owner (`followed_username` on the wire).
    pub owner: Cow<'a, str>,
    /// Who liked or commented (`follower_username` on the wire).
    pub actor: Cow<'a, str>,
    /// The photo's `created_time` (`photo_id` on the wire).
    pub photo: Millis,
    pub created: Millis,
    /// The comment's text; `None` for a like.
    pub text: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    CreateUser(CreateUser<'a>),
    PhotoUpload(PhotoUpload<'a>),
    Follow(Edge<'a>),
    Unfollow(Edge<'a>),
    Like(Engagement<'a>),
    Comment(Engagement<'a>),
}

impl<'a> Event<'a> {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::CreateUser(_) => EventKind::CreateUser,
            Event::PhotoUpload(_) => EventKind::PhotoUpload,
            Event::Follow(_) => EventKind::Follow,
            Event::Unfollow(_) => EventKind::Unfollow,
            Event::Like(_) => EventKind::Like,
            Event::Comment(_) => EventKind::Comment,
        }
    }

    /// The event's own time (`created_time`).
    pub fn time(&self) -> Millis {
        match self {
            Event::CreateUser(e) => e.created,
            Event::PhotoUpload(e) => e.created,
            Event::Follow(e) | Event::Unfollow(e) => e.created,
            Event::Like(e) | Event::Comment(e) => e.created,
        }
    }

    /// The username the original producer keyed the Kafka record by.
    pub fn key(&self) -> &str {
        match self {
            Event::CreateUser(e) => &e.username,
            Event::PhotoUpload(e) => &e.username,
            Event::Follow(e) | Event::Unfollow(e) => &e.follower,
            Event::Like(e) | Event::Comment(e) => &e.actor,
        }
    }

    /// Serializes in the exact original JSON shape (string coordinates, naive time).
    pub fn to_original_json(&self) -> String {
        use serde_json::json;
        let t = |ms: Millis| format_naive(ms);
        let v = match self {
            Event::CreateUser(e) => json!({
                "username": e.username, "full_name": e.full_name,
                "created_time": t(e.created), "event": "create-user"
            }),
            Event::PhotoUpload(e) => {
                let tags = if e.brands.len() == 1 {
                    json!(e.brands[0])
                } else {
                    json!(e.brands)
                };
                json!({
                    "username": e.username, "tags": tags, "photo_link": e.photo_link,
                    "created_time": t(e.created),
                    "latitude": format_coordinate(e.latitude),
                    "longitude": format_coordinate(e.longitude),
                    "event": "photo-upload"
                })
            }
            Event::Follow(e) | Event::Unfollow(e) => json!({
                "followed_username": e.followed, "follower_username": e.follower,
                "created_time": t(e.created), "event": self.kind().as_str()
            }),
            Event::Like(e) => json!({
                "followed_username": e.owner, "follower_username": e.actor,
                "photo_id": t(e.photo), "created_time": t(e.created), "event": "like"
            }),
            Event::Comment(e) => json!({
                "followed_username": e.owner, "follower_username": e.actor,
                "photo_id": t(e.photo), "text": e.text.as_deref().unwrap_or(""),
                "created_time": t(e.created), "event": "comment"
            }),
        };
        v.to_string()
    }

    pub fn into_owned(self) -> Event<'static> {
        fn o(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        match self {
            Event::CreateUser(e) => Event::CreateUser(CreateUser {
                username: o(e.username),
                full_name: o(e.full_name),
                created: e.created,
            }),
            Event::PhotoUpload(e) => Event::PhotoUpload(PhotoUpload {
                username: o(e.username),
                brands: e.brands.into_iter().map(o).collect(),
                photo_link: o(e.photo_link),
                created: e.created,
                latitude: e.latitude,
                longitude: e.longitude,
            }),
            Event::Follow(e) => Event::Follow(edge_owned(e)),
            Event::Unfollow(e) => Event::Unfollow(edge_owned(e)),
            Event::Like(e) => Event::Like(engagement_owned(e)),
            Event::Comment(e) => Event::Comment(engagement_owned(e)),
        }
    }
}

fn edge_owned(e: Edge<'_>) -> Edge<'static> {
    Edge {
        followed: Cow::Owned(e.followed.into_owned()),
        follower: Cow::Owned(e.follower.into_owned()),
        created: e.created,
    }
}

fn engagement_owned(e: Engagement<'_>) -> Engagement<'static> {
    Engagement {
        owner: Cow::Owned(e.owner.into_owned()),
        actor: Cow::Owned(e.actor.into_owned()),
        photo: e.photo,
        created: e.created,
        text: e.text.map(|t| Cow::Owned(t.into_owned())),
    }
}

/// Coordinates as the original producer wrote them: a string with up to 6 decimals.
pub fn format_coordinate(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.into()
    }
}

/// Why a record was not applied. The code is stable: it labels metrics, dead letters
/// and the health view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Larger than the configured maximum message size.
    Oversized,
    /// Not UTF-8 JSON, or not a JSON object.
    NotJson,
    /// No `event` field and no topic to infer it from.
    MissingEvent,
    /// An `event` value that is none of the six.
    UnknownEvent,
    /// A field the event type requires is absent or null.
    MissingField,
    /// A field of the wrong JSON type, empty, or over its length limit.
    InvalidField,
    /// A `created_time` or `photo_id` that is not a valid timestamp.
    InvalidTime,
    /// Latitude or longitude unparseable or out of range.
    InvalidCoordinates,
    /// A user following, or unfollowing, themselves.
    SelfFollow,
    /// A like or comment whose photo did not arrive within the hold time.
    OrphanEngagement,
    /// A like or comment pushed out of the full holding area by newer ones.
    PendingOverflow,
    /// Stamped too far ahead of both the wall clock and the stream's applied time
    /// (`align.max_future_secs`): a bad clock upstream must not move the stream's clock.
    FutureTime,
    /// A like or comment on a photo past retention (`processor.photo_retention_secs`):
    /// the photo was dropped, or is older than the retention horizon. Also a photo
    /// upload that is itself older than the horizon when it arrives.
    PhotoExpired,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::Oversized,
        Reason::NotJson,
        Reason::MissingEvent,
        Reason::UnknownEvent,
        Reason::MissingField,
        Reason::InvalidField,
        Reason::InvalidTime,
        Reason::InvalidCoordinates,
        Reason::SelfFollow,
        Reason::OrphanEngagement,
        Reason::PendingOverflow,
        Reason::FutureTime,
        Reason::PhotoExpired,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::Oversized => "oversized",
            Reason::NotJson => "not_json",
            Reason::MissingEvent => "missing_event",
            Reason::UnknownEvent => "unknown_event",
            Reason::MissingField => "missing_field",
            Reason::InvalidField => "invalid_field",
            Reason::InvalidTime => "invalid_time",
            Reason::InvalidCoordinates => "invalid_coordinates",
            Reason::SelfFollow => "self_follow",
            Reason::OrphanEngagement => "orphan_engagement",
            Reason::PendingOverflow => "pending_overflow",
            Reason::FutureTime => "future_time",
            Reason::PhotoExpired => "photo_expired",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A record that could not be decoded: the reason and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub reason: Reason,
    pub detail: String,
}

impl DecodeError {
    fn new(reason: Reason, detail: impl Into<String>) -> Self {
        DecodeError {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for DecodeError {}

/// Limits on one record. Every one is configurable; these are the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecodeLimits {
    /// Largest accepted record, in bytes.
    pub max_message_bytes: usize,
    /// Longest username or full name, in bytes.
    pub max_name_bytes: usize,
    /// Longest brand name, in bytes.
    pub max_brand_bytes: usize,
    /// Most brands in one `tags` array (the extension; the original sends one).
    pub max_brands: usize,
    /// Longest comment text or photo link, in bytes.
    pub max_text_bytes: usize,
}

impl DecodeLimits {
    /// No limits: for records that decoded once already (a checkpoint's changelog, the
    /// archive), which must decode again whatever the limits are now.
    pub const NONE: DecodeLimits = DecodeLimits {
        max_message_bytes: usize::MAX,
        max_name_bytes: usize::MAX,
        max_brand_bytes: usize::MAX,
        max_brands: usize::MAX,
        max_text_bytes: usize::MAX,
    };
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_message_bytes: 64 * 1024,
            max_name_bytes: 128,
            max_brand_bytes: 128,
            max_brands: 8,
            max_text_bytes: 4096,
        }
    }
}

/// A string or a number, as coordinates arrive (`"46.265"` or `46.265`).
enum NumOrStr<'a> {
    Num(f64),
    Str(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for NumOrStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = NumOrStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string holding one")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(NumOrStr::Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(NumOrStr::Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(NumOrStr::Num(v as f64))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(NumOrStr::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(NumOrStr::Str(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// `tags`: one brand (the original), or an array of brands (our extension).
enum Tags<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Tags<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Tags<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a brand name or an array of brand names")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Tags::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Tags::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<BorrowedOrOwned<'a>>()? {
                    out.push(s.0);
                }
                Ok(Tags::Many(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

struct BorrowedOrOwned<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedOrOwned<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct W<'a>(#[serde(borrow)] Cow<'a, str>);
        W::deserialize(d).map(|w| BorrowedOrOwned(w.0))
    }
}

/// An optional string that borrows from the payload unless it holds JSON escapes.
/// serde's `borrow` reaches only a bare `Cow<str>` field: inside an `Option` the
/// `Cow`'s own `Deserialize` runs, which always copies, so every string of every event
/// was an allocation of its own (freed later, often on another thread).
fn borrowed<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<BorrowedOrOwned<'a>>::deserialize(d)?.map(|b| b.0))
}

/// Every field any event has. Unknown fields (such as `partition_date`) are ignored.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed")]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    username: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    full_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    created_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tags: Option<Tags<'a>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    photo_link: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    latitude: Option<NumOrStr<'a>>,
    #[serde(borrow, default)]
    longitude: Option<NumOrStr<'a>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    followed_username: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    follower_username: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    photo_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    text: Option<Cow<'a, str>>,
}

/// Decodes one record. `hint` is the event type implied by the topic it came from,
/// used only when the payload has no `event` field.
pub fn decode<'a>(
    bytes: &'a [u8],
    hint: Option<EventKind>,
    limits: &DecodeLimits,
) -> Result<Event<'a>, DecodeError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(DecodeError::new(
            Reason::Oversized,
            format!(
                "{} bytes is over the {}-byte limit",
                bytes.len(),
                limits.max_message_bytes
            ),
        ));
    }
    // serde would read a JSON array into the struct field by field: only objects count.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::new(Reason::NotJson, "not a JSON object"));
    }
    // Checked as UTF-8 once, whole (an ASCII line a word at a time), instead of
    // string by string as `from_slice` does: 4 % of the applying thread went into the
    // per-string checks. A line that is not UTF-8 takes `from_slice`, whose error
    // says where.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    };
    let wire: Wire<'a> = parsed.map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => DecodeError::new(Reason::InvalidField, e.to_string()),
            _ => DecodeError::new(Reason::NotJson, e.to_string()),
        }
    })?;
    let kind = match &wire.event {
        Some(name) => EventKind::parse(name).ok_or_else(|| {
            DecodeError::new(
                Reason::UnknownEvent,
                format!("unknown event {:?}", truncate(name, 40)),
            )
        })?,
        None => hint.ok_or_else(|| DecodeError::new(Reason::MissingEvent, "no `event` field"))?,
    };
    let mut w = wire;
    let created = time_field(kind, "created_time", w.created_time.take())?;
    let name =
        |field: &'static str, v: Option<Cow<'a, str>>| -> Result<Cow<'a, str>, DecodeError> {
            let v = required(kind, field, v)?;
            if v.trim().is_empty() {
                return Err(DecodeError::new(
                    Reason::InvalidField,
                    format!("{kind}: `{field}` is empty"),
                ));
            }
            if v.len() > limits.max_name_bytes {
                return Err(DecodeError::new(
                    Reason::InvalidField,
                    format!("{kind}: `{field}` is over {} bytes", limits.max_name_bytes),
                ));
            }
            Ok(v)
        };
    let text_field = |field: &'static str, v: Cow<'a, str>| -> Result<Cow<'a, str>, DecodeError> {
        if v.len() > limits.max_text_bytes {
            return Err(DecodeError::new(
                Reason::InvalidField,
                format!("{kind}: `{field}` is over {} bytes", limits.max_text_bytes),
            ));
        }
        Ok(v)
    };
    Ok(match kind {
        EventKind::CreateUser => {
            let username = name("username", w.username.take())?;
            let full_name = required(kind, "full_name", w.full_name.take())?;
            if full_name.len() > limits.max_name_bytes {
                return Err(DecodeError::new(
                    Reason::InvalidField,
                    format!(
                        "create-user: `full_name` is over {} bytes",
                        limits.max_name_bytes
                    ),
                ));
            }
            Event::CreateUser(CreateUser {
                username,
                full_name,
                created,
            })
        }
        EventKind::PhotoUpload => {
            let username = name("username", w.username.take())?;
            let brands = match required(kind, "tags", w.tags.take())? {
                Tags::One(b) => vec![b],
                Tags::Many(v) => v,
            };
            if brands.is_empty() || brands.len() > limits.max_brands {
                return Err(DecodeError::new(
                    Reason::InvalidField,
                    format!(
                        "photo-upload: `tags` must name 1 to {} brands",
                        limits.max_brands
                    ),
                ));
            }
            let brands = brands
                .into_iter()
                .map(|b| {
                    let t = b.trim();
                    if t.is_empty() || t.len() > limits.max_brand_bytes {
                        return Err(DecodeError::new(
                            Reason::InvalidField,
                            format!(
                                "photo-upload: a brand in `tags` is empty or over {} bytes",
                                limits.max_brand_bytes
                            ),
                        ));
                    }
                    Ok(if t.len() == b.len() {
                        b
                    } else {
                        Cow::Owned(t.to_owned())
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let photo_link = text_field(
                "photo_link",
                required(kind, "photo_link", w.photo_link.take())?,
            )?;
            let latitude = coordinate("latitude", w.latitude.take(), 90.0)?;
            let longitude = coordinate("longitude", w.longitude.take(), 180.0)?;
            Event::PhotoUpload(PhotoUpload {
                username,
                brands,
                photo_link,
                created,
                latitude,
                longitude,
            })
        }
        EventKind::Follow | EventKind::Unfollow => {
            let followed = name("followed_username", w.followed_username.take())?;
            let follower = name("follower_username", w.follower_username.take())?;
            if followed == follower {
                return Err(DecodeError::new(
                    Reason::SelfFollow,
                    format!("{kind}: {follower:?} cannot {kind} themselves"),
                ));
            }
            let edge = Edge {
                followed,
                follower,
                created,
            };
            if kind == EventKind::Follow {
                Event::Follow(edge)
            } else {
                Event::Unfollow(edge)
            }
        }
        EventKind::Like | EventKind::Comment => {
            let owner = name("followed_username", w.followed_username.take())?;
            let actor = name("follower_username", w.follower_username.take())?;
            let photo = time_field(kind, "photo_id", w.photo_id.take())?;
            let text = if kind == EventKind::Comment {
                Some(text_field("text", required(kind, "text", w.text.take())?)?)
            } else {
                None
            };
            let e = Engagement {
                owner,
                actor,
                photo,
                created,
                text,
            };
            if kind == EventKind::Like {
                Event::Like(e)
            } else {
                Event::Comment(e)
            }
        }
    })
}

fn required<T>(kind: EventKind, field: &'static str, v: Option<T>) -> Result<T, DecodeError> {
    v.ok_or_else(|| {
        DecodeError::new(
            Reason::MissingField,
            format!("{kind}: `{field}` is missing"),
        )
    })
}

fn time_field(
    kind: EventKind,
    field: &'static str,
    v: Option<Cow<'_, str>>,
) -> Result<Millis, DecodeError> {
    let v = required(kind, field, v)?;
    parse_time(&v).map_err(|e| {
        DecodeError::new(
            Reason::InvalidTime,
            format!("{kind}: `{field}` {:?}: {e}", truncate(&v, 40)),
        )
    })
}

fn coordinate(
    field: &'static str,
    v: Option<NumOrStr<'_>>,
    bound: f64,
) -> Result<f64, DecodeError> {
    let v = required(EventKind::PhotoUpload, field, v)?;
    let x = match v {
        NumOrStr::Num(x) => x,
        NumOrStr::Str(s) => s.trim().parse::<f64>().map_err(|_| {
            DecodeError::new(
                Reason::InvalidCoordinates,
                format!(
                    "photo-upload: `{field}` {:?} is not a number",
                    truncate(&s, 40)
                ),
            )
        })?,
    };
    if !x.is_finite() || x.abs() > bound {
        return Err(DecodeError::new(
            Reason::InvalidCoordinates,
            format!("photo-upload: `{field}` {x} is outside ±{bound}"),
        ));
    }
    Ok(x)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Whether `link` may be shown as a link or an image: only http(s) URLs.
pub fn is_http_url(link: &str) -> bool {
    let l = link.trim_start();
    let lower = l.get(..8).unwrap_or(l).to_ascii_lowercase();
    (lower.starts_with("http://") && l.len() > 7) || (lower.starts_with("https://") && l.len() > 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: [&str; 6] = [
        r#"{"username": "billyjoel219", "full_name": "Billy Joel", "created_time": "2017-06-12 19:42:07", "event": "create-user"}"#,
        r#"{"username": "billyjoel219", "tags": "Apple, Inc.", "photo_link": "2017-06-12 19:42:07", "created_time": "2017-06-20 05:30:22", "latitude": "46.265", "longitude": "26.623", "event": "photo-upload"}"#,
        r#"{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "created_time": "2017-06-12 19:42:07", "event": "follow"}"#,
        r#"{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "photo_id": "2017-06-12 19:42:07", "created_time": "2017-06-22 12:49:09", "event": "like"}"#,
        r#"{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "photo_id": "2017-06-12 19:42:07", "text": "E pluribus unum", "created_time": "2017-06-22 12:49:09", "event": "comment"}"#,
        r#"{"followed_username": "billyjoel219", "follower_username": "neildiamond54", "created_time": "2017-06-22 19:42:07", "event": "unfollow"}"#,
    ];

    fn ok(s: &str) -> Event<'_> {
        decode(s.as_bytes(), None, &DecodeLimits::default()).unwrap()
    }

    fn reason(s: &str) -> Reason {
        decode(s.as_bytes(), None, &DecodeLimits::default())
            .unwrap_err()
            .reason
    }

    #[test]
    fn strings_borrow_from_the_payload_unless_escaped() {
        match ok(ORIGINAL[4]) {
            Event::Comment(c) => {
                assert!(matches!(c.owner, Cow::Borrowed(_)), "{:?}", c.owner);
                assert!(matches!(c.actor, Cow::Borrowed(_)), "{:?}", c.actor);
                assert!(matches!(c.text, Some(Cow::Borrowed(_))), "{:?}", c.text);
            }
            other => panic!("{other:?}"),
        }
        let escaped = r#"{"username": "bil\u006cy", "full_name": "B\"J", "created_time": "2017-06-12 19:42:07", "event": "create-user"}"#;
        match ok(escaped) {
            Event::CreateUser(u) => {
                assert_eq!(u.username, "billy");
                assert_eq!(u.full_name, "B\"J");
            }
            other => panic!("{other:?}"),
        }
        // null is still an absent field.
        assert_eq!(
            reason(
                r#"{"username": null, "full_name": "x", "created_time": "2017-06-12 19:42:07", "event": "create-user"}"#
            ),
            Reason::MissingField
        );
    }

    #[test]
    fn the_six_original_payloads_decode_verbatim() {
        let kinds: Vec<_> = ORIGINAL.iter().map(|s| ok(s).kind()).collect();
        assert_eq!(
            kinds,
            [
                EventKind::CreateUser,
                EventKind::PhotoUpload,
                EventKind::Follow,
                EventKind::Like,
                EventKind::Comment,
                EventKind::Unfollow
            ]
        );
        match ok(ORIGINAL[1]) {
            Event::PhotoUpload(p) => {
                assert_eq!(
                    p.brands,
                    vec!["Apple, Inc."],
                    "tags is one brand, never split"
                );
                assert_eq!((p.latitude, p.longitude), (46.265, 26.623));
                assert_eq!(p.photo_link, "2017-06-12 19:42:07");
            }
            other => panic!("{other:?}"),
        }
        match ok(ORIGINAL[4]) {
            Event::Comment(c) => {
                assert_eq!(c.owner, "billyjoel219");
                assert_eq!(c.actor, "neildiamond54");
                assert_eq!(c.photo, parse_time("2017-06-12 19:42:07").unwrap());
                assert_eq!(c.text.as_deref(), Some("E pluribus unum"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn original_json_round_trips() {
        for s in ORIGINAL {
            let e = ok(s);
            let again = e.to_original_json();
            assert_eq!(ok(&again), e, "{again}");
        }
    }

    #[test]
    fn unknown_fields_numbers_and_arrays_are_accepted() {
        let e = ok(
            r#"{"username":"a","tags":["Nike","Apple, Inc."],"photo_link":"x","created_time":"2017-06-20T05:30:22Z","latitude":46.2,"longitude":-26,"event":"photo-upload","partition_date":"2017-06-20"}"#,
        );
        match e {
            Event::PhotoUpload(p) => {
                assert_eq!(p.brands, vec!["Nike", "Apple, Inc."]);
                assert_eq!(p.longitude, -26.0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_topic_supplies_a_missing_event_field() {
        let s = r#"{"followed_username":"a","follower_username":"b","created_time":"2017-06-12 19:42:07"}"#;
        assert_eq!(reason(s), Reason::MissingEvent);
        let e = decode(
            s.as_bytes(),
            Some(EventKind::Unfollow),
            &DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!(e.kind(), EventKind::Unfollow);
    }

    #[test]
    fn each_kind_of_bad_input_has_its_own_reason() {
        let limits = DecodeLimits {
            max_message_bytes: 300,
            ..DecodeLimits::default()
        };
        let big = format!(
            r#"{{"event":"create-user","username":"{}"}}"#,
            "x".repeat(400)
        );
        assert_eq!(
            decode(big.as_bytes(), None, &limits).unwrap_err().reason,
            Reason::Oversized
        );
        assert_eq!(reason("not json"), Reason::NotJson);
        assert_eq!(reason(r#"{"event":"like""#), Reason::NotJson);
        assert_eq!(reason("[1,2]"), Reason::NotJson);
        assert_eq!(reason(r#"["like","a"]"#), Reason::NotJson);
        assert_eq!(reason(r#"{"event":"poke"}"#), Reason::UnknownEvent);
        assert_eq!(reason(r#"{"username":"a"}"#), Reason::MissingEvent);
        assert_eq!(
            reason(
                r#"{"event":"create-user","username":"a","created_time":"2017-06-12 19:42:07"}"#
            ),
            Reason::MissingField
        );
        assert_eq!(
            reason(
                r#"{"event":"create-user","username":7,"full_name":"A","created_time":"2017-06-12 19:42:07"}"#
            ),
            Reason::InvalidField
        );
        assert_eq!(
            reason(
                r#"{"event":"create-user","username":"  ","full_name":"A","created_time":"2017-06-12 19:42:07"}"#
            ),
            Reason::InvalidField
        );
        assert_eq!(
            reason(
                r#"{"event":"create-user","username":"a","full_name":"A","created_time":"2017-02-30 00:00:00"}"#
            ),
            Reason::InvalidTime
        );
        assert_eq!(
            reason(
                r#"{"event":"photo-upload","username":"a","tags":"Nike","photo_link":"","created_time":"2017-06-12 19:42:07","latitude":"91","longitude":"0"}"#
            ),
            Reason::InvalidCoordinates
        );
        assert_eq!(
            reason(
                r#"{"event":"photo-upload","username":"a","tags":"Nike","photo_link":"","created_time":"2017-06-12 19:42:07","latitude":"north","longitude":"0"}"#
            ),
            Reason::InvalidCoordinates
        );
        assert_eq!(
            reason(
                r#"{"event":"photo-upload","username":"a","tags":[],"photo_link":"","created_time":"2017-06-12 19:42:07","latitude":"1","longitude":"0"}"#
            ),
            Reason::InvalidField
        );
        assert_eq!(
            reason(
                r#"{"event":"follow","followed_username":"a","follower_username":"a","created_time":"2017-06-12 19:42:07"}"#
            ),
            Reason::SelfFollow
        );
        assert_eq!(
            reason(
                r#"{"event":"like","followed_username":"a","follower_username":"b","photo_id":"last tuesday","created_time":"2017-06-12 19:42:07"}"#
            ),
            Reason::InvalidTime
        );
    }

    #[test]
    fn a_record_that_is_not_utf8_says_where() {
        let mut raw = br#"{"event":"create-user","username":"ab","full_name":"A","created_time":"2017-06-12 19:42:07"}"#.to_vec();
        raw[37] = 0xff;
        let e = decode(&raw, None, &DecodeLimits::default()).unwrap_err();
        assert_eq!(e.reason, Reason::NotJson);
        assert_eq!(e.detail, "invalid unicode code point at line 1 column 38");
        // Escapes and multi-byte text still decode, the same either way.
        let ok = r#"{"event":"create-user","username":"ab\u00e9","full_name":"Zoë","created_time":"2017-06-12 19:42:07"}"#;
        match decode(ok.as_bytes(), None, &DecodeLimits::default()).unwrap() {
            Event::CreateUser(c) => assert_eq!((&*c.username, &*c.full_name), ("abé", "Zoë")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_http_links_are_links() {
        assert!(is_http_url("https://example.com/logo.png"));
        assert!(is_http_url("HTTP://example.com"));
        assert!(!is_http_url("2017-06-12 19:42:07"));
        assert!(!is_http_url("javascript:alert(1)"));
        assert!(!is_http_url("https://"));
    }

    #[test]
    fn coordinates_are_written_as_the_original_did() {
        assert_eq!(format_coordinate(46.265), "46.265");
        assert_eq!(format_coordinate(-26.0), "-26");
        assert_eq!(format_coordinate(0.0), "0");
    }
}
