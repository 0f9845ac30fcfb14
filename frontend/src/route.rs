//! The dashboard's client-side routes, parsed from and written to URL paths. The server
//! answers every unknown path with index.html, so `/brand/Apple%2C%20Inc.` or
//! `/feed/bob` opened directly land here. Brand names carry commas, spaces, apostrophes
//! and ampersands, so path segments are percent-encoded exactly like
//! `encodeURIComponent`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Overview,
    Brand(String),
    Map,
    /// `None`: the user search page.
    Feed(Option<String>),
    Health,
    Present,
    /// Brands side by side; which ones is in the query (`?brands=A,B`).
    Compare,
    NotFound(String),
}

impl Route {
    pub fn parse(path: &str) -> Route {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [] | ["overview"] => Route::Overview,
            ["brand", name] => Route::Brand(decode_component(name)),
            ["map"] => Route::Map,
            ["feed"] | ["feeds"] => Route::Feed(None),
            ["feed", user] => Route::Feed(Some(decode_component(user))),
            ["health"] => Route::Health,
            ["present"] => Route::Present,
            ["compare"] => Route::Compare,
            _ => Route::NotFound(path.to_string()),
        }
    }

    pub fn href(&self) -> String {
        match self {
            Route::Overview => "/".into(),
            Route::Brand(b) => format!("/brand/{}", encode_component(b)),
            Route::Map => "/map".into(),
            Route::Feed(None) => "/feed".into(),
            Route::Feed(Some(u)) => format!("/feed/{}", encode_component(u)),
            Route::Health => "/health".into(),
            Route::Present => "/present".into(),
            Route::Compare => "/compare".into(),
            Route::NotFound(p) => p.clone(),
        }
    }
}

/// Percent-encodes everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`, as
/// `encodeURIComponent` does, so the server's router sees one path segment.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reverses [`encode_component`]; malformed escapes are kept literally, invalid UTF-8
/// is replaced, so any typed URL shows something instead of failing.
pub fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` in a query string such as `?every=20&bench=20000`.
pub fn query_param(search: &str, name: &str) -> Option<String> {
    search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode_component(&v.replace('+', " ")))
}

/// The raw (still percent-encoded) value of `name`, for values that are lists of
/// encoded items: a `,` inside a brand name arrives as `%2C`, so splitting the raw
/// value on `,` never cuts a name.
pub fn raw_param<'a>(search: &'a str, name: &str) -> Option<&'a str> {
    search
        .trim_start_matches('?')
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `brands=Nike,Apple%2C%20Inc.` as `["Nike", "Apple, Inc."]`; empty items dropped.
pub fn list_param(search: &str, name: &str) -> Vec<String> {
    raw_param(search, name)
        .map(|raw| {
            raw.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| decode_component(&s.replace('+', " ")))
                .collect()
        })
        .unwrap_or_default()
}

/// Items joined with `,`, each encoded on its own: the value for [`set_raw_param`].
pub fn encode_list<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| encode_component(s.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

/// `search` with `name` set to `value` (encoded here), or removed when `None`;
/// other parameters keep their place, a new one goes last. Returns `""` or `?…`.
pub fn set_param(search: &str, name: &str, value: Option<&str>) -> String {
    set_raw_param(search, name, value.map(encode_component).as_deref())
}

/// [`set_param`] with a value that is already encoded (a list from [`encode_list`]).
pub fn set_raw_param(search: &str, name: &str, raw: Option<&str>) -> String {
    let mut pairs: Vec<String> = Vec::new();
    let mut placed = false;
    for pair in search.trim_start_matches('?').split('&') {
        if pair.is_empty() {
            continue;
        }
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if key != name {
            pairs.push(pair.to_string());
        } else if let (Some(v), false) = (raw, placed) {
            pairs.push(format!("{name}={v}"));
            placed = true;
        }
    }
    if let (Some(v), false) = (raw, placed) {
        pairs.push(format!("{name}={v}"));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_names_with_punctuation_round_trip_through_the_path() {
        for brand in [
            "Apple, Inc.",
            "L'Oréal",
            "Ben & Jerry's",
            "Nike",
            "100% / slash?",
        ] {
            let route = Route::Brand(brand.into());
            let href = route.href();
            assert!(!href[7..].contains(['/', ' ', ',', '?', '&']), "{href}");
            assert_eq!(Route::parse(&href), route);
        }
        assert_eq!(
            Route::Brand("Apple, Inc.".into()).href(),
            "/brand/Apple%2C%20Inc."
        );
    }

    #[test]
    fn every_page_has_a_path() {
        assert_eq!(Route::parse("/"), Route::Overview);
        assert_eq!(Route::parse("/map?bench=20000"), Route::Map);
        assert_eq!(Route::parse("/feed"), Route::Feed(None));
        assert_eq!(Route::parse("/feed/bob/"), Route::Feed(Some("bob".into())));
        assert_eq!(Route::parse("/health"), Route::Health);
        assert_eq!(Route::parse("/present"), Route::Present);
        assert_eq!(Route::parse("/nope/x"), Route::NotFound("/nope/x".into()));
    }

    #[test]
    fn malformed_escapes_are_kept_not_fatal() {
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("a%zzb"), "a%zzb");
        assert_eq!(decode_component("%E2%82%AC"), "€");
        assert_eq!(decode_component("%FF"), "\u{fffd}");
    }

    #[test]
    fn query_params_are_found_and_decoded() {
        assert_eq!(
            query_param("?every=20&bench=20000", "bench").as_deref(),
            Some("20000")
        );
        assert_eq!(
            query_param("?city=New+York", "city").as_deref(),
            Some("New York")
        );
        assert_eq!(query_param("?flag", "flag").as_deref(), Some(""));
        assert_eq!(query_param("", "every"), None);
    }

    #[test]
    fn a_parameter_is_replaced_in_place_added_last_or_removed() {
        assert_eq!(set_param("", "window", Some("1h")), "?window=1h");
        assert_eq!(
            set_param("?window=5m&sort=reach", "window", Some("24h")),
            "?window=24h&sort=reach"
        );
        assert_eq!(
            set_param("?window=5m", "brand", Some("Apple, Inc.")),
            "?window=5m&brand=Apple%2C%20Inc."
        );
        assert_eq!(set_param("?window=5m&page=2", "page", None), "?window=5m");
        assert_eq!(set_param("?page=2", "page", None), "");
        assert_eq!(
            set_param("?a=1&a=2", "a", Some("3")),
            "?a=3",
            "duplicates collapse"
        );
    }

    #[test]
    fn a_list_of_brands_with_commas_survives_the_query_string() {
        let brands = ["Apple, Inc.", "Ben & Jerry's", "Nike"];
        let search = set_raw_param("?window=1h", "brands", Some(&encode_list(&brands)));
        assert_eq!(
            search,
            "?window=1h&brands=Apple%2C%20Inc.,Ben%20%26%20Jerry's,Nike"
        );
        assert_eq!(list_param(&search, "brands"), brands);
        assert_eq!(query_param(&search, "window").as_deref(), Some("1h"));
        assert!(list_param("?brands=", "brands").is_empty());
        assert_eq!(
            list_param("?brands=nike,,adidas", "brands"),
            ["nike", "adidas"]
        );
    }
}
