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
use crate::index::{
    FileRecord, IndexError, Inserted, OwnerKey, QuotaLedger, RESERVATION_TTL, ReservationId, Scan,
    SlotKey,
};
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

/// One upload's reservation. Given up when the upload's row is recorded
/// ([`Reservation::insert`]); dropped unreleased (the upload failed), it
/// is released in the background, and in a shared index it would lapse by
/// itself.
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

    /// Records the upload's file (see [`QuotaLedger::insert_reserved`]),
    /// which gives the reservation up; if that fails, dropping the
    /// reservation releases it.
    pub(super) async fn insert(
        mut self,
        key: SlotKey,
        record: FileRecord,
    ) -> Result<Inserted, IndexError> {
        let inserted = self.ledger.insert_reserved(key, record, self.id).await?;
        self.held = false;
        self.reserved.fetch_sub(self.size, Ordering::Relaxed);
        Ok(inserted)
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
                if let Err(error) = ledger.unreserve(id).await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::SlotPath;
    use crate::files::NewFile;
    use crate::files::tests::{KEEP, fixture};

    const DAY: i64 = crate::quota::WINDOW;

    fn romeo() -> BareJid {
        BareJid::of("romeo@montague.tld")
    }

    /// The fixture's files with `limits` and usage kept in `ledger`.
    fn with_ledger(
        f: &crate::files::tests::Fixture,
        ledger: Arc<dyn QuotaLedger>,
        limits: Limits,
    ) -> Files {
        Files::new(
            Arc::clone(&f.blobs) as _,
            None,
            Arc::new(f.index.clone()),
            f.files.index_key().clone(),
            *f.files.retention(),
            crate::files::tests::encryption(f.dir(), true),
            Quotas::new(ledger, limits),
        )
    }

    /// The fixture's files with `limits` (its index keeps the ledger).
    fn limited(limits: Limits) -> (crate::files::tests::Fixture, Files) {
        let f = fixture();
        let files = with_ledger(&f, Arc::new(f.index.clone()), limits);
        (f, files)
    }

    fn path(n: u64) -> SlotPath {
        SlotPath::from_wire(&format!("q{n}/f.bin")).unwrap()
    }

    fn owned(size: u64) -> NewFile {
        NewFile {
            size,
            content_type: "application/octet-stream".into(),
            expires: None,
            owner: Some(Uploader::Jid(romeo())),
        }
    }

    /// Uploads `size` bytes by romeo to `path(n)` at `now`.
    async fn upload(files: &Files, n: u64, size: u64, now: i64) -> Result<(), FilesError> {
        let mut upload = files.begin_upload(&path(n), owned(size), now).await?;
        upload
            .write(bytes::Bytes::from(vec![7u8; size as usize]))
            .await?;
        files.finish_upload(upload).await
    }

    fn refused(result: Result<(), FilesError>) -> Refusal {
        match result {
            Err(FilesError::Quota(refusal)) => refusal,
            other => panic!("expected a quota refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_failed_upload_gives_its_bytes_back() {
        let (_f, files) = limited(Limits {
            per_owner_daily: 100,
            per_owner_stored: 100,
            global_stored: 0,
        });
        let now = 10 * DAY;
        // Begun, then dropped mid-body: while it runs it holds 80 bytes.
        let mut dropped = files.begin_upload(&path(1), owned(80), now).await.unwrap();
        dropped
            .write(bytes::Bytes::from_static(b"part"))
            .await
            .unwrap();
        assert!(matches!(
            refused(upload(&files, 2, 30, now).await),
            Refusal::OwnerStored { limit: 100 }
        ));
        drop(dropped);
        // The release runs in the background; it is done once a reserve sees it.
        for _ in 0..100 {
            if upload(&files, 3, 30, now).await.is_ok() {
                let access = files.access(&romeo(), now).await.unwrap();
                assert_eq!(
                    (access.files, access.stored, access.uploaded_today),
                    (1, 30, 30)
                );
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the dropped upload's reservation was never released");
    }

    #[tokio::test]
    async fn expiry_and_erasure_release_stored_bytes_and_history() {
        let (_f, files) = limited(Limits {
            per_owner_daily: 100,
            per_owner_stored: 60,
            global_stored: 0,
        });
        let now = 10 * DAY;
        upload(&files, 1, 60, now).await.unwrap();
        assert!(matches!(
            refused(upload(&files, 2, 1, now + 1).await),
            Refusal::OwnerStored { .. }
        ));
        // Swept at expiry: the stored bytes are free, the upload still
        // counts against the day.
        let due = files.due(now + KEEP, 10).await.unwrap();
        assert_eq!(files.delete_batch(due, now + KEEP).await.unwrap().0, 1);
        upload(&files, 3, 40, now + KEEP).await.unwrap();
        let access = files.access(&romeo(), now + KEEP).await.unwrap();
        assert_eq!(
            (access.files, access.stored, access.uploaded_today),
            (1, 40, 100)
        );
        assert_eq!(access.oldest_upload, Some(now + KEEP));
        assert!(matches!(
            refused(upload(&files, 4, 10, now + KEEP).await),
            Refusal::OwnerStored { .. } | Refusal::Daily { .. }
        ));
        // Erasure frees both at once.
        assert_eq!(
            files.erase_owner(&romeo(), now + KEEP + 1).await.unwrap(),
            1
        );
        let access = files.access(&romeo(), now + KEEP + 1).await.unwrap();
        assert_eq!(
            access,
            Access {
                limits: files.quotas().limits(),
                ..Access::default()
            }
        );
        upload(&files, 5, 60, now + KEEP + 1).await.unwrap();
    }

    #[tokio::test]
    async fn history_ages_out_of_the_window_and_is_forgotten() {
        let (_f, files) = limited(Limits {
            per_owner_daily: 100,
            per_owner_stored: 0,
            global_stored: 0,
        });
        let now = 10 * DAY + 30; // half a minute into a minute
        upload(&files, 1, 100, now).await.unwrap();
        let refusal = refused(upload(&files, 2, 1, now + 10).await);
        let retry_at = now - 30 + 60 + DAY;
        assert_eq!(
            refusal,
            Refusal::Daily {
                limit: 100,
                retry_at
            }
        );
        assert!(upload(&files, 3, 1, retry_at - 1).await.is_err());
        assert_eq!(
            files
                .forget_quota_history(retry_at - 1, || false)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            files
                .forget_quota_history(retry_at, || false)
                .await
                .unwrap(),
            1
        );
        upload(&files, 4, 100, retry_at).await.unwrap();
    }

    /// A ledger whose store is down: every call fails.
    struct DownLedger;

    fn down() -> IndexError {
        IndexError::Unavailable("down".into())
    }

    #[async_trait::async_trait]
    impl QuotaLedger for DownLedger {
        async fn reserve(
            &self,
            _: Option<OwnerKey>,
            _: u64,
            _: Limits,
            _: i64,
        ) -> Result<Result<ReservationId, Refusal>, IndexError> {
            Err(down())
        }
        async fn renew(&self, _: ReservationId) -> Result<(), IndexError> {
            Err(down())
        }
        async fn unreserve(&self, _: ReservationId) -> Result<(), IndexError> {
            Err(down())
        }
        async fn insert_reserved(
            &self,
            _: SlotKey,
            _: FileRecord,
            _: ReservationId,
        ) -> Result<Inserted, IndexError> {
            Err(down())
        }
        async fn usage(&self, _: OwnerKey, _: i64) -> Result<crate::quota::OwnerUsage, IndexError> {
            Err(down())
        }
        async fn forget_owner(&self, _: OwnerKey) -> Result<(), IndexError> {
            Err(down())
        }
        async fn forget_uploads(&self, _: i64, _: usize) -> Result<usize, IndexError> {
            Err(down())
        }
    }

    #[tokio::test]
    async fn a_quota_store_that_fails_refuses_instead_of_waving_uploads_through() {
        let f = fixture();
        let limits = Limits {
            per_owner_daily: 100,
            ..Limits::default()
        };
        let files = with_ledger(&f, Arc::new(DownLedger), limits);
        assert!(matches!(
            upload(&files, 1, 10, 10 * DAY).await,
            Err(FilesError::Index(IndexError::Unavailable(_)))
        ));
        assert!(files.lookup(&path(1), 10 * DAY).await.unwrap().is_none());
        // Uploads no limit applies to do not ask the ledger.
        let mut anonymous = owned(10);
        anonymous.owner = None;
        let mut upload = files
            .begin_upload(&path(2), anonymous, 10 * DAY)
            .await
            .unwrap();
        upload
            .write(bytes::Bytes::from(vec![1u8; 10]))
            .await
            .unwrap();
        files.finish_upload(upload).await.unwrap();
    }
}
