//! Prosody 0.12 from a throwaway config in a temp dir: loopback c2s only, no
//! TLS, two accounts, and one upload component pointing at upslot;
//! optionally the shipped `deploy/prosody/mod_upslot_erase.lua`, loaded from
//! the repository through `plugin_paths`, with the admin shell and in-band
//! account removal enabled so that accounts can be deleted inside the server;
//! optionally the WebSocket endpoint a web client (Converse.js) logs in
//! through, on a free loopback HTTP port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::XmppServer;
use crate::common::free_port;
use crate::harness::{Proc, log_file, tail_logs};

/// Where Debian's prosody-modules package puts community modules.
const COMMUNITY_MODULE: &str =
    "/usr/lib/prosody/modules/mod_http_upload_external/mod_http_upload_external.lua";

/// Where upslot ships its Prosody module; the test config's `plugin_paths`
/// names this directory, so the file under test is the one shipped.
const ERASE_MODULE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prosody");

/// How long `prosodyctl shell` may take to answer.
const SHELL_TIMEOUT: Duration = Duration::from_secs(30);

/// Which module hands out the upload slots.
pub(crate) enum Upload<'a> {
    /// prosody-modules' `mod_http_upload_external`; `protocol` is "v1" or "v2".
    External { protocol: &'a str },
    /// Core `mod_http_file_share` in external mode (JWT in `Authorization`).
    FileShare,
}

/// What a test adds to the plain server.
#[derive(Default)]
struct Extras<'a> {
    /// Where `mod_upslot_erase` sends account deletions.
    erase_url: Option<&'a str>,
    /// Serve `mod_websocket` (and `mod_blocklist`, which Converse.js waits
    /// for before it opens a chat with someone not in the roster).
    websocket: bool,
}

/// A running Prosody; stopped when dropped.
pub(crate) struct Prosody {
    pub(crate) xmpp: XmppServer,
    /// `ws://127.0.0.1:PORT/xmpp-websocket`, if started for a web client.
    pub(crate) websocket_url: Option<String>,
    config: PathBuf,
    _proc: Proc,
    dir: tempfile::TempDir,
}

impl Prosody {
    /// Starts Prosody whose upload component hands out slots under
    /// `base_url` (ending in `/`) signed with `secret`, and registers the
    /// accounts of [`XmppServer::users`]. Waits until c2s accepts
    /// connections; on failure the error carries Prosody's log.
    pub(crate) fn start(upload: Upload<'_>, base_url: &str, secret: &str) -> Result<Prosody> {
        Prosody::start_inner(upload, base_url, secret, Extras::default())
    }

    /// Like [`Prosody::start`], plus the WebSocket endpoint (RFC 7395) in
    /// [`Prosody::websocket_url`] for a web client, and XEP-0191 blocking,
    /// as a stock Prosody has it.
    pub(crate) fn start_for_web(
        upload: Upload<'_>,
        base_url: &str,
        secret: &str,
    ) -> Result<Prosody> {
        let extras = Extras {
            websocket: true,
            ..Extras::default()
        };
        Prosody::start_inner(upload, base_url, secret, extras)
    }

    /// Like [`Prosody::start`], plus upslot's `mod_upslot_erase` (from
    /// `deploy/prosody`) sending account deletions to `erase_url` (upslot's
    /// admin listener + `/owners/`). It signs with the upload component's
    /// `http_file_share_secret`, as in a deployment that sets no
    /// `upslot_erase_secret`. `mod_admin_shell` and `mod_register` (in-band
    /// removal; registration itself stays off) are enabled too.
    pub(crate) fn start_with_erase(
        upload: Upload<'_>,
        base_url: &str,
        secret: &str,
        erase_url: &str,
    ) -> Result<Prosody> {
        let module = Path::new(ERASE_MODULE_DIR).join("mod_upslot_erase.lua");
        ensure!(module.exists(), "{} is missing", module.display());
        let extras = Extras {
            erase_url: Some(erase_url),
            ..Extras::default()
        };
        Prosody::start_inner(upload, base_url, secret, extras)
    }

    fn start_inner(
        upload: Upload<'_>,
        base_url: &str,
        secret: &str,
        extras: Extras<'_>,
    ) -> Result<Prosody> {
        if let Upload::External { .. } = upload {
            ensure!(
                Path::new(COMMUNITY_MODULE).exists(),
                "{COMMUNITY_MODULE} is missing: install the prosody-modules package"
            );
        }
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let http_port = extras.websocket.then(free_port);
        let xmpp = XmppServer::new(port, dir.path(), &["prosody.log", "prosody.stderr"]);
        let config = dir.path().join("prosody.cfg.lua");
        std::fs::write(
            &config,
            config_text(
                dir.path(),
                port,
                http_port,
                &upload,
                base_url,
                secret,
                extras.erase_url,
            ),
        )?;
        for d in ["data", "certs"] {
            std::fs::create_dir(dir.path().join(d))?;
        }
        // A throwaway certificate: STARTTLS is offered (go-sendxmpp will not
        // authenticate without it), never required (slixmpp stays in clear).
        let (cert, key) = crate::harness::self_signed_for("upslot.test");
        std::fs::write(dir.path().join("certs/upslot.test.crt"), cert)?;
        std::fs::write(dir.path().join("certs/upslot.test.key"), key)?;

        match launch(&config, dir.path(), &xmpp, http_port) {
            Ok(proc) => Ok(Prosody {
                xmpp,
                websocket_url: http_port.map(|p| format!("ws://127.0.0.1:{p}/xmpp-websocket")),
                config,
                _proc: proc,
                dir,
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

    /// Deletes the account `jid` inside the running server, as an operator
    /// would: `prosodyctl shell user delete JID` runs `user:delete()` in the
    /// server process (mod_admin_shell, over the admin socket), so the
    /// server fires `user-deleted`. (`prosodyctl deluser` would delete it
    /// from its own process, unseen by the server's modules.)
    pub(crate) fn delete_account_via_shell(&self, jid: &str) -> Result<()> {
        let out_path = self.dir.path().join("prosodyctl-shell.out");
        let mut shell = Proc::spawn(
            "prosodyctl shell",
            Command::new("prosodyctl")
                .arg("--config")
                .arg(&self.config)
                .args(["shell", "user", "delete", jid])
                .stdout(log_file(&out_path))
                .stderr(log_file(&out_path.with_extension("err"))),
            "install the prosody package",
        )?;
        let status = shell.wait(SHELL_TIMEOUT)?;
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(out_path.with_extension("err")).unwrap_or_default();
        ensure!(
            status.success() && stdout.contains("User deleted"),
            "prosodyctl shell user delete {jid} failed ({status}): {stdout}{stderr}"
        );
        Ok(())
    }
}

/// Registers the accounts, starts Prosody and waits for its c2s port (and
/// its HTTP port, if it has one).
fn launch(config: &Path, dir: &Path, xmpp: &XmppServer, http_port: Option<u16>) -> Result<Proc> {
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
    if let Some(port) = http_port {
        proc.wait_for_port(port, Duration::from_secs(30))?;
    }
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

fn config_text(
    dir: &Path,
    port: u16,
    http_port: Option<u16>,
    upload: &Upload<'_>,
    base_url: &str,
    secret: &str,
    erase_url: Option<&str>,
) -> String {
    let path = |name: &str| lua(&dir.join(name).display().to_string());
    let (erase, erase_modules) = match erase_url {
        None => (String::new(), ""),
        Some(url) => (
            format!(
                "\n-- upslot's account erasure module, loaded from the repository.\n\
                 plugin_paths = {{ {} }}\n\
                 upslot_erase_url = {}\n\
                 -- no upslot_erase_secret: the module falls back to the\n\
                 -- http_file_share_secret of Component \"upload.<host>\".\n",
                lua(ERASE_MODULE_DIR),
                lua(url),
            ),
            // admin_shell: `prosodyctl shell user delete`; register: in-band
            // account removal (XEP-0077), registration stays disabled.
            r#", "admin_shell", "register", "upslot_erase""#,
        ),
    };
    let (http, web_modules) = match http_port {
        None => ("http_ports = {}".to_string(), ""),
        Some(p) => (
            format!(
                "http_ports = {{ {p} }}\n\
                 http_interfaces = {{ \"127.0.0.1\" }}\n\
                 consider_websocket_secure = true -- plain ws:// on loopback, as behind a TLS proxy"
            ),
            r#", "websocket", "blocklist""#,
        ),
    };
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
certificates = {certs} -- a throwaway certificate for STARTTLS
log = {{ debug = {log} }}

-- Loopback c2s on a free port; no s2s, no components port, HTTP only for
-- a web client's WebSocket.
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
s2s_ports = {{}}
{http}
https_ports = {{}}
component_ports = {{}}
c2s_require_encryption = false -- STARTTLS offered, SCRAM in clear allowed (loopback only)
authentication = "internal_hashed"
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping"{erase_modules}{web_modules} }}
{erase}
VirtualHost "upslot.test"

{component}"#,
        pidfile = path("prosody.pid"),
        data = path("data"),
        certs = path("certs"),
        log = path("prosody.log"),
    )
}
