//! The sweeper: deletes every file whose `expires_at` has passed.
//!
//! Each pass takes expired index entries oldest first in bounded batches,
//! deletes the blob, then the row: a row never outlives its blob, and a
//! crash between the two leaves a row whose blob is already gone, which
//! the next pass finishes (deleting a missing blob succeeds). The cost of
//! a pass grows with the number of expired files, not with the number
//! stored, because the index keeps an expiry order.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::index::IndexError;
use crate::storage::StorageError;

/// Entries taken from the index per batch.
pub const BATCH: usize = 1000;

/// Why a pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The index failed.
    #[error("index: {0}")]
    Index(#[from] IndexError),
    /// Blob storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// Sweeps every `every` until `shutdown` is cancelled.
pub async fn run(app: Arc<App>, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match sweep(&app, crate::time::unix_now(), &shutdown).await {
            Ok(0) => {}
            Ok(files) => tracing::info!(files, "expired files deleted"),
            Err(error) => tracing::error!(%error, "sweep failed; retrying at the next pass"),
        }
    }
}

/// Deletes every file expired at `now`; returns how many. Stops between
/// batches when `shutdown` is cancelled.
pub async fn sweep(app: &App, now: i64, shutdown: &CancellationToken) -> Result<usize, SweepError> {
    let mut deleted = 0;
    loop {
        let batch = app.index.expired(now, BATCH).await?;
        for (key, record) in &batch {
            app.blobs.delete(&record.blob).await?;
            app.index.remove(*key).await?;
            app.forget(*key).await;
            deleted += 1;
        }
        if batch.len() < BATCH || shutdown.is_cancelled() {
            return Ok(deleted);
        }
        // Let request handlers run between batches.
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::app::Settings;
    use crate::auth::Verifier;
    use crate::config::LogClientIp;
    use crate::http::cors::Cors;
    use crate::index::embedded::EmbeddedIndex;
    use crate::index::{FileRecord, IndexKey, SlotKey};
    use crate::storage::BlobName;
    use crate::storage::disk::DiskStore;

    fn app(dir: &std::path::Path) -> Arc<App> {
        let settings = Settings {
            base_path: "/".into(),
            max_size: 1 << 20,
            keep: Duration::from_secs(60),
            body_idle_timeout: Duration::from_secs(5),
            cors: Cors::new(&["*".into()]),
            log_client_ip: LogClientIp::None,
            trusted_proxies: Vec::new(),
        };
        Arc::new(App::new(
            Verifier::new(Vec::new(), None, Vec::new()),
            IndexKey::new([0; 32]),
            Arc::new(DiskStore::open(dir).unwrap()),
            Arc::new(EmbeddedIndex::open(&dir.join("index.redb")).unwrap()),
            settings,
        ))
    }

    async fn store(app: &App, key: u8, expires_at: i64) -> BlobName {
        let blob = BlobName::new(0);
        let mut writer = app.blobs.create(&blob).await.unwrap();
        writer.write(Bytes::from_static(b"x")).await.unwrap();
        writer.commit().await.unwrap();
        let record = FileRecord {
            blob: blob.clone(),
            size: 1,
            content_type: "text/plain".into(),
            created: 0,
            expires_at,
            owner: None,
        };
        app.index.insert(SlotKey([key; 32]), record).await.unwrap();
        blob
    }

    async fn exists(app: &App, blob: &BlobName) -> bool {
        app.blobs.read(blob, 0..1).await.is_ok()
    }

    #[tokio::test]
    async fn deletes_exactly_what_has_expired() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let early = store(&app, 1, 10).await;
        let boundary = store(&app, 2, 20).await;
        let later = store(&app, 3, 21).await;
        let token = CancellationToken::new();
        assert_eq!(sweep(&app, 9, &token).await.unwrap(), 0);
        assert_eq!(sweep(&app, 20, &token).await.unwrap(), 2);
        assert!(!exists(&app, &early).await);
        assert!(
            !exists(&app, &boundary).await,
            "a file expires exactly at expires_at"
        );
        assert!(exists(&app, &later).await);
        assert!(app.index.get(SlotKey([3; 32])).await.unwrap().is_some());
        assert!(app.index.get(SlotKey([2; 32])).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn finishes_after_a_crash_between_blob_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let blob = store(&app, 1, 10).await;
        // As if a previous pass died after deleting the blob.
        app.blobs.delete(&blob).await.unwrap();
        assert_eq!(sweep(&app, 10, &CancellationToken::new()).await.unwrap(), 1);
        assert!(app.index.expired(i64::MAX, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn works_through_several_batches() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        for i in 0..(BATCH + 5) {
            let record = FileRecord {
                blob: BlobName::new(0),
                size: 0,
                content_type: "text/plain".into(),
                created: 0,
                expires_at: i as i64,
                owner: None,
            };
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_be_bytes());
            app.index.insert(SlotKey(key), record).await.unwrap();
        }
        let swept = sweep(&app, i64::MAX, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(swept, BATCH + 5);
    }
}
