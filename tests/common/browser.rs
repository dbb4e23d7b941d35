//! Debian's Chromium, driven by the Node.js scripts in `tests/browser/`
//! through playwright-core, for the tests that need a real browser.
//!
//! The npm packages (playwright-core, Converse.js) are installed at test
//! time with `npm ci` from `tests/browser/package-lock.json` into
//! `target/tmp/browser-packages`, once per lock file; nothing third-party is
//! committed. A driver prints one JSON record per line on stdout, which
//! [`run_driver`] hands back. A missing `chromium`, `node` or `npm` fails
//! the test with what to install; nothing is skipped.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::chroot::require_tool;

/// Where the drivers and the npm manifest live.
pub const DRIVERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");

/// Where screenshots go: `target/screenshots/`, kept after the run so CI
/// can publish them as artifacts.
pub fn screenshot_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(Path::new(env!("CARGO_TARGET_TMPDIR")))
        .join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir.join(format!("{name}.png"))
}

/// The `node_modules` directory with the packages of
/// `tests/browser/package-lock.json`, installed on first use. Panics with
/// npm's output if the install fails.
pub fn node_modules() -> &'static Path {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match INSTALLED.get_or_init(install) {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

fn install() -> Result<PathBuf, String> {
    let lock = std::fs::read(Path::new(DRIVERS).join("package-lock.json"))
        .map_err(|e| format!("read tests/browser/package-lock.json: {e}"))?;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-packages");
    let modules = root.join("node_modules");
    // The lock npm ci installed from, kept beside it: same lock, no install.
    let installed_from = root.join("installed-from.json");
    if std::fs::read(&installed_from).ok().as_deref() == Some(lock.as_slice()) {
        return Ok(modules);
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(Path::new(DRIVERS).join(file), root.join(file))
            .map_err(|e| format!("copy tests/browser/{file}: {e}"))?;
    }
    let started = Instant::now();
    let output = Command::new(require_tool("npm", "npm"))
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(&root)
        .output()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "npm ci in {} failed ({}):\n{}{}",
            root.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    eprintln!(
        "installed the browser tests' npm packages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&installed_from, &lock)
        .map_err(|e| format!("write {}: {e}", installed_from.display()))?;
    Ok(modules)
}

/// What a driver printed: its JSON records, and its stderr for messages.
pub struct DriverRun {
    /// Every JSON line of stdout, in order.
    pub records: Vec<Value>,
    /// The driver's stderr (Node's error and stack, if it failed).
    pub stderr: String,
}

impl DriverRun {
    /// The records whose `event` is `event`.
    pub fn events(&self, event: &str) -> Vec<&Value> {
        self.records
            .iter()
            .filter(|r| r["event"] == event)
            .collect()
    }

    /// The one record whose `event` is `event`; panics with the whole run
    /// if there is not exactly one.
    pub fn event(&self, event: &str) -> &Value {
        match self.events(event).as_slice() {
            [one] => one,
            other => panic!(
                "expected one {event:?} record, got {}:\n{}",
                other.len(),
                self.describe()
            ),
        }
    }

    /// The records (console lines left out) and stderr, for a failure message.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for record in &self.records {
            if record["event"] != "console" {
                text.push_str(&record.to_string());
                text.push('\n');
            }
        }
        text.push_str("--- stderr ---\n");
        text.push_str(&self.stderr);
        text
    }

    /// The page's console lines, for a failure message.
    pub fn console(&self) -> String {
        self.events("console")
            .iter()
            .map(|r| format!("{}: {}\n", r["type"], r["text"]))
            .collect()
    }
}

/// Runs `tests/browser/<script>` with `args` (one JSON argument) under
/// `timeout`; kills it and everything it started (Chromium) on timeout.
/// Returns its records; fails with them and its stderr if it exits
/// non-zero.
pub fn run_driver(script: &str, args: &Value, timeout: Duration) -> Result<DriverRun, String> {
    let chromium = require_tool("chromium", "chromium");
    let node = require_tool("node", "nodejs");
    let modules = node_modules();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let file = |path: &Path| std::fs::File::create(path).map_err(|e| e.to_string());
    let mut child = Command::new(node)
        .arg(Path::new(DRIVERS).join(script))
        .arg(args.to_string())
        .env("BROWSER_NODE_MODULES", modules)
        .env("CHROMIUM", chromium)
        .stdin(Stdio::null())
        .stdout(file(&stdout_path)?)
        .stderr(file(&stderr_path)?)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run node: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            // The whole group: node and the Chromium it launched.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let run = DriverRun {
        records: stdout
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    };
    match status {
        Some(status) if status.success() => Ok(run),
        Some(status) => Err(format!(
            "{script} failed ({status}):\n{}\n--- console ---\n{}",
            run.describe(),
            run.console()
        )),
        None => Err(format!(
            "{script} still running after {timeout:?}; killed it:\n{}\n--- console ---\n{}",
            run.describe(),
            run.console()
        )),
    }
}
