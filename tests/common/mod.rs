//! Starts the real `upslot` binary for integration tests.
//!
//! Every instance gets its own temporary data directory and ephemeral ports
//! (`127.0.0.1:0`); the binary announces the bound addresses on stdout with
//! lines `upslot listening on <url>` and `upslot admin listening on <url>`,
//! which [`Upslot::start`] waits for. No fixed ports, no sleeps.
//!
//! The vocabulary the tests speak: [`tokens`] signs as each XMPP server
//! does (v1, v2, `token=`, JWT [`Claims`], ejabberd paths, Metronome's
//! DELETE, the admin erase and access), [`requests`] sends it ([`Put`],
//! [`get`], [`head`], [`signed_delete`], [`erase_request`],
//! [`access_request`]); both are re-exported here.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod browser;
pub mod chroot;
pub mod debian;
pub mod oci;
pub mod png;
pub mod postgres;
pub mod requests;
pub mod s3;
pub mod tls;
pub mod tokens;

// Each test binary uses a different part of the vocabulary, some none of it.
#[allow(unused_imports)]
pub use requests::*;
#[allow(unused_imports)]
pub use tokens::*;

/// The shared secret every test instance is configured with.
pub const SECRET: &str = "test-secret-0123456789";

/// A running upslot process; killed when dropped.
pub struct Upslot {
    /// `http://127.0.0.1:PORT` (or `https://…`) of the public listener, no trailing slash.
    pub base_url: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin_url: String,
    /// The storage directory (`[storage] path`).
    pub data_dir: PathBuf,
    /// The config file the process was started with.
    pub config_path: PathBuf,
    /// The stdout lines printed up to and including the listener announcements.
    pub startup_stdout: Vec<String>,
    child: Child,
    stderr_lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Upslot {
    /// Starts upslot with the test secret, ephemeral ports, a fresh data
    /// directory and `extra` TOML appended (sections may be repeated only if
    /// they are not already present: `[server]`, `[upload]` and `[storage]`
    /// are written here, so pass their keys through [`Upslot::start_with`]).
    pub fn start(extra: &str) -> Upslot {
        Upslot::start_with("", "", extra, &[])
    }

    /// Starts upslot with extra keys for `[server]`, `[upload]`, further
    /// sections in `rest`, and extra environment variables.
    pub fn start_with(server: &str, upload: &str, rest: &str, env: &[(&str, &str)]) -> Upslot {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let config_path = dir.path().join("upslot.toml");
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{server}\n\
             [upload]\nsecret = \"{SECRET}\"\n{upload}\n\
             [storage]\npath = \"{}\"\n{rest}\n",
            data_dir.display()
        );
        std::fs::write(&config_path, config).expect("write config");
        Upslot::spawn(dir, data_dir, config_path, env)
    }

    /// Starts upslot with exactly this config file content (`{data}` is
    /// replaced by the data directory path).
    pub fn start_raw(config: &str, env: &[(&str, &str)]) -> Upslot {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let config_path = dir.path().join("upslot.toml");
        let config = config.replace("{data}", &data_dir.display().to_string());
        std::fs::write(&config_path, config).expect("write config");
        Upslot::spawn(dir, data_dir, config_path, env)
    }

    /// Starts `upslot serve` with no config file at all, in a fresh working
    /// directory (`dir`, or a new one), so the embedded defaults apply;
    /// `env` must move the listeners to port 0.
    pub fn start_without_config(dir: Option<tempfile::TempDir>, env: &[(&str, &str)]) -> Upslot {
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().expect("tempdir"));
        let data_dir = dir.path().join("data");
        Upslot::spawn(dir, data_dir, PathBuf::new(), env)
    }

    /// Stops the process (SIGKILL) and hands back its working directory.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let placeholder = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self._dir, placeholder)
    }

    /// Starts upslot again in `dir`, the working directory a stopped
    /// instance handed back ([`Upslot::into_dir`]), on its config file and
    /// data directory as they are now (a test may have changed either).
    pub fn restart_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Upslot {
        let data_dir = dir.path().join("data");
        let config_path = dir.path().join("upslot.toml");
        Upslot::spawn(dir, data_dir, config_path, env)
    }

    fn spawn(
        dir: tempfile::TempDir,
        data_dir: PathBuf,
        config_path: PathBuf,
        env: &[(&str, &str)],
    ) -> Upslot {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_upslot"));
        cmd.arg("serve");
        if !config_path.as_os_str().is_empty() {
            cmd.arg("--config").arg(&config_path);
        }
        cmd.current_dir(dir.path())
            .env_remove("UPSLOT_CONFIG")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn upslot");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, erx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if etx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut base_url = None;
        let mut admin_url = None;
        let mut startup_stdout = Vec::new();
        while base_url.is_none() || admin_url.is_none() {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    startup_stdout.push(line.clone());
                    if let Some(url) = line.strip_prefix("upslot listening on ") {
                        base_url = Some(url.trim_end_matches('/').to_string());
                    } else if let Some(url) = line.strip_prefix("upslot admin listening on ") {
                        admin_url = Some(url.trim_end_matches('/').to_string());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let logs: Vec<String> = erx.try_iter().collect();
                    panic!(
                        "upslot did not announce its listeners; stderr:\n{}",
                        logs.join("\n")
                    );
                }
            }
        }
        Upslot {
            base_url: base_url.unwrap_or_default(),
            admin_url: admin_url.unwrap_or_default(),
            data_dir,
            config_path,
            startup_stdout,
            child,
            stderr_lines: erx,
            _dir: dir,
        }
    }

    /// The full URL of `path` (which must not start with `/`) on the public listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path)
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"TERM"`, `"HUP"`, …) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Rewrites the config file so `admin_listen` names the port actually
    /// bound (it says port 0), for CLI commands that read the config to find
    /// the running server.
    pub fn pin_admin_port(&self) {
        let text = std::fs::read_to_string(&self.config_path).expect("read config");
        let admin = self.admin_url.trim_start_matches("http://");
        std::fs::write(
            &self.config_path,
            text.replace(
                "admin_listen = \"127.0.0.1:0\"",
                &format!("admin_listen = \"{admin}\""),
            ),
        )
        .expect("write config");
    }

    /// Every stderr (log) line printed so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.stderr_lines.try_iter().collect()
    }

    /// All regular files below the data directory, relative to it.
    pub fn files(&self) -> Vec<PathBuf> {
        files_below(&self.data_dir)
            .into_iter()
            .filter_map(|path| {
                path.strip_prefix(&self.data_dir)
                    .ok()
                    .map(Path::to_path_buf)
            })
            .collect()
    }
}

/// Every regular file below `root`, as full paths, sorted. Files and
/// directories that vanish while being walked (an upload finishing) are
/// skipped.
pub fn files_below(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

impl Drop for Upslot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0,
/// read the port, release it), for servers that cannot report what they
/// bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// An HTTP client for the tests: no proxy, a 60 s timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Like [`client`], but shows redirects instead of following them.
pub fn client_without_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `len` deterministic bytes, not repeating at buffer boundaries.
pub fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// The Prometheus text of `server`'s `/metrics`.
pub async fn metrics(server: &Upslot) -> String {
    client()
        .get(format!("{}/metrics", server.admin_url))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of the unlabelled metric `name` in `text`.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
        .parse()
        .expect("a number")
}

/// Polls `done` every 100 ms until it holds; fails after 30 s, naming `what`.
pub async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `server`'s answer to `GET /health` on the admin listener.
pub async fn health(server: &Upslot) -> reqwest::Response {
    client()
        .get(format!("{}/health", server.admin_url))
        .send()
        .await
        .expect("GET /health")
}

/// An HTTP client whose connections come from `source` (every address in
/// 127.0.0.0/8 is local on Linux), so tests can act as several clients.
pub fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(source.parse::<std::net::IpAddr>().expect("address"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// The current Unix time.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A raw HTTP/1.1 exchange over TCP, for requests a polite client will not
/// send (short bodies, chunked PUTs, oversized declarations).
pub mod raw {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    /// Connects to the `http://host:port` base URL.
    pub fn connect(base_url: &str) -> TcpStream {
        let addr = base_url.trim_start_matches("http://");
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
    }

    /// Starts a v1-signed PUT of `len` bytes to `path` and sends only its
    /// head: the test writes (some of) the body itself.
    pub fn start_put(base_url: &str, path: &str, len: usize) -> TcpStream {
        let query = super::v1_query(path, len as u64);
        let mut stream = connect(base_url);
        stream
            .write_all(
                format!("PUT /{path}?{query} HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n")
                    .as_bytes(),
            )
            .expect("write head");
        stream
    }

    /// Sends `head` (request line and headers, without the final blank
    /// line), then `body`, optionally half-closes, and reads the status.
    pub fn exchange(base_url: &str, head: &str, body: &[u8], half_close: bool) -> (u16, String) {
        let mut stream = connect(base_url);
        stream
            .write_all(format!("{head}\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
            .expect("write head");
        let _ = stream.write_all(body);
        if half_close {
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        read_response(&mut stream)
    }

    /// Reads until EOF and returns the status code and the whole text.
    pub fn read_response(stream: &mut TcpStream) -> (u16, String) {
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }
}
