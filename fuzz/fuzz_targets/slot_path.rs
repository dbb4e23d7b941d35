//! `SlotPath::from_wire` on any text (the input, as lossy UTF-8): decoding
//! never panics, and an accepted path has the shape it promises. Its
//! accessors (segments, file name, ejabberd owner) are read on every
//! accepted path, and fully re-encoding it must decode to the same path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upslot::auth::SlotPath;
use upslot::auth::path::MAX_PATH_BYTES;

fuzz_target!(|data: &[u8]| {
    let wire = String::from_utf8_lossy(data);
    let Ok(path) = SlotPath::from_wire(&wire) else {
        return;
    };
    let bytes = path.as_bytes();
    assert!(bytes.len() <= MAX_PATH_BYTES);
    assert!(!bytes.iter().any(|&b| b < 0x20 || b == 0x7f));
    if !wire.contains('%') {
        assert_eq!(bytes, wire.as_bytes(), "nothing to decode, nothing changed");
    }

    let segments: Vec<&[u8]> = path.segments().collect();
    assert!(segments.len() >= 2);
    for segment in &segments {
        assert!(!segment.is_empty() && *segment != b"." && *segment != b"..");
    }
    assert_eq!(path.first_segment(), segments[0]);
    assert_eq!(path.file_name(), segments[segments.len() - 1]);
    if let Some(owner) = path.ejabberd_owner() {
        assert_eq!(segments.len(), 3);
        assert_eq!(owner.len(), 40);
        assert!(
            owner
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
    }
    let shown = format!("{path:?}");
    assert!(
        !shown.contains(&*String::from_utf8_lossy(bytes)),
        "Debug shows the path"
    );

    // Decoding is exactly once: escaping every byte and decoding again
    // gives the same path (and the escaped form is never too long).
    let escaped: String = bytes.iter().map(|b| format!("%{b:02X}")).collect();
    assert_eq!(SlotPath::from_wire(&escaped).as_ref(), Ok(&path));
});
