//! `Range: bytes=…` (RFC 9110 §14): one range is served; several, or a
//! syntax we do not understand, are ignored (the whole file is sent), which
//! the RFC allows.

use std::ops::Range;

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send the whole file with 200.
    Whole,
    /// Send these bytes with 206.
    Part(Range<u64>),
    /// The range lies beyond the file: 416.
    Unsatisfiable,
}

/// Interprets `header` for a file of `size` bytes.
pub fn parse(header: Option<&[u8]>, size: u64) -> RangeRequest {
    let Some(header) = header else {
        return RangeRequest::Whole;
    };
    let Ok(text) = std::str::from_utf8(header) else {
        return RangeRequest::Whole;
    };
    let Some((unit, spec)) = text.trim().split_once('=') else {
        return RangeRequest::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || size == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(size.saturating_sub(suffix)..size)
            }
        }
        // bytes=N- and bytes=N-M.
        (false, Some(start), end) if end.is_some() || last.trim().is_empty() => {
            if start >= size {
                return RangeRequest::Unsatisfiable;
            }
            match end {
                Some(end) if end < start => RangeRequest::Whole,
                Some(end) => RangeRequest::Part(start..end.saturating_add(1).min(size)),
                None => RangeRequest::Part(start..size),
            }
        }
        _ => RangeRequest::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(header: &str, size: u64) -> RangeRequest {
        parse(Some(header.as_bytes()), size)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(p("bytes=0-1", 100), RangeRequest::Part(0..2));
        assert_eq!(p("bytes=10-", 100), RangeRequest::Part(10..100));
        assert_eq!(p("bytes=-500", 100), RangeRequest::Part(0..100));
        assert_eq!(p("bytes=-10", 100), RangeRequest::Part(90..100));
        assert_eq!(p("bytes=90-200", 100), RangeRequest::Part(90..100));
        assert_eq!(p("bytes=99-99", 100), RangeRequest::Part(99..100));
        assert_eq!(p("Bytes = 5-9", 100), RangeRequest::Part(5..10));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(p("bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=100-200", 100), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=-0", 100), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=-5", 0), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn ignored() {
        assert_eq!(parse(None, 100), RangeRequest::Whole);
        assert_eq!(p("bytes=0-1,5-6", 100), RangeRequest::Whole);
        assert_eq!(p("items=0-1", 100), RangeRequest::Whole);
        assert_eq!(p("bytes=5-2", 100), RangeRequest::Whole);
        assert_eq!(p("bytes=a-b", 100), RangeRequest::Whole);
        assert_eq!(p("bytes=-", 100), RangeRequest::Whole);
        assert_eq!(p("bytes=+1-2", 100), RangeRequest::Whole);
        assert_eq!(p("bytes=1", 100), RangeRequest::Whole);
        assert_eq!(parse(Some(b"bytes=\xff-1"), 100), RangeRequest::Whole);
    }

    proptest::proptest! {
        #[test]
        fn parts_stay_inside_the_file(header in proptest::collection::vec(proptest::num::u8::ANY, 0..40), size in 0u64..10_000) {
            if let RangeRequest::Part(range) = parse(Some(&header), size) {
                proptest::prop_assert!(range.start < range.end && range.end <= size);
            }
        }

        #[test]
        fn well_formed_ranges(start in 0u64..2000, len in 0u64..2000, size in 0u64..2000) {
            let header = format!("bytes={start}-{}", start + len);
            if let RangeRequest::Part(range) = parse(Some(header.as_bytes()), size) {
                proptest::prop_assert!(range.start == start && range.end <= size);
            }
        }
    }
}
