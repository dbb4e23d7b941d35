//! Connecting to a bucket: S3 (and compatible servers) from `[storage.s3]`,
//! Google Cloud Storage and Azure from a URL, with the client settings
//! every store gets.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::signer::Signer;
use object_store::{ClientConfigKey, ClientOptions, ObjectStore, RetryConfig};

use super::{ObjectBlobStore, Transfers};
use crate::config::{S3Config, Secret};

impl ObjectBlobStore {
    /// Connects to the S3 bucket `config` names (credentials: `config`,
    /// then the usual AWS environment variables and instance roles).
    /// Nothing is sent yet: `/health` and the first request tell whether
    /// the bucket answers.
    pub fn s3(
        config: &S3Config,
        secret_access_key: Option<Secret>,
    ) -> Result<ObjectBlobStore, object_store::Error> {
        install_crypto_provider();
        // Client options first: they include `allow_http`, which
        // `with_client_options` would reset.
        let mut builder = AmazonS3Builder::from_env()
            .with_client_options(client_options())
            .with_bucket_name(&config.bucket)
            .with_allow_http(config.allow_http)
            .with_virtual_hosted_style_request(config.virtual_hosted_style)
            .with_retry(retry());
        if !config.endpoint.is_empty() {
            builder = builder.with_endpoint(&config.endpoint);
        }
        if !config.region.is_empty() {
            builder = builder.with_region(&config.region);
        }
        if !config.access_key_id.is_empty() {
            builder = builder.with_access_key_id(&config.access_key_id);
        }
        if let Some(secret) = secret_access_key {
            builder =
                builder.with_secret_access_key(String::from_utf8_lossy(secret.expose()).as_ref());
        }
        let store = Arc::new(builder.build()?);
        let signer: Arc<dyn Signer> = Arc::clone(&store) as _;
        Ok(ObjectBlobStore::new(
            store,
            Some(signer),
            &config.prefix,
            Transfers::of(config),
        ))
    }

    /// Connects to Google Cloud Storage or Azure Blob Storage at `url`
    /// (`gs://bucket[/prefix]`, `az://container[/prefix]`), credentials
    /// from the environment.
    pub fn cloud(url: &str, transfers: Transfers) -> Result<ObjectBlobStore, object_store::Error> {
        install_crypto_provider();
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let store: Arc<dyn ObjectStore> = match scheme {
            "gs" => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry())
                    .with_client_options(client_options())
                    .build()?,
            ),
            "az" => Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_container_name(bucket)
                    .with_retry(retry())
                    .with_client_options(client_options())
                    .build()?,
            ),
            _ => {
                return Err(object_store::Error::NotSupported {
                    source: "storage.url must start with gs:// or az://".into(),
                });
            }
        };
        Ok(ObjectBlobStore::new(store, None, prefix, transfers))
    }
}

/// Makes ring rustls's process-wide default. The HTTP client object_store
/// uses builds its TLS settings from that default, and with two providers
/// compiled in (ring for upslot's listeners, aws-lc-rs pulled in by
/// object_store) there is none until one is chosen. Choosing twice is fine.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Few, quick retries: when the store is down, uploads should get 503 in
/// seconds rather than wait minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    }
}

/// Connect and read timeouts, but no overall request timeout: a download
/// to a slow client may stream for a long time. Uploads also time out per
/// part.
fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_config(ClientConfigKey::ReadTimeout, "60s")
        .with_timeout_disabled()
}
