//! The slot path: what follows the base prefix in a request URL,
//! percent-decoded exactly once into raw bytes.
//!
//! This is the string the XMPP server signed, so it is never re-encoded or
//! normalised. It is only ever hashed (index key) or shown back to the client
//! (`Content-Disposition`); it never names anything in storage.

use std::fmt;

/// Longest accepted decoded path, in bytes. XMPP servers limit file names
/// well below this; longer paths are refused with 414.
pub const MAX_PATH_BYTES: usize = 2048;

/// A decoded slot path with at least two non-empty segments (`<slot>/<name>`).
#[derive(Clone, PartialEq, Eq)]
pub struct SlotPath {
    bytes: Vec<u8>,
}

/// Why a request path is not a slot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-escape in the path")]
    BadEscape,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("the path is too long")]
    TooLong,
    /// Not `<slot>/<name>`: too few segments, an empty, `.` or `..` segment.
    #[error("the path is not of the form <slot>/<file name>")]
    Shape,
    /// Contains a control character (after decoding).
    #[error("the path contains a control character")]
    Control,
}

impl SlotPath {
    /// Decodes the wire form (the request path with the base prefix
    /// removed). `+` stays `+`; hex digits may be of either case.
    pub fn from_wire(wire: &str) -> Result<SlotPath, PathError> {
        if wire.len() > MAX_PATH_BYTES * 3 {
            return Err(PathError::TooLong);
        }
        let bytes = percent_decode(wire.as_bytes())?;
        if bytes.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return Err(PathError::Control);
        }
        let mut segments = 0;
        for segment in bytes.split(|&b| b == b'/') {
            if segment.is_empty() || segment == b"." || segment == b".." {
                return Err(PathError::Shape);
            }
            segments += 1;
        }
        if segments < 2 {
            return Err(PathError::Shape);
        }
        Ok(SlotPath { bytes })
    }

    /// The decoded bytes, as signed by the XMPP server.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The first segment: the slot id (Prosody, Metronome) or the uploader's
    /// `sha1(user@host)` (ejabberd).
    pub fn first_segment(&self) -> &[u8] {
        self.segments().next().unwrap_or_default()
    }

    /// The last segment: the file name as the client named it.
    pub fn file_name(&self) -> &[u8] {
        self.segments().next_back().unwrap_or_default()
    }

    /// The segments in order.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.bytes.split(|&b| b == b'/')
    }

    /// For an ejabberd-shaped path (`<40 hex>/<random>/<name>`), the
    /// uploader's `sha1(user@host)` in lower-case hex.
    pub fn ejabberd_owner(&self) -> Option<String> {
        let first = self.first_segment();
        let three = self.segments().count() == 3;
        (three && first.len() == 40 && first.iter().all(u8::is_ascii_hexdigit))
            .then(|| String::from_utf8_lossy(first).to_ascii_lowercase())
    }
}

impl fmt::Debug for SlotPath {
    /// Paths name files: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotPath([{} bytes])", self.bytes.len())
    }
}

/// Decodes `%xx` escapes once; refuses a `%` without two hex digits.
fn percent_decode(wire: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(wire.len());
    let mut i = 0;
    while i < wire.len() {
        let byte = wire[i];
        if byte == b'%' {
            let hi = wire.get(i + 1).and_then(|&b| hex_value(b));
            let lo = wire.get(i + 2).and_then(|&b| hex_value(b));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(PathError::BadEscape),
            }
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    Ok(out)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once_in_either_case() {
        let lower = SlotPath::from_wire("abc123/tr%c3%a8s%20cool.jpg").unwrap();
        let upper = SlotPath::from_wire("abc123/tr%C3%A8s%20cool.jpg").unwrap();
        assert_eq!(lower.as_bytes(), "abc123/très cool.jpg".as_bytes());
        assert_eq!(lower, upper);
        // Decoded once: %2541 is "%41", not "A".
        let once = SlotPath::from_wire("a/%2541").unwrap();
        assert_eq!(once.as_bytes(), b"a/%41");
        // '+' is not a space in a path.
        assert_eq!(SlotPath::from_wire("a/b+c").unwrap().as_bytes(), b"a/b+c");
    }

    #[test]
    fn segments() {
        let path = SlotPath::from_wire("abc123/photo%201.jpg").unwrap();
        assert_eq!(path.first_segment(), b"abc123");
        assert_eq!(path.file_name(), b"photo 1.jpg");
        assert_eq!(path.ejabberd_owner(), None);
        let ejabberd =
            SlotPath::from_wire("43FEDDB25776A343C69835C7E79DC2C7F59598A6/abc123/photo_1.jpg")
                .unwrap();
        assert_eq!(
            ejabberd.ejabberd_owner().as_deref(),
            Some("43feddb25776a343c69835c7e79dc2c7f59598a6")
        );
    }

    #[test]
    fn refuses_bad_shapes() {
        assert_eq!(SlotPath::from_wire("only"), Err(PathError::Shape));
        assert_eq!(SlotPath::from_wire("a//b"), Err(PathError::Shape));
        assert_eq!(SlotPath::from_wire("a/b/"), Err(PathError::Shape));
        assert_eq!(SlotPath::from_wire("a/../b"), Err(PathError::Shape));
        assert_eq!(SlotPath::from_wire("a/%2e%2e"), Err(PathError::Shape));
        assert_eq!(SlotPath::from_wire(""), Err(PathError::Shape));
        assert_eq!(SlotPath::from_wire("a/b%2"), Err(PathError::BadEscape));
        assert_eq!(SlotPath::from_wire("a/b%zz"), Err(PathError::BadEscape));
        assert_eq!(SlotPath::from_wire("a/b%00"), Err(PathError::Control));
        assert_eq!(SlotPath::from_wire("a/b%0a"), Err(PathError::Control));
        let long = format!("a/{}", "x".repeat(MAX_PATH_BYTES));
        assert_eq!(SlotPath::from_wire(&long), Err(PathError::TooLong));
    }

    #[test]
    fn debug_hides_the_name() {
        let path = SlotPath::from_wire("abc/secret-holiday.jpg").unwrap();
        assert!(!format!("{path:?}").contains("holiday"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(wire in ".{0,300}") {
            if let Ok(path) = SlotPath::from_wire(&wire) {
                let _ = (path.file_name(), path.first_segment(), path.ejabberd_owner());
            }
        }

        #[test]
        fn decoding_inverts_full_encoding(name in proptest::collection::vec(0x20u8..=0xff, 1..60)) {
            let name: Vec<u8> = name.into_iter().filter(|&b| b != b'/' && b != 0x7f).collect();
            proptest::prop_assume!(!name.is_empty() && name != b"." && name != b"..");
            let wire: String = name.iter().map(|b| format!("%{b:02X}")).collect();
            let path = SlotPath::from_wire(&format!("slot/{wire}")).unwrap();
            proptest::prop_assert_eq!(path.file_name(), &name[..]);
        }
    }
}
