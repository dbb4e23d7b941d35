//! Reading an OCI image layout as a runtime or a registry would, checking
//! every blob against its digest and size on the way (tests/image.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// An image in an OCI layout, its blobs checked against their digests.
pub struct Image {
    /// The image manifest.
    pub manifest: Value,
    /// The manifest's digest (`sha256:…`).
    pub manifest_digest: String,
    /// The image config.
    pub config: Value,
    /// The one layer's size, compressed.
    pub layer_size: u64,
    /// The one layer's size as tar.
    pub layer_tar_size: u64,
}

impl Image {
    /// Opens the only image of the layout `layout`, which must be named
    /// `name`, with one gzip layer whose diff_id matches.
    pub fn open(layout: &Path, name: &str) -> Image {
        let read_json = |path: PathBuf| -> Value {
            let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        assert_eq!(
            read_json(layout.join("oci-layout"))["imageLayoutVersion"],
            "1.0.0"
        );
        let index = read_json(layout.join("index.json"));
        let manifests = index["manifests"].as_array().expect("manifests");
        assert_eq!(manifests.len(), 1, "one image in the layout: {index}");
        let descriptor = &manifests[0];
        assert_eq!(
            descriptor["annotations"]["org.opencontainers.image.ref.name"], name,
            "podman load names the image after this"
        );
        let manifest_digest = descriptor["digest"].as_str().expect("digest").to_string();
        let manifest: Value = serde_json::from_slice(&blob(layout, descriptor)).expect("manifest");
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        let config: Value =
            serde_json::from_slice(&blob(layout, &manifest["config"])).expect("config");
        let layers = manifest["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 1, "one layer");
        assert_eq!(
            layers[0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        blob(layout, &layers[0]);
        // The diff_id is the digest of the layer as tar.
        let digest = layers[0]["digest"].as_str().expect("digest");
        let path = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let mut gunzip = Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip");
        let mut hasher = Sha256::new();
        let layer_tar_size = std::io::copy(&mut gunzip.stdout.take().expect("stdout"), &mut hasher)
            .expect("read the layer");
        assert!(
            gunzip.wait().expect("gzip").success(),
            "the layer is not gzip"
        );
        assert_eq!(
            config["rootfs"]["diff_ids"],
            serde_json::json!([format!("sha256:{}", hex::encode(hasher.finalize()))])
        );
        Image {
            layer_size: layers[0]["size"].as_u64().expect("size"),
            manifest,
            manifest_digest,
            config,
            layer_tar_size,
        }
    }
}

/// The blob `descriptor` points to, after checking its size and digest.
pub fn blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().expect("a digest");
    let hex_digest = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex_digest))
        .unwrap_or_else(|e| panic!("blob {digest}: {e}"));
    assert_eq!(
        Some(bytes.len() as u64),
        descriptor["size"].as_u64(),
        "size of {digest}"
    );
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        hex_digest,
        "content of {digest}"
    );
    bytes
}
