//! The Debian package, built by `deploy/debian/build.sh` and installed for
//! real: lintian's verdict, then the whole life of an installation in a
//! clean Debian 12 root made by mmdebstrap (not the host): `apt` resolves
//! the package's dependencies from Debian's archive; the account, the data
//! directory and the secret appear; nothing is enabled or started; the
//! packaged config passes `check-config`; the unit passes
//! `systemd-analyze verify`; the unit's own ExecStart, run as its user,
//! serves a v1 upload and its download; an upgrade keeps the files and the
//! operator's edit of the conffile; `remove` keeps the data; `purge`
//! deletes it and says so.
//!
//! Needs root, network access to deb.debian.org (or the mirror in
//! `UPSLOT_TEST_DEBIAN_MIRROR`), and the Debian packages mmdebstrap and
//! lintian plus cargo-deb (tests/run.sh installs them).

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::chroot::{Root, require_root, require_tool, run};
use common::{client, data, v1_mac};
use reqwest::StatusCode;

/// The package's version without its revision (Cargo.toml's).
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The two builds of the package: revision 1, and revision 2 of the same
/// version to upgrade to.
struct Packages {
    first: PathBuf,
    second: PathBuf,
}

/// Builds both packages once for every test of this file.
fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        require_tool("cargo-deb", "cargo-deb (cargo install cargo-deb --locked)");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-test");
        let _ = std::fs::remove_dir_all(&out);
        let build = |revision: &str| {
            run(Command::new("bash")
                .arg("deploy/debian/build.sh")
                .args(["--deb-revision", revision, "--output"])
                .arg(&out)
                .current_dir(env!("CARGO_MANIFEST_DIR")));
            let deb = out.join(format!("upslot_{VERSION}-{revision}_amd64.deb"));
            assert!(deb.is_file(), "build.sh wrote no {}", deb.display());
            deb
        };
        Packages {
            first: build("1"),
            second: build("2"),
        }
    })
}

#[test]
fn lintian_finds_no_errors_and_the_scripts_never_start_the_service() {
    let deb = &packages().first;
    require_tool("lintian", "lintian");
    let lintian = Command::new("lintian")
        .args(["--fail-on", "error", "--display-info"])
        .arg(deb)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&lintian.stdout);
    assert!(
        lintian.status.success(),
        "lintian reports errors:\n{report}{}",
        String::from_utf8_lossy(&lintian.stderr)
    );
    eprintln!("lintian (no errors):\n{report}");

    let control = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb)
        .arg(control.path()));
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/upslot/upslot.toml");
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        let Ok(text) = std::fs::read_to_string(control.path().join(script)) else {
            continue;
        };
        let commands = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#') && !line.starts_with("echo "));
        for line in commands {
            let starts = ["deb-systemd-invoke start", "deb-systemd-invoke restart"]
                .iter()
                .chain(&["systemctl start", "systemctl restart", "systemctl enable"])
                .chain(&["_dh_action=start", "_dh_action=restart"])
                .any(|action| line.contains(action));
            assert!(!starts, "{script} starts the service: {line}");
        }
    }
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(deb));
    for path in [
        "./usr/bin/upslot",
        "./etc/upslot/upslot.toml",
        "./usr/lib/systemd/system/upslot.service",
        "./usr/lib/sysusers.d/upslot.conf",
        "./usr/lib/tmpfiles.d/upslot.conf",
        "./usr/share/man/man1/upslot.1.gz",
        "./usr/share/man/man1/upslot-check-config.1.gz",
        "./usr/share/doc/upslot/copyright",
        "./usr/share/doc/upslot/crates.txt",
    ] {
        assert!(
            contents.lines().any(|line| line.ends_with(path)),
            "{path} is not in the package:\n{contents}"
        );
    }
}

// The steps are processes run to completion one after another; the only
// concurrency is the HTTP client's.
#[tokio::test]
async fn installs_serves_upgrades_removes_and_purges_in_a_clean_debian_12_root() {
    require_root("mmdebstrap, apt and the upslot user's files need it");
    let packages = packages();
    let dir = tempfile::tempdir().unwrap();
    let debian = Debian::bootstrap(&dir.path().join("root"));
    debian.copy_in(&packages.first);
    debian.copy_in(&packages.second);

    // Install: apt fetches the dependencies from Debian's archive.
    let said = debian.apt(&["install", "--yes", &debian.inside(&packages.first)]);
    assert!(
        said.contains("generated the upload secret /etc/upslot/secret"),
        "{said}"
    );
    assert!(said.contains("installed, not started"), "{said}");
    let (uid, gid) = debian.root.user("upslot");
    assert!(
        uid > 0 && uid < 1000,
        "upslot must be a system user, is {uid}"
    );
    let passwd = debian.read("/etc/passwd");
    let entry = passwd.lines().find(|l| l.starts_with("upslot:")).unwrap();
    assert!(
        entry.ends_with(":/var/lib/upslot:/usr/sbin/nologin"),
        "{entry}"
    );
    assert_eq!(debian.mode("/var/lib/upslot"), (0o700, uid, gid));
    let group = debian.mode("/etc/upslot/secret");
    assert_eq!((group.0, group.1), (0o640, 0), "the secret is root's");
    assert_eq!(group.2, gid, "the secret is readable by the upslot group");
    let secret = debian.read("/etc/upslot/secret").trim().to_string();
    assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        !debian
            .root
            .join("/etc/systemd/system/multi-user.target.wants/upslot.service")
            .exists(),
        "installing enabled the service"
    );
    debian.assert_never_started();

    let unit = Unit::read(&debian, "/usr/lib/systemd/system/upslot.service");
    let verify = debian
        .command(&["systemd-analyze", "verify", &unit.path])
        .run();
    assert!(!verify.contains("upslot.service:"), "{verify}");
    debian.as_upslot(&[
        "/usr/bin/upslot",
        "check-config",
        "--config",
        "/etc/upslot/upslot.toml",
    ]);

    // The operator's edits: ports free on this host, and v1 tokens.
    let (public, admin) = (free_port(), free_port());
    let packaged = debian.read("/etc/upslot/upslot.toml");
    let edited = packaged
        .replace(
            "listen = \"127.0.0.1:5050\"",
            &format!("listen = \"127.0.0.1:{public}\""),
        )
        .replace(
            "admin_listen = \"127.0.0.1:5051\"",
            &format!("admin_listen = \"127.0.0.1:{admin}\""),
        )
        .replace("protocols = [\"v2\"]", "protocols = [\"v1\"]");
    assert_ne!(edited, packaged, "the packaged config changed shape");
    debian
        .root
        .write_file("/etc/upslot/upslot.toml", edited.as_bytes(), 0o644, 0, 0);
    debian.as_upslot(&[
        "/usr/bin/upslot",
        "check-config",
        "--config",
        "/etc/upslot/upslot.toml",
    ]);

    let base = format!("http://127.0.0.1:{public}");
    let slot = "3b0d7c1e-5f4a-4e2b-8c9d-0a1b2c3d4e5f/holiday.jpg";
    let body = data(100_000);
    let mut server = unit.start(&debian, uid, gid);
    let put = client()
        .put(format!(
            "{base}/{slot}?v={}",
            v1_mac(&secret, slot, body.len() as u64)
        ))
        .body(body.clone())
        .send();
    assert_eq!(put.await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(download(&base, slot).await, body);
    stop(&mut server);
    let stored = debian.files_below("/var/lib/upslot");
    assert!(stored.len() >= 2, "blob and index: {stored:?}");

    // Upgrade to the second build: files and the edited conffile stay.
    let said = debian.apt(&["install", "--yes", &debian.inside(&packages.second)]);
    assert!(!said.contains("generated the upload secret"), "{said}");
    assert_eq!(debian.installed_version(), format!("{VERSION}-2"));
    assert_eq!(debian.read("/etc/upslot/upslot.toml"), edited);
    assert_eq!(debian.read("/etc/upslot/secret").trim(), secret);
    debian.assert_never_started();
    let mut server = unit.start(&debian, uid, gid);
    assert_eq!(download(&base, slot).await, body);
    stop(&mut server);

    // Remove: the service is stopped, the data and the config stay.
    debian.apt(&["remove", "--yes", "upslot"]);
    assert!(!debian.root.join("/usr/bin/upslot").exists());
    assert!(
        debian
            .calls()
            .contains("deb-systemd-invoke stop upslot.service")
    );
    assert_eq!(debian.files_below("/var/lib/upslot"), stored);
    assert_eq!(debian.read("/etc/upslot/upslot.toml"), edited);

    // Purge: says what it deletes, then deletes it.
    let said = debian.apt(&["purge", "--yes", "upslot"]);
    assert!(said.contains("purge: deleting /var/lib/upslot"), "{said}");
    assert!(!debian.root.join("/var/lib/upslot").exists());
    assert!(!debian.root.join("/etc/upslot").exists());
}

/// A Debian 12 root in a directory, with `systemctl` and
/// `deb-systemd-invoke` replaced by recorders so that what the maintainer
/// scripts ask of systemd can be checked (the real ones could not reach a
/// systemd in a chroot anyway).
struct Debian {
    root: Root,
}

/// Where the recorders write, inside the root.
const CALLS: &str = "/var/log/systemd-calls";

impl Debian {
    /// Runs mmdebstrap (minbase, bookworm) into `dir`.
    fn bootstrap(dir: &Path) -> Debian {
        require_tool("mmdebstrap", "mmdebstrap");
        let mirror = std::env::var("UPSLOT_TEST_DEBIAN_MIRROR")
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
        std::fs::create_dir_all(debian.root.join("/run/systemd/system")).unwrap();
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
    fn copy_in(&self, deb: &Path) {
        std::fs::copy(deb, self.root.join(&self.inside(deb))).unwrap();
    }

    /// Where [`Debian::copy_in`] put `deb`, inside the root.
    fn inside(&self, deb: &Path) -> String {
        format!("/tmp/{}", deb.file_name().unwrap().to_string_lossy())
    }

    /// `argv` run as root inside, with a shell's usual environment.
    fn command(&self, argv: &[&str]) -> common::chroot::InRoot {
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
    fn apt(&self, args: &[&str]) -> String {
        let mut argv = vec!["apt-get", "--quiet"];
        argv.extend(args);
        let mut cmd = self.command(&argv).to_command();
        let output = cmd.output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "apt-get {args:?} failed:\n{said}");
        said
    }

    /// Runs `argv` as the upslot user, as the unit does; must succeed.
    fn as_upslot(&self, argv: &[&str]) -> String {
        let (uid, gid) = self.root.user("upslot");
        self.command(argv)
            .user(uid, gid)
            .workdir("/var/lib/upslot")
            .run()
    }

    /// The text of `inside`.
    fn read(&self, inside: &str) -> String {
        std::fs::read_to_string(self.root.join(inside))
            .unwrap_or_else(|e| panic!("cannot read {inside} in the root: {e}"))
    }

    /// Permission bits, owner and group of `inside`.
    fn mode(&self, inside: &str) -> (u32, u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(self.root.join(inside)).unwrap();
        (meta.mode() & 0o7777, meta.uid(), meta.gid())
    }

    /// Every file below `inside`, relative to it, sorted.
    fn files_below(&self, inside: &str) -> Vec<PathBuf> {
        let top = self.root.join(inside);
        let mut files: Vec<PathBuf> = common::files_below(&top)
            .into_iter()
            .map(|path| path.strip_prefix(&top).unwrap().to_path_buf())
            .collect();
        files.sort();
        files
    }

    /// The installed version of upslot, per dpkg.
    fn installed_version(&self) -> String {
        let out = self
            .command(&["dpkg-query", "--showformat=${Version}", "--show", "upslot"])
            .run();
        out.trim().to_string()
    }

    /// What the maintainer scripts asked of systemd so far.
    fn calls(&self) -> String {
        std::fs::read_to_string(self.root.join(CALLS)).unwrap_or_default()
    }

    /// Fails if any maintainer script enabled, started or restarted upslot.
    fn assert_never_started(&self) {
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
struct Unit {
    path: String,
    exec_start: Vec<String>,
    user: String,
    working_directory: String,
}

impl Unit {
    fn read(debian: &Debian, path: &str) -> Unit {
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
        }
    }

    /// Starts the unit's ExecStart as its User in its WorkingDirectory
    /// (the ids given are that user's) and waits until it listens.
    fn start(&self, debian: &Debian, uid: u32, gid: u32) -> common::chroot::Process {
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

/// Stops `server` as systemd does (SIGTERM) and checks it exits cleanly.
fn stop(server: &mut common::chroot::Process) {
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "upslot exited with {status}\n{}",
        server.report()
    );
}

/// GETs `slot` from `base`; the body of a 200.
async fn download(base: &str, slot: &str) -> Vec<u8> {
    let response = client().get(format!("{base}/{slot}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
