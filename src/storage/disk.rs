//! Blobs on a local filesystem.
//!
//! Layout below the data directory:
//! - `blobs/<YYYY-MM-DD>/<uuid>`: complete blobs (mode 0600, directories 0700);
//! - `tmp/<uuid>.part`: uploads in progress, in the same filesystem so the
//!   final `rename` is atomic. Whatever is in `tmp/` at start-up belongs to
//!   a process that died and is removed.
//!
//! A commit is: flush, `fsync` the file, `rename` into place, `fsync` the
//! day directory. Reads are in [`super::disk_read`]. object_store's
//! `LocalFileSystem` is not used here: by its source it reads in 8 KiB
//! chunks with one blocking task each, and tokio's own file reader, which
//! takes a pool trip per operation, already cost small GETs most of their
//! time (benches/README.md); object_store is for S3-compatible stores.

use std::io;
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use bytes::BytesMut;
use tokio::task::JoinHandle;

use super::{
    AbandonedUploads, BlobMeta, BlobName, BlobStore, BlobStream, BlobWriter, StorageError, is_day,
};

/// Bytes buffered before a write reaches the file. Bounds the memory of
/// one upload.
pub const IO_BUFFER_BYTES: usize = 256 * 1024;

/// A [`BlobStore`] in a directory.
#[derive(Debug, Clone)]
pub struct DiskStore {
    blobs: PathBuf,
    tmp: PathBuf,
    min_free: u64,
}

impl DiskStore {
    /// Opens (creating if needed) the store below `root`, and removes the
    /// temporary files a previous process left behind. Uploads that would
    /// leave less than `min_free` bytes free on the filesystem are refused.
    pub fn open(root: &Path, min_free: u64) -> io::Result<DiskStore> {
        let store = DiskStore {
            blobs: root.join("blobs"),
            tmp: root.join("tmp"),
            min_free,
        };
        for dir in [root, &store.blobs, &store.tmp] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        store.remove_temp_files()?;
        Ok(store)
    }

    /// Removes every file in `tmp/`. Only safe when no upload is running in
    /// this process: at start-up.
    fn remove_temp_files(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.tmp)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(
                files = removed,
                "removed temporary files of interrupted uploads"
            );
        }
        Ok(removed)
    }

    fn path_of(&self, name: &BlobName) -> PathBuf {
        self.blobs.join(name.key())
    }
}

#[async_trait]
impl BlobStore for DiskStore {
    async fn create(
        &self,
        name: &BlobName,
        size: u64,
        _meta: &BlobMeta, // the index serves the type; no caches in between
    ) -> Result<Box<dyn BlobWriter>, StorageError> {
        let tmp = self.tmp.clone();
        let available = blocking(move || {
            let stats = rustix::fs::statvfs(&tmp).map_err(io::Error::from)?;
            Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
        })
        .await
        // A missing tmp/ means the store itself is gone.
        .map_err(|e| match e {
            StorageError::NotFound => {
                StorageError::Unavailable(io::Error::from(io::ErrorKind::NotFound))
            }
            other => other,
        })?;
        if available < size.saturating_add(self.min_free) {
            return Err(StorageError::Full);
        }
        let temp_path = self
            .tmp
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp_path)
            .await
            // A missing tmp/ means the store itself is gone, not the blob.
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => StorageError::Unavailable(e),
                _ => StorageError::from(e),
            })?;
        Ok(Box::new(DiskWriter {
            file: Some(Arc::new(file.into_std().await)),
            buffer: BytesMut::with_capacity(IO_BUFFER_BYTES),
            written: 0,
            in_flight: None,
            temp_path,
            final_path: self.path_of(name),
        }))
    }

    async fn read(&self, name: &BlobName, range: Range<u64>) -> Result<BlobStream, StorageError> {
        super::disk_read::read(self.path_of(name), range).await
    }

    async fn delete(&self, name: &BlobName) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path_of(name)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn check(&self) -> Result<(), StorageError> {
        let probe = self
            .tmp
            .join(format!("{}.health", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&probe, b"").await?;
        tokio::fs::remove_file(&probe).await?;
        Ok(())
    }

    async fn days(&self) -> Result<Vec<String>, StorageError> {
        let blobs = self.blobs.clone();
        blocking(move || {
            let mut days = Vec::new();
            for entry in std::fs::read_dir(&blobs)? {
                let entry = entry?;
                if let Some(name) = entry.file_name().to_str()
                    && is_day(name)
                    && entry.file_type()?.is_dir()
                {
                    days.push(name.to_string());
                }
            }
            days.sort();
            Ok(days)
        })
        .await
    }

    async fn delete_day(&self, day: &str) -> Result<u64, StorageError> {
        if !is_day(day) {
            return Ok(0);
        }
        let dir = self.blobs.join(day);
        blocking(move || {
            let mut deleted = 0;
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e),
            };
            for entry in entries {
                match std::fs::remove_file(entry?.path()) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            match std::fs::remove_dir(&dir) {
                Ok(()) => Ok(deleted),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(deleted),
                Err(e) => Err(e),
            }
        })
        .await
    }
}

#[async_trait]
impl AbandonedUploads for DiskStore {
    async fn remove_abandoned(&self, before: i64) -> Result<u64, StorageError> {
        let tmp = self.tmp.clone();
        let before = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(before).unwrap_or(0));
        blocking(move || {
            let mut removed = 0;
            for entry in std::fs::read_dir(&tmp)? {
                let entry = entry?;
                let metadata = entry.metadata()?;
                // The last write is the latest sign of life of an upload.
                if metadata.is_file() && metadata.modified()? < before {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(removed)
        })
        .await
    }
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T, F>(work: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::Unavailable(io::Error::other(e)))?
        .map_err(StorageError::from)
}

/// An upload being written to `tmp/`.
///
/// Chunks are gathered into one buffer (a single copy) that goes to a
/// positional write on the blocking pool when full; the next buffer fills
/// while that write runs, and at most one write is in flight.
struct DiskWriter {
    /// `None` once committed.
    file: Option<Arc<std::fs::File>>,
    buffer: BytesMut,
    /// Bytes handed to writes so far: the offset of the next write.
    written: u64,
    in_flight: Option<JoinHandle<io::Result<()>>>,
    temp_path: PathBuf,
    final_path: PathBuf,
}

fn committed() -> io::Error {
    io::Error::other("writer already committed")
}

impl DiskWriter {
    /// Waits for the write in flight, if any.
    async fn settle(&mut self) -> io::Result<()> {
        match self.in_flight.take() {
            Some(write) => write.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }

    /// Hands the buffer to a write, after the previous one finished.
    async fn flush_buffer(&mut self) -> io::Result<()> {
        self.settle().await?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let file = Arc::clone(self.file.as_ref().ok_or_else(committed)?);
        let data = std::mem::replace(&mut self.buffer, BytesMut::with_capacity(IO_BUFFER_BYTES));
        let offset = self.written;
        self.written += data.len() as u64;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            file.write_all_at(&data, offset)
        }));
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for DiskWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if self.file.is_none() {
            return Err(StorageError::Unavailable(committed()));
        }
        if self.buffer.is_empty() && chunk.len() >= IO_BUFFER_BYTES {
            // Already a buffer's worth (a sealed batch): written as it is,
            // without the copy.
            self.settle().await?;
            let file = Arc::clone(self.file.as_ref().ok_or_else(committed)?);
            let offset = self.written;
            self.written += chunk.len() as u64;
            self.in_flight = Some(tokio::task::spawn_blocking(move || {
                file.write_all_at(&chunk, offset)
            }));
            return Ok(());
        }
        self.buffer.extend_from_slice(&chunk);
        if self.buffer.len() >= IO_BUFFER_BYTES {
            self.flush_buffer().await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        let result = async {
            self.flush_buffer().await?;
            self.settle().await?;
            let file = self.file.take().ok_or_else(committed)?;
            tokio::task::spawn_blocking(move || file.sync_all())
                .await
                .map_err(io::Error::other)??;
            let day_dir = self
                .final_path
                .parent()
                .ok_or_else(|| io::Error::other("blob path has no parent"))?
                .to_path_buf();
            let fresh_day = !tokio::fs::try_exists(&day_dir).await?;
            if fresh_day {
                tokio::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&day_dir)
                    .await?;
            }
            tokio::fs::rename(&self.temp_path, &self.final_path).await?;
            let blobs_dir = day_dir.parent().map(Path::to_path_buf);
            tokio::task::spawn_blocking(move || -> io::Result<()> {
                std::fs::File::open(&day_dir)?.sync_all()?;
                if let (true, Some(blobs_dir)) = (fresh_day, blobs_dir) {
                    std::fs::File::open(blobs_dir)?.sync_all()?;
                }
                Ok(())
            })
            .await
            .map_err(io::Error::other)??;
            Ok::<(), io::Error>(())
        }
        .await;
        if result.is_err() {
            // Neither half-written temp files nor unsynced blobs stay behind.
            let _ = std::fs::remove_file(&self.temp_path);
            let _ = std::fs::remove_file(&self.final_path);
        }
        // Nothing left for Drop to clean up.
        self.file = None;
        self.temp_path = PathBuf::new();
        result.map_err(StorageError::from)
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        if self.file.is_some() && !self.temp_path.as_os_str().is_empty() {
            // An abandoned upload (client gone, error, shutdown): unlink now.
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn meta() -> BlobMeta {
        BlobMeta {
            content_type: "application/octet-stream".into(),
            max_age: 60,
        }
    }

    async fn read_all(store: &DiskStore, name: &BlobName, range: Range<u64>) -> Vec<u8> {
        let mut stream = store.read(name, range).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    fn temp_files(root: &Path) -> usize {
        std::fs::read_dir(root.join("tmp")).unwrap().count()
    }

    #[tokio::test]
    async fn write_commit_read_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 0).unwrap();
        let name = BlobName::new(1_795_737_600);
        let mut writer = store.create(&name, 1, &meta()).await.unwrap();
        let data: Vec<u8> = (0..(IO_BUFFER_BYTES * 3 + 17)).map(|i| i as u8).collect();
        for chunk in data.chunks(10_000) {
            writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        assert!(matches!(
            store.read(&name, 0..1).await,
            Err(StorageError::NotFound)
        ));
        writer.commit().await.unwrap();
        assert_eq!(temp_files(dir.path()), 0);
        assert_eq!(read_all(&store, &name, 0..data.len() as u64).await, data);
        assert_eq!(read_all(&store, &name, 5..9).await, &data[5..9]);
        store.delete(&name).await.unwrap();
        store.delete(&name).await.unwrap();
        assert!(matches!(
            store.read(&name, 0..1).await,
            Err(StorageError::NotFound)
        ));
        store.check().await.unwrap();
    }

    #[tokio::test]
    async fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 0).unwrap();
        let name = BlobName::new(1_795_737_600);
        let mut writer = store.create(&name, 1, &meta()).await.unwrap();
        writer.write(Bytes::from_static(b"partial")).await.unwrap();
        assert_eq!(temp_files(dir.path()), 1);
        drop(writer);
        assert_eq!(temp_files(dir.path()), 0);
        assert!(matches!(
            store.read(&name, 0..1).await,
            Err(StorageError::NotFound)
        ));
    }

    #[tokio::test]
    async fn whole_days_and_abandoned_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 0).unwrap();
        for created in [0, 10, 86_400] {
            let name = BlobName::new(created);
            let mut writer = store.create(&name, 1, &meta()).await.unwrap();
            writer.write(Bytes::from_static(b"x")).await.unwrap();
            writer.commit().await.unwrap();
        }
        std::fs::create_dir(dir.path().join("blobs/not-a-day")).unwrap();
        assert_eq!(
            store.days().await.unwrap(),
            vec!["1970-01-01", "1970-01-02"]
        );
        assert_eq!(store.delete_day("1970-01-01").await.unwrap(), 2);
        assert_eq!(store.delete_day("1970-01-01").await.unwrap(), 0);
        assert_eq!(store.delete_day("../keys").await.unwrap(), 0);
        assert_eq!(store.days().await.unwrap(), vec!["1970-01-02"]);

        let writer = store.create(&BlobName::new(0), 1, &meta()).await.unwrap();
        let now = crate::time::unix_now();
        assert_eq!(
            store.remove_abandoned(now - 60).await.unwrap(),
            0,
            "a live upload stays"
        );
        assert_eq!(store.remove_abandoned(now + 60).await.unwrap(), 1);
        drop(writer);
    }

    #[tokio::test]
    async fn leftovers_of_a_crash_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 0).unwrap();
        let writer = store.create(&BlobName::new(0), 1, &meta()).await.unwrap();
        std::mem::forget(writer); // as if the process had died
        assert_eq!(temp_files(dir.path()), 1);
        DiskStore::open(dir.path(), 0).unwrap();
        assert_eq!(temp_files(dir.path()), 0);
    }
}
