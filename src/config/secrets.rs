//! Secrets in the configuration: the [`Secret`] type that never prints,
//! the `*_file` keys read at start-up, and the `Debug` output of every
//! section that holds one (`[redacted]` in place of the value).

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::schema::{IndexConfig, OneOrMany, S3Config, UploadConfig};
use super::{ConfigError, invalid};

/// A secret string; never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret's bytes, for keying a MAC.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Debug for UploadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadConfig")
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("secret_file", &self.secret_file)
            .field(
                "delete_secret",
                &self.delete_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("delete_secret_file", &self.delete_secret_file)
            .field("max_size", &self.max_size)
            .field("protocols", &self.protocols)
            .finish()
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[redacted]"),
            )
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .field("buffer_memory", &self.buffer_memory)
            .field("parts_in_flight", &self.parts_in_flight)
            .finish()
    }
}

impl S3Config {
    /// The secret access key, if configured (else the environment's).
    pub fn secret_access_key(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.secret_access_key, &self.secret_access_key_file) {
            (Some(secret), _) => Ok(Some(secret.clone())),
            (None, Some(path)) => read_secret("storage.s3.secret_access_key_file", path).map(Some),
            (None, None) => Ok(None),
        }
    }
}

impl fmt::Debug for IndexConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexConfig")
            .field("backend", &self.backend)
            .field("url", &self.url.as_ref().map(|_| "[redacted]"))
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl IndexConfig {
    /// The PostgreSQL URL (`url` or the contents of `url_file`).
    pub fn postgres_url(&self) -> Result<Secret, ConfigError> {
        match (&self.url, &self.url_file) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(path)) => read_secret("index.url_file", path),
            (None, None) => Err(invalid(
                "index.url",
                "backend \"postgres\" needs url or url_file (\"postgres://user:password@host/db\")",
            )),
        }
    }
}

impl UploadConfig {
    /// Whether a shared secret is configured (inline or by file).
    pub fn has_secret(&self) -> bool {
        self.secret
            .as_ref()
            .is_some_and(|s| !s.as_slice().is_empty())
            || self
                .secret_file
                .as_ref()
                .is_some_and(|s| !s.as_slice().is_empty())
    }

    /// Every configured shared secret: the inline ones, then those read from
    /// `secret_file`. Empty secrets are refused.
    pub fn secrets(&self) -> Result<Vec<Secret>, ConfigError> {
        let mut secrets: Vec<Secret> = self
            .secret
            .as_ref()
            .map(|s| s.as_slice().to_vec())
            .unwrap_or_default();
        for path in self
            .secret_file
            .as_ref()
            .map(OneOrMany::as_slice)
            .unwrap_or_default()
        {
            secrets.push(read_secret("upload.secret_file", path)?);
        }
        if secrets.iter().any(|s| s.expose().is_empty()) {
            return Err(invalid("upload.secret", "a secret must not be empty"));
        }
        Ok(secrets)
    }

    /// Metronome's delete secret, if configured.
    pub fn delete_secret(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.delete_secret, &self.delete_secret_file) {
            (Some(secret), _) if secret.expose().is_empty() => {
                Err(invalid("upload.delete_secret", "must not be empty"))
            }
            (Some(secret), _) => Ok(Some(secret.clone())),
            (None, Some(path)) => read_secret("upload.delete_secret_file", path).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// Reads a secret file; one trailing newline (as editors and `echo` add) is dropped.
fn read_secret(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(text))
}
