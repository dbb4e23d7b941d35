//! Prosody's HS256 JWTs, two ways per input:
//! 1. the input (lossy UTF-8) as a token for `auth::jwt::verify`;
//! 2. the input as JSON, signed with DESIGN.md's secret, so the parsing
//!    behind the signature check is reached: the first line is the header
//!    and the rest the payload, or all of it the payload (under
//!    `{"alg":"HS256","typ":"JWT"}`) when there is no newline. That token
//!    also goes through `Verifier::authorize_put` as a Bearer header for
//!    DESIGN.md's path, with and without a Content-Length.
//!
//! Accepted claims must be unexpired, and a grant's content type must be
//! usable as a header value.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use upslot::auth::{PutRequest, QueryTokens, jwt};
use upslot::config::{Protocol, Secret};
use upslot_fuzz::{NOW, SECRET, design_path, sign_jwt, verifier};

const DEFAULT_HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

fuzz_target!(|data: &[u8]| {
    let secrets = [Secret::new(SECRET)];
    if let Ok(claims) = jwt::verify(&String::from_utf8_lossy(data), &secrets, NOW) {
        assert!((NOW as f64) < claims.exp);
    }

    let (header, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(newline) => (&data[..newline], &data[newline + 1..]),
        None => (DEFAULT_HEADER, data),
    };
    let token = sign_jwt(header, payload);
    let Ok(claims) = jwt::verify(&token, &secrets, NOW) else {
        return;
    };
    assert!((NOW as f64) < claims.exp);

    let path = design_path();
    let bearer = format!("Bearer {token}");
    let verifier = verifier(vec![Protocol::Jwt]);
    for content_length in [None, Some(claims.filesize)] {
        let request = PutRequest {
            query: QueryTokens::default(),
            authorization: Some(bearer.as_bytes()),
            content_length,
            content_type: Some(b"text/html"),
        };
        if let Ok(grant) = verifier.authorize_put(path.clone(), &request, NOW) {
            assert_eq!(grant.length, claims.filesize);
            assert_eq!(grant.expires, claims.expires);
            assert!(HeaderValue::from_str(&grant.content_type).is_ok());
        }
    }
});
