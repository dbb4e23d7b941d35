//! Process plumbing for the interop tests: child processes that die with
//! the test, free loopback ports, readiness polling with a deadline, and
//! log files that are printed when a test fails.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::common::Upslot;

/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(50);
/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A child process in its own process group. Dropping it stops the process
/// and kills the rest of its group (anything it forked), even while a test
/// panics.
pub(crate) struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Spawns `cmd` in a new process group; `hint` says what to install if
    /// the program is missing.
    pub(crate) fn spawn(name: &str, cmd: &mut Command, hint: &str) -> Result<Proc> {
        cmd.process_group(0);
        let child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {name} ({:?}): {hint}",
                cmd.get_program().to_string_lossy()
            )
        })?;
        Ok(Proc {
            name: name.to_string(),
            child,
        })
    }

    /// The exit status, if the process has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit; kills it and fails after `timeout`.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.kill();
                bail!("{} still running after {timeout:?}; killed it", self.name);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls until `127.0.0.1:port` accepts connections. Fails early if the
    /// process exits, and after `timeout`.
    pub(crate) fn wait_for_port(&mut self, port: u16, timeout: Duration) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let what = format!("connections accepted on {addr}");
        self.wait_until(&what, timeout, || {
            TcpStream::connect_timeout(&addr, POLL).is_ok()
        })
    }

    /// Polls until `path` exists. Fails early if the process exits.
    pub(crate) fn wait_for_file(&mut self, path: &Path, timeout: Duration) -> Result<()> {
        let what = format!("{} to exist", path.display());
        self.wait_until(&what, timeout, || path.exists())
    }

    /// Polls until the file `path` (the process's output) holds a line
    /// equal to `line`. Fails early if the process exits.
    pub(crate) fn wait_for_line(
        &mut self,
        path: &Path,
        line: &str,
        timeout: Duration,
    ) -> Result<()> {
        let what = format!("the line {line:?} in {}", path.display());
        self.wait_until(&what, timeout, || {
            std::fs::read_to_string(path).is_ok_and(|text| text.lines().any(|l| l == line))
        })
    }

    fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !ready() {
            if let Some(status) = self.exited() {
                bail!(
                    "{} exited ({status}) while the test waited for {what}",
                    self.name
                );
            }
            if Instant::now() > deadline {
                bail!("{} was not ready within {timeout:?}: no {what}", self.name);
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    /// Asks the process to stop (SIGTERM, so servers shut down cleanly and
    /// reap their own helpers), then SIGKILLs whatever is left of its group.
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while self.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        self.kill();
    }

    fn kill(&mut self) {
        // The child leads its own group (process_group(0)): pgid == pid.
        let group = format!("-{}", self.child.id());
        // Fails harmlessly (ESRCH) when the group is already empty.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.stop();
        } else {
            self.kill(); // helpers the process may have left behind
        }
    }
}

/// Opens `path` for a child's stdout or stderr.
pub(crate) fn log_file(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
}

/// The last `max_lines` lines of every log, labelled, for failure messages.
pub(crate) fn tail_logs(logs: &[(String, PathBuf)], max_lines: usize) -> String {
    let mut out = String::new();
    for (label, path) in logs {
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("(cannot read {}: {e})", path.display()),
        };
        let lines: Vec<&str> = text.lines().collect();
        let skipped = lines.len().saturating_sub(max_lines);
        let _ = writeln!(out, "----- {label} ({}) -----", path.display());
        if skipped > 0 {
            let _ = writeln!(out, "[… {skipped} earlier lines]");
        }
        for line in &lines[skipped..] {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// Prints upslot's log and the given files when dropped during a panic, so a
/// failed test shows what every process said. Declare it after the things it
/// borrows so that it is dropped first.
pub(crate) struct LogsOnFailure<'a> {
    upslot: &'a Upslot,
    files: Vec<(String, PathBuf)>,
}

impl<'a> LogsOnFailure<'a> {
    pub(crate) fn new(upslot: &'a Upslot, files: Vec<(String, PathBuf)>) -> Self {
        LogsOnFailure { upslot, files }
    }
}

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!("===== upslot log (stderr) =====");
        for line in self.upslot.log_lines() {
            eprintln!("{line}");
        }
        eprintln!("{}", tail_logs(&self.files, 300));
    }
}

/// A throwaway self-signed certificate for `domain` and its key, as PEM:
/// lets an XMPP server offer STARTTLS to clients that do not verify it.
/// Valid from last year to the year after next: rcgen's default end, the
/// year 4096, makes ejabberd's certificate check fail.
pub(crate) fn self_signed_for(domain: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("a key");
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_string()]).expect("certificate params");
    let year = 1970 + (crate::common::unix_now() / 31_556_952) as i32;
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
    let cert = params.self_signed(&key).expect("a certificate");
    (cert.pem(), key.serialize_pem())
}
