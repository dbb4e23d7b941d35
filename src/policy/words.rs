//! Durations, ages, dates and counts as sentences say them. Each rounds in
//! the direction that keeps a promise true: a bound ("at the latest …") is
//! never written shorter than it is.

use std::time::Duration;

use crate::time::{utc_date, utc_minute};

const MINUTE: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// A span for a bound: whole seconds, rounded up, every non-zero unit
/// named ("30 days", "1 day and 1 minute", "1 day, 12 hours and 5
/// seconds").
pub(super) fn span(duration: Duration) -> String {
    let mut seconds = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        seconds = seconds.saturating_add(1);
    }
    let parts: Vec<String> = [
        (seconds / DAY, "day"),
        (seconds % DAY / HOUR, "hour"),
        (seconds % HOUR / MINUTE, "minute"),
        (seconds % MINUTE, "second"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, unit)| count_of(count, unit))
    .collect();
    match parts.as_slice() {
        [] => "0 seconds".to_string(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// An age as people say it, rounded down to its two largest units ("3
/// days and 4 hours", "5 minutes", "less than a minute").
pub(super) fn age(seconds: i64) -> String {
    let seconds = u64::try_from(seconds).unwrap_or(0);
    let units = [(DAY, "day"), (HOUR, "hour"), (MINUTE, "minute")];
    let Some(first) = units.iter().position(|(size, _)| seconds >= *size) else {
        return "less than a minute".to_string();
    };
    let (size, unit) = units[first];
    let whole = count_of(seconds / size, unit);
    match units.get(first + 1) {
        Some((smaller, name)) if seconds % size / smaller > 0 => {
            format!("{whole} and {}", count_of(seconds % size / smaller, name))
        }
        _ => whole,
    }
}

/// A Unix time as a UTC date and minute ("2026-12-02 10:30 UTC").
pub(super) fn utc(unix: i64) -> String {
    format!("{} {} UTC", utc_date(unix), utc_minute(unix))
}

/// "1 file", "2 files".
pub(super) fn count_of(count: u64, unit: &str) -> String {
    if count == 1 {
        format!("1 {unit}")
    } else {
        format!("{count} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_name_every_unit_and_round_up() {
        let s = |secs| span(Duration::from_secs(secs));
        assert_eq!(s(30 * DAY), "30 days");
        assert_eq!(s(DAY + MINUTE), "1 day and 1 minute");
        assert_eq!(s(DAY + 12 * HOUR + 5), "1 day, 12 hours and 5 seconds");
        assert_eq!(s(MINUTE), "1 minute");
        assert_eq!(s(0), "0 seconds");
        assert_eq!(span(Duration::from_millis(500)), "1 second");
        assert_eq!(span(Duration::from_millis(60_001)), "1 minute and 1 second");
    }

    #[test]
    fn ages_round_down() {
        assert_eq!(age(-5), "less than a minute");
        assert_eq!(age(59), "less than a minute");
        assert_eq!(age(5 * 60 + 59), "5 minutes");
        assert_eq!(age((3 * DAY + 4 * HOUR + 59) as i64), "3 days and 4 hours");
        assert_eq!(age(DAY as i64), "1 day");
        assert_eq!(age((HOUR + MINUTE) as i64), "1 hour and 1 minute");
    }

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_796_207_429), "2026-12-02 10:30 UTC");
    }
}
