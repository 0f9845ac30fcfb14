//! A date range chosen on the brand and compare pages, kept in the URL next to the
//! window: `range=7d` (a preset, ending at the stream's clock) or `from=…&to=…` (RFC
//! 3339, `YYYY-MM-DDTHH:MM` as a datetime input writes it, or milliseconds; `to`
//! optional, meaning the stream's clock). A range takes the place of the window on
//! those pages' chart and cards; choosing a window again drops it.
//!
//! Presets end at the stream's clock, not the browser's: event time may be years
//! behind the wall clock (a replay), and the server's `to` already defaults to it.

use instabrand_shared::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MIN, Millis};

use crate::route::{query_param, set_param};

/// (URL key, label, length).
pub const PRESETS: [(&str, &str, Millis); 8] = [
    ("5m", "Last 5 min", 5 * MS_PER_MIN),
    ("1h", "Last hour", MS_PER_HOUR),
    ("24h", "Last 24 h", 24 * MS_PER_HOUR),
    ("7d", "Last 7 days", 7 * MS_PER_DAY),
    ("30d", "Last 30 days", 30 * MS_PER_DAY),
    ("90d", "Last 90 days", 90 * MS_PER_DAY),
    ("1y", "Last year", 365 * MS_PER_DAY),
    ("2y", "Last 2 years", 730 * MS_PER_DAY),
];

/// The query parameters a range occupies; all are dropped when another is chosen.
const PARAMS: [&str; 3] = ["range", "from", "to"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// A preset: its URL key and length, ending at the stream's clock.
    Last(&'static str, Millis),
    /// Exact bounds as written in the URL; `to: None` ends at the stream's clock.
    Between { from: String, to: Option<String> },
}

impl Range {
    /// The range named by a query string; `range` wins over `from`/`to`. An unknown
    /// preset is no range (the window shows), a bad `from` is passed on for the
    /// server to explain.
    pub fn from_search(search: &str) -> Option<Range> {
        if let Some(key) = query_param(search, "range") {
            return PRESETS
                .iter()
                .find(|(k, _, _)| *k == key)
                .map(|&(k, _, len)| Range::Last(k, len));
        }
        let from = query_param(search, "from").filter(|f| !f.is_empty())?;
        let to = query_param(search, "to").filter(|t| !t.is_empty());
        Some(Range::Between { from, to })
    }

    /// `search` with this range (or none) in place of whatever range it held.
    pub fn write(range: Option<&Range>, search: &str) -> String {
        let mut s = PARAMS
            .iter()
            .fold(search.to_string(), |s, p| set_param(&s, p, None));
        match range {
            None => {}
            Some(Range::Last(key, _)) => s = set_param(&s, "range", Some(key)),
            Some(Range::Between { from, to }) => {
                s = set_param(&s, "from", Some(from));
                if let Some(to) = to {
                    s = set_param(&s, "to", Some(to));
                }
            }
        }
        s
    }

    /// Whether the range grows with the stream (and so is re-read while open).
    pub fn ends_now(&self) -> bool {
        matches!(self, Range::Last(..) | Range::Between { to: None, .. })
    }

    /// Whether the request needs the stream's clock first (presets count back from it).
    pub fn needs_clock(&self) -> bool {
        matches!(self, Range::Last(..))
    }

    pub fn label(&self) -> String {
        match self {
            Range::Last(key, _) => PRESETS
                .iter()
                .find(|(k, _, _)| k == key)
                .map_or_else(|| key.to_string(), |p| p.1.to_string()),
            Range::Between { from, to } => {
                format!("{} – {}", from, to.as_deref().unwrap_or("now"))
            }
        }
    }

    /// A short token for file names: `7d`, or the bounds.
    pub fn file_token(&self) -> String {
        match self {
            Range::Last(key, _) => key.to_string(),
            Range::Between { from, to } => {
                format!("{from}-{}", to.as_deref().unwrap_or("now")).replace([':', ' '], "")
            }
        }
    }

    /// The `from=…&to=…` of a series request; `clock_ms` is the stream's clock (used
    /// by presets only). A preset sends `to` too, so the request is reproducible from
    /// what the page shows (the end-to-end test repeats it against REST).
    pub fn query(&self, clock_ms: Millis) -> String {
        match self {
            Range::Last(_, len) => format!("from={}&to={clock_ms}", clock_ms - len),
            Range::Between { from, to } => {
                let mut q = format!(
                    "from={}",
                    crate::route::encode_component(&server_time(from))
                );
                if let Some(to) = to {
                    q.push_str(&format!(
                        "&to={}",
                        crate::route::encode_component(&server_time(to))
                    ));
                }
                q
            }
        }
    }
}

/// A datetime input's `YYYY-MM-DDTHH:MM[:SS]` completed to RFC 3339 (the server's
/// parser wants seconds, and a zone after a `T`): the dashboard reads every time as
/// UTC, so this one is too. Anything else goes as written, and the server says what
/// is wrong with it.
pub fn server_time(s: &str) -> String {
    let b = s.as_bytes();
    let zoneless = b.len() >= 16 && b[10] == b'T' && b[13] == b':';
    match b.len() {
        16 if zoneless => format!("{s}:00Z"),
        19 if zoneless && b[16] == b':' => format!("{s}Z"),
        _ => s.to_string(),
    }
}

/// A URL time as a datetime input's value (`YYYY-MM-DDTHH:MM`), when it is one.
pub fn input_value(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 16 && b[4] == b'-' && (b[10] == b'T' || b[10] == b' ') {
        format!("{}T{}", &s[..10], &s[11..16])
    } else {
        String::new()
    }
}

/// How a resolution reads next to a chart.
pub fn resolution_label(r: instabrand_shared::api::Resolution) -> &'static str {
    match r {
        instabrand_shared::api::Resolution::Minute => "by minute",
        instabrand_shared::api::Resolution::Hour => "hourly",
        instabrand_shared::api::Resolution::Day => "daily",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_or_bounds_round_trip_through_the_query_string() {
        let r = Range::from_search("?window=1h&range=7d").unwrap();
        assert_eq!(r, Range::Last("7d", 7 * MS_PER_DAY));
        assert!(r.ends_now() && r.needs_clock());
        assert_eq!(Range::write(Some(&r), "?window=1h"), "?window=1h&range=7d");

        let b = Range::Between {
            from: "2017-06-05T10:00".into(),
            to: Some("2017-06-12T10:00".into()),
        };
        let s = Range::write(Some(&b), "?window=1h&range=7d");
        assert_eq!(
            s,
            "?window=1h&from=2017-06-05T10%3A00&to=2017-06-12T10%3A00"
        );
        assert_eq!(Range::from_search(&s), Some(b.clone()));
        assert!(!b.ends_now());
        assert_eq!(
            b.query(0),
            "from=2017-06-05T10%3A00%3A00Z&to=2017-06-12T10%3A00%3A00Z"
        );
        assert_eq!(Range::write(None, &s), "?window=1h");
    }

    #[test]
    fn a_preset_counts_back_from_the_stream_clock() {
        let r = Range::Last("1h", MS_PER_HOUR);
        assert_eq!(r.query(10 * MS_PER_HOUR), "from=32400000&to=36000000");
    }

    #[test]
    fn no_range_unknown_presets_and_open_ends() {
        assert_eq!(Range::from_search("?window=5m"), None);
        assert_eq!(Range::from_search("?range=3w"), None);
        let open = Range::from_search("?from=1497000000000").unwrap();
        assert!(open.ends_now() && !open.needs_clock());
        assert_eq!(open.query(0), "from=1497000000000");
        assert_eq!(input_value("2017-06-05 10:00:00"), "2017-06-05T10:00");
        assert_eq!(server_time("2017-06-05T10:00:30"), "2017-06-05T10:00:30Z");
        assert_eq!(
            server_time("2017-06-05T10:00:00+02:00"),
            "2017-06-05T10:00:00+02:00"
        );
        assert_eq!(input_value("1497000000000"), "");
    }
}
