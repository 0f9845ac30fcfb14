//! Number and time formatting for people: compact counts (`12.3k`), percentages,
//! period-over-period change, rates and ages. Pure, so the host tests pin the exact text
//! a wall screen shows.

use instabrand_shared::Millis;
use instabrand_shared::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MIN, MS_PER_SEC};

/// `999`, `1.2k`, `12.3k`, `123k`, `1.2M`, `1.2B`: at most four significant characters,
/// so leaderboard columns stay the same width while numbers climb.
pub fn compact(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")];
    for (size, suffix) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            // Truncate rather than round, so 999_999 reads `999k`, never `1000k`.
            return if v >= 100.0 {
                format!("{:.0}{suffix}", v.floor())
            } else {
                let tenths = (v * 10.0).floor() / 10.0;
                format!("{tenths:.1}{suffix}")
            };
        }
    }
    n.to_string()
}

/// Full count with thin grouping: `1 234 567`. Used where the exact value matters.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// A size in bytes for people: `6.4 MB`, `512 KB`, `321 MB` (binary units, as `du -h`).
pub fn bytes(n: u64) -> String {
    const KB: f64 = 1024.0;
    let n = n as f64;
    if n < KB {
        format!("{n:.0} B")
    } else if n < KB * KB {
        format!("{:.0} KB", n / KB)
    } else if n < 10.0 * KB * KB * KB {
        let mb = n / (KB * KB);
        if mb < 10.0 {
            format!("{mb:.1} MB")
        } else {
            format!("{mb:.0} MB")
        }
    } else {
        format!("{:.1} GB", n / (KB * KB * KB))
    }
}

/// A fraction as a percentage: `0.1234` → `12.3%`. Small values keep two decimals so an
/// engagement rate of 0.4 % does not read as `0%`.
pub fn percent(fraction: f64) -> String {
    if !fraction.is_finite() {
        return "–".to_string();
    }
    let p = fraction * 100.0;
    if p != 0.0 && p.abs() < 1.0 {
        format!("{p:.2}%")
    } else {
        format!("{p:.1}%")
    }
}

/// Change from `previous` to `current` as signed text: `+12%`, `−5%`, `new`, `±0%`.
pub fn change(current: f64, previous: f64) -> String {
    if previous == 0.0 {
        return if current == 0.0 { "±0%" } else { "new" }.to_string();
    }
    let pct = (current - previous) / previous * 100.0;
    if pct.abs() < 0.5 {
        "±0%".to_string()
    } else if pct > 0.0 {
        format!("+{pct:.0}%")
    } else {
        format!("\u{2212}{:.0}%", -pct)
    }
}

/// Events per second: `0.4/s`, `12/s`, `1.2k/s`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        return "0/s".to_string();
    }
    if per_sec < 10.0 {
        format!("{per_sec:.1}/s")
    } else {
        format!("{}/s", compact(per_sec.round() as u64))
    }
}

/// How long ago `then` was, seen from `now`: `just now`, `42s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn age(now: Millis, then: Millis) -> String {
    let d = (now - then).max(0);
    if d < 5 * MS_PER_SEC {
        "just now".to_string()
    } else if d < MS_PER_MIN {
        format!("{}s ago", d / MS_PER_SEC)
    } else if d < MS_PER_HOUR {
        format!("{}m ago", d / MS_PER_MIN)
    } else if d < MS_PER_DAY {
        format!("{}h ago", d / MS_PER_HOUR)
    } else {
        format!("{}d ago", d / MS_PER_DAY)
    }
}

/// A duration for the health page: `42s`, `5m 03s`, `3h 07m`, `2d 04h`.
pub fn duration(ms: Millis) -> String {
    let s = ms.max(0) / MS_PER_SEC;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m {:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h {:02}m", s / 3_600, (s / 60) % 60),
        _ => format!("{}d {:02}h", s / 86_400, (s / 3_600) % 24),
    }
}

/// A count with its noun: `1 like`, `2 likes`, `1 234 comments`.
pub fn count_of(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", grouped(n), if n == 1 { one } else { many })
}

/// Event time as the original wrote it (`2017-06-12 19:42:07`, UTC).
pub fn timestamp(ms: Millis) -> String {
    instabrand_shared::time::format_naive(ms)
}

/// `HH:MM` of an event time (UTC), for chart axes and alert lists.
/// `2017-06-12T1008Z`: a moment in a file name, as the server's CSV names write it.
pub fn file_time(ms: Millis) -> String {
    let t = timestamp(ms);
    format!("{}T{}{}Z", &t[..10], &t[11..13], &t[14..16])
}

pub fn clock(ms: Millis) -> String {
    let t = timestamp(ms);
    t[11..16].to_string()
}

/// A chart's time label: `HH:MM` within about a day, else the date (`06-12`), with
/// its hour where a few days need it (`06-12 10h`).
pub fn axis_time(ms: Millis, span_ms: Millis) -> String {
    let t = timestamp(ms);
    let day = instabrand_shared::time::MS_PER_DAY;
    if span_ms <= 36 * instabrand_shared::time::MS_PER_HOUR {
        t[11..16].to_string()
    } else if span_ms <= 10 * day {
        format!("{} {}h", &t[5..10], &t[11..13])
    } else {
        t[..10].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_name_the_hour_within_a_day_then_the_day() {
        let t = 1_497_262_127_000; // 2017-06-12 10:08:47
        let h = instabrand_shared::time::MS_PER_HOUR;
        assert_eq!(axis_time(t, h), "10:08");
        assert_eq!(axis_time(t, 7 * 24 * h), "06-12 10h");
        assert_eq!(axis_time(t, 90 * 24 * h), "2017-06-12");
    }

    #[test]
    fn a_file_time_names_the_minute_in_utc() {
        assert_eq!(file_time(1_497_262_127_000), "2017-06-12T1008Z");
    }

    #[test]
    fn counts_are_compact_and_never_overflow_their_column() {
        assert_eq!(compact(0), "0");
        assert_eq!(compact(999), "999");
        assert_eq!(compact(1_000), "1.0k");
        assert_eq!(compact(1_250), "1.2k");
        assert_eq!(compact(12_345), "12.3k");
        assert_eq!(compact(99_999), "99.9k");
        assert_eq!(compact(123_456), "123k");
        assert_eq!(compact(999_999), "999k");
        assert_eq!(compact(1_000_000), "1.0M");
        assert_eq!(compact(2_500_000_000), "2.5B");
    }

    #[test]
    fn sizes_are_in_binary_units() {
        assert_eq!(bytes(900), "900 B");
        assert_eq!(bytes(512 * 1024), "512 KB");
        assert_eq!(bytes(6_710_886), "6.4 MB");
        assert_eq!(bytes(336_592_896), "321 MB");
        assert_eq!(bytes(20 << 30), "20.0 GB");
    }

    #[test]
    fn grouped_counts_use_thin_spaces() {
        assert_eq!(grouped(7), "7");
        assert_eq!(grouped(1_234), "1\u{202f}234");
        assert_eq!(grouped(1_234_567), "1\u{202f}234\u{202f}567");
    }

    #[test]
    fn small_percentages_keep_their_digits() {
        assert_eq!(percent(0.1234), "12.3%");
        assert_eq!(percent(0.004), "0.40%");
        assert_eq!(percent(0.0), "0.0%");
        assert_eq!(percent(1.0), "100.0%");
        assert_eq!(percent(f64::NAN), "–");
    }

    #[test]
    fn changes_read_as_signed_percentages() {
        assert_eq!(change(120.0, 100.0), "+20%");
        assert_eq!(change(95.0, 100.0), "\u{2212}5%");
        assert_eq!(change(100.0, 100.2), "±0%");
        assert_eq!(change(5.0, 0.0), "new");
        assert_eq!(change(0.0, 0.0), "±0%");
    }

    #[test]
    fn rates_and_ages_are_short() {
        assert_eq!(rate(0.0), "0/s");
        assert_eq!(rate(3.25), "3.2/s");
        assert_eq!(rate(1_234.0), "1.2k/s");
        assert_eq!(age(100_000, 99_000), "just now");
        assert_eq!(age(100_000, 58_000), "42s ago");
        assert_eq!(age(MS_PER_HOUR * 5, MS_PER_HOUR * 2), "3h ago");
        assert_eq!(duration(65_000), "1m 05s");
        assert_eq!(duration(MS_PER_DAY + 4 * MS_PER_HOUR), "1d 04h");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count_of(1, "like", "likes"), "1 like");
        assert_eq!(count_of(0, "like", "likes"), "0 likes");
        assert_eq!(
            count_of(1_500, "comment", "comments"),
            "1\u{202f}500 comments"
        );
    }

    #[test]
    fn clock_is_utc_hours_and_minutes() {
        let t = instabrand_shared::time::parse_time("2017-06-12 19:42:07").unwrap();
        assert_eq!(clock(t), "19:42");
        assert_eq!(timestamp(t), "2017-06-12 19:42:07");
    }
}
