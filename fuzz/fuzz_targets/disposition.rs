//! `http::file_headers::content_disposition` with any stored content type
//! and file name bytes. Fields: `type` (lossy UTF-8), `name` (raw bytes,
//! as a decoded path's last segment can hold). The value must be a valid
//! visible-ASCII header that keeps the name (never the bare `attachment`
//! fallback), is `inline` exactly for inline types, and whose `filename*`
//! decodes back to the name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upslot::http::file_headers::{content_disposition, is_inline};
use upslot_fuzz::Fields;

fuzz_target!(|data: &[u8]| {
    let fields = Fields::parse(data);
    let content_type = fields.text("type").unwrap_or_default();
    let name = fields.get("name").unwrap_or_default();
    let value = content_disposition(&content_type, name);
    let Ok(text) = value.to_str() else {
        panic!("not visible ASCII: {value:?}");
    };
    let kind = if is_inline(&content_type) {
        "inline"
    } else {
        "attachment"
    };
    assert!(
        text.starts_with(&format!("{kind}; filename=\"")),
        "unexpected value {text:?}"
    );
    let Some((_, encoded)) = text.rsplit_once("; filename*=UTF-8''") else {
        panic!("no filename* in {text:?}");
    };
    let decoded = percent_encoding::percent_decode_str(encoded).collect::<Vec<u8>>();
    assert_eq!(decoded, String::from_utf8_lossy(name).as_bytes());
});
