//! `upslot check-config`: load everything a start would read (secrets,
//! TLS files), print a summary without secrets, exit 0 or 64.

use std::process::ExitCode;

use super::EXIT_CONFIG;
use crate::config::{Config, IndexBackend, StorageBackend, human_bytes};
use crate::server;

/// Checks `config` and prints its summary.
pub(super) fn check_config(config: &Config) -> ExitCode {
    let checks = || -> Result<usize, String> {
        let secrets = config.upload.secrets().map_err(|e| e.to_string())?;
        config.upload.delete_secret().map_err(|e| e.to_string())?;
        if config.storage.backend == StorageBackend::S3 {
            config
                .storage
                .s3
                .secret_access_key()
                .map_err(|e| e.to_string())?;
        }
        if config.index.backend == IndexBackend::Postgres {
            config.index.postgres_url().map_err(|e| e.to_string())?;
        }
        if let Some(tls) = &config.server.tls {
            server::tls::Tls::load(&tls.cert, &tls.key).map_err(|e| format!("server.tls: {e}"))?;
        }
        Ok(secrets.len())
    };
    match checks() {
        Ok(secrets) => {
            let secrets = if secrets == 0 {
                "none configured (one is generated at first start)".to_string()
            } else {
                secrets.to_string()
            };
            println!(
                "configuration OK\n  listen: {}\n  storage: {}\n  index: {:?}\n  offload: {:?}\n  retention: {}\n  encryption: {}\n  quotas: {}\n  max upload: {}\n  secrets: {secrets}",
                config.server.listen.as_slice().join(", "),
                storage_summary(config),
                config.index.backend,
                config.offload.mode,
                config.retention.keep,
                encryption_summary(config),
                quota_summary(config),
                config.upload.max_size,
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("upslot: configuration error: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Whether files are encrypted, and where the keys that must stay out of
/// backups are, for `check-config`.
fn encryption_summary(config: &Config) -> String {
    let encryption = &config.encryption;
    let state = if encryption.enabled {
        format!("on, epochs of {}", encryption.epoch)
    } else {
        "off for new files".to_string()
    };
    let keys = match config.index.backend {
        IndexBackend::Embedded => format!(
            "keyring {}",
            encryption.keyring_dir(&config.storage.path).display()
        ),
        IndexBackend::Postgres => format!(
            "master key {}",
            encryption.master_key_path(&config.storage.path).display()
        ),
    };
    format!("{state}; {keys} (keep it out of long-lived backups)")
}

/// The quotas in force, for `check-config`.
fn quota_summary(config: &Config) -> String {
    let limit = |bytes: u64| match bytes {
        0 => "unlimited".to_string(),
        bytes => human_bytes(bytes),
    };
    let limits = crate::quota::Limits::of(config);
    format!(
        "per account {} per 24 h and {} stored (JWT and ejabberd slots); {} stored in total",
        limit(limits.per_owner_daily),
        limit(limits.per_owner_stored),
        limit(limits.global_stored)
    )
}

/// Where blobs go, for `check-config` (no credentials).
fn storage_summary(config: &Config) -> String {
    let storage = &config.storage;
    match storage.backend {
        StorageBackend::Disk => format!("disk at {}", storage.path.display()),
        StorageBackend::S3 => format!(
            "s3 bucket {:?} at {}",
            storage.s3.bucket,
            if storage.s3.endpoint.is_empty() {
                "AWS"
            } else {
                &storage.s3.endpoint
            }
        ),
        StorageBackend::Gcs | StorageBackend::Azure => {
            format!("{:?} {}", storage.backend, storage.url)
        }
    }
}
