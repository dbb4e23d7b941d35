//! go-sendxmpp (Debian package), the second real XMPP client: a Go program
//! that logs in over STARTTLS (it will not authenticate in clear; `-n`
//! accepts the servers' throwaway certificates), asks the upload service
//! for a slot (XEP-0363), PUTs the file and sends its GET URL as a
//! message. Its debug output (`-d`) shows the slot, which is how the test
//! learns the URL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::XmppServer;
use crate::harness::{Proc, log_file};

/// How long one upload may take, connection and all.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Uploads `file` as `user` (with `password`) and sends it to `to`; returns
/// the GET URL of the slot. `work` holds its output.
pub(crate) fn send_file(
    xmpp: &XmppServer,
    (user, password): (&str, &str),
    to: &str,
    file: &Path,
    work: &Path,
) -> Result<String> {
    let out = work.join("go-sendxmpp.out");
    let mut sender = Proc::spawn(
        "go-sendxmpp",
        Command::new("go-sendxmpp")
            .args(["--debug", "--no-tls-verify", "--timeout", "30"])
            .args(["--username", &format!("{user}@{}", xmpp.domain)])
            .args(["--password", password])
            .args(["--jserver", &format!("127.0.0.1:{}", xmpp.port)])
            .arg("--http-upload")
            .arg(file)
            .arg(to)
            // No ~/.config/go-sendxmpp/sendxmpprc of the host is read.
            .env("HOME", work)
            .stdout(log_file(&out))
            .stderr(log_file(&out.with_extension("err"))),
        "install the go-sendxmpp package",
    )?;
    let status = sender.wait(TIMEOUT)?;
    let said = format!(
        "{}{}",
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(out.with_extension("err")).unwrap_or_default()
    );
    ensure!(status.success(), "go-sendxmpp failed ({status}):\n{said}");
    get_url(&said).with_context(|| format!("no slot's GET URL in go-sendxmpp's output:\n{said}"))
}

/// The `url` of the first `<get url=…>` element in the XML `text`.
fn get_url(text: &str) -> Option<String> {
    let at = text.find("<get ")?;
    let rest = &text[at..];
    let start = rest.find("url=")? + 4;
    let quote = rest[start..].chars().next()?;
    let value = &rest[start + 1..];
    let end = value.find(quote)?;
    Some(value[..end].replace("&amp;", "&"))
}

#[cfg(test)]
mod tests {
    use super::get_url;

    #[test]
    fn finds_the_get_url_with_either_quote() {
        let slot = r#"<slot xmlns='urn:xmpp:http:upload:0'><put url='http://a/p?v=1&amp;x=2'/><get url="http://a/g b"/></slot>"#;
        assert_eq!(get_url(slot).as_deref(), Some("http://a/g b"));
        assert_eq!(
            get_url("<get url='http://a/x?y=1&amp;z'/>").as_deref(),
            Some("http://a/x?y=1&z")
        );
        assert_eq!(get_url("<put url='x'/>"), None);
    }
}
