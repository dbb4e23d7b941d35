//! `GET /health` on the admin listener: whether storage and the index work.
//! 200 with the report when both answer, else 503
//! ([`super::ApiError::Unhealthy`]) with the same report naming the part
//! that failed.

use crate::files::Files;

/// Which parts answered a health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthReport {
    /// Blob storage answered.
    pub storage: bool,
    /// The index answered.
    pub index: bool,
}

impl HealthReport {
    /// Whether every part answered.
    pub fn is_healthy(&self) -> bool {
        self.storage && self.index
    }

    /// The report as JSON: `{"status":"ok"|"failed","storage":…,"index":…}`.
    pub fn json(&self) -> String {
        let word = |ok: bool| if ok { "ok" } else { "failed" };
        format!(
            "{{\"status\":\"{}\",\"storage\":\"{}\",\"index\":\"{}\"}}\n",
            word(self.is_healthy()),
            word(self.storage),
            word(self.index)
        )
    }
}

/// Probes blob storage and the index, logging what failed.
pub(super) async fn probe(files: &Files) -> HealthReport {
    let (storage, index) = files.check().await;
    if let Err(error) = &storage {
        tracing::warn!(%error, "health: storage failed");
    }
    if let Err(error) = &index {
        tracing::warn!(%error, "health: index failed");
    }
    HealthReport {
        storage: storage.is_ok(),
        index: index.is_ok(),
    }
}
