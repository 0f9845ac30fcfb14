//! Event time: milliseconds since the Unix epoch, UTC.
//!
//! The original producer wrote `YYYY-MM-DD HH:MM:SS` with no zone; we read that as UTC.
//! RFC 3339 (`2017-06-12T19:42:07Z`, `…+02:00`, fractional seconds) is accepted too.
//! Parsing is hand-written because it sits on the hot path of every event and the
//! naive format is fixed-width: a general date library would cost more than the rest
//! of decoding.

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;

pub const MS_PER_SEC: i64 = 1_000;
pub const MS_PER_MIN: i64 = 60_000;
pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeError(pub &'static str);

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for TimeError {}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
/// Howard Hinnant's `days_from_civil`, exact for every year we can meet.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Parses `YYYY-MM-DD HH:MM:SS` (read as UTC) or RFC 3339.
pub fn parse_time(s: &str) -> Result<Millis, TimeError> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return Err(TimeError("timestamp too short"));
    }
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(TimeError(
            "timestamp is not YYYY-MM-DD HH:MM:SS or RFC 3339",
        ));
    }
    let sep = b[10];
    if sep != b' ' && sep != b'T' && sep != b't' {
        return Err(TimeError(
            "timestamp is not YYYY-MM-DD HH:MM:SS or RFC 3339",
        ));
    }
    let bad = || TimeError("timestamp has a non-digit where a digit belongs");
    let year = digits(&b[0..4]).ok_or_else(bad)? as i64;
    let month = digits(&b[5..7]).ok_or_else(bad)?;
    let day = digits(&b[8..10]).ok_or_else(bad)?;
    let hour = digits(&b[11..13]).ok_or_else(bad)?;
    let minute = digits(&b[14..16]).ok_or_else(bad)?;
    let second = digits(&b[17..19]).ok_or_else(bad)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(TimeError("timestamp has an impossible date"));
    }
    // 60 is a leap second in RFC 3339; fold it into the next second's start.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(TimeError("timestamp has an impossible time of day"));
    }
    let mut ms = days_from_civil(year, month, day) * MS_PER_DAY
        + hour as i64 * MS_PER_HOUR
        + minute as i64 * MS_PER_MIN
        + second as i64 * MS_PER_SEC;
    let mut rest = &b[19..];
    if rest.is_empty() {
        if sep == b' ' {
            return Ok(ms); // the original naive format
        }
        return Err(TimeError("RFC 3339 timestamp lacks a zone"));
    }
    if rest[0] == b'.' {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(TimeError("timestamp has an empty fraction"));
        }
        let frac = &rest[1..1 + n];
        let mut millis = 0i64;
        for i in 0..3 {
            millis = millis * 10 + frac.get(i).map_or(0, |c| (c - b'0') as i64);
        }
        ms += millis;
        rest = &rest[1 + n..];
    }
    match rest {
        [] if sep == b' ' => Ok(ms),
        [b'Z'] | [b'z'] => Ok(ms),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2]).ok_or_else(bad)? as i64;
            let om = digits(&[*m1, *m2]).ok_or_else(bad)? as i64;
            if oh > 23 || om > 59 {
                return Err(TimeError("timestamp has an impossible zone offset"));
            }
            let offset = oh * MS_PER_HOUR + om * MS_PER_MIN;
            Ok(if *sign == b'+' {
                ms - offset
            } else {
                ms + offset
            })
        }
        _ => Err(TimeError(
            "timestamp has trailing characters or a malformed zone",
        )),
    }
}

/// Formats as the original producer did: `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn format_naive(ms: Millis) -> String {
    let secs = ms.div_euclid(MS_PER_SEC);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// `YYYY-MM-DD` of the UTC day holding `ms` (the archive's partition key).
pub fn format_date(ms: Millis) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_naive_format_is_read_as_utc() {
        assert_eq!(parse_time("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_time("2017-06-12 19:42:07"), Ok(1_497_296_527_000));
    }

    #[test]
    fn rfc3339_with_zone_and_fraction_is_accepted() {
        assert_eq!(parse_time("2017-06-12T19:42:07Z"), Ok(1_497_296_527_000));
        assert_eq!(
            parse_time("2017-06-12T21:42:07+02:00"),
            Ok(1_497_296_527_000)
        );
        assert_eq!(
            parse_time("2017-06-12T19:42:07.250Z"),
            Ok(1_497_296_527_250)
        );
        assert_eq!(
            parse_time("2017-06-12T19:42:07.2509999-00:30"),
            Ok(1_497_296_527_250 + 30 * MS_PER_MIN)
        );
    }

    #[test]
    fn impossible_dates_and_garbage_are_refused() {
        for bad in [
            "2017-02-29 00:00:00",
            "2017-13-01 00:00:00",
            "2017-06-12 24:00:00",
            "2017-06-12",
            "2017-06-12T19:42:07",
            "2017-06-12 19:42:07 junk",
            "yesterday at noon!!",
            "2017-06-12T19:42:07+25:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad} should be refused");
        }
        assert!(parse_time("2016-02-29 00:00:00").is_ok());
    }

    #[test]
    fn formatting_round_trips() {
        for s in [
            "2017-06-12 19:42:07",
            "1999-12-31 23:59:59",
            "2024-02-29 00:00:00",
        ] {
            assert_eq!(format_naive(parse_time(s).unwrap()), s);
        }
        assert_eq!(
            format_date(parse_time("2017-06-12 19:42:07").unwrap()),
            "2017-06-12"
        );
    }
}
