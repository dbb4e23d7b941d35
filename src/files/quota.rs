//! Quotas in the data layer: an upload reserves its bytes before its body
//! is read, holds the reservation while it streams (renewing it in a
//! shared index), and gives it up once its row is recorded (the row then
//! carries the usage) or when it fails. Erasure and the sweeper forget
//! what no longer counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Files, FilesError};
use crate::auth::{BareJid, Uploader};
use crate::index::{IndexError, OwnerKey, QuotaLedger, RESERVATION_TTL, ReservationId, Scan};
use crate::metrics::{Counter, Exposition};
use crate::quota::{Limits, Refusal};

/// How often an upload in progress renews its reservation.
const RENEW_EVERY: Duration = Duration::from_secs(RESERVATION_TTL.as_secs() / 4);

/// Upload-history minutes forgotten per transaction by the sweeper.
const FORGET_BATCH: usize = 1000;

/// The most files of one owner that [`Files::access`] reads.
const ACCESS_LIMIT: usize = 1_000_000;

/// The limits in force, the ledger that keeps usage, and their metrics.
pub struct Quotas {
    ledger: Arc<dyn QuotaLedger>,
    limits: Limits,
    refused: [Counter; 3],
    reserved: Arc<AtomicU64>,
}

impl Quotas {
    /// `limits`, with usage kept in `ledger`.
    pub fn new(ledger: Arc<dyn QuotaLedger>, limits: Limits) -> Quotas {
        Quotas {
            ledger,
            limits,
            refused: Default::default(),
            reserved: Arc::default(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Reserves `size` bytes for an upload by `owner` at `now`; `None`
    /// when no limit applies to it (nothing to measure).
    pub(super) async fn reserve(
        &self,
        owner: Option<OwnerKey>,
        size: u64,
        now: i64,
    ) -> Result<Option<Reservation>, FilesError> {
        if !self.limits.apply_to(owner.is_some()) {
            return Ok(None);
        }
        match self.ledger.reserve(owner, size, self.limits, now).await? {
            Ok(id) => {
                self.reserved.fetch_add(size, Ordering::Relaxed);
                Ok(Some(Reservation {
                    ledger: Arc::clone(&self.ledger),
                    id,
                    size,
                    reserved: Arc::clone(&self.reserved),
                    renewed: tokio::time::Instant::now(),
                    held: true,
                }))
            }
            Err(refusal) => {
                let slot = match refusal {
                    Refusal::Daily { .. } => 0,
                    Refusal::OwnerStored { .. } => 1,
                    Refusal::GlobalStored { .. } => 2,
                };
                self.refused[slot].inc();
                Err(FilesError::Quota(refusal))
            }
        }
    }

    /// Writes the quota metrics into `out` (no per-owner series).
    pub fn expose(&self, out: &mut Exposition) {
        out.labelled_counter(
            "upslot_quota_refusals_total",
            "Uploads refused by a quota, by the limit that refused them.",
            "kind",
            &[
                ("daily", self.refused[0].get()),
                ("owner_stored", self.refused[1].get()),
                ("global_stored", self.refused[2].get()),
            ],
        );
        out.gauge(
            "upslot_quota_reserved_bytes",
            "Bytes reserved by uploads in progress on this process.",
            self.reserved.load(Ordering::Relaxed),
        );
    }
}

/// One upload's reservation. Released explicitly once the upload's row is
/// recorded; dropped unreleased (the upload failed), it is released in the
/// background, and in a shared index it would lapse by itself.
pub(super) struct Reservation {
    ledger: Arc<dyn QuotaLedger>,
    id: ReservationId,
    size: u64,
    reserved: Arc<AtomicU64>,
    renewed: tokio::time::Instant,
    held: bool,
}

impl Reservation {
    /// Renews the reservation if it is due, so a long upload keeps it.
    pub(super) async fn keep_alive(&mut self) -> Result<(), IndexError> {
        if self.renewed.elapsed() >= RENEW_EVERY {
            self.ledger.renew(self.id).await?;
            self.renewed = tokio::time::Instant::now();
        }
        Ok(())
    }

    /// Gives the reservation up (its upload's row now carries the usage).
    pub(super) async fn release(mut self) {
        self.held = false;
        self.reserved.fetch_sub(self.size, Ordering::Relaxed);
        if let Err(error) = self.ledger.release(self.id).await {
            tracing::warn!(%error, "could not release a quota reservation; it lapses by itself");
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        self.reserved.fetch_sub(self.size, Ordering::Relaxed);
        let (ledger, id) = (Arc::clone(&self.ledger), self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = ledger.release(id).await {
                    tracing::warn!(%error, "could not release a quota reservation; it lapses by itself");
                }
            });
        }
    }
}

/// What upslot holds for one account, for a right-of-access request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Files stored (expired ones not yet deleted included).
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// When the oldest of them was uploaded.
    pub oldest_upload: Option<i64>,
    /// When the last of them expires.
    pub latest_expiry: Option<i64>,
    /// Bytes that count against the daily limit now.
    pub uploaded_today: u64,
    /// Bytes that count against the stored-bytes limit now (uploads in
    /// progress included).
    pub stored: u64,
    /// The limits in force.
    pub limits: Limits,
}

impl Files {
    /// The quotas, their limits and metrics.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// What upslot holds for the account `jid` at `now`: counts, sizes and
    /// times of its files and its quota usage, never names (upslot keeps
    /// none).
    pub async fn access(&self, jid: &BareJid, now: i64) -> Result<Access, FilesError> {
        let owner = self.key.owner(&Uploader::Jid(jid.clone()));
        let records = self.index.scan(Scan::OwnedBy(owner), ACCESS_LIMIT).await?;
        let usage = self.quotas.ledger.usage(owner, now).await?;
        let mut access = Access {
            uploaded_today: usage.uploaded_in_window(now),
            stored: usage.stored,
            limits: self.quotas.limits,
            ..Access::default()
        };
        for (_, record) in &records {
            access.files += 1;
            access.bytes = access.bytes.saturating_add(record.size);
            access.oldest_upload = Some(
                access
                    .oldest_upload
                    .map_or(record.created, |t| t.min(record.created)),
            );
            access.latest_expiry = Some(
                access
                    .latest_expiry
                    .map_or(record.expires_at, |t| t.max(record.expires_at)),
            );
        }
        Ok(access)
    }

    /// Forgets the upload history that no longer counts at `now`, until
    /// none is left or `stop` says so; returns how many minutes.
    pub async fn forget_quota_history(
        &self,
        now: i64,
        stop: impl Fn() -> bool,
    ) -> Result<u64, IndexError> {
        let mut forgotten = 0;
        loop {
            let count = self.quotas.ledger.forget_uploads(now, FORGET_BATCH).await?;
            forgotten += count as u64;
            if count < FORGET_BATCH || stop() {
                return Ok(forgotten);
            }
        }
    }

    /// Forgets the upload history of `owner` (its account is erased).
    pub(super) async fn forget_owner_history(&self, owner: OwnerKey) -> Result<(), IndexError> {
        self.quotas.ledger.forget_owner(owner).await
    }
}
