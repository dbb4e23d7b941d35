//! Signing, as the XMPP servers do it (DESIGN.md §2): one function per
//! token family, pure and offline. `decoded` is always the path the MAC
//! covers (base prefix removed, percent-decoded once); the URL carries the
//! wire form, which the request helpers in `requests.rs` take separately.

use super::SECRET;

/// HMAC-SHA256 of `message` under `secret`, lower-case hex: how XMPP servers sign slots.
pub fn mac_hex(secret: &str, message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The v1 query `v=HEX` for a PUT of `size` bytes to the decoded path
/// `decoded`: the MAC of `decoded + " " + size` under the test secret.
pub fn v1_query(decoded: &str, size: u64) -> String {
    format!("v={}", v1_mac(SECRET, decoded, size))
}

/// The v1 MAC (Prosody's default, ejabberd's only one) of `decoded + " " + size` under `secret`.
pub fn v1_mac(secret: &str, decoded: &str, size: u64) -> String {
    mac_hex(secret, format!("{decoded} {size}").as_bytes())
}

/// The v2 query `v2=HEX` for the decoded path `decoded`, `size` and
/// `content_type` (the PUT's Content-Type, `application/octet-stream` when it sends none).
pub fn v2_query(decoded: &str, size: u64, content_type: &str) -> String {
    format!("v2={}", v2_mac(SECRET, decoded, size, content_type))
}

/// The MAC of v2 and of Metronome's `token=`: `decoded \0 size \0 content_type` under `secret`.
pub fn v2_mac(secret: &str, decoded: &str, size: u64, content_type: &str) -> String {
    mac_hex(
        secret,
        format!("{decoded}\0{size}\0{content_type}").as_bytes(),
    )
}

/// Metronome's upload query `token=HEX`: the v2 message under another name.
pub fn token_query(decoded: &str, size: u64, content_type: &str) -> String {
    format!("token={}", v2_mac(SECRET, decoded, size, content_type))
}

/// The MAC of Metronome's signed DELETE of `decoded`: `decoded \0 delete_secret`
/// under the test secret (sent as `?token=HEX`).
pub fn delete_mac(decoded: &str, delete_secret: &str) -> String {
    mac_hex(SECRET, format!("{decoded}\0{delete_secret}").as_bytes())
}

/// The admin erase signature for `jid` at Unix time `ts`: the MAC of
/// `"erase\0" + jid + "\0" + ts` under the test secret.
pub fn erase_sig(jid: &str, ts: i64) -> String {
    mac_hex(SECRET, format!("erase\0{jid}\0{ts}").as_bytes())
}

/// The admin access signature for `jid` at Unix time `ts`: the MAC of
/// `"access\0" + jid + "\0" + ts` under the test secret.
pub fn access_sig(jid: &str, ts: i64) -> String {
    mac_hex(SECRET, format!("access\0{jid}\0{ts}").as_bytes())
}

/// SHA-1 of `text`, lower-case hex: how ejabberd names an uploader.
pub fn sha1_hex(text: &str) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(text.as_bytes()))
}

/// An ejabberd slot path, `<sha1(jid) hex>/<random>/<name>` (ejabberd
/// makes `random` 40 alphanumerics and signs the path with v1).
pub fn ejabberd_path(jid: &str, random: &str, name: &str) -> String {
    format!("{}/{random}/{name}", sha1_hex(jid))
}

/// The wire form of `decoded` with every byte except ASCII letters, digits
/// and `/` percent-encoded (upper-case hex): stricter than any XMPP server.
pub fn encode_path(decoded: &str) -> String {
    percent_encoding::utf8_percent_encode(decoded, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2F", "/")
}

/// A JWT as Prosody's mod_http_file_share makes it: HS256 over `claims`
/// (a JSON object) with the test secret.
pub fn jwt(claims: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.as_bytes());
    let signed = format!("{header}.{payload}");
    let mac = hex::decode(mac_hex(SECRET, signed.as_bytes())).expect("hex");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// The claims of a JWT slot, in the order they are written. Starts from
/// [`Claims::new`] (what verification needs) or [`Claims::prosody`] (all
/// that Prosody sends); each setter replaces a claim in place or appends it.
#[derive(Debug, Clone)]
pub struct Claims {
    fields: Vec<(&'static str, serde_json::Value)>,
}

impl Claims {
    /// `slot`, `filesize` and `exp` = now + 300 s: the least a valid token carries.
    pub fn new(slot: &str, filesize: u64) -> Claims {
        Claims { fields: Vec::new() }
            .set("slot", slot)
            .set("filesize", filesize)
            .exp(super::unix_now() + 300)
    }

    /// Prosody 0.12's claims for `filename` of `filesize` bytes in `slot`:
    /// slot, filename, filesize, filetype `application/octet-stream`, sub
    /// `romeo@montague.tld`, iat now, exp now + 300 s; no `expires`.
    pub fn prosody(slot: &str, filename: &str, filesize: u64) -> Claims {
        let now = super::unix_now();
        Claims { fields: Vec::new() }
            .set("slot", slot)
            .set("filename", filename)
            .set("filesize", filesize)
            .filetype("application/octet-stream")
            .sub("romeo@montague.tld")
            .iat(now)
            .exp(now + 300)
    }

    /// Sets claim `key` to `value` (any JSON, floats included).
    pub fn set(mut self, key: &'static str, value: impl Into<serde_json::Value>) -> Claims {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(field) => field.1 = value,
            None => self.fields.push((key, value)),
        }
        self
    }

    /// The uploader's bare JID.
    pub fn sub(self, jid: &str) -> Claims {
        self.set("sub", jid)
    }

    /// The type to store and serve.
    pub fn filetype(self, content_type: &str) -> Claims {
        self.set("filetype", content_type)
    }

    /// When the token was issued (Unix time).
    pub fn iat(self, at: i64) -> Claims {
        self.set("iat", at)
    }

    /// When the token stops being valid (Unix time).
    pub fn exp(self, at: i64) -> Claims {
        self.set("exp", at)
    }

    /// When the file must be gone (Unix time).
    pub fn expires(self, at: i64) -> Claims {
        self.set("expires", at)
    }

    /// The payload, a compact JSON object in claim order.
    pub fn json(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(key, value)| format!("{}:{value}", serde_json::Value::from(*key)))
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    /// The signed token, via [`jwt`].
    pub fn jwt(&self) -> String {
        jwt(&self.json())
    }
}
