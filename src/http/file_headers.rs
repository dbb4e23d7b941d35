//! The headers of a served file: type, disposition, validators, caching and
//! the security headers that keep uploaded content from acting as a page.

use http::{HeaderMap, HeaderValue, header};
use sha2::Digest as _;

use crate::index::FileRecord;
use crate::time::http_date;

/// Served with every file: no scripts, no plugins, no framing, a sandbox.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; media-src 'self'; frame-ancestors 'none'; sandbox";

/// The strong validator of a stored file: a hash of its random blob name,
/// so a re-upload to the same URL after expiry gets a new one and nothing
/// about storage is revealed.
pub fn etag(record: &FileRecord) -> String {
    let digest = sha2::Sha256::digest(record.blob.key().as_bytes());
    format!("\"{}\"", hex::encode(&digest[..12]))
}

/// Whether a type may be shown inline: images, audio, video and plain text,
/// but never types a browser could run (SVG, HTML, XML, scripts).
pub fn is_inline(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let risky = essence.contains("svg")
        || essence.contains("xml")
        || essence.contains("html")
        || essence.contains("script");
    !risky
        && (essence.starts_with("image/")
            || essence.starts_with("video/")
            || essence.starts_with("audio/")
            || essence == "text/plain")
}

/// `inline` or `attachment` with the file name per RFC 6266: an ASCII
/// fallback `filename="…"` and the exact name as `filename*=UTF-8''…`.
pub fn content_disposition(content_type: &str, file_name: &[u8]) -> HeaderValue {
    let kind = if is_inline(content_type) {
        "inline"
    } else {
        "attachment"
    };
    let name = String::from_utf8_lossy(file_name);
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Sets every header of a `200`/`206`/`304`/`HEAD` answer for `record`
/// (which stops being served in `remaining` seconds) except the length and
/// range ones.
pub fn apply(headers: &mut HeaderMap, record: &FileRecord, file_name: &[u8], remaining: u64) {
    let content_type = HeaderValue::from_str(&record.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&record.content_type, file_name),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(&etag(record)) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&http_date(record.created)) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    // Caches may keep the file only while it exists.
    if let Ok(value) = HeaderValue::from_str(&format!("private, max-age={remaining}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_only_for_passive_media() {
        assert!(is_inline("image/jpeg"));
        assert!(is_inline("video/mp4"));
        assert!(is_inline("audio/ogg"));
        assert!(is_inline("text/plain; charset=utf-8"));
        assert!(!is_inline("image/svg+xml"));
        assert!(!is_inline("text/html"));
        assert!(!is_inline("application/xhtml+xml"));
        assert!(!is_inline("text/javascript"));
        assert!(!is_inline("application/pdf"));
        assert!(!is_inline("application/octet-stream"));
    }

    #[test]
    fn disposition_encodes_names_safely() {
        let value = content_disposition("image/jpeg", "très cool.jpg".as_bytes());
        assert_eq!(
            value,
            "inline; filename=\"tr_s cool.jpg\"; filename*=UTF-8''tr%C3%A8s%20cool.jpg"
        );
        let value = content_disposition("text/html", b"a\"b\\c;d.html");
        assert_eq!(
            value,
            "attachment; filename=\"a_b_c;d.html\"; filename*=UTF-8''a%22b%5Cc%3Bd.html"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_name_gives_a_valid_header(name in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let value = content_disposition("image/png", &name);
            proptest::prop_assert!(value.to_str().is_ok());
        }
    }
}
