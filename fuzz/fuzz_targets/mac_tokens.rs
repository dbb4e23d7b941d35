//! The query-string MAC families and Metronome's DELETE:
//! `QueryTokens::parse`, then `Verifier::authorize_put` (v1, v2, token, and
//! the Bearer fallback) and `Verifier::authorize_delete`, with every part of
//! the request taken from the input; see `upslot_fuzz::PutInput` for the
//! fields (`path`, `query`, `length`, `type`, `auth`, `now`, `protocols`).
//!
//! A grant must come from an enabled family, be for the signed length, and
//! carry a content type that is usable as a header value.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use upslot::config::Protocol;
use upslot_fuzz::{PutInput, verifier};

fuzz_target!(|data: &[u8]| {
    let input = PutInput::parse(data);
    let request = input.request();
    let verifier = verifier(input.protocols.clone());

    if let Ok(grant) = verifier.authorize_put(input.path.clone(), &request, input.now) {
        assert!(input.protocols.contains(&grant.protocol));
        match grant.protocol {
            Protocol::V1 | Protocol::V2 | Protocol::Token => {
                assert_eq!(request.content_length, Some(grant.length));
            }
            Protocol::Jwt => {
                assert!(request.content_length.is_none_or(|l| l == grant.length));
            }
        }
        assert!(HeaderValue::from_str(&grant.content_type).is_ok());
    }
    let _ = verifier.authorize_delete(input.path.clone(), &request.query);
});
