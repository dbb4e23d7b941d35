//! The one configuration tree, loaded from embedded defaults, a TOML file and
//! the environment, validated once at start.
//!
//! [`Config::load`] is pure: it takes the file's text and the environment as
//! arguments. Secrets named by `*_file` keys are read by
//! [`UploadConfig::secrets`] at start-up, not here.
//!
//! One file per concern: [`schema`] (the sections and their keys),
//! `validate` (the rules), `secrets` (secret values and files), `units`
//! (sizes and durations), `layers` (defaults < file < environment) and
//! `cidr` (address ranges). This module imports nothing else of upslot.

mod cidr;
mod layers;
pub mod schema;
mod secrets;
mod units;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use cidr::Cidr;
pub use layers::ENV_PREFIX;
pub use schema::*;
pub use secrets::Secret;
pub use units::{ByteSize, Span, UnitError, human_bytes};

/// The embedded defaults: `config/default.toml`, compiled in so that the
/// documented defaults and the real ones cannot drift apart.
pub const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Why a configuration was refused. Every message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A TOML source does not parse.
    #[error("{origin}: {message}")]
    Syntax {
        /// Where the text came from (a file name, or "defaults").
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key has a wrong type, an unknown name or an impossible value.
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted key, e.g. `server.base_path`.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// An environment override is malformed.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A file named by the config cannot be read.
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        /// The dotted key that names the file.
        key: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

impl Config {
    /// Loads the configuration: embedded defaults, then `file` (its text and
    /// a name for messages), then `UPSLOT_*` variables from `env`.
    pub fn load(
        file: Option<(&str, &str)>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut table = layers::parse(DEFAULTS, "embedded defaults")?;
        if let Some((text, origin)) = file {
            layers::merge(&mut table, layers::parse(text, origin)?);
        }
        layers::apply_env(&mut table, env)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid("config", e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// `quota.per_owner_daily`, or ten times `upload.max_size` when unset
    /// (as Prosody's own daily quota); 0 means unlimited.
    pub fn per_owner_daily(&self) -> u64 {
        match self.quota.per_owner_daily {
            Some(limit) => limit.0,
            None => self.upload.max_size.0.saturating_mul(10),
        }
    }

    /// The public listeners' addresses.
    pub fn listen_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        let texts = self.server.listen.as_slice();
        if texts.is_empty() {
            return Err(invalid("server.listen", "at least one address is needed"));
        }
        texts
            .iter()
            .map(|text| {
                text.trim().parse().map_err(|_| {
                    invalid(
                        "server.listen",
                        format!(
                            "{text:?} is not an address such as \"127.0.0.1:5050\" or \"[::]:5050\""
                        ),
                    )
                })
            })
            .collect()
    }

    /// The admin listener's address, if enabled.
    pub fn admin_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let text = self.server.admin_listen.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            invalid(
                "server.admin_listen",
                format!(
                    "{text:?} is not an address such as \"127.0.0.1:5051\" (or \"\" to disable)"
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::load(Some((text, "test.toml")), &BTreeMap::new())
    }

    #[test]
    fn defaults_alone_are_valid() {
        let config = Config::load(None, &BTreeMap::new()).unwrap();
        assert_eq!(
            config.listen_addrs().unwrap(),
            vec!["127.0.0.1:5050".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(config.server.base_path, "/");
        assert_eq!(config.storage.path, PathBuf::from("./data"));
        assert_eq!(config.retention.keep.0, Duration::from_secs(30 * 86_400));
        assert_eq!(config.retention.ceiling(), config.retention.keep);
        assert_eq!(config.retention.tombstone_horizon(), config.retention.keep);
        assert_eq!(config.upload.max_size, ByteSize(100 << 20));
        assert_eq!(config.upload.protocols.len(), 4);
        assert_eq!(config.privacy.log_client_ip, LogClientIp::None);
        assert!(!config.upload.has_secret());
        assert_eq!(
            config.admin_listen().unwrap(),
            Some("127.0.0.1:5051".parse().unwrap())
        );
    }

    #[test]
    fn design_example_parses() {
        let config = load(
            r#"
[server]
listen = ["127.0.0.1:5050", "[::1]:5050"]
base_path = "/upload/"
admin_listen = "127.0.0.1:5051"
trusted_proxies = ["127.0.0.1/32", "::1/128"]
tls = { cert = "fullchain.pem", key = "privkey.pem" }

[upload]
secret = ["new", "old"]
max_size = "1GiB"

[storage]
backend = "disk"
path = "/var/lib/upslot"

[retention]
keep = "4w"

[index]
backend = "embedded"

[privacy]
log_client_ip = "truncated"
"#,
        )
        .unwrap();
        assert_eq!(config.server.listen.as_slice().len(), 2);
        assert_eq!(config.server.trusted_proxies.len(), 2);
        assert_eq!(config.upload.secrets().unwrap().len(), 2);
        assert_eq!(config.retention.keep.0.as_secs(), 28 * 86_400);
        assert!(config.server.tls.is_some());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load("[upload]\nsecrt = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("secrt"), "{err}");
        assert!(load("[nonsense]\n").is_err());
    }

    #[test]
    fn bad_values_say_what_to_change() {
        let err = load("[server]\nbase_path = \"upload\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.base_path"), "{err}");
        let err = load("[retention]\nkeep = \"thirty days\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("thirty days"), "{err}");
        let err = load("[storage]\nbackend = \"floppy\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("floppy"), "{err}");
        assert!(load("[upload]\nprotocols = []\n").is_err());
        let err = load("[privacy]\nfailed_attempt_memory = \"7h\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("privacy.failed_attempt_memory"), "{err}");
        let err = load("[retention]\nkeep = \"30d\"\nmax = \"7d\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention.max"), "{err}");
        assert!(load("[server]\nadmin_listen = \"localhost\"\n").is_err());
        let err = load("[server]\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.listen") && err.contains("nowhere"),
            "{err}"
        );
        assert!(load("not toml at all [").is_err());
    }

    const S3: &str = "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b\"\n\
                      endpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n\
                      secret_access_key = \"s3-secret-key\"\n";

    /// Offload needs encryption off.
    const PLAIN: &str = "[encryption]\nenabled = false\n";

    #[test]
    fn object_storage_shared_index_and_offload() {
        let config = load(&format!(
            "{S3}[index]\nbackend = \"postgres\"\nurl = \"postgres://u:pgpass@db/upslot\"\n\
             [offload]\nmode = \"presigned\"\n{PLAIN}"
        ))
        .unwrap();
        assert_eq!(config.storage.backend, StorageBackend::S3);
        assert_eq!(config.storage.s3.part_size.0, 8 << 20);
        assert_eq!(config.storage.s3.buffer_memory.0, 128 << 20);
        assert_eq!(config.storage.s3.parts_in_flight, 8);
        assert_eq!(config.index.pool_size, 16);
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("s3-secret-key") && !printed.contains("pgpass"),
            "{printed}"
        );

        let refused = |text: &str, key: &str| {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        };
        refused("[storage]\nbackend = \"s3\"\n", "storage.s3.bucket");
        refused(
            &S3.replace("allow_http = true", "allow_http = false"),
            "allow_http",
        );
        refused(
            &format!("{S3}part_size = \"1MiB\"\n"),
            "storage.s3.part_size",
        );
        refused(
            &format!("{S3}part_size = \"6GiB\"\nbuffer_memory = \"8GiB\"\n"),
            "storage.s3.part_size",
        );
        refused(
            &format!("{S3}part_size = \"16MiB\"\nbuffer_memory = \"8MiB\"\n"),
            "storage.s3.buffer_memory",
        );
        refused(
            &format!("{S3}parts_in_flight = 0\n"),
            "storage.s3.parts_in_flight",
        );
        refused(
            "[storage]\nbackend = \"gcs\"\nurl = \"gs://b\"\n[storage.s3]\nparts_in_flight = 65\n",
            "storage.s3.parts_in_flight",
        );
        refused(
            &format!("[offload]\nmode = \"presigned\"\n{PLAIN}"),
            "offload.mode",
        );
        refused(
            &format!("{S3}[offload]\nmode = \"presigned\"\npresigned_ttl = \"8d\"\n{PLAIN}"),
            "presigned_ttl",
        );
        refused(
            &format!("[offload]\nmode = \"cdn\"\ncdn_url = \"https://cdn.example\"\n{PLAIN}"),
            "offload.cdn_url",
        );
        refused("[index]\nbackend = \"postgres\"\n", "index.url");
        refused(
            "[index]\nbackend = \"postgres\"\nurl = \"mysql://x\"\n",
            "index.url",
        );
        refused(
            "[storage]\nbackend = \"gcs\"\nurl = \"s3://x\"\n",
            "storage.url",
        );
        let cdn = "[offload]\nmode = \"cdn\"\ncdn_url = \"https://cdn.example/\"\n";
        assert!(load(&format!("{cdn}{PLAIN}")).is_ok());
        // Redirects would serve ciphertext: refused while encryption is on.
        let err = load(cdn).unwrap_err().to_string();
        assert!(
            err.contains("offload.mode") && err.contains("encryption.enabled = false"),
            "{err}"
        );
        refused("[encryption]\nepoch = \"0s\"\n", "encryption.epoch");
    }

    #[test]
    fn environment_overrides_file() {
        let env: BTreeMap<String, String> = [
            ("UPSLOT_UPLOAD__SECRET".to_string(), "from-env".to_string()),
            (
                "UPSLOT_SERVER__LISTEN".to_string(),
                "127.0.0.1:6000".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        let config =
            Config::load(Some(("[upload]\nsecret = \"from-file\"\n", "f.toml")), &env).unwrap();
        assert_eq!(
            config.upload.secrets().unwrap(),
            vec![Secret::new("from-env")]
        );
        assert_eq!(config.listen_addrs().unwrap()[0].port(), 6000);
    }

    #[test]
    fn secret_files_are_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let config = load(&format!(
            "[upload]\nsecret_file = {:?}\ndelete_secret_file = {:?}\n",
            path.display().to_string(),
            path.display().to_string()
        ))
        .unwrap();
        assert_eq!(
            config.upload.secrets().unwrap(),
            vec![Secret::new("s3cr3t")]
        );
        assert_eq!(
            config.upload.delete_secret().unwrap(),
            Some(Secret::new("s3cr3t"))
        );
        let missing = load("[upload]\nsecret_file = \"/nonexistent/secret\"\n").unwrap();
        let err = missing.upload.secrets().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/secret"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let config = load("[upload]\nsecret = \"hunter2\"\ndelete_secret = \"d3l3t3\"\n").unwrap();
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("d3l3t3"),
            "{printed}"
        );
    }
}
