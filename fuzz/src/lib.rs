//! What upslot's fuzz targets share: how an input is read as named fields,
//! and the secrets and clock of DESIGN.md's test vectors (so seeds made from
//! those vectors get past the signature checks).
//!
//! # Input format
//!
//! Targets that need several values read the input as lines of
//! `name value` (split at the first space; a line without a space is a name
//! with an empty value). The first line with a name wins; a name with no
//! line is absent (`None`); unknown names are ignored. Values are raw bytes:
//! nothing is trimmed or unescaped, so every byte except `\n` can reach the
//! code under test. HTTP cannot carry a `\n` in a request line or a header
//! value either. Seeds in `fuzz/seeds/<target>/` are written in this form.

use std::borrow::Cow;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use upslot::auth::mac::{erase_message, hmac_sha256};
use upslot::auth::erase::EraseQuery;
use upslot::auth::{PutRequest, QueryTokens, SlotPath, Verifier};
use upslot::config::{Protocol, Secret};

/// The shared secret of DESIGN.md's vectors.
pub const SECRET: &str = "s3cr3t";

/// Metronome's delete secret in DESIGN.md's vectors.
pub const DELETE_SECRET: &str = "d3l3t3";

/// The `iat` of DESIGN.md's JWT vectors: a `now` at which they are valid.
pub const NOW: i64 = 1_999_999_400;

/// DESIGN.md's slot path, wire form.
pub const DESIGN_PATH: &str = "abc123/photo%201.jpg";

/// Every token family.
pub const ALL_PROTOCOLS: [Protocol; 4] =
    [Protocol::V1, Protocol::V2, Protocol::Token, Protocol::Jwt];

/// An input read as `name value` lines.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    lines: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Fields<'a> {
    /// Splits `data` into lines and each line at its first space.
    pub fn parse(data: &'a [u8]) -> Fields<'a> {
        let lines = data
            .split(|&b| b == b'\n')
            .map(|line| match line.iter().position(|&b| b == b' ') {
                Some(space) => (&line[..space], &line[space + 1..]),
                None => (line, &line[line.len()..]),
            })
            .collect();
        Fields { lines }
    }

    /// Every line, in order, as `(name, value)`.
    pub fn pairs(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.lines.iter().copied()
    }

    /// The value of the first line named `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.all(name).next()
    }

    /// The values of every line named `name`.
    pub fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.pairs()
            .filter(move |(key, _)| *key == name.as_bytes())
            .map(|(_, value)| value)
    }

    /// The first `name` value as text (invalid UTF-8 replaced).
    pub fn text(&self, name: &str) -> Option<Cow<'a, str>> {
        self.get(name).map(String::from_utf8_lossy)
    }

    /// The first `name` value parsed as a number (or anything `FromStr`);
    /// `None` when absent or unparsable.
    pub fn number<T: FromStr>(&self, name: &str) -> Option<T> {
        std::str::from_utf8(self.get(name)?).ok()?.parse().ok()
    }
}

/// Token families named in a comma-separated list (`v1,v2,token,jwt`);
/// unknown names are skipped. `None` means all of them.
pub fn protocols(list: Option<&[u8]>) -> Vec<Protocol> {
    let Some(list) = list else {
        return ALL_PROTOCOLS.to_vec();
    };
    list.split(|&b| b == b',')
        .filter_map(|name| match name {
            b"v1" => Some(Protocol::V1),
            b"v2" => Some(Protocol::V2),
            b"token" => Some(Protocol::Token),
            b"jwt" => Some(Protocol::Jwt),
            _ => None,
        })
        .collect()
}

/// A verifier with DESIGN.md's secrets accepting `protocols`.
pub fn verifier(protocols: Vec<Protocol>) -> Verifier {
    Verifier::new(
        vec![Secret::new(SECRET)],
        Some(Secret::new(DELETE_SECRET)),
        protocols,
    )
}

/// DESIGN.md's slot path.
pub fn design_path() -> SlotPath {
    match SlotPath::from_wire(DESIGN_PATH) {
        Ok(path) => path,
        Err(_) => unreachable!("DESIGN.md's path is a slot path"),
    }
}

/// A PUT or DELETE as the `mac_tokens` target reads it. Fields: `path`
/// (wire form; absent or invalid means DESIGN.md's), `query`, `length`
/// (decimal Content-Length), `type` (Content-Type bytes), `auth`
/// (Authorization bytes), `now` (default [`NOW`]), `protocols` (e.g.
/// `v1,jwt`; default all).
#[derive(Debug)]
pub struct PutInput<'a> {
    /// The slot path.
    pub path: SlotPath,
    query: Option<Cow<'a, str>>,
    authorization: Option<&'a [u8]>,
    content_length: Option<u64>,
    content_type: Option<&'a [u8]>,
    /// The families the verifier accepts.
    pub protocols: Vec<Protocol>,
    /// The time of the request.
    pub now: i64,
}

impl<'a> PutInput<'a> {
    /// Reads the fields of `data`.
    pub fn parse(data: &'a [u8]) -> PutInput<'a> {
        let fields = Fields::parse(data);
        PutInput {
            path: fields
                .text("path")
                .and_then(|wire| SlotPath::from_wire(&wire).ok())
                .unwrap_or_else(design_path),
            query: fields.text("query"),
            authorization: fields.get("auth"),
            content_length: fields.number("length"),
            content_type: fields.get("type"),
            protocols: protocols(fields.get("protocols")),
            now: fields.number("now").unwrap_or(NOW),
        }
    }

    /// The request the verifier sees.
    pub fn request(&self) -> PutRequest<'_> {
        PutRequest {
            query: QueryTokens::parse(self.query.as_deref()),
            authorization: self.authorization,
            content_length: self.content_length,
            content_type: self.content_type,
        }
    }
}

/// An account erasure as the `erase` target reads it. Fields: `jid`
/// (lossy UTF-8), `timestamp` (decimal, default 0), `signature` (lossy
/// UTF-8; absent means a valid one, made here with [`SECRET`], so the
/// checks behind the signature are reached), `now` (decimal, default
/// [`NOW`]).
#[derive(Debug)]
pub struct EraseInput<'a> {
    /// The account whose files are to go.
    pub jid: Cow<'a, str>,
    /// The signed time of the request.
    pub timestamp: i64,
    /// Hex HMAC of the erase message.
    pub signature: Cow<'a, str>,
    /// The server's clock.
    pub now: i64,
}

impl<'a> EraseInput<'a> {
    /// The signed parts of the request, as the admin listener reads them
    /// from its query string.
    pub fn query(&self) -> EraseQuery<'_> {
        EraseQuery {
            timestamp: self.timestamp,
            signature: &self.signature,
        }
    }

    /// Reads the fields of `data`.
    pub fn parse(data: &'a [u8]) -> EraseInput<'a> {
        let fields = Fields::parse(data);
        let jid = fields.text("jid").unwrap_or_default();
        let timestamp = fields.number("timestamp").unwrap_or(0);
        let signature = fields.text("signature").unwrap_or_else(|| {
            let mac = hmac_sha256(SECRET.as_bytes(), &erase_message(&jid, timestamp));
            Cow::Owned(mac.iter().map(|b| format!("{b:02x}")).collect())
        });
        EraseInput {
            jid,
            timestamp,
            signature,
            now: fields.number("now").unwrap_or(NOW),
        }
    }
}

/// An HS256 JWT of `header` and `payload` (any bytes) signed with
/// [`SECRET`], as Prosody would make it.
pub fn sign_jwt(header: &[u8], payload: &[u8]) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = hmac_sha256(SECRET.as_bytes(), signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let fields = Fields::parse(b"path a/b\nempty \nbare\npath second\nnum 42");
        assert_eq!(fields.get("path"), Some(&b"a/b"[..]));
        assert_eq!(fields.all("path").count(), 2);
        assert_eq!(fields.get("empty"), Some(&b""[..]));
        assert_eq!(fields.get("bare"), Some(&b""[..]));
        assert_eq!(fields.get("missing"), None);
        assert_eq!(fields.number::<u64>("num"), Some(42));
        assert_eq!(fields.number::<u64>("path"), None);
    }

    #[test]
    fn protocol_lists() {
        assert_eq!(protocols(None), ALL_PROTOCOLS.to_vec());
        assert_eq!(
            protocols(Some(b"jwt,nonsense,v1")),
            vec![Protocol::Jwt, Protocol::V1]
        );
        assert!(protocols(Some(b"")).is_empty());
    }

    // The seeds that carry DESIGN.md's MACs must get past the signature
    // checks, or the fuzzer never reaches the code behind them.

    macro_rules! seed {
        ($target:literal, $name:literal) => {
            include_bytes!(concat!("../seeds/", $target, "/", $name)).as_slice()
        };
    }

    #[test]
    fn mac_seeds_are_granted() {
        let granted = [
            seed!("mac_tokens", "v1"),
            seed!("mac_tokens", "v1_size_0"),
            seed!("mac_tokens", "v2"),
            seed!("mac_tokens", "v2_no_type"),
            seed!("mac_tokens", "v2_utf8_path"),
            seed!("mac_tokens", "token_upper_hex"),
            seed!("mac_tokens", "ejabberd_v1"),
            seed!("mac_tokens", "jwt_bearer"),
        ];
        for data in granted {
            let input = PutInput::parse(data);
            let verifier = verifier(input.protocols.clone());
            let grant = verifier.authorize_put(input.path.clone(), &input.request(), input.now);
            assert!(grant.is_ok(), "{}", String::from_utf8_lossy(data));
        }
        let input = PutInput::parse(seed!("mac_tokens", "metronome_delete"));
        let delete = verifier(ALL_PROTOCOLS.to_vec())
            .authorize_delete(input.path.clone(), &input.request().query);
        assert_eq!(delete.map(|grant| grant.path), Ok(input.path));
    }

    #[test]
    fn erase_seeds_are_granted() {
        for (data, ok) in [
            (seed!("erase", "valid_now"), true),
            (seed!("erase", "edge_of_window"), true),
            (seed!("erase", "unicode_jid"), true),
            (seed!("erase", "wrong_jid"), false),
            (seed!("erase", "signed_here"), true),
            (seed!("erase", "signed_here_too_old"), false),
            // `now - timestamp` used to overflow on these (commit 636d970).
            (seed!("erase", "regression_window_overflow"), false),
            (
                seed!("erase", "regression_window_overflow_design_sig"),
                false,
            ),
        ] {
            let input = EraseInput::parse(data);
            let result = verifier(ALL_PROTOCOLS.to_vec()).authorize_erase(
                &input.jid,
                &input.query(),
                input.now,
            );
            assert_eq!(result.is_ok(), ok, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn jwt_seeds_verify() {
        let secrets = [Secret::new(SECRET)];
        for token in [
            seed!("jwt", "design_sorted"),
            seed!("jwt", "design_reordered"),
            seed!("jwt", "design_float_expires"),
        ] {
            let token = String::from_utf8_lossy(token);
            assert!(upslot::auth::jwt::verify(&token, &secrets, NOW).is_ok());
        }
        let json = seed!("jwt", "json_design_1");
        let newline = json.iter().position(|&b| b == b'\n').unwrap_or_default();
        let token = sign_jwt(&json[..newline], &json[newline + 1..]);
        assert_eq!(
            token,
            String::from_utf8_lossy(seed!("jwt", "design_sorted"))
        );
    }
}
