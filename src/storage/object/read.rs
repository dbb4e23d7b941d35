//! Downloads from an object store: ranged `GET`s, several at once.
//!
//! One `GET` stream is limited by the store's per-connection rate (tens of
//! MB/s on S3, less on small servers), so a range longer than one part is
//! read as consecutive part-sized pieces: the current piece streams through
//! as it arrives, and up to `parts_in_flight - 1` of the following pieces
//! are fetched at the same time into memory.
//!
//! Read-ahead is opportunistic: a piece is fetched early only when the
//! shared [`PartBudget`] has room for all of it now, out of the half that
//! downloads may use, so downloads never hold uploads back; otherwise it is
//! streamed when its turn comes, like a plain `GET`. A slow client keeps
//! its pieces in memory until it has taken them, so many slow downloads at
//! once leave no room for read-ahead: the others are then streamed one
//! `GET` at a time, slower but bounded. (Sizing the read-ahead to each
//! client's pace was tried: telling "the store is ahead because the client
//! is slow" from "ahead because pieces arrive in parallel" by whether a
//! piece was complete before its turn shrank the read-ahead of fast
//! clients too, and cost a quarter of their throughput.)

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinHandle;

use super::budget::PartBudget;
use super::storage_error;
use crate::storage::{BlobStream, StorageError};

/// Where a download reads from.
#[derive(Clone)]
pub(super) struct Source {
    /// The store.
    pub(super) store: Arc<dyn ObjectStore>,
    /// The object.
    pub(super) path: Path,
    /// Memory for read-ahead.
    pub(super) budget: Arc<PartBudget>,
    /// Size of the pieces a long range is read in.
    pub(super) part_size: u64,
    /// Pieces fetched at once, the streamed one included.
    pub(super) parts_in_flight: usize,
}

impl Source {
    /// Starts reading `range` (not empty). The first request is made
    /// before this returns, so a missing object is an error here rather
    /// than in the stream.
    pub(super) async fn read(self, range: Range<u64>) -> Result<BlobStream, StorageError> {
        let first = range.start..range.end.min(range.start.saturating_add(self.part_size));
        let current = self.get(first.clone()).await.map_err(storage_error)?;
        if first.end == range.end {
            return Ok(Box::pin(current));
        }
        let mut reading = ReadAhead {
            source: self,
            next: first.end,
            end: range.end,
            current: Some(Piece::Streamed(Box::pin(current))),
            ahead: VecDeque::new(),
        };
        reading.fetch_ahead();
        Ok(Box::pin(futures_util::stream::unfold(
            reading,
            |mut reading| async move {
                let item = reading.next_bytes().await?;
                Some((item, reading))
            },
        )))
    }

    /// A `GET` of `range`, streamed.
    async fn get(
        &self,
        range: Range<u64>,
    ) -> object_store::Result<impl futures_core::Stream<Item = io::Result<Bytes>> + Send + 'static>
    {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let result = self.store.get_opts(&self.path, options).await?;
        Ok(result.into_stream().map_err(io::Error::other))
    }
}

/// A piece being fetched ahead of its turn.
struct Fetch {
    bytes: mpsc::UnboundedReceiver<io::Result<Bytes>>,
    task: JoinHandle<()>,
    /// The budget's room for the whole piece, held until it is consumed.
    _room: OwnedSemaphorePermit,
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The piece of a download whose bytes go out now.
enum Piece {
    /// Straight from its `GET`.
    Streamed(BoxStream<'static, io::Result<Bytes>>),
    /// From memory, where it was fetched ahead.
    Fetched(Fetch),
}

impl Piece {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        match self {
            Piece::Streamed(stream) => stream.next().await,
            Piece::Fetched(fetch) => fetch.bytes.recv().await,
        }
    }
}

/// The state of a download longer than one part.
struct ReadAhead {
    source: Source,
    /// Start of the first piece neither streamed nor fetched yet.
    next: u64,
    end: u64,
    /// The piece whose bytes go out now; `None` once the download ended
    /// or failed.
    current: Option<Piece>,
    /// Pieces fetched ahead, in order, right after `current`.
    ahead: VecDeque<Fetch>,
}

impl ReadAhead {
    /// The next bytes to send; `None` at the end, and after an error.
    async fn next_bytes(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            let current = self.current.as_mut()?;
            match current.next().await {
                Some(Ok(bytes)) => return Some(Ok(bytes)),
                Some(Err(error)) => {
                    self.stop();
                    return Some(Err(error));
                }
                None => {
                    if let Err(error) = self.advance().await {
                        self.stop();
                        return Some(Err(error));
                    }
                }
            }
        }
    }

    /// Moves on to the piece after the current one (`current` is `None`
    /// when there is none), and fetches more ahead if there is room.
    async fn advance(&mut self) -> io::Result<()> {
        if let Some(fetch) = self.ahead.pop_front() {
            self.current = Some(Piece::Fetched(fetch));
        } else if self.next < self.end {
            let piece = self.piece();
            let stream = self.source.get(piece).await.map_err(io::Error::other)?;
            self.current = Some(Piece::Streamed(Box::pin(stream)));
        } else {
            self.current = None;
        }
        self.fetch_ahead();
        Ok(())
    }

    /// The next piece to read, taken off what is left.
    fn piece(&mut self) -> Range<u64> {
        let start = self.next;
        self.next = self.end.min(start.saturating_add(self.source.part_size));
        start..self.next
    }

    /// Starts fetching the following pieces while the budget has room.
    fn fetch_ahead(&mut self) {
        while self.next < self.end && self.ahead.len() + 1 < self.source.parts_in_flight {
            let len = (self.end - self.next).min(self.source.part_size);
            let Some(room) = self
                .source
                .budget
                .try_reserve_spare(usize::try_from(len).unwrap_or(usize::MAX))
            else {
                return;
            };
            let piece = self.piece();
            let (sender, bytes) = mpsc::unbounded_channel();
            let source = self.source.clone();
            let task = tokio::spawn(async move {
                let expected = piece.end - piece.start;
                let mut stream = match source.get(piece).await {
                    Ok(stream) => Box::pin(stream),
                    Err(error) => {
                        let _ = sender.send(Err(io::Error::other(error)));
                        return;
                    }
                };
                let mut received = 0;
                while let Some(item) = stream.next().await {
                    let failed = item.is_err();
                    received += item.as_ref().map_or(0, |bytes| bytes.len() as u64);
                    if sender.send(item).is_err() || failed {
                        return;
                    }
                }
                if received != expected {
                    let _ = sender.send(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the object store sent a short range",
                    )));
                }
            });
            self.ahead.push_back(Fetch {
                bytes,
                task,
                _room: room,
            });
        }
    }

    /// Ends the download, cancelling every fetch.
    fn stop(&mut self) {
        self.current = None;
        self.ahead.clear();
    }
}
