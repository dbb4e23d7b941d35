//! The query-string MAC families: `?v=` (v1), `?v2=`, `?token=` (Metronome)
//! and Metronome's signed `DELETE`. All are HMAC-SHA256 under the shared
//! secret, hex-encoded; see DESIGN.md §2 for the exact messages.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The Content-Type signed by v2 and token slots when the PUT has none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// v1 (Prosody v1, ejabberd): `path + " " + length`.
pub fn v1_message(path: &[u8], length: u64) -> Vec<u8> {
    let mut message = Vec::with_capacity(path.len() + 21);
    message.extend_from_slice(path);
    message.push(b' ');
    message.extend_from_slice(length.to_string().as_bytes());
    message
}

/// v2 and Metronome's token: `path + "\0" + length + "\0" + content_type`.
pub fn v2_message(path: &[u8], length: u64, content_type: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(path.len() + content_type.len() + 22);
    message.extend_from_slice(path);
    message.push(0);
    message.extend_from_slice(length.to_string().as_bytes());
    message.push(0);
    message.extend_from_slice(content_type);
    message
}

/// Metronome's DELETE: `path + "\0" + delete_secret`.
pub fn delete_message(path: &[u8], delete_secret: &Secret) -> Vec<u8> {
    let mut message = Vec::with_capacity(path.len() + 1 + delete_secret.expose().len());
    message.extend_from_slice(path);
    message.push(0);
    message.extend_from_slice(delete_secret.expose());
    message
}

/// Account erasure (upslot's admin API): `"erase\0" + jid + "\0" + timestamp`.
pub fn erase_message(jid: &str, timestamp: i64) -> Vec<u8> {
    account_message(b"erase", jid, timestamp)
}

/// Right of access (upslot's admin API): `"access\0" + jid + "\0" + timestamp`.
/// The label differs from [`erase_message`]'s, so a signature for one can
/// never be used for the other.
pub fn access_message(jid: &str, timestamp: i64) -> Vec<u8> {
    account_message(b"access", jid, timestamp)
}

/// A signed request about one account: `purpose + "\0" + jid + "\0" + timestamp`.
fn account_message(purpose: &[u8], jid: &str, timestamp: i64) -> Vec<u8> {
    let mut message = purpose.to_vec();
    message.push(0);
    message.extend_from_slice(jid.as_bytes());
    message.push(0);
    message.extend_from_slice(timestamp.to_string().as_bytes());
    message
}

/// Whether `hex_mac` (either case) is the HMAC of `message` under any of
/// `secrets`. Comparison is constant-time (`Mac::verify_slice`).
pub fn verify_hex(secrets: &[Secret], message: &[u8], hex_mac: &str) -> bool {
    let Ok(tag) = hex::decode(hex_mac) else {
        return false;
    };
    if tag.len() != 32 {
        return false;
    }
    let mut any = false;
    for secret in secrets {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.expose()) else {
            continue;
        };
        mac.update(message);
        // Every secret is tried, so timing does not tell which one matched.
        any |= mac.verify_slice(&tag).is_ok();
    }
    any
}

/// HMAC-SHA256 of `message` under `key`: the keyed hash behind index keys
/// and owner pseudonyms, and the signature of JWTs.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Vec<Secret> {
        vec![Secret::new(text)]
    }

    const PATH: &[u8] = "abc123/photo 1.jpg".as_bytes();

    #[test]
    fn design_vectors() {
        let s = secret("s3cr3t");
        assert!(verify_hex(
            &s,
            &v1_message(PATH, 12345),
            "d90b99240bb9aa4b3251e52c9d2d0ae21b0eee9cbaec63df26b67995ec365506"
        ));
        assert!(verify_hex(
            &s,
            &v2_message(PATH, 12345, b"image/jpeg"),
            "3d6a070108bbc49f51700606324d11dde942b8ce97999424e897d83a33dc8a21"
        ));
        assert!(verify_hex(
            &s,
            &v2_message(PATH, 12345, DEFAULT_CONTENT_TYPE.as_bytes()),
            "59cae5ae70928e573889a14f792f5ec7fc8bf298949b424240ac122a94000b75"
        ));
        assert!(verify_hex(
            &s,
            &v1_message(PATH, 0),
            "d318b3b790dfae66d5e9c3c03d3a7cac734a0e35bd39431060d067c8aafbaae2"
        ));
        assert!(verify_hex(
            &s,
            &v2_message("abc123/très cool.jpg".as_bytes(), 12345, b"image/jpeg"),
            "9c799aee62505f3f40861852bf938ac07c79546c8bc3d2bfa0a76b5a8cefe2c6"
        ));
        assert!(verify_hex(
            &s,
            &delete_message(PATH, &Secret::new("d3l3t3")),
            "5b27d1a8b9cae034e58c9913c9212aefbc011ba577666de615fbe4ff77317be7"
        ));
        assert!(verify_hex(
            &s,
            &v1_message(
                b"43feddb25776a343c69835c7e79dc2c7f59598a6/abc123/photo_1.jpg",
                12345
            ),
            "24f210eb48fb8c2b375783b5bb60d5c123666c097fd0a0c95330cd02bd25c1b2"
        ));
        let m = secret("mysecret");
        assert!(verify_hex(
            &m,
            &v1_message(b"thomas/abc/catmetal.jpg", 23026),
            "7b8879e2d1c733b423a70cde30cecc3a3c64a03f790d1b5bcbb2a6aca52b477e"
        ));
        assert!(verify_hex(
            &m,
            &v2_message(b"thomas/abc/catmetal.jpg", 23026, b"image/jpeg"),
            "7318cd44d4c40731e3b2ff869f553ab2326eae631868e7b8054db20d4aee1c06"
        ));
    }

    #[test]
    fn account_messages_name_their_purpose() {
        // `\0` then the digits (Rust has no octal escapes; spelt apart for readers).
        assert_eq!(
            erase_message("a@b/c", 42),
            [&b"erase\0a@b/c\0"[..], b"42"].concat()
        );
        assert_eq!(access_message("a@b/c", -42), b"access\0a@b/c\0-42".to_vec());
        assert_ne!(erase_message("a@b", 1), access_message("a@b", 1));
    }

    #[test]
    fn either_hex_case_any_configured_secret() {
        let upper = "D90B99240BB9AA4B3251E52C9D2D0AE21B0EEE9CBAEC63DF26B67995EC365506";
        assert!(verify_hex(
            &secret("s3cr3t"),
            &v1_message(PATH, 12345),
            upper
        ));
        let rotated = vec![Secret::new("new"), Secret::new("s3cr3t")];
        assert!(verify_hex(&rotated, &v1_message(PATH, 12345), upper));
    }

    #[test]
    fn refuses_wrong_macs() {
        let good = "d90b99240bb9aa4b3251e52c9d2d0ae21b0eee9cbaec63df26b67995ec365506";
        let s = secret("s3cr3t");
        assert!(!verify_hex(&s, &v1_message(PATH, 12346), good));
        assert!(!verify_hex(
            &secret("other"),
            &v1_message(PATH, 12345),
            good
        ));
        assert!(!verify_hex(&s, &v1_message(PATH, 12345), &good[..62]));
        assert!(!verify_hex(&s, &v1_message(PATH, 12345), ""));
        assert!(!verify_hex(
            &s,
            &v1_message(PATH, 12345),
            &good.replace('d', "x")
        ));
        assert!(!verify_hex(&[], &v1_message(PATH, 12345), good));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(mac in ".{0,100}", path in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let _ = verify_hex(&secret("s3cr3t"), &v1_message(&path, 1), &mac);
        }
    }
}
