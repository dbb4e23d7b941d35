//! Human-friendly units in the config: sizes (`"100MiB"`) and durations (`"30d"`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A byte count written as `"100MiB"`, `"1GB"`, `"512k"` or a bare number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A span of time written as `"4w"`, `"30d"`, `"36h"`, `"15m"`, `"90s"` or
/// `"500ms"`; several parts may be combined (`"1d12h"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

/// Why a unit string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits
            .parse()
            .map_err(|_| UnitError(format!("{text:?} is not a size such as \"100MiB\"")))?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            other => {
                return Err(UnitError(format!(
                    "unknown size unit {other:?} in {text:?} (use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)"
                )));
            }
        };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| UnitError(format!("{text:?} is too large")))
    }
}

impl FromStr for Span {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let original = text;
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(UnitError("an empty duration".into()));
        }
        let mut total = Duration::ZERO;
        while !rest.is_empty() {
            let digits_end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
                UnitError(format!(
                    "{original:?} lacks a unit: write e.g. \"30d\", \"36h\", \"90s\""
                ))
            })?;
            if digits_end == 0 {
                return Err(UnitError(format!(
                    "{original:?} is not a duration such as \"30d\""
                )));
            }
            let number: u64 = rest[..digits_end]
                .parse()
                .map_err(|_| UnitError(format!("{original:?} is too large")))?;
            rest = &rest[digits_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_end];
            rest = &rest[unit_end..];
            let part = match unit {
                "ms" => Duration::from_millis(number),
                "s" => Duration::from_secs(number),
                "m" => Duration::from_secs(number.saturating_mul(60)),
                "h" => Duration::from_secs(number.saturating_mul(3_600)),
                "d" => Duration::from_secs(number.saturating_mul(86_400)),
                "w" => Duration::from_secs(number.saturating_mul(7 * 86_400)),
                other => {
                    return Err(UnitError(format!(
                        "unknown time unit {other:?} in {original:?} (use ms, s, m, h, d or w)"
                    )));
                }
            };
            total = total.saturating_add(part);
        }
        Ok(Span(total))
    }
}

/// `bytes` as people read it: the largest binary unit that leaves at least
/// 1 of it, with one decimal when it is not whole ("1 GiB", "1.5 MiB",
/// "512 bytes"), rounded down so a limit is never overstated.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return if bytes == 1 {
            "1 byte".into()
        } else {
            format!("{bytes} bytes")
        };
    }
    let mut unit = 1024u64;
    let mut name = UNITS[0];
    for next in &UNITS[1..] {
        match unit.checked_mul(1024) {
            Some(bigger) if bytes >= bigger => {
                unit = bigger;
                name = next;
            }
            _ => break,
        }
    }
    let whole = bytes / unit;
    let tenths = (bytes % unit).saturating_mul(10) / unit;
    if tenths == 0 {
        format!("{whole} {name}")
    } else {
        format!("{whole}.{tenths} {name}")
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs_f64())
    }
}

/// Accepts a string with a unit, or a bare integer (bytes / seconds).
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Number(u64),
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Raw::Number(n) => Ok(ByteSize(n)),
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Raw::Number(n) => Ok(Span(Duration::from_secs(n))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("100MiB".parse(), Ok(ByteSize(100 << 20)));
        assert_eq!("1GB".parse(), Ok(ByteSize(1_000_000_000)));
        assert_eq!("512".parse(), Ok(ByteSize(512)));
        assert_eq!("4 KiB".parse(), Ok(ByteSize(4096)));
        assert!("MiB".parse::<ByteSize>().is_err());
        assert!("10 parsecs".parse::<ByteSize>().is_err());
        assert!("99999999999TiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn spans() {
        let secs = |s: &str| s.parse::<Span>().map(|d| d.0.as_secs());
        assert_eq!(secs("4w"), Ok(28 * 86_400));
        assert_eq!(secs("30d"), Ok(30 * 86_400));
        assert_eq!(secs("36h"), Ok(36 * 3_600));
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("1d12h"), Ok(36 * 3_600));
        assert_eq!(
            "500ms".parse::<Span>().map(|d| d.0),
            Ok(Duration::from_millis(500))
        );
        assert!("30".parse::<Span>().is_err());
        assert!("d".parse::<Span>().is_err());
        assert!("3 days".parse::<Span>().is_err());
        assert!("".parse::<Span>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in ".*") {
            let _ = text.parse::<Span>();
            let _ = text.parse::<ByteSize>();
        }
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1), "1 byte");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(human_bytes(100 << 20), "100 MiB");
        assert_eq!(human_bytes((1 << 30) - 1), "1023.9 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(u64::MAX), "15.9 EiB");
    }
}
