//! Sealing a blob as it is written, and opening a range of it as it is
//! read, a batch of segments at a time; long transfers do the AES work on
//! the blocking pool, one batch ahead, so it runs beside the socket I/O
//! instead of between it (measured in benches/README.md, "Encryption at
//! rest"). Memory per stream is bounded: two batches.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use ring::aead::{Aad, LessSafeKey, Nonce};
use tokio::task::JoinHandle;

use super::format::{SEALED_SEGMENT, Span, TAG, nonce, segment_len, segments};
use super::keys::DataKey;
use crate::metrics::Counter;
use crate::storage::{BlobStream, BlobWriter, StorageError};

/// A [`BlobWriter`] that seals what it is given into segments and passes
/// them to the blob underneath.
///
/// Plaintext is gathered in the sealed layout (each segment followed by
/// room for its tag), [`BATCH`] segments at a time. A full batch is sealed
/// on the blocking pool while the next one fills, so encryption runs beside
/// the reading of the request body instead of between its reads; at most
/// one batch is being sealed and one filled (two batches of memory per
/// upload). A file of less than a batch is sealed at commit, inline.
pub struct SealingWriter {
    inner: Box<dyn BlobWriter>,
    key: DataKey,
    size: u64,
    count: u64,
    received: u64,
    /// Segments of the batch being filled, in the sealed layout.
    batch: BytesMut,
    /// Index of the batch's first segment.
    first: u64,
    /// Index of the segment being filled.
    index: u64,
    /// Plaintext bytes in the segment being filled.
    filled: u64,
    sealing: Option<JoinHandle<Result<Bytes, StorageError>>>,
}

/// Segments sealed together on the blocking pool.
pub const BATCH: u64 = 4;

impl SealingWriter {
    /// Seals the `size` bytes of plaintext written to it with `key`, into
    /// `inner` (created for [`super::format::sealed_size`] bytes).
    pub fn new(inner: Box<dyn BlobWriter>, key: &DataKey, size: u64) -> SealingWriter {
        SealingWriter {
            inner,
            key: key.clone(),
            size,
            count: segments(size),
            received: 0,
            batch: fresh_batch(),
            first: 0,
            index: 0,
            filled: 0,
            sealing: None,
        }
    }

    /// Closes the segment being filled when it holds all its plaintext,
    /// leaving room for its tag; true when it did.
    fn close_segment(&mut self) -> bool {
        if self.index >= self.count || self.filled != segment_len(self.size, self.index) {
            return false;
        }
        self.batch.extend_from_slice(&[0; TAG as usize]);
        self.index += 1;
        self.filled = 0;
        true
    }

    /// Writes the batch whose sealing is under way, once it is sealed.
    async fn settle(&mut self) -> Result<(), StorageError> {
        if let Some(sealing) = self.sealing.take() {
            let sealed = sealing
                .await
                .map_err(|e| StorageError::Unavailable(io::Error::other(e)))??;
            self.inner.write(sealed).await?;
        }
        Ok(())
    }

    /// Hands the closed segments of the batch to be sealed: on the blocking
    /// pool, or here when `inline`.
    async fn dispatch(&mut self, inline: bool) -> Result<(), StorageError> {
        self.settle().await?;
        let batch = std::mem::replace(&mut self.batch, fresh_batch());
        let job = SealJob {
            key: self.key.clone(),
            size: self.size,
            count: self.count,
            segments: self.first..self.index,
        };
        self.first = self.index;
        if inline {
            let sealed = job.seal(batch)?;
            self.inner.write(sealed).await
        } else {
            self.sealing = Some(tokio::task::spawn_blocking(move || job.seal(batch)));
            Ok(())
        }
    }
}

/// Segments to seal in place in a batch buffer.
struct SealJob {
    key: DataKey,
    size: u64,
    count: u64,
    segments: Range<u64>,
}

impl SealJob {
    fn seal(self, mut batch: BytesMut) -> Result<Bytes, StorageError> {
        let mut offset = 0;
        for index in self.segments {
            let len = segment_len(self.size, index) as usize;
            let (segment, rest) = batch[offset..].split_at_mut(len);
            let nonce = Nonce::assume_unique_for_key(nonce(index, index + 1 == self.count));
            let tag = self
                .key
                .0
                .aead()
                .seal_in_place_separate_tag(nonce, Aad::empty(), segment)
                .map_err(|_| StorageError::Unavailable(io::Error::other("sealing failed")))?;
            rest[..TAG as usize].copy_from_slice(tag.as_ref());
            offset += len + TAG as usize;
        }
        Ok(batch.freeze())
    }
}

fn fresh_batch() -> BytesMut {
    BytesMut::with_capacity((BATCH * SEALED_SEGMENT) as usize)
}

fn wrong_length() -> StorageError {
    StorageError::Unavailable(io::Error::other(
        "the upload's length differs from the size it was created with",
    ))
}

#[async_trait]
impl BlobWriter for SealingWriter {
    async fn write(&mut self, mut chunk: Bytes) -> Result<(), StorageError> {
        let len = chunk.len() as u64;
        if self.received.saturating_add(len) > self.size {
            return Err(wrong_length());
        }
        self.received += len;
        while !chunk.is_empty() {
            let room = segment_len(self.size, self.index) - self.filled;
            let part = chunk.split_to((room as usize).min(chunk.len()));
            self.batch.extend_from_slice(&part);
            self.filled += part.len() as u64;
            if self.close_segment() && self.index - self.first == BATCH {
                self.dispatch(false).await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        if self.received != self.size {
            return Err(wrong_length());
        }
        // An empty file's one segment is closed only now.
        self.close_segment();
        if self.index > self.first {
            self.dispatch(true).await?;
        }
        self.settle().await?;
        self.inner.commit().await
    }
}

/// Opens the segments `span` of a `size`-byte file from `sealed` (the
/// ciphertext bytes `span.sealed`), yielding only authenticated plaintext.
/// A segment that fails authentication, or ciphertext that ends early,
/// ends the stream with an error (and counts in `failures`); nothing of
/// that segment or after it is yielded.
///
/// The first segment is opened before this returns, so a blob that is
/// corrupt from its first byte fails before any response is sent.
pub async fn open(
    sealed: BlobStream,
    key: &DataKey,
    size: u64,
    span: Span,
    failures: Arc<Counter>,
) -> Result<BlobStream, io::Error> {
    let remaining = span.segments.end - span.segments.start;
    let mut opening = Opening {
        sealed,
        key: key.clone(),
        size,
        count: segments(size),
        next: span.segments.start,
        end: span.segments.end,
        skip: span.skip,
        left: span.len,
        rest: BytesMut::new(),
        partial: BytesMut::new(),
        batch: 1,
        pipelined: false,
        ready: None,
        ahead: None,
        error: None,
        done: false,
        failures,
    };
    let first = match opening.next_item().await {
        Some(Err(error)) => return Err(error),
        other => other,
    };
    // A long read opens a batch of segments on the blocking pool while the
    // previous batch is being sent, so decryption runs beside the socket
    // writes (on the other core) rather than between them.
    opening.batch = OPEN_BATCH;
    opening.pipelined = remaining > 1 + OPEN_BATCH as u64;
    let rest = futures_util::stream::unfold(opening, |mut opening| async move {
        opening.next_item().await.map(|item| (item, opening))
    });
    Ok(Box::pin(futures_util::stream::iter(first).chain(rest)))
}

/// Segments opened together (on the blocking pool, for long reads): a
/// pipelined read holds at most two batches, one being sent and one being
/// opened, beside the store's own read-ahead. 512 KiB, the disk store's
/// read size: 4 segments left 0.65× plaintext's download rate, 8 gave
/// 0.82× (benches/encryption.sh).
const OPEN_BATCH: usize = 8;

struct Opening {
    sealed: BlobStream,
    key: DataKey,
    size: u64,
    count: u64,
    /// The next segment to gather.
    next: u64,
    end: u64,
    skip: u64,
    left: u64,
    /// What is left of the last chunk read.
    rest: BytesMut,
    /// A segment being put together from two or more chunks.
    partial: BytesMut,
    /// Segments per batch.
    batch: usize,
    /// Whether batches are opened on the blocking pool, one ahead.
    pipelined: bool,
    /// Opened plaintext, ready to send.
    ready: Option<Bytes>,
    /// The batch being opened ahead.
    ahead: Option<JoinHandle<Opened>>,
    /// The error to end with once `ready` is sent.
    error: Option<io::Error>,
    done: bool,
    failures: Arc<Counter>,
}

/// Consecutive sealed segments to open, side by side in one buffer (taken
/// where they lie when they came in one chunk), and the error that stopped
/// gathering more, if one did.
struct Gathered {
    first: u64,
    count: u64,
    sealed: BytesMut,
    then: Option<io::Error>,
}

/// What opening a [`Gathered`] batch gave.
struct Opened {
    /// The plaintext of the segments that opened, in one piece (so the
    /// response writes it in one go, not one segment at a time).
    plain: Bytes,
    /// A segment failed authentication (nothing of it or after it is in
    /// `plain`).
    failed: bool,
    then: Option<io::Error>,
}

impl Gathered {
    /// Opens each segment in place, then closes the gaps the tags leave.
    fn open(self, key: &LessSafeKey, size: u64, count: u64) -> Opened {
        let Gathered {
            first,
            count: gathered,
            mut sealed,
            then,
        } = self;
        let (mut from, mut to) = (0, 0);
        let mut failed = false;
        for index in first..first + gathered {
            let len = segment_len(size, index) as usize;
            let nonce = Nonce::assume_unique_for_key(nonce(index, index + 1 == count));
            let segment = &mut sealed[from..from + len + TAG as usize];
            if key.open_in_place(nonce, Aad::empty(), segment).is_err() {
                failed = true;
                break;
            }
            sealed.copy_within(from..from + len, to);
            from += len + TAG as usize;
            to += len;
        }
        sealed.truncate(to);
        Opened {
            plain: sealed.freeze(),
            failed,
            then: if failed { None } else { then },
        }
    }
}

impl Opening {
    async fn next_item(&mut self) -> Option<Result<Bytes, io::Error>> {
        loop {
            if let Some(bytes) = self.ready.take() {
                return Some(Ok(bytes));
            }
            if let Some(error) = self.error.take() {
                self.done = true;
                return Some(Err(error));
            }
            if self.done || self.left == 0 {
                return None;
            }
            let opened = match self.ahead.take() {
                Some(job) => match job.await {
                    Ok(opened) => opened,
                    Err(error) => {
                        self.error = Some(io::Error::other(error));
                        continue;
                    }
                },
                None => {
                    let gathered = self.gather().await;
                    if gathered.count == 0 && gathered.then.is_none() {
                        self.done = true;
                        return None;
                    }
                    gathered.open(self.key.0.aead(), self.size, self.count)
                }
            };
            let bytes = self.trim(opened.plain);
            if !bytes.is_empty() {
                self.ready = Some(bytes);
            }
            if opened.failed {
                self.error =
                    Some(self.failed(
                        "a stored file failed authentication (altered, swapped or corrupt)",
                    ));
            } else if let Some(error) = opened.then {
                self.error = Some(error);
            } else if self.pipelined && self.next < self.end {
                let gathered = self.gather().await;
                let (key, size, count) = (self.key.clone(), self.size, self.count);
                self.ahead = Some(tokio::task::spawn_blocking(move || {
                    gathered.open(key.0.aead(), size, count)
                }));
            }
        }
    }

    /// Up to a batch of sealed segments, in order.
    async fn gather(&mut self) -> Gathered {
        let mut gathered = Gathered {
            first: self.next,
            count: 0,
            sealed: BytesMut::new(),
            then: None,
        };
        while gathered.count < self.batch as u64 && self.next < self.end {
            match self.take_sealed().await {
                // Free when the segment follows the last in memory (both
                // taken from one chunk); a copy otherwise.
                Ok(segment) => gathered.sealed.unsplit(segment),
                Err(error) => {
                    gathered.then = Some(error);
                    break;
                }
            }
            gathered.count += 1;
            self.next += 1;
        }
        gathered
    }

    /// The ciphertext and tag of segment `next`.
    async fn take_sealed(&mut self) -> Result<BytesMut, io::Error> {
        let need = (segment_len(self.size, self.next) + TAG) as usize;
        // A segment that lies whole in a chunk nobody else holds (the disk
        // store's reads) is opened where it lies; only one that straddles
        // two chunks is copied together in `partial`.
        loop {
            if self.partial.is_empty() && self.rest.len() >= need {
                return Ok(self.rest.split_to(need));
            }
            if !self.rest.is_empty() {
                let take = (need - self.partial.len()).min(self.rest.len());
                self.partial.extend_from_slice(&self.rest.split_to(take));
                if self.partial.len() == need {
                    return Ok(std::mem::take(&mut self.partial));
                }
            }
            match self.sealed.next().await {
                Some(Ok(chunk)) => {
                    self.rest = chunk
                        .try_into_mut()
                        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                }
                Some(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(self.failed("a stored file is shorter than its record says"));
                }
                Some(Err(error)) => return Err(error),
                None => return Err(self.failed("a stored file is shorter than its record says")),
            }
        }
    }

    /// The part of an opened segment the range wants.
    fn trim(&mut self, mut bytes: Bytes) -> Bytes {
        let skip = std::mem::take(&mut self.skip).min(bytes.len() as u64);
        let mut bytes = bytes.split_off(skip as usize);
        if bytes.len() as u64 > self.left {
            bytes.truncate(self.left as usize);
        }
        self.left -= bytes.len() as u64;
        bytes
    }

    fn failed(&self, what: &'static str) -> io::Error {
        self.failures.inc();
        tracing::error!("{what}: the response is cut before any of its bytes");
        io::Error::new(io::ErrorKind::InvalidData, what)
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{SEGMENT, sealed_size, span};
    use super::*;
    use std::sync::Mutex;

    /// A blob writer that keeps what it is given.
    struct Collect(Arc<Mutex<Vec<u8>>>);

    #[async_trait]
    impl BlobWriter for Collect {
        async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
            self.0.lock().unwrap().extend_from_slice(&chunk);
            Ok(())
        }
        async fn commit(self: Box<Self>) -> Result<(), StorageError> {
            Ok(())
        }
    }

    async fn seal(plain: &[u8], key: &DataKey, chunk: usize) -> Vec<u8> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut writer = Box::new(SealingWriter::new(
            Box::new(Collect(Arc::clone(&out))),
            key,
            plain.len() as u64,
        ));
        for part in plain.chunks(chunk.max(1)) {
            writer.write(Bytes::copy_from_slice(part)).await.unwrap();
        }
        writer.commit().await.unwrap();
        out.lock().unwrap().clone()
    }

    /// The plaintext `range` opened from `sealed`, fed in `chunk`-byte
    /// pieces; `Err` when opening failed anywhere.
    async fn read(
        sealed: &[u8],
        key: &DataKey,
        size: u64,
        range: std::ops::Range<u64>,
        chunk: usize,
    ) -> Result<Vec<u8>, Vec<u8>> {
        let span = span(size, range);
        let part = sealed[span.sealed.start as usize..(span.sealed.end as usize).min(sealed.len())]
            .to_vec();
        let pieces: Vec<Result<Bytes, io::Error>> = part
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream: BlobStream = Box::pin(futures_util::stream::iter(pieces));
        let failures = Arc::new(Counter::default());
        let mut opened = match open(stream, key, size, span, failures).await {
            Ok(opened) => opened,
            Err(_) => return Err(Vec::new()),
        };
        let mut out = Vec::new();
        while let Some(item) = opened.next().await {
            match item {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(_) => return Err(out),
            }
        }
        Ok(out)
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn every_range_opens_to_the_plaintext() {
        let key = DataKey::random().unwrap();
        let s = SEGMENT as usize;
        for len in [0, 1, 100, s - 1, s, s + 1, 2 * s, 3 * s + 7] {
            let plain = plaintext(len);
            let sealed = seal(&plain, &key, 10_000).await;
            assert_eq!(sealed.len() as u64, sealed_size(len as u64));
            if len == 0 {
                continue;
            }
            let ranges = [
                0..len,
                0..1,
                0..2.min(len),
                len - 1..len,
                len.saturating_sub(500)..len,
                (s - 1).min(len - 1)..(s + 1).min(len),
                0..s.min(len),
            ];
            for range in ranges {
                for chunk in [7, 4096, 100_000] {
                    let got = read(
                        &sealed,
                        &key,
                        len as u64,
                        range.start as u64..range.end as u64,
                        chunk,
                    )
                    .await
                    .unwrap();
                    assert_eq!(got, plain[range.clone()], "len {len} range {range:?}");
                }
            }
        }
    }

    #[tokio::test]
    async fn chunking_of_the_upload_does_not_change_the_blob_shape() {
        let key = DataKey::random().unwrap();
        let plain = plaintext(2 * SEGMENT as usize + 3);
        let a = seal(&plain, &key, 1).await;
        let b = seal(&plain, &key, 1 << 20).await;
        // Same key, same nonces: the same bytes.
        assert_eq!(a, b);
    }

    #[tokio::test]
    async fn writing_more_or_less_than_declared_fails() {
        let key = DataKey::random().unwrap();
        let sink = Arc::new(Mutex::new(Vec::new()));
        let mut writer = Box::new(SealingWriter::new(
            Box::new(Collect(Arc::clone(&sink))),
            &key,
            3,
        ));
        assert!(writer.write(Bytes::from_static(b"abcd")).await.is_err());
        writer.write(Bytes::from_static(b"ab")).await.unwrap();
        assert!(writer.commit().await.is_err());
    }

    #[tokio::test]
    async fn tampering_never_yields_a_wrong_byte() {
        let key = DataKey::random().unwrap();
        let len = 3 * SEGMENT as usize + 5;
        let plain = plaintext(len);
        let sealed = seal(&plain, &key, 65_536).await;
        let whole = 0..len as u64;
        let seg = SEALED_SEGMENT as usize;

        // A flipped bit anywhere: what comes out is a correct prefix ending
        // before the altered segment.
        for at in [0, 100, seg - 1, seg, 2 * seg + 9, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x40;
            let out = read(&bad, &key, len as u64, whole.clone(), 4096)
                .await
                .unwrap_err();
            assert_eq!(out, plain[..out.len()]);
            assert!(out.len() <= at / seg * SEGMENT as usize, "at {at}");
        }
        // Truncated, at a segment boundary and inside one.
        for cut in [seg, 2 * seg, sealed.len() - 1, 10] {
            let out = read(&sealed[..cut], &key, len as u64, whole.clone(), 4096)
                .await
                .unwrap_err();
            assert_eq!(out, plain[..out.len()]);
        }
        // Two segments swapped.
        let mut swapped = sealed.clone();
        let (a, b) = swapped.split_at_mut(seg);
        a.swap_with_slice(&mut b[..seg]);
        assert_eq!(
            read(&swapped, &key, len as u64, whole.clone(), 4096).await,
            Err(Vec::new())
        );
        // A full-segment file cut to look like it ended a segment earlier:
        // the last-segment flag does not match.
        let two = plaintext(2 * SEGMENT as usize);
        let sealed_two = seal(&two, &key, 65_536).await;
        assert!(
            read(&sealed_two[..seg], &key, SEGMENT, 0..SEGMENT, 4096)
                .await
                .is_err()
        );
        // Another file's blob (another key) opens nothing.
        let other = seal(&plain, &DataKey::random().unwrap(), 65_536).await;
        assert_eq!(
            read(&other, &key, len as u64, whole, 4096).await,
            Err(Vec::new())
        );
    }

    #[tokio::test]
    async fn long_reads_opened_ahead_stop_at_the_first_bad_segment() {
        let key = DataKey::random().unwrap();
        let len = 13 * SEGMENT as usize + 11;
        let plain = plaintext(len);
        let sealed = seal(&plain, &key, 100_000).await;
        let whole = 0..len as u64;
        // Intact: every range, fed in chunks that do and do not line up.
        for chunk in [512 * 1024, 65_552, 4096] {
            let got = read(&sealed, &key, len as u64, whole.clone(), chunk).await;
            assert_eq!(got.unwrap(), plain);
            let from = 3 * SEGMENT + 7..len as u64 - 9;
            let got = read(&sealed, &key, len as u64, from.clone(), chunk).await;
            assert_eq!(got.unwrap(), plain[from.start as usize..from.end as usize]);
        }
        // A bad segment deep in the file: a correct prefix, then the error.
        let seg = SEALED_SEGMENT as usize;
        for at in [9 * seg + 5, 12 * seg + 3, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            let out = read(&bad, &key, len as u64, whole.clone(), 512 * 1024)
                .await
                .unwrap_err();
            assert_eq!(out, plain[..out.len()]);
            assert!(out.len() <= at / seg * SEGMENT as usize, "at {at}");
        }
        // Cut short deep in the file.
        let out = read(&sealed[..10 * seg + 1], &key, len as u64, whole, 512 * 1024)
            .await
            .unwrap_err();
        assert_eq!(out, plain[..out.len()]);
    }
}
