//! The memory that object-store transfers may hold, all of them together.
//!
//! Uploads to an object store are buffered a part at a time and downloads
//! read ahead a few parts; without a shared limit, memory would grow with
//! the number of transfers. A [`PartBudget`] is a semaphore counting KiB:
//! an upload waits for room before it fills a buffer (its client is held
//! back by TCP flow control meanwhile), a download reads ahead only with
//! room to spare. Room is given back when the bytes are dropped, which for
//! an upload part is when the object store has sent it.
//!
//! Full-size part buffers are kept for reuse instead of being freed: the
//! allocator would otherwise keep freed multi-MiB blocks in per-thread
//! arenas, and the process would hold more than the budget says.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Room for `len` bytes, counted in whole KiB.
fn kib(len: usize) -> u32 {
    u32::try_from(len.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// The shared limit on transfer buffers (see the module documentation).
#[derive(Debug)]
pub(super) struct PartBudget {
    room: Arc<Semaphore>,
    /// The budget, in KiB.
    total: usize,
    /// The largest buffer that can be asked for: one part.
    part_size: usize,
    /// Unused buffers of exactly `part_size` bytes, for reuse.
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl PartBudget {
    /// A budget of `bytes` for buffers of at most `part_size` bytes. The
    /// budget is raised to one part if it is smaller, so that any buffer
    /// can be had.
    pub(super) fn new(bytes: u64, part_size: usize) -> PartBudget {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX).max(part_size);
        let permits = (kib(bytes) as usize).min(Semaphore::MAX_PERMITS);
        PartBudget {
            room: Arc::new(Semaphore::new(permits)),
            total: permits,
            part_size,
            spare: Arc::default(),
        }
    }

    /// A buffer for up to `len` bytes (at most one part), once the budget
    /// has room for it.
    pub(super) async fn buffer(&self, len: usize) -> PartBuffer {
        let len = len.min(self.part_size);
        let room = Arc::clone(&self.room)
            .acquire_many_owned(kib(len))
            .await
            .ok();
        let reused = (len == self.part_size)
            .then(|| {
                self.spare
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop()
            })
            .flatten();
        let data = match reused {
            Some(mut data) => {
                data.clear();
                data
            }
            None => Vec::with_capacity(len),
        };
        PartBuffer {
            data,
            limit: len,
            _room: room,
            spare: (len == self.part_size).then(|| Arc::clone(&self.spare)),
        }
    }

    /// Room for `len` bytes (at most one part) if the budget has it now,
    /// without waiting, and if at least half of the budget stays free: what
    /// can do without (read-ahead) must not hold back what cannot
    /// (uploads, which wait for room). Also fails while anyone waits.
    pub(super) fn try_reserve_spare(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        let wanted = kib(len.min(self.part_size));
        let keep = self.total / 2;
        if self.room.available_permits() < wanted as usize + keep {
            return None;
        }
        Arc::clone(&self.room).try_acquire_many_owned(wanted).ok()
    }

    /// The bytes of room not held by any transfer.
    #[cfg(test)]
    fn available(&self) -> u64 {
        self.room.available_permits() as u64 * 1024
    }
}

/// A buffer holding its share of a [`PartBudget`] until it is dropped.
#[derive(Debug)]
pub(super) struct PartBuffer {
    data: Vec<u8>,
    limit: usize,
    /// `None` only if the semaphore was closed, which upslot never does.
    _room: Option<OwnedSemaphorePermit>,
    /// Where the allocation goes back to when dropped (full parts only).
    spare: Option<Arc<Mutex<Vec<Vec<u8>>>>>,
}

impl PartBuffer {
    /// Appends as much of `bytes` as fits; returns how much that was.
    pub(super) fn fill(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(self.room());
        self.data.extend_from_slice(&bytes[..taken]);
        taken
    }

    /// How many more bytes fit.
    pub(super) fn room(&self) -> usize {
        self.limit - self.data.len()
    }

    /// Whether nothing is buffered.
    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The buffered bytes, without a copy; the budget's share is given back
    /// when the last clone of them is dropped.
    pub(super) fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PartBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for PartBuffer {
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take() {
            let data = std::mem::take(&mut self.data);
            spare
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffers_hold_room_until_dropped() {
        let budget = PartBudget::new(10 * 1024, 4 * 1024);
        assert_eq!(budget.available(), 10 * 1024);
        let mut first = budget.buffer(4 * 1024).await;
        assert_eq!(first.fill(&[7; 5000]), 4096);
        assert_eq!(first.room(), 0);
        let small = budget.buffer(100).await;
        assert_eq!(budget.available(), 10 * 1024 - 4096 - 1024);
        let bytes = first.freeze();
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(budget.available(), 5 * 1024, "a clone still holds room");
        assert_eq!(clone.len(), 4096);
        assert!(clone.iter().all(|&b| b == 7));
        drop(clone);
        drop(small);
        assert_eq!(budget.available(), 10 * 1024);
    }

    #[tokio::test]
    async fn a_full_budget_makes_buffers_wait_and_reservations_fail() {
        let budget = Arc::new(PartBudget::new(8 * 1024, 4 * 1024));
        let a = budget.buffer(4096).await;
        let b = budget.buffer(4096).await;
        assert!(budget.try_reserve_spare(1).is_none());
        let waiting = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.buffer(4096).await.room() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        assert_eq!(waiting.await.unwrap(), 4096);
        drop(b);
        let held = budget.try_reserve_spare(4096);
        assert!(held.is_some());
        assert!(budget.try_reserve_spare(1).is_none(), "half stays free");
        drop(held);
        assert!(budget.try_reserve_spare(4096).is_some());
    }

    #[tokio::test]
    async fn full_part_buffers_are_reused() {
        let budget = PartBudget::new(8 * 1024, 4 * 1024);
        let mut first = budget.buffer(4096).await;
        first.fill(&[1; 4096]);
        let address = first.data.as_ptr();
        drop(first.freeze());
        let second = budget.buffer(4096).await;
        assert_eq!(second.data.as_ptr(), address);
        assert!(second.is_empty());
        assert_eq!(second.room(), 4096);
    }

    #[test]
    fn a_budget_below_one_part_is_raised_to_it() {
        let budget = PartBudget::new(1, 4 * 1024);
        assert_eq!(budget.available(), 4 * 1024);
    }
}
