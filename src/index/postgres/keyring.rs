//! Epoch keys in the shared database, for replicas: table
//! `upslot_epoch_keys`, each key wrapped under the master key that every
//! replica holds in a file (never in the database). A database dump alone
//! opens nothing; with the master key, it opens only the epochs not yet
//! destroyed when it was taken, and those die on schedule too.

use async_trait::async_trait;

use super::error::PgError;
use super::{OPERATION_TIMEOUT, PostgresIndex, column, within};
use crate::auth::mac::hmac_sha256;
use crate::encryption::keyring::{Keyring, KeyringError};
use crate::encryption::keys::{EpochKey, MasterKey, WrappedKey};
use crate::index::IndexError;

/// A [`Keyring`] in the PostgreSQL index.
#[derive(Clone)]
pub struct PostgresKeyring {
    index: PostgresIndex,
    master: MasterKey,
}

impl PostgresIndex {
    /// The keyring of this database, its keys wrapped under `master`.
    /// The first replica records the master key's fingerprint; a replica
    /// with another master key gets [`IndexError::MasterKeyMismatch`].
    pub async fn keyring(&self, master: MasterKey) -> Result<PostgresKeyring, IndexError> {
        let fingerprint = hmac_sha256(master.0.expose(), b"upslot master key fingerprint");
        within(
            OPERATION_TIMEOUT,
            self.check_fingerprint(
                "master_key_fingerprint",
                fingerprint,
                PgError::MasterKeyMismatch,
            ),
        )
        .await?;
        Ok(PostgresKeyring {
            index: self.clone(),
            master,
        })
    }
}

fn unavailable(error: IndexError) -> KeyringError {
    KeyringError::Unavailable(error.to_string())
}

impl PostgresKeyring {
    async fn read(&self, end: i64) -> Result<Option<EpochKey>, KeyringError> {
        let rows = within(
            OPERATION_TIMEOUT,
            self.index.query(
                "SELECT wrapped FROM upslot_epoch_keys WHERE epoch_end = $1",
                &[&end],
            ),
        )
        .await
        .map_err(unavailable)?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let wrapped: Vec<u8> = column(row, 0).map_err(|_| KeyringError::Corrupt(end))?;
        let wrapped: WrappedKey = wrapped.try_into().map_err(|_| KeyringError::Corrupt(end))?;
        EpochKey::unwrap(&wrapped, &self.master, end)
            .map(Some)
            .map_err(|_| KeyringError::Corrupt(end))
    }
}

#[async_trait]
impl Keyring for PostgresKeyring {
    async fn get_or_create(&self, end: i64) -> Result<EpochKey, KeyringError> {
        if let Some(key) = self.read(end).await? {
            return Ok(key);
        }
        let wrapped = EpochKey::random()?.wrap(&self.master, end)?;
        // Of replicas racing, the first insert wins and all read it back.
        within(
            OPERATION_TIMEOUT,
            self.index.execute(
                "INSERT INTO upslot_epoch_keys (epoch_end, wrapped) VALUES ($1, $2)
                 ON CONFLICT (epoch_end) DO NOTHING",
                &[&end, &&wrapped[..]],
            ),
        )
        .await
        .map_err(unavailable)?;
        self.read(end).await?.ok_or(KeyringError::Corrupt(end))
    }

    async fn get(&self, end: i64) -> Result<Option<EpochKey>, KeyringError> {
        self.read(end).await
    }

    async fn epochs(&self) -> Result<Vec<i64>, KeyringError> {
        let rows = within(
            OPERATION_TIMEOUT,
            self.index.query(
                "SELECT epoch_end FROM upslot_epoch_keys ORDER BY epoch_end",
                &[],
            ),
        )
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| column(row, 0).map_err(|e| unavailable(e.into())))
            .collect()
    }

    async fn destroy(&self, end: i64) -> Result<(), KeyringError> {
        within(
            OPERATION_TIMEOUT,
            self.index.execute(
                "DELETE FROM upslot_epoch_keys WHERE epoch_end = $1",
                &[&end],
            ),
        )
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}
