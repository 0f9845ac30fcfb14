//! The original producer's JSON, written straight into a byte buffer.
//!
//! `Event::to_original_json` in `instabrand-shared` builds a `serde_json::Value`, which
//! allocates a map per event; the file writer and the benchmark emit millions of events,
//! so this writes the fixed shapes directly. Key order and spacing follow the original
//! payloads (`{"username": "…", …, "event": "create-user"}`).

use instabrand_shared::event::{Edge, Engagement, Event};
use instabrand_shared::time::{MS_PER_DAY, MS_PER_SEC, civil_from_days};

/// Appends `event` as one NDJSON line (newline included) in the exact original JSON
/// shape: string-typed coordinates, naive UTC timestamps, one brand as a string in
/// `tags` (several, an extension, as an array). `instabrand_shared::decode` reads the
/// line back to an equal event whenever the event's times are whole seconds and its
/// coordinates have at most six decimals, as every generated event does.
pub fn write_original_json(event: &Event<'_>, out: &mut Vec<u8>) {
    match event {
        Event::CreateUser(e) => {
            out.extend_from_slice(b"{\"username\": ");
            string(out, &e.username);
            out.extend_from_slice(b", \"full_name\": ");
            string(out, &e.full_name);
            time_field(out, b", \"created_time\": ", e.created);
            out.extend_from_slice(b", \"event\": \"create-user\"}\n");
        }
        Event::PhotoUpload(e) => {
            out.extend_from_slice(b"{\"username\": ");
            string(out, &e.username);
            out.extend_from_slice(b", \"tags\": ");
            if let [one] = e.brands.as_slice() {
                string(out, one);
            } else {
                out.push(b'[');
                for (i, b) in e.brands.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    string(out, b);
                }
                out.push(b']');
            }
            out.extend_from_slice(b", \"photo_link\": ");
            string(out, &e.photo_link);
            time_field(out, b", \"created_time\": ", e.created);
            out.extend_from_slice(b", \"latitude\": \"");
            coordinate(out, e.latitude);
            out.extend_from_slice(b"\", \"longitude\": \"");
            coordinate(out, e.longitude);
            out.extend_from_slice(b"\", \"event\": \"photo-upload\"}\n");
        }
        Event::Follow(e) => edge(out, e, b"follow"),
        Event::Unfollow(e) => edge(out, e, b"unfollow"),
        Event::Like(e) => engagement(out, e, None),
        Event::Comment(e) => engagement(out, e, Some(e.text.as_deref().unwrap_or(""))),
    }
}

fn edge(out: &mut Vec<u8>, e: &Edge<'_>, kind: &[u8]) {
    out.extend_from_slice(b"{\"followed_username\": ");
    string(out, &e.followed);
    out.extend_from_slice(b", \"follower_username\": ");
    string(out, &e.follower);
    time_field(out, b", \"created_time\": ", e.created);
    event_field(out, kind);
}

/// A like when `text` is `None`, a comment otherwise (a comment without text is written
/// with an empty one, as `Event::to_original_json` does).
fn engagement(out: &mut Vec<u8>, e: &Engagement<'_>, text: Option<&str>) {
    out.extend_from_slice(b"{\"followed_username\": ");
    string(out, &e.owner);
    out.extend_from_slice(b", \"follower_username\": ");
    string(out, &e.actor);
    time_field(out, b", \"photo_id\": ", e.photo);
    if let Some(text) = text {
        out.extend_from_slice(b", \"text\": ");
        string(out, text);
    }
    time_field(out, b", \"created_time\": ", e.created);
    event_field(out, if text.is_some() { b"comment" } else { b"like" });
}

fn event_field(out: &mut Vec<u8>, kind: &[u8]) {
    out.extend_from_slice(b", \"event\": \"");
    out.extend_from_slice(kind);
    out.extend_from_slice(b"\"}\n");
}

/// A JSON string literal. Runs of bytes that need no escape are copied in one go; UTF-8
/// beyond ASCII is valid JSON as it stands and is copied unchanged.
fn string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn time_field(out: &mut Vec<u8>, key: &[u8], ms: i64) {
    out.extend_from_slice(key);
    out.push(b'"');
    naive_time(out, ms);
    out.push(b'"');
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, as `instabrand_shared::time::format_naive` writes it,
/// without the `String` it allocates.
fn naive_time(out: &mut Vec<u8>, ms: i64) {
    let days = ms.div_euclid(MS_PER_DAY);
    let sod = ms.rem_euclid(MS_PER_DAY) / MS_PER_SEC;
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        // Outside four-digit years the fixed-width fast path does not apply.
        out.extend_from_slice(instabrand_shared::time::format_naive(ms).as_bytes());
        return;
    }
    let y = y as u32;
    let two = |v: u32| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    let [c, yy] = [y / 100, y % 100].map(two);
    out.extend_from_slice(&[
        c[0],
        c[1],
        yy[0],
        yy[1],
        b'-',
        two(m)[0],
        two(m)[1],
        b'-',
        two(d)[0],
        two(d)[1],
        b' ',
    ]);
    let (h, mi, s) = (
        (sod / 3600) as u32,
        ((sod / 60) % 60) as u32,
        (sod % 60) as u32,
    );
    let [h, mi, s] = [h, mi, s].map(two);
    out.extend_from_slice(&[h[0], h[1], b':', mi[0], mi[1], b':', s[0], s[1]]);
}

/// Up to six decimals with trailing zeros trimmed (`46.265`, `-26`, `0`), the format of
/// `instabrand_shared::event::format_coordinate`.
fn coordinate(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() || v.abs() >= 1e12 {
        // Not a coordinate any decoder accepts; keep the shared formatter's spelling.
        out.extend_from_slice(instabrand_shared::event::format_coordinate(v).as_bytes());
        return;
    }
    let micro = (v * 1e6).round() as i64;
    if micro < 0 {
        out.push(b'-');
    }
    let micro = micro.unsigned_abs();
    let (whole, mut frac) = (micro / 1_000_000, micro % 1_000_000);
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut w = whole;
    loop {
        digits[n] = b'0' + (w % 10) as u8;
        n += 1;
        w /= 10;
        if w == 0 {
            break;
        }
    }
    out.extend(digits[..n].iter().rev());
    if frac != 0 {
        let mut places = 6;
        while frac % 10 == 0 {
            frac /= 10;
            places -= 1;
        }
        out.push(b'.');
        for p in (0..places).rev() {
            out.push(b'0' + (frac / 10u64.pow(p) % 10) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use instabrand_shared::event::{CreateUser, PhotoUpload, format_coordinate};
    use instabrand_shared::time::{format_naive, parse_time};
    use instabrand_shared::{DecodeLimits, decode};

    use super::*;

    fn line(e: &Event<'_>) -> String {
        let mut out = Vec::new();
        write_original_json(e, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn round_trip(e: &Event<'_>) -> Event<'static> {
        let l = line(e);
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1, "{l:?}");
        decode(l.as_bytes(), None, &DecodeLimits::default())
            .unwrap_or_else(|err| panic!("{err}: {l}"))
            .into_owned()
    }

    fn comment(text: &str) -> Event<'_> {
        Event::Comment(Engagement {
            owner: Cow::Borrowed("billyjoel219"),
            actor: Cow::Borrowed("neildiamond54"),
            photo: parse_time("2017-06-12 19:42:07").unwrap(),
            created: parse_time("2017-06-22 12:49:09").unwrap(),
            text: Some(Cow::Borrowed(text)),
        })
    }

    #[test]
    fn the_original_shape_is_written_exactly() {
        let e = Event::CreateUser(CreateUser {
            username: "billyjoel219".into(),
            full_name: "Billy Joel".into(),
            created: parse_time("2017-06-12 19:42:07").unwrap(),
        });
        assert_eq!(
            line(&e),
            "{\"username\": \"billyjoel219\", \"full_name\": \"Billy Joel\", \"created_time\": \"2017-06-12 19:42:07\", \"event\": \"create-user\"}\n"
        );
        let p = Event::PhotoUpload(PhotoUpload {
            username: "billyjoel219".into(),
            brands: vec!["Apple, Inc.".into()],
            photo_link: "2017-06-12 19:42:07".into(),
            created: parse_time("2017-06-20 05:30:22").unwrap(),
            latitude: 46.265,
            longitude: 26.623,
        });
        assert_eq!(
            line(&p),
            "{\"username\": \"billyjoel219\", \"tags\": \"Apple, Inc.\", \"photo_link\": \"2017-06-12 19:42:07\", \"created_time\": \"2017-06-20 05:30:22\", \"latitude\": \"46.265\", \"longitude\": \"26.623\", \"event\": \"photo-upload\"}\n"
        );
        assert_eq!(
            line(&comment("E pluribus unum")),
            "{\"followed_username\": \"billyjoel219\", \"follower_username\": \"neildiamond54\", \"photo_id\": \"2017-06-12 19:42:07\", \"text\": \"E pluribus unum\", \"created_time\": \"2017-06-22 12:49:09\", \"event\": \"comment\"}\n"
        );
    }

    #[test]
    fn quotes_backslashes_control_chars_and_unicode_are_escaped_correctly() {
        let nasty =
            "say \"hi\" \\ back\nslash\t\r\u{8}\u{c}\u{0}\u{1f}\u{7f} <3 & L'Oréal 😍 \u{2028}";
        let l = line(&comment(nasty));
        assert!(
            l.contains(r#"say \"hi\" \\ back\nslash\t\r\b\f\u0000\u001f"#),
            "{l}"
        );
        assert!(
            l.contains("<3 & L'Oréal 😍"),
            "unicode and HTML characters stay raw: {l}"
        );
        assert_eq!(round_trip(&comment(nasty)), comment(nasty));
        // serde_json agrees it is one valid JSON document.
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["text"], nasty);
    }

    #[test]
    fn likes_carry_no_text_and_comments_always_do() {
        let Event::Comment(mut c) = comment("x") else {
            unreachable!()
        };
        c.text = None;
        assert!(line(&Event::Comment(c.clone())).contains(r#""text": """#));
        c.text = Some("ignored".into());
        let like = line(&Event::Like(c));
        assert!(
            !like.contains("text") && like.contains(r#""event": "like""#),
            "{like}"
        );
    }

    #[test]
    fn several_brands_are_written_as_an_array() {
        let p = Event::PhotoUpload(PhotoUpload {
            username: "a".into(),
            brands: vec!["Nike".into(), "Apple, Inc.".into()],
            photo_link: "https://x.example/a.jpg".into(),
            created: 0,
            latitude: -33.8688,
            longitude: 151.2093,
        });
        assert!(line(&p).contains(r#""tags": ["Nike", "Apple, Inc."]"#));
        assert_eq!(round_trip(&p), p);
    }

    #[test]
    fn times_and_coordinates_match_the_shared_formatters() {
        for s in [
            "1970-01-01 00:00:00",
            "2017-06-12 19:42:07",
            "1999-12-31 23:59:59",
            "2024-02-29 00:00:00",
            "1969-12-31 23:59:59",
        ] {
            let ms = parse_time(s).unwrap();
            let mut out = Vec::new();
            naive_time(&mut out, ms);
            assert_eq!(String::from_utf8(out).unwrap(), format_naive(ms));
        }
        for v in [
            0.0, -0.0, 46.265, -26.0, 89.9999, -179.5, 0.000001, -0.05, 12.3456, 180.0,
        ] {
            let mut out = Vec::new();
            coordinate(&mut out, v);
            let s = String::from_utf8(out).unwrap();
            assert_eq!(s.parse::<f64>().unwrap(), v, "{s}");
            if v != 0.0 {
                assert_eq!(s, format_coordinate(v));
            }
        }
    }
}
