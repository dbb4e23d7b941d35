//! A clean Debian 12 root made by mmdebstrap, for the Debian package's
//! test (tests/debian.rs): apt and dpkg run inside it ([`Debian`]), the
//! maintainer scripts' calls to systemd are recorded, and the installed
//! unit's ExecStart runs as its user ([`Unit`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::chroot::{InRoot, Process, Root, require_tool, run};

/// A Debian 12 root in a directory, with `systemctl` and
/// `deb-systemd-invoke` replaced by recorders so that what the maintainer
/// scripts ask of systemd can be checked (the real ones could not reach a
/// systemd in a chroot anyway).
pub struct Debian {
    /// The root directory.
    pub root: Root,
}

/// Where the recorders write, inside the root.
const CALLS: &str = "/var/log/systemd-calls";

impl Debian {
    /// Runs mmdebstrap (minbase, bookworm) into `dir`.
    pub fn bootstrap(dir: &Path) -> Debian {
        require_tool("mmdebstrap", "mmdebstrap");
        let mirror = std::env::var("TEST_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".to_string());
        run(Command::new("mmdebstrap")
            .args(["--variant=minbase", "--mode=root", "--quiet"])
            // Keep the package lists, so that apt can install at once.
            .arg("--skip=cleanup/apt/lists")
            // So that `systemd-analyze verify` can look up the unit's
            // Documentation=man:upslot(1).
            .arg("--include=man-db")
            .arg("bookworm")
            .arg(dir)
            .arg(&mirror));
        let debian = Debian {
            root: Root::new(dir),
        };
        // Maintainer scripts take their "systemd is running" branches when
        // this exists; `systemctl` and `deb-systemd-invoke` (the latter
        // already installed, the former to come with systemd) are diverted
        // and replaced by recorders.
        std::fs::create_dir_all(debian.root.join("/run/systemd/system"))
            .expect("create /run/systemd/system in the root");
        let recorder = format!("#!/bin/sh\necho \"${{0##*/}} $*\" >>{CALLS}\nexit 0\n");
        for tool in ["/usr/bin/systemctl", "/usr/bin/deb-systemd-invoke"] {
            let real = format!("{tool}.real");
            let divert = [
                "dpkg-divert",
                "--local",
                "--rename",
                "--divert",
                &real,
                "--add",
                tool,
            ];
            debian.command(&divert).run();
            debian
                .root
                .write_file(tool, recorder.as_bytes(), 0o755, 0, 0);
        }
        debian
    }

    /// Copies `deb` into the root's /tmp.
    pub fn copy_in(&self, deb: &Path) {
        std::fs::copy(deb, self.root.join(&self.inside(deb)))
            .unwrap_or_else(|e| panic!("cannot copy {} into the root: {e}", deb.display()));
    }

    /// Where [`Debian::copy_in`] put `deb`, inside the root.
    pub fn inside(&self, deb: &Path) -> String {
        format!(
            "/tmp/{}",
            deb.file_name().expect("a package file").to_string_lossy()
        )
    }

    /// `argv` run as root inside, with a shell's usual environment.
    pub fn command(&self, argv: &[&str]) -> InRoot {
        self.root
            .command(argv)
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LANG", "C.UTF-8")
    }

    /// `apt-get ARGS` inside; what it printed.
    pub fn apt(&self, args: &[&str]) -> String {
        let mut argv = vec!["apt-get", "--quiet"];
        argv.extend(args);
        let mut cmd = self.command(&argv).to_command();
        let output = cmd.output().expect("start apt-get in the root");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "apt-get {args:?} failed:\n{said}");
        said
    }

    /// Runs `argv` as the upslot user, as the unit does; must succeed.
    pub fn as_upslot(&self, argv: &[&str]) -> String {
        let (uid, gid) = self.root.user("upslot");
        self.command(argv)
            .user(uid, gid)
            .workdir("/var/lib/upslot")
            .run()
    }

    /// The text of `inside`.
    pub fn read(&self, inside: &str) -> String {
        std::fs::read_to_string(self.root.join(inside))
            .unwrap_or_else(|e| panic!("cannot read {inside} in the root: {e}"))
    }

    /// Permission bits, owner and group of `inside`.
    pub fn mode(&self, inside: &str) -> (u32, u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(self.root.join(inside))
            .unwrap_or_else(|e| panic!("cannot stat {inside} in the root: {e}"));
        (meta.mode() & 0o7777, meta.uid(), meta.gid())
    }

    /// Every file below `inside`, relative to it, sorted.
    pub fn files_below(&self, inside: &str) -> Vec<PathBuf> {
        let top = self.root.join(inside);
        let mut files: Vec<PathBuf> = super::files_below(&top)
            .into_iter()
            .map(|path| {
                path.strip_prefix(&top)
                    .expect("below the top")
                    .to_path_buf()
            })
            .collect();
        files.sort();
        files
    }

    /// The installed version of upslot, per dpkg.
    pub fn installed_version(&self) -> String {
        let out = self
            .command(&["dpkg-query", "--showformat=${Version}", "--show", "upslot"])
            .run();
        out.trim().to_string()
    }

    /// What the maintainer scripts asked of systemd so far.
    pub fn calls(&self) -> String {
        std::fs::read_to_string(self.root.join(CALLS)).unwrap_or_default()
    }

    /// Fails if any maintainer script enabled, started or restarted upslot.
    pub fn assert_never_started(&self) {
        let calls = self.calls();
        for line in calls.lines().filter(|line| line.contains("upslot")) {
            let verb = line.split_whitespace().nth(1).unwrap_or_default();
            assert!(
                ![
                    "start",
                    "restart",
                    "try-restart",
                    "reload-or-restart",
                    "enable"
                ]
                .contains(&verb),
                "a maintainer script ran `{line}`; all calls:\n{calls}"
            );
        }
    }
}

/// What the installed unit says about starting upslot.
pub struct Unit {
    /// Where the unit file is, inside the root.
    pub path: String,
    exec_start: Vec<String>,
    user: String,
    working_directory: String,
    documentation: Vec<String>,
}

impl Unit {
    /// Reads the unit file at `path` inside `debian`'s root.
    pub fn read(debian: &Debian, path: &str) -> Unit {
        let text = debian.read(path);
        let value = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{path} has no {key}="))
                .to_string()
        };
        Unit {
            path: path.to_string(),
            exec_start: value("ExecStart")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            user: value("User"),
            working_directory: value("WorkingDirectory"),
            documentation: value("Documentation")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        }
    }

    /// The links of its `Documentation=` line.
    pub fn documentation(&self) -> &[String] {
        &self.documentation
    }

    /// Starts the unit's ExecStart as its User in its WorkingDirectory
    /// (the ids given are that user's) and waits until it listens.
    pub fn start(&self, debian: &Debian, uid: u32, gid: u32) -> Process {
        assert_eq!(self.user, "upslot");
        let argv: Vec<&str> = self.exec_start.iter().map(String::as_str).collect();
        let mut server = debian
            .command(&argv)
            .user(uid, gid)
            .workdir(&self.working_directory)
            .spawn("the packaged upslot");
        server.wait_for_stdout("upslot listening on", Duration::from_secs(30));
        server
    }
}
