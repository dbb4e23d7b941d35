//! Authorising an account erasure on the admin listener:
//! `DELETE /owners/{jid}?ts=<unix time>&sig=<hex>`, where `sig` is the hex
//! HMAC-SHA256 under a shared secret of [`mac::erase_message`]
//! (`"erase\0" + jid + "\0" + ts`) and `ts` is within [`ERASE_WINDOW_SECS`]
//! of now. The JID is the one the XMPP server signed; a resource in it is
//! ignored. The right of access ([`super::access`]) is signed the same way
//! under another label, and checked by the same [`Verifier`] method.

use super::grant::Sealed;
use super::{BareJid, EraseGrant, TokenError, Verifier, mac};

/// How far an erase (or access) request's timestamp may be from now, in
/// seconds: a captured request cannot be replayed later than this.
pub const ERASE_WINDOW_SECS: i64 = 300;

/// The signed parts of an erase (or access) request's query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseQuery<'a> {
    /// `ts`: the Unix time the request was signed at.
    pub timestamp: i64,
    /// `sig`: the hex signature.
    pub signature: &'a str,
}

impl<'a> EraseQuery<'a> {
    /// Picks `ts` and `sig` out of a raw query string; the last occurrence
    /// of each wins, other parameters are ignored. Without both (or with a
    /// `ts` that is not a number) there are no credentials.
    pub fn parse(query: Option<&'a str>) -> Result<EraseQuery<'a>, TokenError> {
        let (mut timestamp, mut signature) = (None, None);
        for pair in query.unwrap_or_default().split('&') {
            match pair.split_once('=') {
                Some(("ts", value)) => timestamp = value.parse::<i64>().ok(),
                Some(("sig", value)) => signature = Some(value),
                _ => {}
            }
        }
        match (timestamp, signature) {
            (Some(timestamp), Some(signature)) => Ok(EraseQuery {
                timestamp,
                signature,
            }),
            _ => Err(TokenError::Missing { bearer: false }),
        }
    }
}

impl Verifier {
    /// Authorises erasing the files of `jid` (as signed, resource and all)
    /// with the signed `query`, at `now`.
    pub fn authorize_erase(
        &self,
        jid: &str,
        query: &EraseQuery<'_>,
        now: i64,
    ) -> Result<EraseGrant, TokenError> {
        self.check_account_request(&mac::erase_message(jid, query.timestamp), query, now)?;
        Ok(EraseGrant {
            jid: BareJid::of(jid),
            sealed: Sealed::new(),
        })
    }

    /// Whether `query` signs `message` (an account request's, whose label
    /// names its purpose) and was signed within [`ERASE_WINDOW_SECS`] of
    /// `now`.
    pub(super) fn check_account_request(
        &self,
        message: &[u8],
        query: &EraseQuery<'_>,
        now: i64,
    ) -> Result<(), TokenError> {
        if !mac::verify_hex(&self.secrets, message, query.signature) {
            return Err(TokenError::BadSignature);
        }
        // abs_diff: `now - timestamp` overflows for extreme timestamps
        // (found by fuzzing), and a wrapped difference could pass the check.
        if now.abs_diff(query.timestamp) > ERASE_WINDOW_SECS.unsigned_abs() {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::verifier;

    /// The outcome of erasing `jid` signed at `timestamp` with `signature`.
    fn erase(
        v: &Verifier,
        jid: &str,
        timestamp: i64,
        signature: &str,
        now: i64,
    ) -> Result<(), TokenError> {
        let query = EraseQuery {
            timestamp,
            signature,
        };
        v.authorize_erase(jid, &query, now).map(|_| ())
    }

    #[test]
    fn erase_signatures() {
        let v = verifier();
        let sig = crate::auth::mac::hmac_sha256(
            b"s3cr3t",
            &mac::erase_message("romeo@montague.tld", 1000),
        );
        let sig = hex::encode(sig);
        assert_eq!(erase(&v, "romeo@montague.tld", 1000, &sig, 1000), Ok(()));
        assert_eq!(erase(&v, "romeo@montague.tld", 1000, &sig, 1300), Ok(()));
        assert_eq!(
            erase(&v, "romeo@montague.tld", 1000, &sig, 1301),
            Err(TokenError::Expired)
        );
        assert_eq!(
            erase(&v, "romeo@montague.tld", 1000, &sig, 699),
            Err(TokenError::Expired)
        );
        assert_eq!(
            erase(&v, "juliet@capulet.lit", 1000, &sig, 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            erase(&v, "romeo@montague.tld", 1001, &sig, 1000),
            Err(TokenError::BadSignature)
        );
        // Extreme times, validly signed, neither overflow nor pass (found
        // by fuzzing: the difference used to overflow).
        for ts in [i64::MIN, i64::MAX] {
            let sig = hex::encode(crate::auth::mac::hmac_sha256(
                b"s3cr3t",
                &mac::erase_message("a@b", ts),
            ));
            for now in [i64::MIN, 0, 1_800_000_000, i64::MAX] {
                let expected = if now == ts {
                    Ok(())
                } else {
                    Err(TokenError::Expired)
                };
                assert_eq!(
                    erase(&v, "a@b", ts, &sig, now),
                    expected,
                    "ts {ts} now {now}"
                );
            }
        }
    }

    #[test]
    fn queries_and_resources() {
        assert_eq!(
            EraseQuery::parse(Some("sig=ab&x=1&ts=42")),
            Ok(EraseQuery {
                timestamp: 42,
                signature: "ab"
            })
        );
        for missing in [None, Some("ts=42"), Some("sig=ab"), Some("ts=soon&sig=ab")] {
            assert_eq!(
                EraseQuery::parse(missing),
                Err(TokenError::Missing { bearer: false }),
                "{missing:?}"
            );
        }
        // Signed with a resource: the grant names the bare account.
        let jid = "romeo@montague.tld/orchard";
        let signature = hex::encode(mac::hmac_sha256(b"s3cr3t", &mac::erase_message(jid, 7)));
        let query = EraseQuery {
            timestamp: 7,
            signature: &signature,
        };
        let grant = verifier().authorize_erase(jid, &query, 7).unwrap();
        assert_eq!(grant.jid, BareJid::of("romeo@montague.tld"));
    }
}
