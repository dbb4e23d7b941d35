//! The encrypted blob format, version 1: the arithmetic that maps a
//! plaintext byte range to the ciphertext segments holding it, and the
//! nonces that pin each segment to its place.
//!
//! A blob is the plaintext cut into segments of [`SEGMENT`] bytes (the last
//! one shorter, possibly empty), each sealed on its own with AES-256-GCM
//! under the file's data key and followed by its 16-byte tag. There is no
//! header: the record says how the blob is sealed. Segment `i` (from 0) of
//! `n` uses the nonce `i` as an 11-byte big-endian number followed by one
//! byte, 1 for the last segment and 0 for the others, and no associated
//! data. So segments cannot be reordered, dropped, or cut off at a segment
//! boundary without failing authentication, and the data key being random
//! per file means a nonce never repeats under one key.
//!
//! Plaintext byte `p` lies in segment `p / SEGMENT`, at ciphertext offset
//! `p / SEGMENT * SEALED_SEGMENT + p % SEGMENT`.

use std::ops::Range;

/// Plaintext bytes per segment (64 KiB).
pub const SEGMENT: u64 = 64 * 1024;
/// Bytes of each segment's authentication tag.
pub const TAG: u64 = 16;
/// Bytes of one full segment once sealed.
pub const SEALED_SEGMENT: u64 = SEGMENT + TAG;
/// Bytes of an AES-GCM nonce.
pub const NONCE: usize = 12;

/// How many segments a plaintext of `size` bytes has (an empty file has
/// one empty segment, so even it is authenticated).
pub fn segments(size: u64) -> u64 {
    size.div_ceil(SEGMENT).max(1)
}

/// The size of the blob holding `size` bytes of plaintext.
pub fn sealed_size(size: u64) -> u64 {
    size.saturating_add(segments(size).saturating_mul(TAG))
}

/// The plaintext length of segment `index` of a `size`-byte file.
pub fn segment_len(size: u64, index: u64) -> u64 {
    size.saturating_sub(index.saturating_mul(SEGMENT))
        .min(SEGMENT)
}

/// The nonce of segment `index`, `last` when it is the file's final one.
pub fn nonce(index: u64, last: bool) -> [u8; NONCE] {
    let mut nonce = [0u8; NONCE];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// What to read and decrypt to serve the plaintext bytes `range` of a
/// `size`-byte file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The segments to open.
    pub segments: Range<u64>,
    /// The ciphertext bytes holding them.
    pub sealed: Range<u64>,
    /// Plaintext bytes to drop from the front of the first segment.
    pub skip: u64,
    /// Plaintext bytes to send in all.
    pub len: u64,
}

/// The segments that serve plaintext `range` (non-empty, within `size`).
pub fn span(size: u64, range: Range<u64>) -> Span {
    let first = range.start / SEGMENT;
    let last = range.end.saturating_sub(1).max(range.start) / SEGMENT;
    let end = last
        .saturating_add(1)
        .saturating_mul(SEALED_SEGMENT)
        .min(sealed_size(size));
    Span {
        segments: first..last + 1,
        sealed: first * SEALED_SEGMENT..end,
        skip: range.start - first * SEGMENT,
        len: range.end.saturating_sub(range.start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(segments(0), 1);
        assert_eq!(sealed_size(0), 16);
        assert_eq!(segments(1), 1);
        assert_eq!(segments(SEGMENT), 1);
        assert_eq!(sealed_size(SEGMENT), SEALED_SEGMENT);
        assert_eq!(segments(SEGMENT + 1), 2);
        assert_eq!(sealed_size(SEGMENT + 1), SEALED_SEGMENT + 1 + 16);
        assert_eq!(segment_len(SEGMENT + 1, 0), SEGMENT);
        assert_eq!(segment_len(SEGMENT + 1, 1), 1);
        assert_eq!(segment_len(0, 0), 0);
        assert_eq!(sealed_size(u64::MAX), u64::MAX);
    }

    #[test]
    fn nonces_name_position_and_end() {
        assert_eq!(nonce(0, false), [0; 12]);
        assert_eq!(nonce(1, true), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(nonce(0x0102, false)[9..], [1, 2, 0]);
    }

    #[test]
    fn spans_touch_only_the_segments_needed() {
        let size = 3 * SEGMENT + 10;
        // First byte, and a two-byte probe: one segment.
        assert_eq!(
            span(size, 0..2),
            Span {
                segments: 0..1,
                sealed: 0..SEALED_SEGMENT,
                skip: 0,
                len: 2
            }
        );
        // Last byte: the short last segment only.
        let last = span(size, size - 1..size);
        assert_eq!(last.segments, 3..4);
        assert_eq!(last.sealed, 3 * SEALED_SEGMENT..sealed_size(size));
        assert_eq!(last.skip, 9);
        // A range ending exactly on a boundary stays in its segment.
        assert_eq!(span(size, 10..SEGMENT).segments, 0..1);
        // One byte either side of a boundary: both segments.
        let across = span(size, SEGMENT - 1..SEGMENT + 1);
        assert_eq!(across.segments, 0..2);
        assert_eq!(across.sealed, 0..2 * SEALED_SEGMENT);
        assert_eq!(across.skip, SEGMENT - 1);
        // The whole file.
        let whole = span(size, 0..size);
        assert_eq!(whole.sealed, 0..sealed_size(size));
        assert_eq!(whole.len, size);
    }

    proptest::proptest! {
        #[test]
        fn every_byte_is_where_the_span_says(size in 1u64..1_000_000, a in 0u64..1_000_000, b in 0u64..1_000_000) {
            let (start, end) = (a.min(b) % size, (a.max(b) % size) + 1);
            proptest::prop_assume!(start < end);
            let s = span(size, start..end);
            // The plaintext offset of the span's first segment plus skip is start.
            proptest::prop_assert_eq!(s.segments.start * SEGMENT + s.skip, start);
            // The segments hold all of it.
            let held: u64 = s.segments.clone().map(|i| segment_len(size, i)).sum();
            proptest::prop_assert!(s.skip + s.len <= held);
            let sealed: u64 = s.segments.clone().map(|i| segment_len(size, i) + TAG).sum();
            proptest::prop_assert_eq!(s.sealed.end - s.sealed.start, sealed);
        }
    }
}
