//! A real S3-compatible server for tests: `s3s-fs` (crates.io), started on
//! a free loopback port over a temporary directory. `tests/run.sh` installs
//! it; without it the tests that need it fail with a message saying so.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Credentials every test server accepts.
pub const ACCESS_KEY: &str = "upslot-test-access";
/// The secret key.
pub const SECRET_KEY: &str = "upslot-test-secret-key-0123456789";

/// A running `s3s-fs`; killed when dropped.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Where the buckets live (a bucket is a directory).
    pub root: PathBuf,
    addr: SocketAddr,
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

/// The `s3s-fs` binary: `$TEST_S3S_FS`, else on `PATH`, else in
/// cargo's bin directory.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("TEST_S3S_FS") {
        return PathBuf::from(path);
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("s3s-fs"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into_os_string()))
    {
        candidates.push(Path::new(&home).join("bin").join("s3s-fs"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs not found: run tests/run.sh (it installs it with \
             `cargo install s3s-fs@0.14.1 --features binary --locked`) or set TEST_S3S_FS"
            )
        })
}

impl S3Server {
    /// Starts a server with one bucket, `bucket`.
    pub fn start(bucket: &str) -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        std::fs::create_dir(root.join(bucket)).expect("bucket directory");
        let mut server = S3Server::start_at(&root, super::free_port());
        server._dir = Some(dir);
        server
    }

    /// Starts a server over `root` on `port` (to restart one that was stopped).
    pub fn start_at(root: &Path, port: u16) -> S3Server {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start s3s-fs");
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "s3s-fs did not listen on {addr} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server {
            endpoint: format!("http://{addr}"),
            root: root.to_path_buf(),
            addr,
            child,
            _dir: None,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops the server (the data stays in `root`).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Keys for `[storage]` (which `Upslot::start_with` opens) and the
    /// `[storage.s3]` section for `bucket`.
    pub fn storage_toml(&self, bucket: &str) -> String {
        format!(
            "backend = \"s3\"\n\n[storage.s3]\nbucket = \"{bucket}\"\n\
             endpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"{ACCESS_KEY}\"\n\
             secret_access_key = \"{SECRET_KEY}\"\nallow_http = true\n",
            self.endpoint
        )
    }

    /// Every object key stored in `bucket` (relative paths), excluding
    /// s3s-fs's own bookkeeping files.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(base, &path, out);
                } else if let Ok(relative) = path.strip_prefix(base) {
                    out.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        let base = self.root.join(bucket);
        walk(&base, &base, &mut out);
        out.retain(|key| !key.starts_with('.') && !key.contains("/."));
        out.sort();
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
