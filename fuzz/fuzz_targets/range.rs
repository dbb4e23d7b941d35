//! `http::range::parse` with any `Range` header bytes and file size.
//! Fields: `range` (header bytes; absent = no header), `size` (decimal,
//! default 100). A `Part` must be a non-empty range inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upslot::http::range::{RangeRequest, parse};
use upslot_fuzz::Fields;

fuzz_target!(|data: &[u8]| {
    let fields = Fields::parse(data);
    let header = fields.get("range");
    let size = fields.number("size").unwrap_or(100u64);
    match parse(header, size) {
        RangeRequest::Part(part) => {
            assert!(part.start < part.end, "empty part {part:?} of {size}");
            assert!(part.end <= size, "part {part:?} outside {size}");
        }
        RangeRequest::Unsatisfiable => assert!(header.is_some()),
        RangeRequest::Whole => {}
    }
});
