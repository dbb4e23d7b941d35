//! Authorising a right-of-access report on the admin listener:
//! `GET /owners/{jid}?ts=<unix time>&sig=<hex>`, where `sig` is the hex
//! HMAC-SHA256 under a shared secret of [`mac::access_message`]
//! (`"access\0" + jid + "\0" + ts`) and `ts` is within
//! [`super::ERASE_WINDOW_SECS`] of now: erasure's scheme under another
//! label, so an erase signature never reads an account's data and an
//! access signature never erases it. A resource in the JID is ignored.

use super::erase::EraseQuery;
use super::grant::Sealed;
use super::{AccessGrant, BareJid, TokenError, Verifier, mac};

/// The signed parts of an access request's query string: `ts` and `sig`,
/// read as erasure reads them.
pub type AccessQuery<'a> = EraseQuery<'a>;

impl Verifier {
    /// Authorises reporting what is held for `jid` (as signed, resource
    /// and all) with the signed `query`, at `now`.
    pub fn authorize_access(
        &self,
        jid: &str,
        query: &AccessQuery<'_>,
        now: i64,
    ) -> Result<AccessGrant, TokenError> {
        self.check_account_request(&mac::access_message(jid, query.timestamp), query, now)?;
        Ok(AccessGrant {
            jid: BareJid::of(jid),
            sealed: Sealed::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::verifier;

    const ROMEO: &str = "romeo@montague.tld";

    /// The hex signature of `message` under the test secret.
    fn sign(message: &[u8]) -> String {
        hex::encode(mac::hmac_sha256(b"s3cr3t", message))
    }

    /// The outcome of an access request for `jid` signed at `timestamp`
    /// with `signature`, at `now`.
    fn access(jid: &str, timestamp: i64, signature: &str, now: i64) -> Result<(), TokenError> {
        let query = AccessQuery {
            timestamp,
            signature,
        };
        verifier().authorize_access(jid, &query, now).map(|_| ())
    }

    /// The outcome of an erase request, for the same comparison.
    fn erase(jid: &str, timestamp: i64, signature: &str, now: i64) -> Result<(), TokenError> {
        let query = EraseQuery {
            timestamp,
            signature,
        };
        verifier().authorize_erase(jid, &query, now).map(|_| ())
    }

    #[test]
    fn access_signatures_and_their_window() {
        let sig = sign(&mac::access_message(ROMEO, 1000));
        assert_eq!(access(ROMEO, 1000, &sig, 1000), Ok(()));
        assert_eq!(access(ROMEO, 1000, &sig, 1300), Ok(()));
        assert_eq!(access(ROMEO, 1000, &sig, 700), Ok(()));
        assert_eq!(access(ROMEO, 1000, &sig, 1301), Err(TokenError::Expired));
        assert_eq!(access(ROMEO, 1000, &sig, 699), Err(TokenError::Expired));
        assert_eq!(
            access("juliet@capulet.lit", 1000, &sig, 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            access(ROMEO, 1001, &sig, 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(access(ROMEO, 1000, "", 1000), Err(TokenError::BadSignature));
        // Extreme times, validly signed, neither overflow nor pass.
        for ts in [i64::MIN, i64::MAX] {
            let sig = sign(&mac::access_message(ROMEO, ts));
            assert_eq!(access(ROMEO, ts, &sig, ts), Ok(()));
            assert_eq!(access(ROMEO, ts, &sig, 0), Err(TokenError::Expired));
        }
    }

    #[test]
    fn a_signature_for_one_purpose_is_refused_for_the_other() {
        let erase_sig = sign(&mac::erase_message(ROMEO, 1000));
        let access_sig = sign(&mac::access_message(ROMEO, 1000));
        assert_eq!(erase(ROMEO, 1000, &erase_sig, 1000), Ok(()));
        assert_eq!(
            access(ROMEO, 1000, &erase_sig, 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(access(ROMEO, 1000, &access_sig, 1000), Ok(()));
        assert_eq!(
            erase(ROMEO, 1000, &access_sig, 1000),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_resource_is_signed_and_then_ignored() {
        let jid = "romeo@montague.tld/orchard";
        let signature = sign(&mac::access_message(jid, 7));
        let query = AccessQuery {
            timestamp: 7,
            signature: &signature,
        };
        let grant = verifier().authorize_access(jid, &query, 7).unwrap();
        assert_eq!(grant.jid, BareJid::of(ROMEO));
        // Signed without the resource, it does not cover the one sent.
        let bare = sign(&mac::access_message(ROMEO, 7));
        assert_eq!(access(jid, 7, &bare, 7), Err(TokenError::BadSignature));
    }
}
