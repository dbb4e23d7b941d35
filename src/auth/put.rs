//! Authorising a `PUT`: the query-string MAC families (`?v=`, `?v2=`,
//! `?token=`) and Prosody's JWT (`Authorization: Bearer`).

use http::{HeaderMap, HeaderValue, header};

use super::grant::Sealed;
use super::{BareJid, PutGrant, SlotPath, TokenError, Uploader, Verifier, jwt, mac};
use crate::config::Protocol;

/// The token-bearing parts of a query string.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueryTokens<'a> {
    /// `v=`
    pub v1: Option<&'a str>,
    /// `v2=`
    pub v2: Option<&'a str>,
    /// `token=`
    pub token: Option<&'a str>,
}

impl<'a> QueryTokens<'a> {
    /// Picks `v`, `v2` and `token` out of a raw query string; the first
    /// occurrence of each wins, other parameters are ignored.
    pub fn parse(query: Option<&'a str>) -> QueryTokens<'a> {
        let mut tokens = QueryTokens::default();
        for pair in query.unwrap_or_default().split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "v" => &mut tokens.v1,
                "v2" => &mut tokens.v2,
                "token" => &mut tokens.token,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        tokens
    }

    /// The token to check: the highest family present (`v2` > `token` > `v`).
    fn strongest(&self) -> Option<(Protocol, &'a str)> {
        self.v2
            .map(|t| (Protocol::V2, t))
            .or(self.token.map(|t| (Protocol::Token, t)))
            .or(self.v1.map(|t| (Protocol::V1, t)))
    }
}

/// What a PUT carries that bears on authorisation.
#[derive(Debug, Clone, Copy)]
pub struct PutRequest<'a> {
    /// The query's token parameters.
    pub query: QueryTokens<'a>,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    /// `Content-Length`, if given (absent for chunked bodies).
    pub content_length: Option<u64>,
    /// The `Content-Type` header, verbatim.
    pub content_type: Option<&'a [u8]>,
}

impl<'a> PutRequest<'a> {
    /// What the request head `headers` and `query` carry; `content_length`
    /// is the body's exact length as the HTTP layer knows it.
    pub fn of(headers: &'a HeaderMap, query: Option<&'a str>, content_length: Option<u64>) -> Self {
        let header = |name| headers.get(name).map(HeaderValue::as_bytes);
        PutRequest {
            query: QueryTokens::parse(query),
            authorization: header(header::AUTHORIZATION),
            content_length,
            content_type: header(header::CONTENT_TYPE),
        }
    }
}

impl Verifier {
    /// Authorises a PUT of `path` at Unix time `now`.
    pub fn authorize_put(
        &self,
        path: SlotPath,
        request: &PutRequest<'_>,
        now: i64,
    ) -> Result<PutGrant, TokenError> {
        if let Some((protocol, mac)) = request.query.strongest() {
            if !self.enabled(protocol) {
                return Err(TokenError::Disabled);
            }
            let length = request.content_length.ok_or(TokenError::LengthRequired)?;
            let (message, content_type) = match protocol {
                Protocol::V1 => (
                    mac::v1_message(path.as_bytes(), length),
                    media_type(request.content_type),
                ),
                Protocol::V2 | Protocol::Token => {
                    let signed_type = request
                        .content_type
                        .unwrap_or(mac::DEFAULT_CONTENT_TYPE.as_bytes());
                    (
                        mac::v2_message(path.as_bytes(), length, signed_type),
                        media_type(Some(signed_type)),
                    )
                }
                Protocol::Jwt => return Err(TokenError::Malformed),
            };
            if !mac::verify_hex(&self.secrets, &message, mac) {
                return Err(TokenError::BadSignature);
            }
            let uploader = path.ejabberd_owner().map(Uploader::Sha1Hex);
            return Ok(PutGrant {
                path,
                protocol,
                length,
                content_type,
                expires: None,
                uploader,
                sealed: Sealed::new(),
            });
        }
        let Some(authorization) = request.authorization else {
            return Err(TokenError::Missing {
                bearer: self.protocols == [Protocol::Jwt],
            });
        };
        if !self.enabled(Protocol::Jwt) {
            return Err(TokenError::Disabled);
        }
        let token = bearer_token(authorization).ok_or(TokenError::Malformed)?;
        let claims = jwt::verify(token, &self.secrets, now)?;
        if claims.slot.as_bytes() != path.first_segment() {
            return Err(TokenError::SlotMismatch);
        }
        if request
            .content_length
            .is_some_and(|length| length != claims.filesize)
        {
            return Err(TokenError::SizeMismatch);
        }
        // The file would be due before its first byte arrives.
        if claims.expires.is_some_and(|expires| expires <= now) {
            return Err(TokenError::Expired);
        }
        let content_type = match claims.filetype.as_deref() {
            Some(filetype) if is_media_type(filetype.as_bytes()) => filetype.to_string(),
            _ => media_type(request.content_type),
        };
        Ok(PutGrant {
            path,
            protocol: Protocol::Jwt,
            length: claims.filesize,
            content_type,
            expires: claims.expires,
            uploader: claims.sub.map(|jid| Uploader::Jid(BareJid::of(&jid))),
            sealed: Sealed::new(),
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme
/// case-insensitive).
fn bearer_token(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The content type to store: the given one if it looks like a media type
/// (`type/subtype[; params]`, printable ASCII), otherwise
/// `application/octet-stream`.
pub fn media_type(value: Option<&[u8]>) -> String {
    match value {
        Some(bytes) if is_media_type(bytes) => String::from_utf8_lossy(bytes).trim().to_string(),
        _ => mac::DEFAULT_CONTENT_TYPE.to_string(),
    }
}

fn is_media_type(bytes: &[u8]) -> bool {
    let essence = bytes.split(|&b| b == b';').next().unwrap_or_default();
    let token = |part: &[u8]| {
        !part.is_empty()
            && part
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let mut halves = essence.trim_ascii().splitn(2, |&b| b == b'/');
    let (Some(kind), Some(sub)) = (halves.next(), halves.next()) else {
        return false;
    };
    bytes.len() <= 255
        && bytes.iter().all(|&b| (0x20..0x7f).contains(&b))
        && token(kind)
        && token(sub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::{path, verifier};
    use crate::config::Secret;

    fn put<'a>(
        query: &'a str,
        length: Option<u64>,
        content_type: Option<&'a [u8]>,
    ) -> PutRequest<'a> {
        PutRequest {
            query: QueryTokens::parse(Some(query)),
            authorization: None,
            content_length: length,
            content_type,
        }
    }

    const V1: &str = "v=d90b99240bb9aa4b3251e52c9d2d0ae21b0eee9cbaec63df26b67995ec365506";
    const V2: &str = "v2=3d6a070108bbc49f51700606324d11dde942b8ce97999424e897d83a33dc8a21";
    const V2_NO_TYPE: &str = "v2=59cae5ae70928e573889a14f792f5ec7fc8bf298949b424240ac122a94000b75";
    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyb21lb0Btb250YWd1ZS50bGQiLCJzbG90IjoiYWJjMTIzIiwiZmlsZW5hbWUiOiJwaG90byAxLmpwZyIsImZpbGVzaXplIjoxMjM0NSwiZmlsZXR5cGUiOiJpbWFnZS9qcGVnIiwiZXhwaXJlcyI6MjAwMDYwNDIwMCwiaWF0IjoxOTk5OTk5NDAwLCJleHAiOjIwMDAwMDAwMDB9.P1EthuUZn0dxeiTnYZmZMJ51Ag3DHTe1kQZMFo4_DLA";
    const NOW: i64 = 1_999_999_400;

    #[test]
    fn query_parsing() {
        let q = QueryTokens::parse(Some("x=1&v=aa&v2=bb&v=cc&token"));
        assert_eq!(q.v1, Some("aa"));
        assert_eq!(q.v2, Some("bb"));
        assert_eq!(q.token, Some(""));
        assert_eq!(QueryTokens::parse(None), QueryTokens::default());
    }

    #[test]
    fn v1_and_v2() {
        let v = verifier();
        let grant = v
            .authorize_put(path(), &put(V1, Some(12345), Some(b"image/jpeg")), NOW)
            .unwrap();
        assert_eq!(grant.protocol, Protocol::V1);
        assert_eq!(grant.length, 12345);
        assert_eq!(grant.content_type, "image/jpeg");
        let grant = v
            .authorize_put(path(), &put(V2, Some(12345), Some(b"image/jpeg")), NOW)
            .unwrap();
        assert_eq!(grant.protocol, Protocol::V2);
        let grant = v
            .authorize_put(path(), &put(V2_NO_TYPE, Some(12345), None), NOW)
            .unwrap();
        assert_eq!(grant.content_type, "application/octet-stream");
        // The type is signed in v2: another type fails.
        assert_eq!(
            v.authorize_put(path(), &put(V2, Some(12345), Some(b"image/png")), NOW),
            Err(TokenError::BadSignature)
        );
        // The size is signed.
        assert_eq!(
            v.authorize_put(path(), &put(V1, Some(12346), None), NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            v.authorize_put(path(), &put(V1, None, None), NOW),
            Err(TokenError::LengthRequired)
        );
    }

    #[test]
    fn token_family_uses_the_v2_message() {
        let query = V2.replacen("v2=", "token=", 1);
        let grant = verifier()
            .authorize_put(path(), &put(&query, Some(12345), Some(b"image/jpeg")), NOW)
            .unwrap();
        assert_eq!(grant.protocol, Protocol::Token);
    }

    #[test]
    fn highest_family_wins() {
        // A valid v1 next to a bogus v2: the v2 is the one checked.
        let query = format!("{V1}&v2=00");
        assert_eq!(
            verifier().authorize_put(path(), &put(&query, Some(12345), None), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn disabled_families_are_refused() {
        let v = Verifier::new(vec![Secret::new("s3cr3t")], None, vec![Protocol::V2]);
        assert_eq!(
            v.authorize_put(path(), &put(V1, Some(12345), None), NOW),
            Err(TokenError::Disabled)
        );
        let jwt_only = Verifier::new(vec![Secret::new("s3cr3t")], None, vec![Protocol::Jwt]);
        assert_eq!(
            jwt_only.authorize_put(path(), &put("", Some(1), None), NOW),
            Err(TokenError::Missing { bearer: true })
        );
        assert_eq!(
            verifier().authorize_put(path(), &put("", Some(1), None), NOW),
            Err(TokenError::Missing { bearer: false })
        );
    }

    #[test]
    fn jwt() {
        let header = format!("Bearer {JWT}");
        let request = |length| PutRequest {
            query: QueryTokens::default(),
            authorization: Some(header.as_bytes()),
            content_length: length,
            content_type: Some(b"text/html".as_slice()),
        };
        let grant = verifier()
            .authorize_put(path(), &request(Some(12345)), NOW)
            .unwrap();
        assert_eq!(grant.protocol, Protocol::Jwt);
        assert_eq!(grant.length, 12345);
        assert_eq!(
            grant.content_type, "image/jpeg",
            "the token's filetype wins"
        );
        assert_eq!(grant.expires, Some(2_000_604_200));
        assert_eq!(grant.path, path());
        assert_eq!(
            grant.uploader,
            Some(Uploader::Jid(BareJid::of("romeo@montague.tld")))
        );
        // Chunked: the token's size is what must arrive.
        assert_eq!(
            verifier()
                .authorize_put(path(), &request(None), NOW)
                .unwrap()
                .length,
            12345
        );
        assert_eq!(
            verifier().authorize_put(path(), &request(Some(1)), NOW),
            Err(TokenError::SizeMismatch)
        );
        let other_slot = SlotPath::from_wire("zzz999/photo%201.jpg").unwrap();
        assert_eq!(
            verifier().authorize_put(other_slot, &request(Some(12345)), NOW),
            Err(TokenError::SlotMismatch)
        );
        assert_eq!(
            verifier().authorize_put(path(), &request(Some(12345)), 2_000_000_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_file_already_due_cannot_start() {
        // A token still valid (`exp`) for a file whose `expires` is sooner.
        let claims = r#"{"slot":"abc123","filesize":3,"expires":1000,"exp":5000}"#;
        let token = jwt_for(claims);
        let header = format!("Bearer {token}");
        let request = PutRequest {
            query: QueryTokens::default(),
            authorization: Some(header.as_bytes()),
            content_length: Some(3),
            content_type: None,
        };
        assert!(verifier().authorize_put(path(), &request, 999).is_ok());
        assert_eq!(
            verifier().authorize_put(path(), &request, 1000),
            Err(TokenError::Expired),
            "expires has come"
        );
    }

    /// An HS256 token over `claims` with the test secret.
    fn jwt_for(claims: &str) -> String {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let mac = mac::hmac_sha256(b"s3cr3t", signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    #[test]
    fn ejabberd_paths_name_the_uploader() {
        let path =
            SlotPath::from_wire("43feddb25776a343c69835c7e79dc2c7f59598a6/abc123/photo_1.jpg")
                .unwrap();
        let query = "v=24f210eb48fb8c2b375783b5bb60d5c123666c097fd0a0c95330cd02bd25c1b2";
        let grant = verifier()
            .authorize_put(path, &put(query, Some(12345), None), NOW)
            .unwrap();
        assert_eq!(
            grant.uploader,
            Some(Uploader::Sha1Hex(
                "43feddb25776a343c69835c7e79dc2c7f59598a6".into()
            ))
        );
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type(Some(b"image/jpeg")), "image/jpeg");
        assert_eq!(
            media_type(Some(b"text/plain; charset=utf-8")),
            "text/plain; charset=utf-8"
        );
        assert_eq!(media_type(Some(b"nonsense")), "application/octet-stream");
        assert_eq!(media_type(Some(b"a/b\x01")), "application/octet-stream");
        assert_eq!(media_type(None), "application/octet-stream");
        assert_eq!(bearer_token(b"bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"Basic abc"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(
            query in ".{0,120}",
            auth in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..120)),
            length in proptest::option::of(proptest::num::u64::ANY),
            ctype in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..40)),
        ) {
            let request = PutRequest {
                query: QueryTokens::parse(Some(&query)),
                authorization: auth.as_deref(),
                content_length: length,
                content_type: ctype.as_deref(),
            };
            let _ = verifier().authorize_put(path(), &request, NOW);
            let _ = verifier().authorize_delete(path(), &request.query);
        }
    }
}
