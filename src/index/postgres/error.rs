//! Why a PostgreSQL operation failed, described without row data or the
//! connection URL, and turned into [`IndexError`] at the trait boundary.

use std::time::Duration;

use deadpool_postgres::{PoolError, TimeoutType};

use super::POOL_TIMEOUT;
use crate::index::IndexError;

/// Why a PostgreSQL operation failed; turned into [`IndexError`] at the
/// trait boundary.
#[derive(Debug, thiserror::Error)]
pub(super) enum PgError {
    /// No connection could be had from the pool.
    #[error("no PostgreSQL connection: {0}")]
    Pool(String),
    /// A statement failed.
    #[error("PostgreSQL statement failed: {0}")]
    Query(String),
    /// The operation did not finish in time.
    #[error("PostgreSQL did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// A row does not hold what this code wrote.
    #[error("a PostgreSQL index row is corrupt")]
    Corrupt,
    /// The database was made by a newer upslot.
    #[error(
        "the PostgreSQL index has schema version {found}, newer than this upslot knows ({known}): upgrade upslot"
    )]
    SchemaTooNew {
        /// Version recorded in the database.
        found: i64,
        /// Version this code writes.
        known: usize,
    },
    /// The database was made with another index key.
    #[error("the index key differs")]
    KeyMismatch,
    /// The database's epoch keys are wrapped under another master key.
    #[error("the master key differs")]
    MasterKeyMismatch,
}

impl From<PgError> for IndexError {
    fn from(error: PgError) -> IndexError {
        match error {
            PgError::Corrupt => IndexError::Corrupt,
            PgError::KeyMismatch => IndexError::KeyMismatch,
            PgError::MasterKeyMismatch => IndexError::MasterKeyMismatch,
            PgError::Pool(_)
            | PgError::Query(_)
            | PgError::Timeout(_)
            | PgError::SchemaTooNew { .. } => IndexError::Unavailable(error.to_string()),
        }
    }
}

/// Describes a driver error without row data: a server error gives its
/// severity, message and SQLSTATE (not its detail, which may quote a row).
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<tokio_postgres::Error> for PgError {
    fn from(error: tokio_postgres::Error) -> PgError {
        PgError::Query(describe(&error))
    }
}

impl From<PoolError> for PgError {
    fn from(error: PoolError) -> PgError {
        let seconds = POOL_TIMEOUT.as_secs();
        PgError::Pool(match &error {
            PoolError::Backend(backend) => describe(backend),
            PoolError::Timeout(TimeoutType::Create) => {
                format!("connecting and logging in took over {seconds} s")
            }
            PoolError::Timeout(TimeoutType::Wait) => {
                format!("every pooled connection stayed busy for {seconds} s")
            }
            PoolError::Timeout(TimeoutType::Recycle) => {
                format!("checking a pooled connection took over {seconds} s")
            }
            PoolError::Closed | PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
                error.to_string()
            }
        })
    }
}
