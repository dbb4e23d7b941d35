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
//! `TEST_DEBIAN_MIRROR`), and the Debian packages mmdebstrap and
//! lintian plus cargo-deb (tests/run.sh installs them).

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::chroot::{require_root, require_tool, run};
use common::debian::{Debian, Unit};
use common::free_port;
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
    // Warnings about the unit go to stderr with the exit status 0.
    let verify = debian
        .command(&["systemd-analyze", "verify", &unit.path])
        .to_command()
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && !said.contains("upslot.service"),
        "{said}"
    );
    for link in unit.documentation() {
        if let Some(path) = link.strip_prefix("file:") {
            assert!(
                debian.root.join(path).is_file(),
                "{link} is not in the package"
            );
        }
    }
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
    server.terminate(Duration::from_secs(30));
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
    server.terminate(Duration::from_secs(30));

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

/// GETs `slot` from `base`; the body of a 200.
async fn download(base: &str, slot: &str) -> Vec<u8> {
    let response = client().get(format!("{base}/{slot}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}
