//! The container image: deploy/image/build.sh builds it, its config says
//! what a runtime must do, and run that way (unpacked by umoci, as its
//! user, with only the secret file added) it serves an upload.
//!
//! podman cannot run containers in this test's sandbox (crun is refused
//! setrlimit and cgroups), so the test does what a runtime does with the
//! image config itself: `umoci unpack`, then Entrypoint + Cmd with Env,
//! WorkingDir and User, in fresh mount and PID namespaces (see
//! common/chroot.rs). It listens on the host's 127.0.0.1:5050 and :5051,
//! the ports the image's own config names, so those must be free.
//!
//! `IMAGE_BINARY=/path/to/upslot` (a release build) makes the script skip
//! its `cargo build --release`. Needs root, the Debian packages umoci and
//! skopeo besides what build.sh names (jq, binutils…), and a reachable
//! Debian package mirror (the image's libraries and CA certificates are
//! `apt-get download`ed).

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::chroot::{self, Process, Root};
use common::oci::Image;
use common::{Put, SECRET, client, data};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// What the test asks the script to put in the source label.
const SOURCE: &str = "https://example.org/upslot-image-test";
/// The OCI annotations the config's labels and the manifest must carry.
const ANNOTATIONS: [&str; 7] = [
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.source",
    "org.opencontainers.image.licenses",
    "org.opencontainers.image.created",
];

#[tokio::test]
async fn image_builds_and_serves_as_its_config_says() {
    chroot::require_root(
        "umoci keeps the image's owners only as root, and the image runs in namespaces",
    );
    chroot::require_tool("umoci", "umoci");
    chroot::require_tool("skopeo", "skopeo");
    chroot::require_tool("git", "git");
    chroot::require_tool("unshare", "util-linux");
    // Before the build, which may take minutes.
    chroot::require_free_port(5050, "the image's config (listen = \"0.0.0.0:5050\")");
    chroot::require_free_port(5051, "the image's config (admin_listen = \"0.0.0.0:5051\")");

    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = dir.path().join("image");
    eprintln!(
        "building the image with deploy/image/build.sh ({})",
        match std::env::var("IMAGE_BINARY") {
            Ok(binary) => format!("IMAGE_BINARY={binary}"),
            Err(_) => "cargo build --release".to_string(),
        }
    );
    let summary = chroot::run(
        Command::new(repo.join("deploy/image/build.sh"))
            .arg(&out)
            .env("IMAGE_SOURCE_URL", SOURCE)
            .current_dir(repo)
            .stderr(Stdio::inherit()),
    );
    eprint!("{summary}");

    let image = Image::open(&out.join("oci"), &format!("upslot:{VERSION}"));
    let config = RunConfig::of(&image, repo);

    // The oci-archive holds the same image, as skopeo (and so podman) reads it.
    let archive = out.join(format!("upslot-{VERSION}.oci.tar"));
    let raw = chroot::run(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}", archive.display())),
    );
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(raw.as_bytes()))),
        image.manifest_digest,
        "the archive's manifest is the layout's"
    );

    let root = chroot::unpack_oci(
        &out.join("oci"),
        &format!("upslot:{VERSION}"),
        &dir.path().join("bundle"),
    );
    check_root(&root);
    let (files, bytes) = file_sizes(root.path());
    let archive_bytes = std::fs::metadata(&archive).expect("archive").len();
    eprintln!(
        "image size: layer {} bytes gzip ({:.1} MiB), {} bytes as tar; archive {} bytes; \
         unpacked {} files, {} bytes ({:.1} MiB)",
        image.layer_size,
        mib(image.layer_size),
        image.layer_tar_size,
        archive_bytes,
        files,
        bytes,
        mib(bytes)
    );

    // What a runtime adds: the secret at the path the image's config names.
    let (uid, gid) = config.user;
    root.write_file(
        "/run/secrets/upslot/secret",
        format!("{SECRET}\n").as_bytes(),
        0o400,
        uid,
        gid,
    );
    let mut command = root
        .command(&config.argv)
        .user(uid, gid)
        .workdir(&config.workdir);
    for (key, value) in &config.env {
        command = command.env(key, value);
    }
    let outside_volume = |root: &Root| -> Vec<PathBuf> {
        common::files_below(root.path())
            .into_iter()
            .filter(|p| {
                !p.starts_with(root.join("/var/lib/upslot")) && !p.starts_with(root.join("/proc"))
            })
            .collect()
    };
    let before = outside_volume(&root);
    let mut server = command.spawn("upslot in the image");
    let listening = server.wait_for_stdout("upslot listening on ", Duration::from_secs(30));
    assert_eq!(listening, "upslot listening on http://0.0.0.0:5050");
    let admin = server.wait_for_stdout("upslot admin listening on ", Duration::from_secs(30));
    assert_eq!(admin, "upslot admin listening on http://0.0.0.0:5051");
    check_runs_as(&server, uid, gid);

    // One v1 upload and download, and the health probe.
    let wire = "image-test/round trip.bin".replace(' ', "%20");
    let body = data(300_000);
    let put = Put::v1(&wire, body.clone()).decoded("image-test/round trip.bin");
    let response = client()
        .put(format!("http://127.0.0.1:5050/{wire}?{}", put.query()))
        .body(body.clone())
        .send()
        .await
        .expect("PUT to the image");
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        server.report()
    );
    let response = client()
        .get(format!("http://127.0.0.1:5050/{wire}"))
        .send()
        .await
        .expect("GET from the image");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.bytes().await.expect("body") == body,
        "the download differs from the upload"
    );
    let response = client()
        .get("http://127.0.0.1:5051/health")
        .send()
        .await
        .expect("GET /health");
    assert_eq!(response.status(), StatusCode::OK);

    server.terminate(Duration::from_secs(40));
    assert!(
        server
            .stderr_lines()
            .iter()
            .any(|line| line.contains("upslot stopped")),
        "no orderly stop in the log\n{}",
        server.report()
    );
    // It wrote only into the volume (so a read-only root file system
    // serves), and everything it wrote is the image user's.
    assert_eq!(
        outside_volume(&root),
        before,
        "files appeared outside the volume"
    );
    let written = common::files_below(&root.join("/var/lib/upslot"));
    assert!(!written.is_empty(), "nothing written to the volume");
    for path in written {
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{}", path.display());
    }
}

/// What the image config tells a runtime to do.
struct RunConfig {
    user: (u32, u32),
    argv: Vec<String>,
    workdir: String,
    env: Vec<(String, String)>,
}

impl RunConfig {
    /// Checks what a runtime reads from the config and the annotations;
    /// returns how to run it.
    fn of(image: &Image, repo: &Path) -> RunConfig {
        let c = &image.config;
        assert_eq!(c["os"], "linux");
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(c["architecture"], arch);
        let run = &c["config"];
        let user = run["User"].as_str().expect("a User");
        let (uid, gid) = user
            .split_once(':')
            .and_then(|(u, g)| Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?)))
            .unwrap_or_else(|| panic!("User {user:?} is not numeric uid:gid"));
        assert!(uid != 0 && gid != 0, "User {user:?} is root");
        assert_eq!(run["Volumes"], serde_json::json!({"/var/lib/upslot": {}}));
        assert_eq!(run["WorkingDir"], "/var/lib/upslot");
        assert_eq!(
            run["ExposedPorts"],
            serde_json::json!({"5050/tcp": {}}),
            "only the public port: `-P` must never publish the admin port"
        );
        assert_eq!(run["Entrypoint"], serde_json::json!(["/usr/bin/upslot"]));
        assert_eq!(
            run["Cmd"],
            serde_json::json!(["serve", "--config", "/etc/upslot/upslot.toml"])
        );

        let labels = &run["Labels"];
        for key in ANNOTATIONS {
            let value = labels[key].as_str().unwrap_or_default();
            assert!(!value.is_empty(), "label {key} missing: {labels}");
            assert_eq!(
                image.manifest["annotations"][key], value,
                "annotation {key}"
            );
        }
        assert_eq!(labels["org.opencontainers.image.title"], "upslot");
        assert_eq!(labels["org.opencontainers.image.version"], VERSION);
        assert_eq!(
            labels["org.opencontainers.image.licenses"],
            "AGPL-3.0-or-later"
        );
        assert_eq!(labels["org.opencontainers.image.source"], SOURCE);
        let head = chroot::run(
            Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(["rev-parse", "HEAD"]),
        );
        let revision = labels["org.opencontainers.image.revision"]
            .as_str()
            .unwrap_or_default();
        assert!(
            revision == head.trim() || revision == format!("{}-dirty", head.trim()),
            "revision {revision} is not HEAD {head}"
        );
        let created = labels["org.opencontainers.image.created"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(c["created"], created);
        if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
            let commit_time = chroot::run(Command::new("git").arg("-C").arg(repo).args([
                "log",
                "-1",
                "--format=%ct",
            ]));
            let expected = chroot::run(Command::new("date").args([
                "-u",
                "-d",
                &format!("@{}", commit_time.trim()),
                "+%Y-%m-%dT%H:%M:%SZ",
            ]));
            assert_eq!(
                created,
                expected.trim(),
                "created is the last commit's time"
            );
        }

        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut argv = strings(&run["Entrypoint"]);
        argv.extend(strings(&run["Cmd"]));
        let env = strings(&run["Env"])
            .into_iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("Env entries are KEY=value");
                (k.to_string(), v.to_string())
            })
            .collect();
        RunConfig {
            user: (uid, gid),
            argv,
            workdir: run["WorkingDir"].as_str().unwrap_or("/").to_string(),
            env,
        }
    }
}

/// The unpacked root holds what the script says, with the owners and modes
/// it says.
fn check_root(root: &Root) {
    let volume = std::fs::metadata(root.join("/var/lib/upslot")).expect("/var/lib/upslot");
    assert!(volume.is_dir());
    assert_eq!(
        (volume.uid(), volume.gid(), volume.mode() & 0o7777),
        (10001, 10001, 0o700)
    );
    let binary = std::fs::metadata(root.join("/usr/bin/upslot")).expect("/usr/bin/upslot");
    assert_eq!((binary.uid(), binary.mode() & 0o7777), (0, 0o755));
    let certs = std::fs::read_to_string(root.join("/etc/ssl/certs/ca-certificates.crt"))
        .expect("CA bundle");
    assert!(
        certs.matches("-----BEGIN CERTIFICATE-----").count() > 100,
        "a CA bundle"
    );
    let passwd = std::fs::read_to_string(root.join("/etc/passwd")).expect("/etc/passwd");
    assert!(passwd.contains("upslot:x:10001:10001:"), "{passwd}");
    assert!(!root.join("/bin/sh").exists(), "no shell in the image");
}

/// The process runs as `uid:gid`, not as root.
fn check_runs_as(server: &Process, uid: u32, gid: u32) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("status");
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(ids("Uid:"), [uid; 4], "{status}");
    assert_eq!(ids("Gid:"), [gid; 4], "{status}");
}

/// The number and total size of the regular files below `dir`.
fn file_sizes(dir: &Path) -> (usize, u64) {
    let sizes: Vec<u64> = common::files_below(dir)
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .collect();
    (sizes.len(), sizes.iter().sum())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
