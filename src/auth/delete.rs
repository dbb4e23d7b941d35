//! Authorising Metronome's signed `DELETE`, which it sends when a file
//! expires on its side or its uploader's account is deleted:
//! `DELETE <path>?token=HMAC(path \0 delete_secret)`.

use super::grant::Sealed;
use super::{DeleteGrant, QueryTokens, SlotPath, TokenError, Verifier, mac};

impl Verifier {
    /// Authorises Metronome's `DELETE <path>?token=HMAC(path \0 delete_secret)`.
    pub fn authorize_delete(
        &self,
        path: SlotPath,
        query: &QueryTokens<'_>,
    ) -> Result<DeleteGrant, TokenError> {
        let delete_secret = self
            .delete_secret
            .as_ref()
            .ok_or(TokenError::DeleteDisabled)?;
        let mac = query.token.ok_or(TokenError::Missing { bearer: false })?;
        let message = mac::delete_message(path.as_bytes(), delete_secret);
        if mac::verify_hex(&self.secrets, &message, mac) {
            Ok(DeleteGrant {
                path,
                sealed: Sealed::new(),
            })
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tests::{ALL, path, verifier};
    use crate::config::Secret;

    #[test]
    fn metronome_delete() {
        let good = QueryTokens::parse(Some(
            "token=5b27d1a8b9cae034e58c9913c9212aefbc011ba577666de615fbe4ff77317be7",
        ));
        assert_eq!(
            verifier()
                .authorize_delete(path(), &good)
                .map(|grant| grant.path),
            Ok(path())
        );
        let bad = QueryTokens::parse(Some("token=00"));
        assert_eq!(
            verifier().authorize_delete(path(), &bad),
            Err(TokenError::BadSignature)
        );
        let none = Verifier::new(vec![Secret::new("s3cr3t")], None, ALL.to_vec());
        assert_eq!(
            none.authorize_delete(path(), &good),
            Err(TokenError::DeleteDisabled)
        );
    }
}
