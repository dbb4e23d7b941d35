//! Authorisation: a pure function of what a request asks for (the slot path
//! or the account), what it carries (query token, `Authorization`,
//! `Content-Length`, `Content-Type`) and `now`, giving a typed grant or a
//! refusal. No I/O, no clock reads.
//!
//! - [`put`]: uploads (v1, v2, Metronome's token, Prosody's JWT), giving a
//!   [`PutGrant`];
//! - [`delete`]: Metronome's signed `DELETE`, giving a [`DeleteGrant`];
//! - [`erase`]: the admin API's signed account erasure, giving an
//!   [`EraseGrant`];
//! - [`access`]: the admin API's signed right-of-access report (erasure's
//!   scheme under another label), giving an [`AccessGrant`];
//! - [`mac`] and [`jwt`]: one file per token family; [`path`]: URL-path
//!   decoding; [`jid`]: bare JIDs.
//!
//! Grants can only be made here, so a handler that takes one cannot run
//! unauthorised.

pub mod access;
pub mod delete;
pub mod erase;
mod grant;
pub mod jid;
pub mod jwt;
pub mod mac;
pub mod path;
pub mod put;

use crate::config::{Protocol, Secret};

pub use erase::ERASE_WINDOW_SECS;
pub use grant::{AccessGrant, DeleteGrant, EraseGrant, PutGrant, Uploader};
pub use jid::BareJid;
pub use path::{PathError, SlotPath};
pub use put::{PutRequest, QueryTokens, media_type};

/// Why a slot token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No credentials of an enabled family. `bearer` is true when JWT is the
    /// only enabled family, so the answer should ask for a Bearer token.
    #[error("no slot token")]
    Missing {
        /// Whether to answer 401 with `WWW-Authenticate: Bearer`.
        bearer: bool,
    },
    /// The request uses a token family the operator disabled.
    #[error("this token family is disabled")]
    Disabled,
    /// The token cannot be parsed.
    #[error("malformed slot token")]
    Malformed,
    /// The MAC or JWT signature does not match any configured secret.
    #[error("slot token signature does not match")]
    BadSignature,
    /// The JWT's `exp` (or the file's `expires`) has passed, or an erase
    /// or access request is too far from now.
    #[error("slot token has expired")]
    Expired,
    /// The JWT's `slot` is not this path's slot.
    #[error("slot token is for another slot")]
    SlotMismatch,
    /// A MAC family needs `Content-Length` (the size is signed).
    #[error("Content-Length is required")]
    LengthRequired,
    /// The JWT's `filesize` differs from `Content-Length`.
    #[error("Content-Length differs from the size in the token")]
    SizeMismatch,
    /// A DELETE, but no delete secret is configured.
    #[error("deletion is not enabled")]
    DeleteDisabled,
}

/// Checks slot tokens against the configured secrets.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    delete_secret: Option<Secret>,
    protocols: Vec<Protocol>,
}

impl Verifier {
    /// A verifier accepting `protocols`, any of `secrets`, and Metronome
    /// DELETEs when `delete_secret` is set.
    pub fn new(
        secrets: Vec<Secret>,
        delete_secret: Option<Secret>,
        protocols: Vec<Protocol>,
    ) -> Verifier {
        Verifier {
            secrets,
            delete_secret,
            protocols,
        }
    }

    fn enabled(&self, protocol: Protocol) -> bool {
        self.protocols.contains(&protocol)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every token family.
    pub(crate) const ALL: [Protocol; 4] =
        [Protocol::V1, Protocol::V2, Protocol::Token, Protocol::Jwt];

    /// The verifier of the design notes' vectors: secret `s3cr3t`, delete
    /// secret `d3l3t3`, every family.
    pub(crate) fn verifier() -> Verifier {
        Verifier::new(
            vec![Secret::new("s3cr3t")],
            Some(Secret::new("d3l3t3")),
            ALL.to_vec(),
        )
    }

    /// The design notes' path, `abc123/photo 1.jpg`.
    pub(crate) fn path() -> SlotPath {
        SlotPath::from_wire("abc123/photo%201.jpg").unwrap()
    }
}
