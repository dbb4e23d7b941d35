//! Running programs inside another root file system, as another user, for
//! the tests of what ships outside cargo: the container image
//! (tests/image.rs) and, in the same way, an installed Debian package in a
//! debootstrap root.
//!
//! - [`require_tool`], [`require_root`], [`require_free_port`]: fail at once,
//!   saying what to install or free, instead of failing later or skipping.
//! - [`run`]: a command to completion; a failure shows its command line,
//!   status, stdout and stderr.
//! - [`Root`]: a root directory ([`unpack_oci`] makes one from an image);
//!   [`Root::command`] runs a program in it as a given user ([`InRoot`]).
//! - [`Process`]: a running program, stopped when dropped.
//!
//! Nothing is mounted in the host's namespaces: [`InRoot`] starts the
//! program with util-linux `unshare` in new mount and PID namespaces, with
//! its own /proc. The program is PID 1 of its namespace, as in a
//! container, so when a [`Process`] is dropped (a test that panics
//! included) SIGKILL to the program ends every process it started, and the
//! namespaces and their /proc mount go with them. The network namespace
//! stays the host's, so tests reach the program on 127.0.0.1 at the ports
//! its own configuration names.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The path of `program` on PATH; panics naming the Debian package that
/// ships it when it is missing.
pub fn require_tool(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            panic!("{program} not found on PATH: install the Debian package {package} (apt-get install {package})")
        })
}

/// Panics unless the test runs as root; `why` says what needs it.
pub fn require_root(why: &str) {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid());
    assert!(matches!(uid, Ok(0)), "this test must run as root: {why}");
}

/// Panics unless `port` can be bound on every IPv4 address of this host;
/// `who` names what needs it.
pub fn require_free_port(port: u16, who: &str) {
    if let Err(error) = std::net::TcpListener::bind(("0.0.0.0", port)) {
        panic!(
            "port {port} is taken on this host ({error}), but {who} needs it: \
             stop what listens there (ss -ltnp 'sport = :{port}') and run the test again"
        );
    }
}

/// `cmd` as one line, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Runs `cmd` to completion and returns its stdout; panics with the command
/// line, the exit status, stdout and stderr when it cannot start or fails.
/// stdout and stderr are captured unless the caller set them otherwise.
pub fn run(cmd: &mut Command) -> String {
    let line = describe(cmd);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`{line}` failed ({}); stdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A root file system in a directory: an unpacked image, a debootstrap root.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// The root file system in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root { dir: dir.into() }
    }

    /// The directory on the host.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The host path of `inside`, an absolute path within the root.
    pub fn join(&self, inside: &str) -> PathBuf {
        self.dir.join(inside.trim_start_matches('/'))
    }

    /// Writes `contents` to `inside` with `mode` and owner `uid:gid`,
    /// creating missing parent directories (root, 0755), as a runtime's
    /// bind mount or a package's postinst would leave them.
    pub fn write_file(&self, inside: &str, contents: &[u8], mode: u32, uid: u32, gid: u32) {
        let path = self.join(inside);
        let parent = path.parent().expect("a file below the root");
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
        chown(&path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("cannot chown {}: {e}", path.display()));
    }

    /// The uid and gid of `user` in the root's /etc/passwd (for a system
    /// user a package created).
    pub fn user(&self, user: &str) -> (u32, u32) {
        let passwd = std::fs::read_to_string(self.join("/etc/passwd"))
            .unwrap_or_else(|e| panic!("cannot read the root's /etc/passwd: {e}"));
        passwd
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
            .find(|fields| fields.first() == Some(&user))
            .and_then(|fields| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
            .unwrap_or_else(|| panic!("no user {user} in the root's /etc/passwd:\n{passwd}"))
    }

    /// `argv` (the program is a path within the root) to run inside the
    /// root; as root in / with an empty environment until told otherwise.
    pub fn command<S: AsRef<str>>(&self, argv: &[S]) -> InRoot {
        assert!(!argv.is_empty(), "a command needs a program");
        InRoot {
            root: self.clone(),
            argv: argv.iter().map(|s| s.as_ref().to_string()).collect(),
            user: None,
            workdir: "/".to_string(),
            env: Vec::new(),
        }
    }
}

/// Unpacks the image `reference` (`name:tag`) of the OCI layout `layout`
/// into the runtime bundle `bundle` (which must not exist yet) with
/// `umoci unpack`, keeping the owners the image records (so this needs
/// root); the root file system is `bundle/rootfs`.
pub fn unpack_oci(layout: &Path, reference: &str, bundle: &Path) -> Root {
    require_tool("umoci", "umoci");
    let mut image = OsString::from(layout);
    image.push(":");
    image.push(reference);
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(image)
        .arg(bundle));
    Root::new(bundle.join("rootfs"))
}

/// A program to run inside a [`Root`], in new mount and PID namespaces;
/// built by [`Root::command`].
#[derive(Debug, Clone)]
pub struct InRoot {
    root: Root,
    argv: Vec<String>,
    user: Option<(u32, u32)>,
    workdir: String,
    env: Vec<(String, String)>,
}

impl InRoot {
    /// Runs as `uid:gid` with no supplementary groups.
    pub fn user(mut self, uid: u32, gid: u32) -> InRoot {
        self.user = Some((uid, gid));
        self
    }

    /// Starts in `dir`, a path within the root.
    pub fn workdir(mut self, dir: &str) -> InRoot {
        self.workdir = dir.to_string();
        self
    }

    /// Adds the variable `key=value` to the (otherwise empty) environment.
    pub fn env(mut self, key: &str, value: &str) -> InRoot {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The `unshare` command that does it: mount and PID namespaces, /proc
    /// of the new PID namespace, the root, the working directory, the user,
    /// nothing of the test's environment. stdin is /dev/null.
    pub fn to_command(&self) -> Command {
        require_tool("unshare", "util-linux");
        std::fs::create_dir_all(self.root.join("/proc")).expect("create /proc in the root");
        let mut cmd = Command::new("unshare");
        // No --kill-child: the kernel forgets a parent-death signal when
        // unshare changes the user, so Process::drop kills the program itself.
        cmd.args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .arg("--mount-proc=/proc")
            .arg("--root")
            .arg(self.root.path())
            .arg(format!("--wd={}", self.workdir));
        if let Some((uid, gid)) = self.user {
            cmd.arg(format!("--setgid={gid}"))
                .arg(format!("--setuid={uid}"));
        }
        cmd.arg("--")
            .args(&self.argv)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs it to completion; its stdout (panics as [`run`] does).
    pub fn run(&self) -> String {
        run(&mut self.to_command())
    }

    /// Starts it; `what` names it in messages.
    pub fn spawn(&self, what: &str) -> Process {
        Process::spawn_with(self.to_command(), what, true)
    }
}

/// A running program with its stdout and stderr read line by line; killed
/// (an [`InRoot`] program with its whole PID namespace) when dropped.
pub struct Process {
    what: String,
    child: Child,
    /// Whether `child` is `unshare --fork`, whose only child is the program.
    forked: bool,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    stdout_seen: Vec<String>,
    stderr_seen: Vec<String>,
}

impl Process {
    /// Starts `cmd` on the host; `what` names it in messages.
    pub fn spawn(cmd: Command, what: &str) -> Process {
        Process::spawn_with(cmd, what, false)
    }

    fn spawn_with(mut cmd: Command, what: &str, forked: bool) -> Process {
        let line = describe(&cmd);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} (`{line}`): {e}"));
        let stdout = lines_of(child.stdout.take().expect("piped stdout"));
        let stderr = lines_of(child.stderr.take().expect("piped stderr"));
        Process {
            what: what.to_string(),
            child,
            forked,
            stdout,
            stderr,
            stdout_seen: Vec::new(),
            stderr_seen: Vec::new(),
        }
    }

    /// The host's process id of the program itself (not of `unshare`).
    pub fn pid(&self) -> u32 {
        if !self.forked {
            return self.child.id();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let id = self.child.id();
            let children = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children"))
                .unwrap_or_default();
            if let Some(pid) = children.split_whitespace().next() {
                return pid.parse().expect("a process id");
            }
            assert!(Instant::now() < deadline, "{} has no process", self.what);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a stdout line starts with `prefix` and returns it; panics
    /// with what the program printed if it exits first or `timeout` passes.
    pub fn wait_for_stdout(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.stdout_seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let report = self.report();
                    panic!(
                        "{} printed no line {prefix:?} within {timeout:?}\n{report}",
                        self.what
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(200));
                    let status = match self.child.try_wait() {
                        Ok(Some(status)) => status.to_string(),
                        _ => "still running".to_string(),
                    };
                    let report = self.report();
                    panic!(
                        "{} closed its stdout ({status}) before printing {prefix:?}\n{report}",
                        self.what
                    )
                }
            }
        }
    }

    /// Sends signal `name` (`"TERM"`, `"HUP"`…) to the program itself.
    pub fn signal(&self, name: &str) {
        run(Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string()));
    }

    /// Stops the program as a service manager does (SIGTERM) and checks
    /// that it exits with status 0 within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) {
        self.signal("TERM");
        let status = self.wait(timeout);
        if !status.success() {
            let report = self.report();
            panic!("{} exited with {status} after SIGTERM\n{report}", self.what);
        }
    }

    /// Waits for the program to exit (for an [`InRoot`] program, `unshare`
    /// passes its exit status on); panics after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the process") {
                return status;
            }
            if Instant::now() >= deadline {
                let report = self.report();
                panic!("{} did not exit within {timeout:?}\n{report}", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every stderr line printed so far.
    pub fn stderr_lines(&mut self) -> &[String] {
        self.stderr_seen.extend(self.stderr.try_iter());
        &self.stderr_seen
    }

    /// What the program printed so far, for failure messages.
    pub fn report(&mut self) -> String {
        self.stdout_seen.extend(self.stdout.try_iter());
        self.stderr_seen.extend(self.stderr.try_iter());
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout_seen.join("\n"),
            self.stderr_seen.join("\n")
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // The program first: as PID 1 of its namespace, its death ends every
        // process in it. Only while `unshare` is unreaped is its pid (and
        // so its list of children) surely still its own.
        if self.forked && matches!(self.child.try_wait(), Ok(None)) {
            let id = self.child.id();
            let children = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children"))
                .unwrap_or_default();
            for pid in children.split_whitespace() {
                let _ = Command::new("kill")
                    .args(["-KILL", pid])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `stream`, read on a thread of their own.
fn lines_of(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
