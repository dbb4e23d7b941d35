//! What an authorised request may do. Grants are made only by the
//! [`super::Verifier`] (their `sealed` field cannot be set elsewhere), so a
//! handler that takes one runs only after authorisation.

use super::{BareJid, SlotPath};
use crate::config::Protocol;

/// Proof that a grant was made in `auth`: only this module can make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sealed(());

impl Sealed {
    pub(super) fn new() -> Sealed {
        Sealed(())
    }
}

/// Who uploaded a file, as far as the slot says. Turned into a keyed
/// pseudonym before it reaches the index.
#[derive(Clone, PartialEq, Eq)]
pub enum Uploader {
    /// A bare JID (JWT `sub`).
    Jid(BareJid),
    /// ejabberd's `sha1(user@host)`, lower-case hex.
    Sha1Hex(String),
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Uploader([redacted])")
    }
}

/// An authorised PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutGrant {
    /// The slot path the token was checked against.
    pub path: SlotPath,
    /// The family that authorised it.
    pub protocol: Protocol,
    /// The exact number of body bytes the upload must have.
    pub length: u64,
    /// The content type to store and serve.
    pub content_type: String,
    /// Unix time by which the token says the file must be gone (always
    /// after the time it was granted).
    pub expires: Option<i64>,
    /// The uploader, if the slot names one.
    pub uploader: Option<Uploader>,
    pub(super) sealed: Sealed,
}

/// An authorised Metronome `DELETE` of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteGrant {
    /// The slot path whose file may be deleted.
    pub path: SlotPath,
    pub(super) sealed: Sealed,
}

/// An authorised erasure of every file of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraseGrant {
    /// The account whose files may be erased.
    pub jid: BareJid,
    pub(super) sealed: Sealed,
}

/// An authorised right-of-access report on one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    /// The account whose holdings may be reported.
    pub jid: BareJid,
    pub(super) sealed: Sealed,
}
