//! Sealing a blob as it is written, and opening a range of it as it is
//! read, one segment at a time: memory per stream is one segment.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use ring::aead::{Aad, LessSafeKey, Nonce};

use super::format::{SEALED_SEGMENT, SEGMENT, Span, TAG, nonce, segment_len, segments};
use super::keys::DataKey;
use crate::metrics::Counter;
use crate::storage::{BlobStream, BlobWriter, StorageError};

/// A [`BlobWriter`] that seals what it is given into segments and passes
/// them to the blob underneath.
pub struct SealingWriter {
    inner: Box<dyn BlobWriter>,
    key: LessSafeKey,
    size: u64,
    received: u64,
    index: u64,
    segment: BytesMut,
}

impl SealingWriter {
    /// Seals the `size` bytes of plaintext written to it with `key`, into
    /// `inner` (created for [`super::format::sealed_size`] bytes).
    pub fn new(inner: Box<dyn BlobWriter>, key: &DataKey, size: u64) -> SealingWriter {
        SealingWriter {
            inner,
            key: key.0.aead(),
            size,
            received: 0,
            index: 0,
            segment: fresh_segment(),
        }
    }

    async fn seal(&mut self, last: bool) -> Result<(), StorageError> {
        let mut segment = std::mem::replace(&mut self.segment, fresh_segment());
        let nonce = Nonce::assume_unique_for_key(nonce(self.index, last));
        self.key
            .seal_in_place_append_tag(nonce, Aad::empty(), &mut segment)
            .map_err(|_| StorageError::Unavailable(io::Error::other("sealing failed")))?;
        self.index += 1;
        self.inner.write(segment.freeze()).await
    }
}

fn fresh_segment() -> BytesMut {
    // Room for the tag too, so sealing never reallocates.
    BytesMut::with_capacity(SEALED_SEGMENT as usize)
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
        while !chunk.is_empty() {
            let room = SEGMENT as usize - self.segment.len();
            let part = chunk.split_to(room.min(chunk.len()));
            self.segment.extend_from_slice(&part);
            self.received += part.len() as u64;
            // A full segment is sealed now unless it may be the last one,
            // which only commit knows for sure.
            if self.segment.len() == SEGMENT as usize && self.received < self.size {
                self.seal(false).await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        if self.received != self.size {
            return Err(wrong_length());
        }
        self.seal(true).await?;
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
    let mut opening = Opening {
        sealed,
        key: key.0.aead(),
        size,
        count: segments(size),
        next: span.segments.start,
        end: span.segments.end,
        skip: span.skip,
        left: span.len,
        buffer: BytesMut::new(),
        failures,
        done: false,
    };
    let first = opening.next_segment().await;
    let first = match first {
        Some(Err(error)) => return Err(error),
        other => other,
    };
    let rest = futures_util::stream::unfold(opening, |mut opening| async move {
        opening.next_segment().await.map(|item| (item, opening))
    });
    Ok(Box::pin(futures_util::stream::iter(first).chain(rest)))
}

struct Opening {
    sealed: BlobStream,
    key: LessSafeKey,
    size: u64,
    count: u64,
    next: u64,
    end: u64,
    skip: u64,
    left: u64,
    buffer: BytesMut,
    failures: Arc<Counter>,
    done: bool,
}

impl Opening {
    async fn next_segment(&mut self) -> Option<Result<Bytes, io::Error>> {
        if self.done || self.next >= self.end || self.left == 0 {
            return None;
        }
        let result = self.open_next().await;
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }

    async fn open_next(&mut self) -> Result<Bytes, io::Error> {
        let plain = segment_len(self.size, self.next);
        let need = (plain + TAG) as usize;
        while self.buffer.len() < need {
            match self.sealed.next().await {
                // A chunk nobody else holds (the disk store's reads) is
                // decrypted where it lies; only a segment's pieces that
                // straddle two chunks are copied.
                Some(Ok(chunk)) if self.buffer.is_empty() => {
                    self.buffer = chunk
                        .try_into_mut()
                        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                }
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(self.failed("a stored file is shorter than its record says"));
                }
                Some(Err(error)) => return Err(error),
                None => return Err(self.failed("a stored file is shorter than its record says")),
            }
        }
        let mut segment = self.buffer.split_to(need);
        let last = self.next + 1 == self.count;
        let nonce = Nonce::assume_unique_for_key(nonce(self.next, last));
        if self
            .key
            .open_in_place(nonce, Aad::empty(), &mut segment)
            .is_err()
        {
            return Err(
                self.failed("a stored file failed authentication (altered, swapped or corrupt)")
            );
        }
        segment.truncate(plain as usize);
        let mut bytes = segment.freeze();
        let skip = std::mem::take(&mut self.skip).min(bytes.len() as u64);
        let mut bytes = bytes.split_off(skip as usize);
        if bytes.len() as u64 > self.left {
            bytes.truncate(self.left as usize);
        }
        self.left -= bytes.len() as u64;
        self.next += 1;
        Ok(bytes)
    }

    fn failed(&self, what: &'static str) -> io::Error {
        self.failures.inc();
        tracing::error!("{what}: the response is cut before any of its bytes");
        io::Error::new(io::ErrorKind::InvalidData, what)
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{sealed_size, span};
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
}
