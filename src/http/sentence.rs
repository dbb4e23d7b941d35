//! The sentences refusals answer with: one plain line a chat client can
//! show its user as it is, saying what happened and what to do, naming no
//! account, address or file (only limits and times). `error.rs` decides
//! statuses and codes; this file only words them.

use super::error::ApiError;
use crate::auth::{PathError, TokenError};
use crate::config::human_bytes;

impl ApiError {
    /// One plain sentence a chat client can show its user: what happened
    /// and what to do. It names no account, address or file, only limits
    /// and times; server faults say only that something went wrong.
    pub fn sentence(&self) -> String {
        match self {
            ApiError::BadPath(PathError::TooLong) => {
                "This link is too long to be a file link.".into()
            }
            ApiError::BadPath(PathError::BadEscape | PathError::Shape | PathError::Control) => {
                "This is not a valid file link.".into()
            }
            ApiError::NotFound => "This file does not exist, or it has expired.".into(),
            ApiError::MethodNotAllowed { .. } => {
                "This request method is not supported here.".into()
            }
            ApiError::Token(error) => token_sentence(error).into(),
            ApiError::TooLarge { limit } => format!(
                "This file is larger than the {} this server accepts.",
                human_bytes(*limit)
            ),
            ApiError::BodyTooLong => "The upload sent more bytes than its declared size.".into(),
            ApiError::Incomplete => {
                "The upload ended before the whole file arrived; please try again.".into()
            }
            ApiError::BodyTimeout => "The upload stalled and was stopped; please try again.".into(),
            ApiError::SlotTaken => "A file has already been uploaded with this link.".into(),
            ApiError::SlotUsed => {
                "This upload link has already been used; please upload the file again.".into()
            }
            ApiError::RangeNotSatisfiable { .. } => {
                "The requested part lies beyond the end of the file.".into()
            }
            ApiError::StorageFull => {
                "The server is out of storage space; please try again later.".into()
            }
            ApiError::Quota { refusal, .. } => refusal.sentence(),
            ApiError::Unavailable => {
                "The upload service is unavailable for a moment; please try again shortly.".into()
            }
            ApiError::Unhealthy(_) => "A part of the service does not answer.".into(),
            ApiError::Banned { retry_after } => format!(
                "Too many failed attempts; please try again in {}.",
                minutes(*retry_after)
            ),
            ApiError::Internal => "Something went wrong on the server.".into(),
        }
    }
}

/// The sentence of a refused token.
fn token_sentence(error: &TokenError) -> &'static str {
    match error {
        TokenError::Missing { .. } => {
            "This upload link carries no authorization; please upload the file again."
        }
        TokenError::Disabled => "This server does not accept this kind of upload link.",
        TokenError::Malformed => "This upload link is damaged; please upload the file again.",
        TokenError::BadSignature => "This upload link is not valid; please upload the file again.",
        TokenError::Expired => "This upload link has expired; please upload the file again.",
        TokenError::SlotMismatch => {
            "This upload link was made for another file; please upload the file again."
        }
        TokenError::DeleteDisabled => "Deleting files is not enabled on this server.",
        TokenError::LengthRequired => "The upload must state its size (Content-Length).",
        TokenError::SizeMismatch => {
            "The file's size differs from the size its upload link was made for."
        }
    }
}

/// `seconds` as whole minutes, rounded up ("1 minute", "15 minutes").
fn minutes(seconds: u64) -> String {
    match seconds.div_ceil(60).max(1) {
        1 => "1 minute".into(),
        n => format!("{n} minutes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sentence_is_one_line_and_server_faults_name_the_request() {
        let errors = [
            ApiError::TooLarge { limit: 100 << 20 },
            ApiError::Token(TokenError::Expired),
            ApiError::SlotUsed,
            ApiError::StorageFull,
            ApiError::Banned { retry_after: 61 },
            ApiError::Internal,
            ApiError::Unavailable,
        ];
        for error in errors {
            let sentence = error.sentence();
            assert!(
                sentence.ends_with('.') && !sentence.contains('\n'),
                "{sentence:?}"
            );
        }
        assert_eq!(
            ApiError::TooLarge { limit: 100 << 20 }.sentence(),
            "This file is larger than the 100 MiB this server accepts."
        );
        assert_eq!(
            ApiError::Banned { retry_after: 61 }.sentence(),
            "Too many failed attempts; please try again in 2 minutes."
        );
    }
}
