//! Prosody `mod_http_file_share` external-mode tokens: HS256 JWTs sent as
//! `Authorization: Bearer …`.
//!
//! The signature is checked over the received `header.payload` bytes before
//! anything is parsed; claims are then read leniently (any key order,
//! integers or floats), never re-serialised.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::TokenError;
use crate::config::Secret;

/// Longest accepted token; Prosody's are a few hundred bytes.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims upslot uses.
#[derive(Clone, PartialEq)]
pub struct Claims {
    /// The uploader's bare JID, if named.
    pub sub: Option<String>,
    /// The slot id; must equal the first path segment.
    pub slot: String,
    /// Exact size of the upload in bytes.
    pub filesize: u64,
    /// Content type to store and serve.
    pub filetype: Option<String>,
    /// Unix time by which the file must be gone, if given.
    pub expires: Option<i64>,
    /// Unix time after which the token may no longer start an upload.
    pub exp: f64,
}

impl std::fmt::Debug for Claims {
    /// JIDs are personal data: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims")
            .field("filesize", &self.filesize)
            .field("expires", &self.expires)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// Verifies `token` under any of `secrets` and returns its claims if it
/// has not expired at `now` (Unix seconds).
pub fn verify(token: &str, secrets: &[Secret], now: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    let signed = &token[..header.len() + 1 + payload.len()];
    let mut valid = false;
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose()) else {
            continue;
        };
        mac.update(signed.as_bytes());
        valid |= mac.verify_slice(&signature).is_ok();
    }
    if !valid {
        return Err(TokenError::BadSignature);
    }
    let header = decode_object(header)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(TokenError::Malformed);
    }
    let claims = decode_object(payload)?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or(TokenError::Malformed)?;
    if (now as f64) >= exp {
        return Err(TokenError::Expired);
    }
    let slot = claims
        .get("slot")
        .and_then(Value::as_str)
        .ok_or(TokenError::Malformed)?
        .to_string();
    let filesize = claims
        .get("filesize")
        .and_then(whole_number)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or(TokenError::Malformed)?;
    let expires = match claims.get("expires") {
        None | Some(Value::Null) => None,
        Some(value) => Some(whole_number(value).ok_or(TokenError::Malformed)?),
    };
    let text = |key: &str| claims.get(key).and_then(Value::as_str).map(str::to_string);
    Ok(Claims {
        sub: text("sub"),
        slot,
        filesize,
        filetype: text("filetype"),
        expires,
        exp,
    })
}

fn decode_object(part: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed),
    }
}

/// An integer, or a float with no fractional part (`2031556352.0`).
fn whole_number(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SORTED: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyb21lb0Btb250YWd1ZS50bGQiLCJzbG90IjoiYWJjMTIzIiwiZmlsZW5hbWUiOiJwaG90byAxLmpwZyIsImZpbGVzaXplIjoxMjM0NSwiZmlsZXR5cGUiOiJpbWFnZS9qcGVnIiwiZXhwaXJlcyI6MjAwMDYwNDIwMCwiaWF0IjoxOTk5OTk5NDAwLCJleHAiOjIwMDAwMDAwMDB9.P1EthuUZn0dxeiTnYZmZMJ51Ag3DHTe1kQZMFo4_DLA";
    const REORDERED: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjIwMDAwMDAwMDAsImV4cGlyZXMiOjIwMDA2MDQyMDAsImZpbGVuYW1lIjoicGhvdG8gMS5qcGciLCJmaWxlc2l6ZSI6MTIzNDUsImZpbGV0eXBlIjoiaW1hZ2UvanBlZyIsImlhdCI6MTk5OTk5OTQwMCwic2xvdCI6ImFiYzEyMyIsInN1YiI6InJvbWVvQG1vbnRhZ3VlLnRsZCJ9.iuPxKcGBovUDDEmiL1IupFxcU9yEnPQAghz9VxinAmg";
    const FLOAT_EXPIRES: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjIwMDAwMDAwMDAsImV4cGlyZXMiOjIwMzE1NTYzNTIuMCwiZmlsZW5hbWUiOiJwaG90byAxLmpwZyIsImZpbGVzaXplIjoxMjM0NSwiZmlsZXR5cGUiOiJpbWFnZS9qcGVnIiwiaWF0IjoxOTk5OTk5NDAwLCJzbG90IjoiYWJjMTIzIiwic3ViIjoicm9tZW9AbW9udGFndWUudGxkIn0.d2aCPtndNbTWcr2ChP8Oa0xPTVd-kySjsi62x40yXNY";
    const IAT: i64 = 1_999_999_400;

    fn secrets() -> Vec<Secret> {
        vec![Secret::new("s3cr3t")]
    }

    #[test]
    fn design_vectors_verify() {
        for token in [SORTED, REORDERED] {
            let claims = verify(token, &secrets(), IAT).unwrap();
            assert_eq!(claims.sub.as_deref(), Some("romeo@montague.tld"));
            assert_eq!(claims.slot, "abc123");
            assert_eq!(claims.filesize, 12345);
            assert_eq!(claims.filetype.as_deref(), Some("image/jpeg"));
            assert_eq!(claims.expires, Some(2_000_604_200));
            assert_eq!(claims.exp, 2_000_000_000.0);
        }
        let claims = verify(FLOAT_EXPIRES, &secrets(), IAT).unwrap();
        assert_eq!(claims.expires, Some(2_031_556_352));
    }

    #[test]
    fn expiry_is_checked_at_now() {
        assert!(verify(SORTED, &secrets(), 1_999_999_999).is_ok());
        assert_eq!(
            verify(SORTED, &secrets(), 2_000_000_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn wrong_secret_or_tampering_is_refused() {
        assert_eq!(
            verify(SORTED, &[Secret::new("other")], IAT),
            Err(TokenError::BadSignature)
        );
        let rotated = [Secret::new("other"), Secret::new("s3cr3t")];
        assert!(verify(SORTED, &rotated, IAT).is_ok());
        // Swap in the payload of another token: the signature no longer matches.
        let mut parts: Vec<&str> = SORTED.split('.').collect();
        parts[1] = REORDERED.split('.').nth(1).unwrap();
        assert_eq!(
            verify(&parts.join("."), &secrets(), IAT),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify("a.b", &secrets(), IAT), Err(TokenError::Malformed));
        assert_eq!(
            verify("a.b.c.d", &secrets(), IAT),
            Err(TokenError::Malformed)
        );
        assert_eq!(verify("", &secrets(), IAT), Err(TokenError::Malformed));
    }

    #[test]
    fn alg_none_is_refused_even_with_a_valid_mac() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"slot":"a","filesize":1,"exp":9999999999}"#);
        let signed = format!("{header}.{payload}");
        let sig = crate::auth::mac::hmac_sha256(b"s3cr3t", signed.as_bytes());
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(verify(&token, &secrets(), IAT), Err(TokenError::Malformed));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(token in "[A-Za-z0-9_.=-]{0,200}") {
            let _ = verify(&token, &secrets(), IAT);
        }

        #[test]
        fn signed_garbage_payloads_never_panic(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#), URL_SAFE_NO_PAD.encode(&payload));
            let sig = crate::auth::mac::hmac_sha256(b"s3cr3t", signed.as_bytes());
            let _ = verify(&format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig)), &secrets(), IAT);
        }
    }
}
