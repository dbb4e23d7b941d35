//! `ApiError`: every way a request can fail, and the one place where
//! failures become HTTP statuses and stable error codes.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::{self, Body};
use super::health::HealthReport;
use crate::auth::{PathError, TokenError};
use crate::encryption::EncryptionError;
use crate::files::FilesError;
use crate::index::IndexError;
use crate::quota::Refusal;
use crate::storage::StorageError;

/// The response header that carries [`ApiError::code`].
pub const ERROR_CODE_HEADER: &str = "upslot-error";

/// A request that cannot be served as asked.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The URL is not a slot path.
    #[error("{0}")]
    BadPath(PathError),
    /// Nothing is stored at this URL (or it has expired).
    #[error("no such file")]
    NotFound,
    /// The method is not served for this URL.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The methods that are, for `Allow`.
        allow: &'static str,
    },
    /// The slot token was refused.
    #[error("{0}")]
    Token(TokenError),
    /// The upload is larger than the configured limit.
    #[error("the file is larger than the {limit} bytes this server accepts")]
    TooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The body brought more bytes than the slot allows.
    #[error("the body is longer than the slot's size")]
    BodyTooLong,
    /// The body ended before the declared size.
    #[error("the body ended before the declared size")]
    Incomplete,
    /// The client stopped sending the body.
    #[error("the body stalled")]
    BodyTimeout,
    /// A completed file already holds this slot.
    #[error("this slot already holds a file")]
    SlotTaken,
    /// The slot held a file that has been deleted; slot URLs are single-use.
    #[error("this slot was used and its file has been deleted")]
    SlotUsed,
    /// The requested byte range lies outside the file.
    #[error("range not satisfiable")]
    RangeNotSatisfiable {
        /// The file's size, for `Content-Range: bytes */size`.
        size: u64,
    },
    /// Blob storage is out of space.
    #[error("storage is full")]
    StorageFull,
    /// Blob storage or the index cannot be reached.
    #[error("storage unavailable")]
    Unavailable,
    /// `/health`: a part does not answer. The body names which.
    #[error("unhealthy")]
    Unhealthy(HealthReport),
    /// The upload does not fit a quota.
    #[error("quota: {}", refusal.kind())]
    Quota {
        /// Which limit, and what it is.
        refusal: Refusal,
        /// Seconds until a refused daily upload would fit.
        retry_after: u64,
    },
    /// The client address failed too often and is banned for a while.
    #[error("too many failed attempts; retry later")]
    Banned {
        /// Seconds until the ban ends.
        retry_after: u64,
    },
    /// A fault on our side.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadPath(PathError::TooLong) => StatusCode::URI_TOO_LONG,
            ApiError::BadPath(PathError::BadEscape | PathError::Shape | PathError::Control) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Token(TokenError::Missing { bearer: true }) => StatusCode::UNAUTHORIZED,
            ApiError::Token(
                TokenError::Missing { bearer: false }
                | TokenError::Disabled
                | TokenError::Malformed
                | TokenError::BadSignature
                | TokenError::Expired
                | TokenError::SlotMismatch
                | TokenError::DeleteDisabled,
            ) => StatusCode::FORBIDDEN,
            ApiError::Token(TokenError::LengthRequired) => StatusCode::LENGTH_REQUIRED,
            ApiError::Token(TokenError::SizeMismatch)
            | ApiError::TooLarge { .. }
            | ApiError::BodyTooLong => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Incomplete => StatusCode::BAD_REQUEST,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::SlotTaken | ApiError::SlotUsed => StatusCode::CONFLICT,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::StorageFull
            | ApiError::Quota {
                refusal: Refusal::OwnerStored { .. } | Refusal::GlobalStored { .. },
                ..
            } => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Quota {
                refusal: Refusal::Daily { .. },
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::Unhealthy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Banned { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, documented machine-readable code (see README, "Errors").
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadPath(PathError::TooLong) => "path_too_long",
            ApiError::BadPath(PathError::BadEscape | PathError::Shape | PathError::Control) => {
                "bad_path"
            }
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Token(TokenError::Missing { .. }) => "token_missing",
            ApiError::Token(TokenError::Disabled) => "token_family_disabled",
            ApiError::Token(TokenError::Malformed) => "token_malformed",
            ApiError::Token(TokenError::BadSignature) => "token_invalid",
            ApiError::Token(TokenError::Expired) => "token_expired",
            ApiError::Token(TokenError::SlotMismatch) => "token_wrong_slot",
            ApiError::Token(TokenError::DeleteDisabled) => "delete_disabled",
            ApiError::Token(TokenError::LengthRequired) => "length_required",
            ApiError::Token(TokenError::SizeMismatch) => "size_mismatch",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::BodyTooLong => "body_too_long",
            ApiError::Incomplete => "body_incomplete",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::SlotTaken => "slot_taken",
            ApiError::SlotUsed => "slot_used",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::StorageFull => "storage_full",
            ApiError::Quota { refusal, .. } => match refusal {
                Refusal::Daily { .. } => "quota_daily",
                Refusal::OwnerStored { .. } => "quota_stored",
                Refusal::GlobalStored { .. } => "quota_global",
            },
            ApiError::Unavailable => "unavailable",
            ApiError::Unhealthy(_) => "unhealthy",
            ApiError::Banned { .. } => "too_many_failures",
            ApiError::Internal => "internal",
        }
    }

    /// Whether this failure is a refused credential (counted by brute-force
    /// protection).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, ApiError::Token(_))
    }

    /// The response: [`ApiError::sentence`] as a one-line text body (server
    /// faults add the request id, which names the log line with the
    /// cause; `/health`: its JSON report), the stable code in the
    /// `Upslot-Error` header, plus the headers the status requires.
    pub fn into_response(self, request_id: u64) -> Response<Body> {
        let status = self.status();
        let (text, content_type) = match &self {
            ApiError::Unhealthy(report) => (report.json(), "application/json"),
            _ if status.is_server_error() && status != StatusCode::INSUFFICIENT_STORAGE => (
                format!("{} (request {request_id})\n", self.sentence()),
                "text/plain; charset=utf-8",
            ),
            _ => (
                format!("{}\n", self.sentence()),
                "text/plain; charset=utf-8",
            ),
        };
        let mut response = Response::new(body::full(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(ERROR_CODE_HEADER, HeaderValue::from_static(self.code()));
        match self {
            ApiError::Token(TokenError::Missing { bearer: true }) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::RangeNotSatisfiable { size } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
            ApiError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::Banned { retry_after }
            | ApiError::Quota {
                refusal: Refusal::Daily { .. },
                retry_after,
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            }
            _ => {}
        }
        response
    }
}

impl From<PathError> for ApiError {
    fn from(error: PathError) -> Self {
        ApiError::BadPath(error)
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        ApiError::Token(error)
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => ApiError::NotFound,
            StorageError::Full => ApiError::StorageFull,
            StorageError::Unavailable(e) => {
                tracing::error!(error = %e, "blob storage failed");
                ApiError::Unavailable
            }
        }
    }
}

impl From<FilesError> for ApiError {
    fn from(error: FilesError) -> Self {
        match error {
            FilesError::Index(e) => e.into(),
            FilesError::Storage(e) => e.into(),
            FilesError::Taken => ApiError::SlotTaken,
            FilesError::Used => ApiError::SlotUsed,
            // Shredded: gone for good, as if swept (logged where found).
            FilesError::Shredded => ApiError::NotFound,
            FilesError::Tampered => ApiError::Internal,
            FilesError::Quota(refusal) => {
                let retry_after = match refusal {
                    Refusal::Daily { retry_at, .. } => {
                        u64::try_from(retry_at.saturating_sub(crate::time::unix_now())).unwrap_or(0)
                    }
                    Refusal::OwnerStored { .. } | Refusal::GlobalStored { .. } => 0,
                };
                ApiError::Quota {
                    refusal,
                    retry_after,
                }
            }
            FilesError::Encryption(EncryptionError::Keyring(e)) => {
                tracing::error!(error = %e, "keyring failed");
                ApiError::Unavailable
            }
            FilesError::Encryption(EncryptionError::Key(e)) => {
                tracing::error!(error = %e, "key material failed");
                ApiError::Internal
            }
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(error: IndexError) -> Self {
        tracing::error!(error = %error, "index failed");
        ApiError::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_design() {
        let cases: [(ApiError, u16); 12] = [
            (ApiError::Token(TokenError::Missing { bearer: false }), 403),
            (ApiError::Token(TokenError::Missing { bearer: true }), 401),
            (ApiError::Token(TokenError::BadSignature), 403),
            (ApiError::Token(TokenError::Expired), 403),
            (ApiError::Token(TokenError::SlotMismatch), 403),
            (ApiError::Token(TokenError::SizeMismatch), 413),
            (ApiError::Token(TokenError::LengthRequired), 411),
            (ApiError::TooLarge { limit: 1 }, 413),
            (ApiError::Incomplete, 400),
            (ApiError::SlotTaken, 409),
            (ApiError::StorageFull, 507),
            (ApiError::Unavailable, 503),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
        }
    }

    #[test]
    fn quota_refusals_say_which_limit_and_when() {
        let daily = ApiError::Quota {
            refusal: Refusal::Daily {
                limit: 1 << 30,
                retry_at: 14 * 3600 + 5 * 60,
            },
            retry_after: 600,
        };
        assert_eq!(
            (daily.status().as_u16(), daily.code()),
            (429, "quota_daily")
        );
        let r = daily.into_response(7);
        assert_eq!(r.headers()[header::RETRY_AFTER], "600");
        assert_eq!(r.headers()[ERROR_CODE_HEADER], "quota_daily");
        for (refusal, code) in [
            (Refusal::OwnerStored { limit: 1 }, "quota_stored"),
            (Refusal::GlobalStored { limit: 1 }, "quota_global"),
        ] {
            let error = ApiError::Quota {
                refusal,
                retry_after: 0,
            };
            assert_eq!((error.status().as_u16(), error.code()), (507, code));
            let r = error.into_response(7);
            assert!(r.headers().get(header::RETRY_AFTER).is_none());
        }
    }

    #[test]
    fn responses_carry_required_headers_and_no_causes() {
        let r = ApiError::Token(TokenError::Missing { bearer: true }).into_response(1);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let r = ApiError::RangeNotSatisfiable { size: 42 }.into_response(1);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */42");
        let r = ApiError::MethodNotAllowed { allow: "GET" }.into_response(1);
        assert_eq!(r.headers()[header::ALLOW], "GET");
        let r = ApiError::Unhealthy(HealthReport {
            storage: false,
            index: true,
        })
        .into_response(1);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
