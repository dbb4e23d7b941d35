//! Presigned URLs: downloads answered by a redirect to the bucket.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};

use super::{key, storage_error};
use crate::storage::{BlobName, Presign, StorageError};

/// Presigned URLs for the objects of an [`ObjectBlobStore`] (S3 only).
#[derive(Debug, Clone)]
pub struct ObjectPresigner {
    pub(super) signer: Arc<dyn Signer>,
    pub(super) prefix: Option<Path>,
}

#[async_trait]
impl Presign for ObjectPresigner {
    async fn presign(
        &self,
        name: &BlobName,
        ttl: Duration,
        response_headers: &[(&str, String)],
    ) -> Result<String, StorageError> {
        let options = SignedUrlOptions::default().with_query(
            response_headers
                .iter()
                .map(|(name, value)| (format!("response-{name}"), value.clone())),
        );
        let url = self
            .signer
            .signed_url_opts(
                http::Method::GET,
                &key(self.prefix.as_ref(), name.key()),
                ttl,
                &options,
            )
            .await
            .map_err(storage_error)?;
        Ok(url.to_string())
    }
}
