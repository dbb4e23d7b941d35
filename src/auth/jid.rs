//! Bare JIDs: the one place a JID loses its resource.

use std::fmt;

/// A JID without its resource (`user@host`), as uploads are attributed and
/// accounts erased. Never printed: JIDs are personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct BareJid(String);

impl BareJid {
    /// The bare part of `jid` (everything before the first `/`).
    pub fn of(jid: &str) -> BareJid {
        BareJid(
            jid.split_once('/')
                .map_or(jid, |(bare, _)| bare)
                .to_string(),
        )
    }

    /// The bare JID's text, for hashing into a pseudonym.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BareJid([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_dropped() {
        assert_eq!(
            BareJid::of("juliet@capulet.lit/balcony").as_str(),
            "juliet@capulet.lit"
        );
        assert_eq!(
            BareJid::of("juliet@capulet.lit").as_str(),
            "juliet@capulet.lit"
        );
        assert_eq!(BareJid::of("a@b/c/d").as_str(), "a@b");
        assert!(!format!("{:?}", BareJid::of("juliet@capulet.lit")).contains("juliet"));
    }
}
