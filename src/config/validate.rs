//! Validation: every rule a loaded configuration must satisfy, checked once
//! at start, each refusal naming the key and what to write instead.

use std::time::Duration;

use super::schema::{IndexBackend, MAX_PART_SIZE, MIN_PART_SIZE, OffloadMode, StorageBackend};
use super::{Config, ConfigError, invalid};

impl Config {
    /// Checks every rule; the first broken one is the error.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        self.listen_addrs()?;
        if !server.base_path.starts_with('/') || !server.base_path.ends_with('/') {
            return Err(invalid(
                "server.base_path",
                format!(
                    "{:?} must start and end with \"/\", e.g. \"/\" or \"/upload/\"",
                    server.base_path
                ),
            ));
        }
        if server.base_path.contains(['?', '#', '%', ' ']) || server.base_path.contains("//") {
            return Err(invalid(
                "server.base_path",
                "must be a plain path without '?', '#', '%', spaces or empty segments",
            ));
        }
        self.admin_listen()?;
        let url = &server.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "server.public_url",
                "must start with http:// or https://",
            ));
        }
        if server.cors_origins.is_empty() {
            return Err(invalid(
                "server.cors_origins",
                "list at least one origin, or \"*\" for any",
            ));
        }
        if let Some(bad) = server
            .cors_origins
            .iter()
            .find(|o| http::HeaderValue::from_str(o).is_err())
        {
            return Err(invalid(
                "server.cors_origins",
                format!("{bad:?} is not a valid origin"),
            ));
        }
        if server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        for (key, span) in [
            ("server.header_timeout", server.header_timeout),
            ("server.tls_handshake_timeout", server.tls_handshake_timeout),
            ("server.body_idle_timeout", server.body_idle_timeout),
        ] {
            if span.0.is_zero() {
                return Err(invalid(key, "must be longer than zero"));
            }
        }
        if self.upload.max_size.0 == 0 {
            return Err(invalid("upload.max_size", "must be larger than zero"));
        }
        if self.upload.protocols.is_empty() {
            return Err(invalid(
                "upload.protocols",
                "list at least one of \"v1\", \"v2\", \"token\", \"jwt\"",
            ));
        }
        if self.upload.delete_secret.is_some() && self.upload.delete_secret_file.is_some() {
            return Err(invalid(
                "upload.delete_secret",
                "set delete_secret or delete_secret_file, not both",
            ));
        }
        if self.retention.keep.0 < Duration::from_secs(1) {
            return Err(invalid("retention.keep", "must be at least one second"));
        }
        if self.retention.ceiling() < self.retention.keep {
            return Err(invalid(
                "retention.max",
                format!(
                    "{} is shorter than retention.keep ({}): lower keep instead",
                    self.retention.ceiling(),
                    self.retention.keep
                ),
            ));
        }
        if self.retention.sweep_every.0 < Duration::from_millis(100) {
            return Err(invalid("retention.sweep_every", "must be at least 100ms"));
        }
        let privacy = &self.privacy;
        if privacy.failed_attempt_memory.0 > Duration::from_secs(6 * 3_600)
            || privacy.failed_attempt_memory.0.is_zero()
        {
            return Err(invalid(
                "privacy.failed_attempt_memory",
                "must be longer than zero and at most \"6h\"",
            ));
        }
        if privacy.ban_after == 0 {
            return Err(invalid("privacy.ban_after", "must be at least 1"));
        }
        if privacy.ban_window.0.is_zero() || privacy.ban_for.0.is_zero() {
            return Err(invalid(
                "privacy.ban_window",
                "ban_window and ban_for must be longer than zero",
            ));
        }
        if privacy.max_remembered_addresses == 0 {
            return Err(invalid(
                "privacy.max_remembered_addresses",
                "must be at least 1",
            ));
        }
        if self.storage.path.as_os_str().is_empty() {
            return Err(invalid("storage.path", "must name a directory"));
        }
        self.validate_backends()
    }

    fn validate_backends(&self) -> Result<(), ConfigError> {
        let storage = &self.storage;
        match storage.backend {
            StorageBackend::Disk => {}
            StorageBackend::S3 => {
                let s3 = &storage.s3;
                if s3.bucket.is_empty() {
                    return Err(invalid(
                        "storage.s3.bucket",
                        "backend \"s3\" needs the bucket's name",
                    ));
                }
                if !(s3.endpoint.is_empty()
                    || s3.endpoint.starts_with("https://")
                    || s3.endpoint.starts_with("http://"))
                {
                    return Err(invalid(
                        "storage.s3.endpoint",
                        "must be empty (AWS) or start with https:// (or http:// with allow_http)",
                    ));
                }
                if s3.endpoint.starts_with("http://") && !s3.allow_http {
                    return Err(invalid(
                        "storage.s3.endpoint",
                        "is plain http://: set storage.s3.allow_http = true (local servers only)",
                    ));
                }
                if s3.secret_access_key.is_some() && s3.secret_access_key_file.is_some() {
                    return Err(invalid(
                        "storage.s3.secret_access_key",
                        "set secret_access_key or secret_access_key_file, not both",
                    ));
                }
            }
            StorageBackend::Gcs | StorageBackend::Azure => {
                let scheme = if storage.backend == StorageBackend::Gcs {
                    "gs://"
                } else {
                    "az://"
                };
                if !storage.url.starts_with(scheme) {
                    return Err(invalid(
                        "storage.url",
                        format!("must be the bucket or container URL, {scheme}<name>[/prefix]"),
                    ));
                }
            }
        }
        if storage.backend != StorageBackend::Disk {
            // The transfer settings in [storage.s3] serve GCS and Azure too.
            let s3 = &storage.s3;
            if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&s3.part_size.0) {
                return Err(invalid(
                    "storage.s3.part_size",
                    "must be between 5MiB and 5GiB (the part sizes S3 accepts)",
                ));
            }
            if s3.buffer_memory.0 < s3.part_size.0 {
                return Err(invalid(
                    "storage.s3.buffer_memory",
                    "must be at least part_size (an upload needs one part buffer)",
                ));
            }
            if !(1..=64).contains(&s3.parts_in_flight) {
                return Err(invalid(
                    "storage.s3.parts_in_flight",
                    "must be between 1 and 64",
                ));
            }
        }
        let max_size = self.upload.max_size.0;
        for (key, limit) in [
            ("quota.per_owner_daily", self.per_owner_daily()),
            ("quota.per_owner_stored", self.quota.per_owner_stored.0),
            ("quota.global_stored", self.quota.global_stored.0),
        ] {
            if limit != 0 && limit < max_size {
                return Err(invalid(
                    key,
                    format!(
                        "{} is smaller than upload.max_size ({}), so an upload of the largest \
                         accepted size could never fit: raise it, set it to \"0\" (unlimited) \
                         or lower upload.max_size",
                        super::human_bytes(limit),
                        super::human_bytes(max_size)
                    ),
                ));
            }
        }
        let offload = &self.offload;
        if self.encryption.enabled && offload.mode != OffloadMode::None {
            return Err(invalid(
                "offload.mode",
                "redirects would serve the encrypted bytes: downloads must pass through upslot to be decrypted. \
                 Set encryption.enabled = false to offload downloads (files are then stored in plaintext)",
            ));
        }
        let epoch = self.encryption.epoch.0;
        if epoch < Duration::from_secs(1) || epoch > Duration::from_secs(366 * 86_400) {
            return Err(invalid("encryption.epoch", "must be between 1s and 366d"));
        }
        match offload.mode {
            OffloadMode::None => {}
            OffloadMode::Presigned => {
                if storage.backend != StorageBackend::S3 {
                    return Err(invalid(
                        "offload.mode",
                        "\"presigned\" needs storage.backend = \"s3\"",
                    ));
                }
                let ttl = offload.presigned_ttl.0;
                if ttl < Duration::from_secs(10) || ttl > Duration::from_secs(7 * 86_400) {
                    return Err(invalid(
                        "offload.presigned_ttl",
                        "must be between 10s and 7d (S3's limit)",
                    ));
                }
            }
            OffloadMode::Cdn => {
                let url = &offload.cdn_url;
                if !(url.starts_with("https://") || url.starts_with("http://"))
                    || !url.ends_with('/')
                {
                    return Err(invalid(
                        "offload.cdn_url",
                        "mode \"cdn\" needs the CDN's base URL, ending in \"/\" (e.g. \"https://cdn.example.org/\")",
                    ));
                }
            }
        }
        if self.index.backend == IndexBackend::Postgres {
            let index = &self.index;
            match (&index.url, &index.url_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid("index.url", "set url or url_file, not both"));
                }
                (None, None) => return index.postgres_url().map(|_| ()),
                // The file is read at start.
                (None, Some(_)) => {}
                (Some(url), None) => {
                    let url = String::from_utf8_lossy(url.expose());
                    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                        return Err(invalid(
                            "index.url",
                            "must be a URL such as \"postgres://user:password@host/db\"",
                        ));
                    }
                }
            }
            if self.index.pool_size == 0 {
                return Err(invalid("index.pool_size", "must be at least 1"));
            }
        }
        Ok(())
    }
}
