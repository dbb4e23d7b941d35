//! Prosody 0.12 from a throwaway config in a temp dir: loopback c2s only, no
//! TLS, two accounts, and one upload component pointing at upslot.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::XmppServer;
use crate::harness::{Proc, free_port, log_file, tail_logs};

/// Where Debian's prosody-modules package puts community modules.
const COMMUNITY_MODULE: &str =
    "/usr/lib/prosody/modules/mod_http_upload_external/mod_http_upload_external.lua";

/// Which module hands out the upload slots.
pub(crate) enum Upload<'a> {
    /// prosody-modules' `mod_http_upload_external`; `protocol` is "v1" or "v2".
    External { protocol: &'a str },
    /// Core `mod_http_file_share` in external mode (JWT in `Authorization`).
    FileShare,
}

/// A running Prosody; stopped when dropped.
pub(crate) struct Prosody {
    pub(crate) xmpp: XmppServer,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Prosody {
    /// Starts Prosody whose upload component hands out slots under
    /// `base_url` (ending in `/`) signed with `secret`, and registers the
    /// accounts of [`XmppServer::users`]. Waits until c2s accepts
    /// connections; on failure the error carries Prosody's log.
    pub(crate) fn start(upload: Upload<'_>, base_url: &str, secret: &str) -> Result<Prosody> {
        if let Upload::External { .. } = upload {
            ensure!(
                Path::new(COMMUNITY_MODULE).exists(),
                "{COMMUNITY_MODULE} is missing: install the prosody-modules package"
            );
        }
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let xmpp = XmppServer::new(port, dir.path(), &["prosody.log", "prosody.stderr"]);
        let config = dir.path().join("prosody.cfg.lua");
        std::fs::write(
            &config,
            config_text(dir.path(), port, &upload, base_url, secret),
        )?;
        for d in ["data", "certs"] {
            std::fs::create_dir(dir.path().join(d))?;
        }

        match launch(&config, dir.path(), &xmpp) {
            Ok(proc) => Ok(Prosody {
                xmpp,
                _proc: proc,
                _dir: dir,
            }),
            Err(e) => {
                let mut logs = vec![("prosody.cfg.lua".to_string(), config)];
                logs.extend(xmpp.logs.iter().cloned());
                Err(e.context(format!(
                    "Prosody failed to start; its config and logs:\n{}",
                    tail_logs(&logs, 200)
                )))
            }
        }
    }
}

/// Registers the accounts, starts Prosody and waits for its c2s port.
fn launch(config: &Path, dir: &Path, xmpp: &XmppServer) -> Result<Proc> {
    for (user, password) in xmpp.users() {
        register(config, user, &xmpp.domain, password)?;
    }
    let output = log_file(&dir.join("prosody.stderr"));
    let mut proc = Proc::spawn(
        "prosody",
        Command::new("prosody")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .stdout(output.try_clone()?)
            .stderr(output),
        "install the prosody package",
    )?;
    proc.wait_for_port(xmpp.port, Duration::from_secs(30))?;
    Ok(proc)
}

/// `prosodyctl register`, which writes the account straight into `data_path`.
fn register(config: &Path, user: &str, host: &str, password: &str) -> Result<()> {
    let out = Command::new("prosodyctl")
        .arg("--config")
        .arg(config)
        .args(["register", user, host, password])
        .output()
        .context("cannot run prosodyctl: install the prosody package")?;
    if !out.status.success() {
        bail!(
            "prosodyctl register {user} {host} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A Lua string literal (Rust's escapes `\\ \" \n \u{…}` are valid Lua 5.4).
fn lua(s: &str) -> String {
    format!("{s:?}")
}

fn config_text(dir: &Path, port: u16, upload: &Upload<'_>, base_url: &str, secret: &str) -> String {
    let path = |name: &str| lua(&dir.join(name).display().to_string());
    let component = match upload {
        Upload::External { protocol } => format!(
            "Component \"upload.upslot.test\" \"http_upload_external\"\n\
             \x20   http_upload_external_base_url = {}\n\
             \x20   http_upload_external_secret = {}\n\
             \x20   http_upload_external_protocol = {}\n\
             \x20   http_upload_external_file_size_limit = 10 * 1024 * 1024\n",
            lua(base_url),
            lua(secret),
            lua(protocol),
        ),
        Upload::FileShare => format!(
            "Component \"upload.upslot.test\" \"http_file_share\"\n\
             \x20   -- Setting the base URL switches the module to external mode:\n\
             \x20   -- Prosody signs a JWT and serves no HTTP itself.\n\
             \x20   http_file_share_base_url = {}\n\
             \x20   http_file_share_secret = {}\n\
             \x20   http_file_share_size_limit = 10 * 1024 * 1024\n\
             \x20   http_file_share_expires_after = 24 * 3600\n",
            lua(base_url),
            lua(secret),
        ),
    };
    format!(
        r#"-- Generated by upslot's tests/interop/prosody.rs for one test run.
run_as_root = true -- CI runs as root; Prosody refuses that otherwise
pidfile = {pidfile}
data_path = {data}
certificates = {certs} -- empty: no TLS on loopback
log = {{ debug = {log} }}

-- Loopback c2s on a free port; no s2s, no HTTP, no components port.
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
s2s_ports = {{}}
http_ports = {{}}
https_ports = {{}}
component_ports = {{}}
c2s_require_encryption = false -- SCRAM in clear, loopback only
authentication = "internal_hashed"
modules_enabled = {{ "roster", "saslauth", "disco", "ping" }}

VirtualHost "upslot.test"

{component}"#,
        pidfile = path("prosody.pid"),
        data = path("data"),
        certs = path("certs"),
        log = path("prosody.log"),
    )
}
