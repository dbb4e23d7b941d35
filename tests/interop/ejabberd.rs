//! ejabberd 23.01 started directly with `erl` (ejabberdctl insists on the
//! system user and /etc): a throwaway config and Mnesia spool in a temp dir,
//! loopback c2s only, and `mod_http_upload` with `external_secret`.
//!
//! The VM runs without Erlang distribution (no `-sname`, so no epmd and no
//! second port). Accounts are registered by an `-eval` that runs after
//! `-s ejabberd` has started the application; it then writes a `ready`
//! file, which is what the test waits for.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::XmppServer;
use crate::common::free_port;
use crate::harness::{Proc, log_file, tail_logs};

/// A running ejabberd; stopped when dropped.
pub(crate) struct Ejabberd {
    pub(crate) xmpp: XmppServer,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Ejabberd {
    /// Starts ejabberd handing out slots under `url_prefix` (no trailing
    /// slash, e.g. `http://127.0.0.1:PORT/upload`) signed with `secret`.
    pub(crate) fn start(url_prefix: &str, secret: &str) -> Result<Ejabberd> {
        let erl_libs = erl_libs()?;
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let xmpp = XmppServer::new(
            port,
            dir.path(),
            &["log/ejabberd.log", "log/error.log", "ejabberd.stdout"],
        );
        let config = dir.path().join("ejabberd.yml");
        // A throwaway certificate: STARTTLS is offered (go-sendxmpp will not
        // authenticate without it), never required (slixmpp stays in clear).
        // ejabberd picks certificates by the domain they name.
        let (cert, key) = crate::harness::self_signed_for("upslot.test");
        let certfile = dir.path().join("server.pem");
        std::fs::write(&certfile, format!("{cert}{key}"))?;
        std::fs::write(&config, config_text(port, url_prefix, secret, &certfile))?;
        for d in ["log", "spool", "home"] {
            std::fs::create_dir(dir.path().join(d))?;
        }
        match launch(&config, dir.path(), &erl_libs, &xmpp) {
            Ok(proc) => Ok(Ejabberd {
                xmpp,
                _proc: proc,
                _dir: dir,
            }),
            Err(e) => {
                let mut logs = vec![("ejabberd.yml".to_string(), config)];
                logs.extend(xmpp.logs.iter().cloned());
                Err(e.context(format!(
                    "ejabberd failed to start; its config and logs:\n{}",
                    tail_logs(&logs, 200)
                )))
            }
        }
    }
}

/// Starts the VM, waits for the accounts (the `ready` file) and the c2s port.
fn launch(config: &Path, dir: &Path, erl_libs: &Path, xmpp: &XmppServer) -> Result<Proc> {
    let ready = dir.join("ready");
    let output = log_file(&dir.join("ejabberd.stdout"));
    let mut proc = Proc::spawn(
        "ejabberd",
        Command::new("erl")
            .arg("-noinput")
            .args([
                "-mnesia",
                "dir",
                &erlang_string(&dir.join("spool").display().to_string()),
            ])
            .args(["-s", "ejabberd"])
            .args(["-eval", &register_then_signal(xmpp, &ready)])
            .current_dir(dir)
            .env("ERL_LIBS", erl_libs)
            .env("EJABBERD_CONFIG_PATH", config)
            .env("EJABBERD_LOG_PATH", dir.join("log/ejabberd.log"))
            .env("HOME", dir.join("home"))
            .stdout(output.try_clone()?)
            .stderr(output),
        "install the ejabberd package (it brings erlang-base)",
    )?;
    proc.wait_for_file(&ready, Duration::from_secs(60))?;
    proc.wait_for_port(xmpp.port, Duration::from_secs(30))?;
    Ok(proc)
}

/// The directory to put in `ERL_LIBS`: the parent of ejabberd's
/// `ejabberd-<version>/ebin`, found through dpkg like ejabberdctl does.
fn erl_libs() -> Result<PathBuf> {
    let out = Command::new("dpkg")
        .args(["-L", "ejabberd"])
        .output()
        .context("cannot run dpkg -L ejabberd")?;
    if !out.status.success() {
        bail!("the ejabberd package is not installed (apt-get install ejabberd)");
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let app = listing
        .lines()
        .map(Path::new)
        .find(|p| p.ends_with("ebin/ejabberd.app"))
        .context("dpkg -L ejabberd lists no ebin/ejabberd.app")?;
    // <libs>/ejabberd-<version>/ebin/ejabberd.app -> <libs>
    Ok(app
        .ancestors()
        .nth(3)
        .context("unexpected ejabberd.app path")?
        .to_path_buf())
}

/// An Erlang string literal.
fn erlang_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Erlang run by `-eval`: register every account, then create `ready`; on
/// any failure print why and halt with status 3.
fn register_then_signal(xmpp: &XmppServer, ready: &Path) -> String {
    let bin = |s: &str| format!("<<{}/utf8>>", erlang_string(s));
    let accounts: Vec<String> = xmpp
        .users()
        .iter()
        .map(|(user, password)| format!("{{{}, {}}}", bin(user), bin(password)))
        .collect();
    format!(
        "Results = [ejabberd_auth:try_register(U, {host}, P) || {{U, P}} <- [{accounts}]], \
         case lists:all(fun(R) -> R =:= ok end, Results) of \
             true -> ok = file:write_file({ready}, <<>>); \
             false -> io:format(standard_error, \"account registration failed: ~p~n\", [Results]), \
                      halt(3) \
         end.",
        host = bin(&xmpp.domain),
        accounts = accounts.join(", "),
        ready = erlang_string(&ready.display().to_string()),
    )
}

fn config_text(port: u16, url_prefix: &str, secret: &str, certfile: &Path) -> String {
    format!(
        r#"# Generated by upslot's tests/interop/ejabberd.rs for one test run.
hosts:
  - upslot.test
loglevel: info
# A throwaway certificate: STARTTLS is offered, never required.
certfiles:
  - {certfile:?}
# Loopback c2s on a free port; SCRAM in clear allowed (loopback only).
listen:
  -
    port: {port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: true
    starttls_required: false
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
modules:
  mod_disco: {{}}
  mod_roster: {{}}
  mod_ping: {{}}
  mod_http_upload:
    hosts: ["upload.upslot.test"]
    # put_url and get_url are the prefix: ejabberd appends
    # /<sha1(user@host)>/<random>/<sanitised file name> and signs that path
    # (without the prefix) with ?v= (v1). No ejabberd HTTP listener is needed.
    put_url: {url:?}
    get_url: {url:?}
    external_secret: {secret:?}
    max_size: 10485760
    access: local
"#,
        url = url_prefix,
        certfile = certfile.display().to_string(),
    )
}
