//! Reading blobs from disk, fast for small files and steady for large ones.
//!
//! Measured on this project's 2-core VM (benches/README.md): a 4 KiB GET
//! that opened and read through tokio's file API took two trips through
//! the blocking pool, about 35 µs each, and served 0.15× nginx's request
//! rate. So:
//!
//! - the file is opened and its first chunk read in one step, first on the
//!   calling thread with `preadv2(RWF_NOWAIT)`, which returns data already
//!   in the page cache and refuses, instead of waiting, when it would have
//!   to touch the disk; only then does the read go to the blocking pool.
//!   (`open` itself runs on the calling thread: a path lookup in the dentry
//!   cache, as nginx does it.) A file that fits in one chunk is served from
//!   that read alone;
//! - larger ranges continue in [`CHUNK_BYTES`] positional reads on the
//!   blocking pool, each started while the previous chunk is being sent
//!   (one chunk of read-ahead), so at most two chunks per download are in
//!   memory.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use rustix::io::{Errno, ReadWriteFlags};
use tokio::task::JoinHandle;

use super::{BlobStream, StorageError};

/// Bytes per read when streaming a blob.
pub(super) const CHUNK_BYTES: u64 = 512 * 1024;

/// Streams bytes `range` of the file at `path`.
pub(super) async fn read(path: PathBuf, range: Range<u64>) -> Result<BlobStream, StorageError> {
    let len = range.end.saturating_sub(range.start);
    let first_len = usize::try_from(len.min(CHUNK_BYTES)).unwrap_or(0);
    let file = File::open(&path)?;
    let mut buf = vec![0u8; first_len];
    let filled = read_cached(&file, &mut buf, range.start)?;
    let (file, first) = if filled == first_len {
        (file, buf)
    } else {
        // Not (all) in the page cache: finish the read where blocking is fine.
        let offset = range.start + filled as u64;
        tokio::task::spawn_blocking(move || {
            file.read_exact_at(&mut buf[filled..], offset)?;
            Ok::<_, io::Error>((file, buf))
        })
        .await
        .map_err(|e| StorageError::Unavailable(io::Error::other(e)))??
    };
    let first = Bytes::from(first);
    if first.len() as u64 == len {
        return Ok(Box::pin(futures_util::stream::once(
            async move { Ok(first) },
        )));
    }
    Ok(Box::pin(chunks(
        Arc::new(file),
        first,
        range.start + len.min(CHUNK_BYTES),
        range.end,
    )))
}

/// Reads into `buf` at `offset` what the page cache already holds, without
/// waiting for the disk; returns how many bytes were read.
fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let mut slices = [io::IoSliceMut::new(&mut buf[filled..])];
        match rustix::io::preadv2(
            file,
            &mut slices,
            offset + filled as u64,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob shorter than its record",
                ));
            }
            Ok(n) => filled += n,
            // Would block (not cached), or not supported here: the caller
            // reads the rest on the blocking pool.
            Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => break,
            Err(Errno::INTR) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(filled)
}

/// What the chunk stream holds between items.
struct Chunks {
    first: Option<Bytes>,
    file: Arc<File>,
    /// Where the next read to start begins.
    next: u64,
    end: u64,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

/// `first`, then the bytes `from..end` of `file`, one chunk read ahead.
fn chunks(
    file: Arc<File>,
    first: Bytes,
    from: u64,
    end: u64,
) -> impl futures_core::Stream<Item = io::Result<Bytes>> + Send {
    let mut state = Chunks {
        first: Some(first),
        file,
        next: from,
        end,
        pending: None,
    };
    state.start_next();
    futures_util::stream::unfold(state, |mut state| async move {
        if let Some(first) = state.first.take() {
            return Some((Ok(first), state));
        }
        let pending = state.pending.take()?;
        let chunk = match pending.await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(error)) => return Some((Err(error), state.finished())),
            Err(error) => return Some((Err(io::Error::other(error)), state.finished())),
        };
        state.start_next();
        Some((Ok(chunk), state))
    })
}

impl Chunks {
    /// Starts reading the next chunk, if any is left.
    fn start_next(&mut self) {
        if self.next >= self.end {
            return;
        }
        let offset = self.next;
        let len = (self.end - offset).min(CHUNK_BYTES);
        self.next += len;
        let file = Arc::clone(&self.file);
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
            file.read_exact_at(&mut buf, offset)?;
            Ok(Bytes::from(buf))
        }));
    }

    /// Ends the stream after an error.
    fn finished(mut self) -> Self {
        self.next = self.end;
        self.pending = None;
        self
    }
}
