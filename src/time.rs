//! Time as plain Unix seconds, and the one place that reads the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current Unix time in seconds. Handlers read it once per request and
/// pass it down; decisions take `now` as a parameter.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A duration in whole seconds as `i64`, the type of Unix times here,
/// saturating at `i64::MAX` (callers add and subtract with saturating
/// arithmetic, so a huge configured duration means "never", not overflow).
pub fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// A Unix time as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(unix: i64) -> String {
    let seconds = u64::try_from(unix).unwrap_or(0);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Parses an HTTP date into Unix seconds.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let time = httpdate::parse_http_date(text).ok()?;
    i64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()
}

/// The proleptic Gregorian (year, month, day) in UTC of Unix time `unix`
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_date(unix: i64) -> (i64, u32, u32) {
    let days = unix.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A Unix time as RFC 3339 in UTC, to the second (`2026-12-01T10:00:00Z`).
pub fn rfc3339(unix: i64) -> String {
    format!("{}T{}Z", utc_date(unix), utc_second(unix))
}

/// A Unix time as people read it in a reply (`2026-12-01 10:00:00 UTC`).
pub fn utc_text(unix: i64) -> String {
    format!("{} {} UTC", utc_date(unix), utc_second(unix))
}

/// The UTC date of `unix` (`2026-12-01`).
pub fn utc_date(unix: i64) -> String {
    let (year, month, day) = civil_date(unix);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The UTC hour and minute of `unix` (`10:05`), the seconds dropped.
pub fn utc_minute(unix: i64) -> String {
    let second = unix.rem_euclid(86_400);
    format!("{:02}:{:02}", second / 3600, second / 60 % 60)
}

/// The UTC time of day of `unix` to the second (`10:05:09`).
fn utc_second(unix: i64) -> String {
    format!("{}:{:02}", utc_minute(unix), unix.rem_euclid(60))
}

/// The Unix time at which UTC day `YYYY-MM-DD` starts (Howard Hinnant's
/// `days_from_civil`); `None` unless `text` is such a date.
pub fn day_start(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(86_399), (1970, 1, 1));
        assert_eq!(civil_date(951_782_400), (2000, 2, 29));
        assert_eq!(civil_date(1_795_651_200), (2026, 11, 26));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(civil_date(4_107_542_400), (2100, 3, 1));
    }

    #[test]
    fn day_starts_invert_civil_dates() {
        assert_eq!(day_start("1970-01-01"), Some(0));
        assert_eq!(day_start("2026-11-26"), Some(1_795_651_200));
        assert_eq!(day_start("2000-02-29"), Some(951_782_400));
        assert_eq!(day_start("2026-13-01"), None);
        assert_eq!(day_start("yesterday"), None);
        for t in [0i64, 951_782_400, 1_795_651_200, 4_107_542_400] {
            let (y, m, d) = civil_date(t);
            assert_eq!(
                day_start(&format!("{y:04}-{m:02}-{d:02}")),
                Some(t - t.rem_euclid(86_400))
            );
        }
    }

    #[test]
    fn utc_times_to_the_second() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(784_111_777), "1994-11-06T08:49:37Z");
        assert_eq!(rfc3339(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(utc_text(784_111_777), "1994-11-06 08:49:37 UTC");
    }

    #[test]
    fn seconds_saturate() {
        assert_eq!(secs(Duration::from_millis(1_999)), 1);
        assert_eq!(secs(Duration::from_secs(86_400)), 86_400);
        assert_eq!(secs(Duration::MAX), i64::MAX);
    }

    #[test]
    fn http_dates_round_trip() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
